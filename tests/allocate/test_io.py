import json

import pytest

from allocate.catalog import EC2_INSPIRED
from allocate.generators import fft, random_nondeterministic
from allocate.io import (
    catalog_from_json,
    catalog_to_json,
    read_catalog,
    read_workflow,
    workflow_from_json,
    workflow_to_json,
    write_json,
)


def test_workflows_round_trip_through_wf_json(tmp_path):
    for workflow in (fft(4), random_nondeterministic(seed=2, n=5)):
        path = write_json(workflow_to_json(workflow), tmp_path / "WF.json")
        data = json.loads(path.read_text())
        assert set(data) >= {"tasks", "edges"}
        again = read_workflow(path)
        assert again.tasks == workflow.tasks and again.edges == workflow.edges
        assert again.controls == workflow.controls


def test_catalog_round_trips_through_c_json(tmp_path):
    path = write_json(catalog_to_json(EC2_INSPIRED), tmp_path / "C.json")
    assert read_catalog(path) == EC2_INSPIRED
    minimal = catalog_from_json({"vm_types": [{"type": "a", "ncpu": 2, "cost_per_hour": 0.1}]})
    assert minimal.vm_types[0].speed == 1.0 and minimal.bandwidth_bytes_per_second == 125e6


def test_bad_files_are_clear_errors(tmp_path):
    with pytest.raises(FileNotFoundError):
        read_workflow(tmp_path / "missing.json")
    (tmp_path / "bad.json").write_text("{")
    with pytest.raises(ValueError, match="not JSON"):
        read_workflow(tmp_path / "bad.json")
    with pytest.raises(ValueError, match="top level"):
        workflow_from_json({"nodes": []})
    with pytest.raises(ValueError, match="repeated"):
        workflow_from_json(
            {"tasks": [{"id": "a", "work_seconds": 1}, {"id": "a", "kind": "or_join"}], "edges": []}
        )
    with pytest.raises(ValueError, match="unknown kind"):
        workflow_from_json({"tasks": [{"id": "a", "kind": "xor"}], "edges": []})
