"""Learning from upstream traces as they are: the 8 real WfInstances runs imported into a dataset."""

import json

import pytest

from models.api import train_dataset
from models.options import TrainOptions
from models.tables import read_trace_dataset
from pipelines.cli import main


@pytest.fixture(scope="module")
def imported(shared_data, tmp_path_factory):
    files = sorted(str(f) for f in (shared_data / "wfinstances").glob("*.json"))
    out = tmp_path_factory.mktemp("wfinstances") / "dataset"
    assert main(["import", "wfformat", *files, "--out", str(out)]) == 0
    return out


def test_runtimes_of_imported_runs_are_learned(imported, tmp_path):
    tasks = read_trace_dataset(imported)["tasks"]
    # WfFormat has no per-task phase: the import says Unknown, and those completed runs are learned from.
    assert set(tasks["phase"]) == {"Unknown"}
    usable = int((tasks["runtime_seconds"] > 0).sum())
    run = train_dataset(imported, TrainOptions(target="runtime_seconds", model="linear"), tmp_path / "model")
    metrics = json.loads((tmp_path / "model" / "metrics.json").read_text())
    assert metrics["n_train"] + metrics["n_test"] == usable == run.metrics["n_train"] + run.metrics["n_test"]
    assert metrics["rows_left_out"] == {
        "task attempts that did not finish or have no runtime": len(tasks) - usable
    }
    # one workflow per application: held-out workflows are applications never seen, and the card says so by
    # its split, not by claiming a cross-workflow accuracy the data cannot give
    assert metrics["split"] == "group:workflow_uid"
    assert {"median", "linear", "task_type_median"} == set(metrics["baselines"])


def test_energy_of_imported_runs_is_refused_clearly(imported, tmp_path):
    with pytest.raises(ValueError, match="no task_energy rows"):
        train_dataset(imported, TrainOptions(target="energy_joules"), tmp_path / "model")
    assert not (tmp_path / "model").exists()
