"""normalise_name: a task or workflow type from a name, on Argo-, Kubernetes- and WfInstances-style names."""

import json

import pytest

from models.features import normalise_name


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        # retry suffixes
        ("blastall(1)", "blastall"),
        ("individuals-c22-2(3)", "individuals"),
        # loop items (withItems / withParam)
        ("mProject(0:x)", "mproject"),
        ('process(12:{"chunk":7})', "process"),
        # step indices
        ("mdifffit[0]", "mdifffit"),
        ("[1].align", "align"),
        # UUIDs
        ("align-123e4567-e89b-12d3-a456-426614174000", "align"),
        ("5B0C2B7C-1E2A-4C6B-9F3A-0A1B2C3D4E5F_merge", "merge"),
        # hex hashes (with a digit; hex-looking words are words)
        ("merge-bam-3f9a2c1d", "merge-bam"),
        ("pileup-0cafe12", "pileup"),
        ("add-face", "add-face"),
        # numbered ids
        ("individuals-7", "individuals"),
        ("sifting-c20", "sifting"),
        ("mProject_ID0000012", "mproject"),
        ("split_fasta_ID000001", "split-fasta"),
        # case and separators
        ("Frequency.C22.EUR", "frequency-eur"),
        # names that must survive
        ("fast2bfq", "fast2bfq"),
        ("sol2sanger", "sol2sanger"),
        ("mutation-overlap-afr", "mutation-overlap-afr"),
        ("fast2bfq-4", "fast2bfq"),
        ("sol2sanger-3", "sol2sanger"),
        ("mutation-overlap-c22-afr", "mutation-overlap-afr"),
    ],
)
def test_task_names_lose_their_instance_parts(name, expected):
    assert normalise_name(name) == expected


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("montage-dksxf", "montage"),
        ("1000genome-5pd74", "1000genome"),
        ("fpga-align-5xq9z", "fpga-align"),
        ("mutation-overlap-afr", "mutation-overlap-afr"),
        ("sol2sanger", "sol2sanger"),
        # a lone word is a name, not a suffix
        ("dksxf", "dksxf"),
        # a vowel or a look-alike digit (0, 1, 3) is not in generateName's alphabet
        ("montage-daxsf", "montage-daxsf"),
        ("montage-b1cdf", "montage-b1cdf"),
    ],
)
def test_workflow_names_lose_the_generate_name_suffix(name, expected):
    assert normalise_name(name, generated_suffix=True) == expected


def test_a_task_name_keeps_a_suffix_like_last_word():
    # only workflow names (generated_suffix=True) lose a generateName suffix
    assert normalise_name("montage-dksxf") == "montage-dksxf"


@pytest.mark.parametrize("name", [None, "", 7, float("nan")])
def test_no_name_gives_no_type(name):
    assert normalise_name(name) is None


@pytest.fixture(scope="module")
def wfinstances(shared_data) -> dict[str, list[dict]]:
    """The task specifications of the real WfInstances files in ../shared/data/wfinstances, by file name."""
    files = sorted((shared_data / "wfinstances").glob("*.json"))
    assert files, f"no WfInstances files under {shared_data / 'wfinstances'}"
    return {f.name: json.loads(f.read_text())["workflow"]["specification"]["tasks"] for f in files}


def test_wfinstances_task_names_map_to_their_type(wfinstances):
    tasks = wfinstances
    montage = {t["name"]: normalise_name(t["name"]) for t in tasks["montage-chameleon-dss-05d-001.json"]}
    genome = {t["name"]: normalise_name(t["name"]) for t in tasks["1000genome-chameleon-2ch-250k-001.json"]}
    blast = {t["name"]: normalise_name(t["name"]) for t in tasks["blast-chameleon-small-002.json"]}
    # "mProject_ID0000001" -> mproject, "mutation_overlap_ID0000071" -> mutation-overlap, ...
    for names in (montage, genome, blast):
        for name, kind in names.items():
            prefix = name.rsplit("_ID", 1)[0]
            assert kind == prefix.lower().replace("_", "-"), name
    assert {"mproject", "mdifffit", "mconcatfit", "mbgmodel", "mbackground", "madd"} <= set(montage.values())
    assert set(genome.values()) == {
        "individuals",
        "individuals-merge",
        "sifting",
        "mutation-overlap",
        "frequency",
    }
    assert set(blast.values()) == {"split-fasta", "blastall", "cat-blast", "cat"}


def test_wfinstances_ids_with_a_numbered_suffix_give_the_names_type(wfinstances):
    # nf-core instances: the id is the process name plus "_<n>"
    tasks = wfinstances
    for file in ("sarek-dirt02-001.json", "scrnaseq-dirt02-001.json"):
        for task in tasks[file]:
            assert task["id"] != task["name"]
            assert normalise_name(task["id"]) == normalise_name(task["name"]), task["id"]
    chain = {normalise_name(t["name"]) for t in tasks["helloworld-chain-5-chameleon.json"]}
    assert chain == {"cpuhog-chain"}


def test_every_wfinstances_task_name_has_a_type(wfinstances):
    """A real task name never normalises to nothing (epigenomics' first task is "chr21_chr21_ID0000001")."""
    untyped = [
        (file, task["name"])
        for file, listed in wfinstances.items()
        for task in listed
        if not normalise_name(task["name"])
    ]
    assert untyped == []
