"""Publication bundles: WfInstances layout, WTA folder, pseudonyms and salt, dataset card, CLI and assets."""

import json
import stat
from collections import Counter
from pathlib import Path

import dagster as dg
import pytest

from datasets.formats.publish import (
    application_of,
    check_wfinstances_bundle,
    export_wfinstances,
    export_wta_bundle,
    load_or_create_salt,
    merge_into_dataset,
    read_export_tables,
)
from datasets.formats.wfformat_read import attribution_summary, read_wfformat
from datasets.store import read_table
from pipelines.cli import main
from pipelines.export.assets import export_assets
from pipelines.traces.assets import TraceDatasetResource


@pytest.fixture(scope="module")
def dataset(sample_dataset) -> Path:
    return sample_dataset


@pytest.fixture(scope="module")
def identifiers(dataset):
    """Every namespace, pod, node and GPU name of the dataset: none may appear in an anonymised export."""
    tables = read_export_tables(dataset)
    tasks = tables["tasks"].to_pylist()
    names = (
        {t["pod_name"] for t in tasks}
        | {t["pod_uid"] for t in tasks}
        | {t["host_node"] for t in tasks}
        | {g for t in tasks for g in t["gpu_ids"]}
    )
    names |= set(tables["workflows"]["namespace"].to_pylist())
    return {n for n in names if n}


@pytest.fixture(scope="module")
def wfinstances(dataset, tmp_path_factory):
    return export_wfinstances(dataset, tmp_path_factory.mktemp("wfi"), licence="CC0-1.0")


@pytest.mark.parametrize(
    ("name", "application"),
    [("montage-q76xp", "montage"), ("fpga-align-5xq9z", "fpga-align"), ("hello-world", "hello-world"),
     ("Genome_Dax-0", "genome-dax-0")],
)  # fmt: skip
def test_application_is_the_name_without_the_generate_name_suffix(name, application):
    assert application_of(name) == application


def test_wfinstances_layout_readmes_and_card(dataset, wfinstances):
    (root,) = wfinstances.folders
    assert root.name == "argo" and wfinstances.findings == [] and wfinstances.notes == []
    instances = sorted(p.relative_to(root).as_posix() for p in root.rglob("*.json") if p.parent != root)
    assert instances == [
        "1000genome/1000genome-sample-21t-001.json",
        "blast/blast-sample-15t-001.json",
        "epigenomics/epigenomics-sample-70t-001.json",
        "fpga-align/fpga-align-sample-9t-001.json",
        "ml-training/ml-training-sample-11t-001.json",
        "montage/montage-sample-54t-001.json",
    ]
    readme = (root / "montage" / "README.md").read_text()
    for text in ("## File names", "`montage-<platform>-<N>t-<run>.json`", "## Machines", "## Energy",
                 "Uncertainty:", "synthetic", "Failed", "measured by jouletrace"):  # fmt: skip
        assert text in readme
    assert "[montage](montage/README.md)" in (root / "README.md").read_text()
    card = json.loads((root / "dataset_card.json").read_text())
    assert card["licence"] == "CC0-1.0" and card["counts"]["workflows"] == 6
    assert card["provenance"]["tasks"] == {"synthetic": 180}
    # Where the values come from: all simulated by jouletrace's sample world, recorded as Argo runs.
    assert card["origins"]["tasks"] == {"synthetic": 180} and card["origins"]["imported_from"] == []
    assert card["origins"]["runtime_systems"] == {"Argo Workflows": 6}
    assert {s["source"] for s in card["measurement_sources"]} == {"rapl", "nvml", "hwmon"}
    methods = read_export_tables(dataset)["task_energy"]["method"].to_pylist()
    assert card["attribution"] == attribution_summary(methods) | {"method_rows": dict(Counter(methods))}
    assert card["attribution"]["split"] and card["attribution"]["idle"] and card["attribution"]["idlePower"]
    assert card["identifiers"]["anonymised"] is True
    assert "Licence: CC0-1.0" in (root / "dataset_card.md").read_text()
    assert check_wfinstances_bundle(root) == []


def test_identifiers_are_salted_hashes_and_the_salt_stays_home(dataset, wfinstances, identifiers, tmp_path):
    salt_file = dataset / ".jouletrace" / "salt"
    assert stat.S_IMODE(salt_file.stat().st_mode) == 0o600
    salt = salt_file.read_text().strip()
    assert load_or_create_salt(dataset) == salt.encode()
    text = "".join(p.read_text() for p in wfinstances.path.rglob("*") if p.is_file())
    assert salt not in text
    assert not [name for name in identifiers if name in text]
    assert "node-" in text and "pod-" in text and "ns-" in text
    again = export_wfinstances(dataset, tmp_path / "again")
    first = (wfinstances.path / "argo" / "blast" / "blast-sample-15t-001.json").read_text()
    second = (again.path / "argo" / "blast" / "blast-sample-15t-001.json").read_text()
    assert (
        json.loads(first)["workflow"]["execution"]["machines"]
        == json.loads(second)["workflow"]["execution"]["machines"]
    )


def test_keep_identifiers_opts_out(dataset, tmp_path):
    bundle = export_wfinstances(dataset, tmp_path, keep_identifiers=True)
    doc = json.loads((bundle.path / "argo" / "blast" / "blast-sample-15t-001.json").read_text())
    assert doc["jouletrace"]["namespace"] == "science"
    assert doc["jouletrace"]["identifiers"] == {"anonymised": False}


def test_wta_bundle_is_anonymised_checked_and_carries_the_card(dataset, identifiers, tmp_path):
    bundle = export_wta_bundle(dataset, tmp_path / "wta")
    assert bundle.findings == []
    assert json.loads((bundle.path / "dataset_card.json").read_text())["format"].startswith("WTA schema-1.0")
    # Imported back, the id map gives the pseudonyms, never the real names.
    assert main(["import", "wta", str(bundle.path), "--out", str(tmp_path / "ds")]) == 0
    hosts = set(read_table(tmp_path / "ds", "tasks")["host_node"].to_pylist())
    assert hosts and not hosts & identifiers and all(h is None or h.startswith("node-") for h in hosts)


def test_cli_import_export_and_validate(shared_data, tmp_path, capsys):
    files = [str(p) for p in sorted((shared_data / "wfinstances").glob("*.json"))]
    assert main(["import", "wfformat", *files, "--out", str(tmp_path / "ds")]) == 0
    assert main(["validate", str(tmp_path / "ds")]) == 0
    assert main(["export", "wfformat", str(tmp_path / "ds"), "--out", str(tmp_path / "out")]) == 0
    # Filed under the runtime systems that recorded them, not under argo/.
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["makeflow", "nextflow", "pegasus"]
    for folder in ("makeflow", "nextflow", "pegasus"):
        assert main(["validate", str(tmp_path / "out" / folder)]) == 0
    assert (
        main(["export", "wta", str(tmp_path / "ds"), "--out", str(tmp_path / "wta"), "--keep-identifiers"])
        == 0
    )
    assert main(["validate", str(tmp_path / "wta")]) == 0
    assert main(["validate", files[0]]) == 0
    legacy = tmp_path / "legacy.json"
    legacy.write_text(
        json.dumps(
            {"name": "old", "schemaVersion": "1.4",
             "workflow": {"makespanInSeconds": 1, "executedAt": "20200408T154143+0000",
                          "tasks": [{"name": "a", "type": "compute", "parents": [], "runtimeInSeconds": 1}]}}
        )
    )  # fmt: skip
    assert main(["validate", str(legacy)]) == 0
    out = capsys.readouterr().out
    assert "folder of WfFormat instances" in out and "WTA schema-1.0 trace" in out
    assert "legacy.json: WfFormat 1.4 instance, 1 tasks" in out
    broken = tmp_path / "broken.json"
    doc = json.loads((shared_data / "wfinstances" / "blast-chameleon-small-002.json").read_text())
    doc["workflow"]["specification"]["tasks"][0]["parents"] = ["nobody"]
    broken.write_text(json.dumps(doc))
    assert main(["validate", str(broken)]) == 2
    assert "tasks[0] (id 'split_fasta_ID000001').parents: 'nobody' is not a task" in capsys.readouterr().err


def test_importing_again_replaces_the_workflow(shared_data, tmp_path):
    file = shared_data / "wfinstances" / "helloworld-chain-5-chameleon.json"
    other = shared_data / "wfinstances" / "helloworld-forkjoin-10-chameleon.json"
    merge_into_dataset(tmp_path, read_wfformat([file]).tables)
    merge_into_dataset(tmp_path, read_wfformat([other]).tables)
    rows = merge_into_dataset(tmp_path, read_wfformat([file]).tables)
    # Both runs name their machine `ubuntu`: each keeps its own.
    assert rows["workflows"] == 2 and rows["tasks"] == 15 and rows["machines"] == 2 and rows["sources"] == 2


def test_export_assets_materialize_with_passing_checks(dataset, tmp_path):
    config = {
        name: {"config": {"out_dir": str(tmp_path / name)}} for name in ("wfinstances_export", "wta_export")
    }
    result = dg.materialize(
        export_assets,
        resources={"dataset": TraceDatasetResource(root=str(dataset))},
        run_config={"ops": config},
    )
    assert result.success
    assert [(e.check_name, e.passed) for e in result.get_asset_check_evaluations()] == [
        ("formats_valid", True),
        ("formats_valid", True),
    ]
