"""Where every part of an export came from (issue 14, points 5 and 6), on the 8 real WfInstances runs in
../shared/data/wfinstances and on the sample world: machines are per source run; an export keeps the
original runtime system, commands, machines and application, says which values jouletrace measured and
which it imported, and invents no label, runtime system or measurement."""

import json
import shutil

import pyarrow as pa
import pytest

import schemas
from datasets.formats.provenance import SOURCES_TABLE, read_sources
from datasets.formats.publish import export_wfinstances, export_wta_bundle, merge_into_dataset
from datasets.formats.wfformat_read import EXPORTED_TABLES, read_wfformat
from datasets.formats.wta_read import import_wta
from datasets.store import read_table
from pipelines.cli import main
from schemas.formats import check_wfformat, read_json
from schemas.tables import KEYS

# file -> (runtime system folder, application folder)
RUNS = {
    "1000genome-chameleon-2ch-250k-001.json": ("pegasus", "1000genome"),
    "blast-chameleon-small-002.json": ("makeflow", "blast"),
    "epigenomics-chameleon-hep-1seq-50k-001.json": ("pegasus", "epigenomics"),
    "helloworld-chain-5-chameleon.json": ("pegasus", "helloworld"),
    "helloworld-forkjoin-10-chameleon.json": ("pegasus", "helloworld"),
    "montage-chameleon-dss-05d-001.json": ("pegasus", "montage"),
    "sarek-dirt02-001.json": ("nextflow", "sarek"),
    "scrnaseq-dirt02-001.json": ("nextflow", "scrnaseq"),
}
MODEL_TABLES = (*EXPORTED_TABLES, SOURCES_TABLE)


def table_rows(name: str, table: pa.Table) -> dict:
    keys = KEYS.get(name, ("workflow_uid",))
    rows = {}
    for row in table.to_pylist():
        if "labels" in row:
            row["labels"] = dict(row["labels"])
        rows[tuple(row[k] for k in keys)] = row
    return rows


def dataset_rows(root) -> dict:
    tables = {
        name: read_table(root, name) if (root / name).exists() else schemas.empty(name)
        for name in EXPORTED_TABLES
    }
    tables[SOURCES_TABLE] = read_sources(root)
    return {name: table_rows(name, table) for name, table in tables.items()}


@pytest.fixture(scope="module")
def imported(shared_data, tmp_path_factory):
    """The 8 runs imported with the command line, then exported with their original names kept."""
    root = tmp_path_factory.mktemp("real-runs")
    files = [str(shared_data / "wfinstances" / name) for name in RUNS]
    assert main(["import", "wfformat", *files, "--out", str(root / "dataset")]) == 0
    assert (
        main(
            ["export", "wfinstances", str(root / "dataset"), "--out", str(root / "out"), "--keep-identifiers"]
        )
        == 0
    )
    return root


def test_machines_are_per_run_not_merged_by_name(shared_data, tmp_path):
    """pegasus-5 ran 1000genome at 2197 MHz and montage at 1299 MHz: two machines, through separate imports
    into one dataset and back out."""
    for name in ("1000genome-chameleon-2ch-250k-001.json", "montage-chameleon-dss-05d-001.json"):
        merge_into_dataset(tmp_path / "ds", read_wfformat([shared_data / "wfinstances" / name]).tables)
    speeds = {m["host_node"]: m["cpu_speed_mhz"] for m in read_table(tmp_path / "ds", "machines").to_pylist()}
    assert speeds["pegasus-5@1000genome-chameleon-2ch-250k-001"] == 2197
    assert speeds["pegasus-5@montage-chameleon-dss-05d-001"] == 1299
    tasks = read_table(tmp_path / "ds", "tasks").to_pylist()
    on_montage_5 = [t for t in tasks if t["host_node"] == "pegasus-5@montage-chameleon-dss-05d-001"]
    assert on_montage_5 and {t["workflow_uid"] for t in on_montage_5} == {"montage-chameleon-dss-05d-001"}
    bundle = export_wfinstances(tmp_path / "ds", tmp_path / "out", keep_identifiers=True)
    for app, speed in (("1000genome", 2197), ("montage", 1299)):
        (file,) = (bundle.path / "pegasus" / app).glob("*.json")
        machines = {m["nodeName"]: m for m in read_json(file)["workflow"]["execution"]["machines"]}
        assert machines["pegasus-5"]["cpu"]["speedInMHz"] == speed
    # Anonymised, the two are two pseudonyms.
    hidden = export_wfinstances(tmp_path / "ds", tmp_path / "hidden")
    names = set()
    for file in (hidden.path / "pegasus").rglob("*-00?.json"):
        names |= {m["nodeName"] for m in read_json(file)["workflow"]["execution"]["machines"]}
    assert len(names) == 4 and all(n.startswith("node-") for n in names)  # 3 of 1000genome, 1 of montage


@pytest.mark.parametrize("name", sorted(RUNS))
def test_each_real_run_exports_as_its_source_recorded_it(shared_data, imported, name):
    folder, app = RUNS[name]
    original = read_json(shared_data / "wfinstances" / name)
    path = imported / "out" / folder / app / name  # the original file name, under its runtime system
    doc = read_json(path)
    assert [str(f) for f in check_wfformat(doc, str(path)) if f.severity == "error"] == []
    assert doc["name"] == original["name"] and doc["runtimeSystem"] == original["runtimeSystem"]
    assert doc["description"] == original["description"]
    source = doc["jouletrace"]["source"]
    assert (source["origin"], source["file"], source["application"]) == ("imported", name, app)
    before = {t["id"]: t for t in original["workflow"]["execution"]["tasks"]}
    after = {t["id"]: t for t in doc["workflow"]["execution"]["tasks"]}
    assert after.keys() == before.keys()
    for task_id, task in before.items():
        assert after[task_id]["command"] == task["command"], task_id  # program and arguments
        assert after[task_id]["jouletrace"]["provenance"] == "measured"  # by the source, not jouletrace
        assert "energy" not in after[task_id]["jouletrace"] and "energyInKWh" not in after[task_id]
    declared = {m["nodeName"]: m for m in original["workflow"]["execution"]["machines"]}
    for machine in doc["workflow"]["execution"]["machines"]:
        assert {k: v for k, v in machine.items() if k != "jouletrace"} == declared[machine["nodeName"]]
        assert machine["jouletrace"]["labels"] == {}
    text = path.read_text()
    assert "kubernetes.io" not in text and "Argo" not in text


def test_readmes_and_cards_say_the_values_were_imported(imported):
    out = imported / "out"
    assert sorted(p.name for p in out.iterdir()) == ["makeflow", "nextflow", "pegasus"]
    for folder in out.iterdir():
        card = json.loads((folder / "dataset_card.json").read_text())
        origins = card["origins"]
        assert set(origins["workflows"]) == {"imported"} and set(origins["tasks"]) == {"imported"}
        assert set(origins["machines"]) == {"imported"} and origins["task_energy"] == {}
        assert card["measurement_sources"] == [] and card["energy"]["by_origin_rows"] == {}
        texts = [p.read_text() for p in folder.rglob("*.md")]
        for text in texts:
            assert "jouletrace measured none of these values" in text or "## Instances" in text
            for claim in ("Kubernetes", "Argo", "kubernetes.io", "measured by jouletrace (", "Readings:"):
                assert claim not in text, (folder.name, claim)
        assert "imported from `" in (folder / next(iter(_apps(folder))) / "README.md").read_text()
    nextflow = (out / "nextflow" / "README.md").read_text()
    assert nextflow.startswith("# Nextflow 23.04.1")
    assert "`sarek-dirt02-001.json` (WfFormat 1.5, recorded by Nextflow 23.04.1): 1 run" in nextflow
    assert (
        "No energy: the source traces of these runs hold none"
        in (out / "nextflow" / "sarek" / "README.md").read_text()
    )


def _apps(folder):
    return sorted(p.name for p in folder.iterdir() if p.is_dir())


def test_exported_runs_import_back_unchanged(imported, tmp_path):
    """import -> export -> import: the runtime system, commands, machines and application come back, and
    every model table and sources row equals the first import."""
    files = sorted(str(p) for p in (imported / "out").rglob("*.json") if p.name != "dataset_card.json")
    assert len(files) == 8
    assert main(["import", "wfformat", *files, "--out", str(tmp_path / "again")]) == 0
    first, again = dataset_rows(imported / "dataset"), dataset_rows(tmp_path / "again")
    for name in MODEL_TABLES:
        assert first[name].keys() == again[name].keys(), name
        for key, row in first[name].items():
            assert again[name][key] == row, (name, key)


def test_wta_export_of_imported_runs_keeps_where_they_came_from(imported, tmp_path):
    bundle = export_wta_bundle(imported / "dataset", tmp_path / "wta", keep_identifiers=True)
    assert [f for f in bundle.findings if f.severity == "error"] == []
    workflows = import_wta(bundle.path).tables
    schedulers = read_table_wta(bundle.path, "workflows")["scheduler"].to_pylist()
    assert sorted(set(schedulers)) == ["Makeflow 7.1.12.", "Nextflow 23.04.1", "Pegasus 4.9.3", "Pegasus 5.0"]
    info = json.loads((bundle.path / "workload" / "schema-1.0" / "generic_information.json").read_text())
    assert "jouletrace measured none of these values" in info["workload_description"]
    assert "Argo" not in info["workload_description"]
    first = dataset_rows(imported / "dataset")
    back = {name: table_rows(name, workflows[name]) for name in (SOURCES_TABLE, "machines")}
    for key, row in first[SOURCES_TABLE].items():
        assert back[SOURCES_TABLE][key] == row, key  # runtime system, file, commands, machine names
    assert back["machines"].keys() == first["machines"].keys()


def read_table_wta(root, name):
    import pyarrow.parquet as pq

    return pq.read_table(root / name / "schema-1.0" / "part.0.parquet")


def test_collected_and_imported_runs_are_told_apart(sample_dataset, shared_data, tmp_path):
    dataset = tmp_path / "dataset"
    shutil.copytree(sample_dataset, dataset)
    merge_into_dataset(dataset, read_wfformat([shared_data / "wfinstances" / "sarek-dirt02-001.json"]).tables)
    bundle = export_wfinstances(dataset, tmp_path / "out")
    assert [f.name for f in bundle.folders] == ["argo", "nextflow"] and bundle.findings == []
    argo = json.loads((bundle.path / "argo" / "dataset_card.json").read_text())
    assert argo["origins"]["workflows"] == {"synthetic": 6} and argo["measurement_sources"]
    nextflow = json.loads((bundle.path / "nextflow" / "dataset_card.json").read_text())
    assert nextflow["origins"]["workflows"] == {"imported": 1} and nextflow["measurement_sources"] == []
    (doc,) = [read_json(p) for p in (bundle.path / "nextflow" / "sarek").glob("*.json")]
    assert doc["runtimeSystem"]["name"] == "Nextflow"
    sample = read_json(next((bundle.path / "argo").rglob("*-001.json")))
    assert sample["runtimeSystem"]["name"] == "Argo Workflows"
    assert sample["jouletrace"]["source"] == {"origin": "jouletrace"}
    # The whole-export card counts both.
    assert bundle.card["origins"]["workflows"] == {"imported": 1, "synthetic": 6}


def test_runs_of_unknown_origin_claim_nothing(shared_data, tmp_path):
    """A dataset imported before sources were kept: no runtime system, no Argo, origin not recorded."""
    merge_into_dataset(
        tmp_path / "ds",
        read_wfformat([shared_data / "wfinstances" / "montage-chameleon-dss-05d-001.json"]).tables,
    )
    shutil.rmtree(tmp_path / "ds" / "sources")
    bundle = export_wfinstances(tmp_path / "ds", tmp_path / "out", keep_identifiers=True)
    assert [f.name for f in bundle.folders] == ["unknown-runtime-system"]
    (file,) = (bundle.folders[0]).rglob("montage-*.json")
    doc = read_json(file)
    assert "runtimeSystem" not in doc and "source" not in doc["jouletrace"]
    readme = (bundle.folders[0] / "README.md").read_text()
    assert "Origin not recorded" in readme and "Argo" not in readme and "Kubernetes" not in readme


def test_a_folder_jouletrace_did_not_write_is_not_replaced(shared_data, tmp_path):
    merge_into_dataset(
        tmp_path / "ds", read_wfformat([shared_data / "wfinstances" / "sarek-dirt02-001.json"]).tables
    )
    clone = tmp_path / "WfInstances" / "nextflow"
    clone.mkdir(parents=True)
    (clone / "README.md").write_text("upstream\n")
    with pytest.raises(FileExistsError, match="nextflow: exists and was not written by jouletrace"):
        export_wfinstances(tmp_path / "ds", tmp_path / "WfInstances")
    assert (clone / "README.md").read_text() == "upstream\n"
