from datetime import UTC, datetime

import pytest

import schemas
from pipelines.traces.assets import with_workflow_energy
from pipelines.traces.checks import balance_problems, negative_energy_rows


def energy_row(task, kind, joules, workflow="w1"):
    return dict(
        workflow_uid=workflow,
        task_id=task,
        device_kind=kind,
        device_id=f"{kind}-0",
        energy_joules=joules,
        dynamic_joules=joules,
        idle_joules=0.0,
        coverage=1.0,
        samples=1,
        method="test",
        uncertainty_joules=0.0,
        provenance="synthetic",
    )


def workflows():
    row = dict(workflow_uid="w1", workflow_name="w", cluster="c", phase="Succeeded", task_count=2)
    return schemas.conform(
        "workflows",
        [row | {"provenance": "synthetic"}, row | {"workflow_uid": "w2", "provenance": "synthetic"}],
    )


def test_workflow_energy_sums_only_meters_that_do_not_overlap():
    energy = schemas.conform(
        "task_energy",
        [
            energy_row("a", "cpu_package", 100.0),
            energy_row("a", "cpu_core", 60.0),  # inside the package: not added again
            energy_row("a", "psys", 150.0),  # contains the package: not added
            energy_row("a", "dram", 10.0),
            energy_row("b", "gpu", 5.0),
        ],
    )
    result = with_workflow_energy(workflows(), energy)
    assert result["energy_joules"].to_pylist() == [115.0, None]
    assert schemas.check("workflows", result) == []


def test_balance_check_finds_overattribution_and_mismatched_sums():
    start = datetime(2026, 11, 2, 8, tzinfo=UTC)
    row = dict(
        host_node="n1",
        device_kind="cpu_package",
        device_id="cpu_package-0",
        window_start=start,
        window_end=start.replace(hour=9),
        measured_joules=1000.0,
        attributed_joules=900.0,
        unattributed_joules=100.0,
        provenance="synthetic",
    )
    energy = schemas.conform("task_energy", [energy_row("a", "cpu_package", 900.0)])
    assert balance_problems(schemas.conform("node_energy_balance", [row]), energy) == []
    over = row | {"attributed_joules": 1100.0, "unattributed_joules": -100.0}
    problems = balance_problems(schemas.conform("node_energy_balance", [over]), energy)
    assert any("attributed exceeds measured" in p for p in problems)
    assert any("tasks hold 900.0 J" in p for p in problems)
    open_gap = row | {"unattributed_joules": 50.0}
    assert any(
        "measured != attributed + unattributed" in p
        for p in balance_problems(schemas.conform("node_energy_balance", [open_gap]), energy)
    )


def test_negative_energy_rows_are_counted():
    energy = schemas.conform("task_energy", [energy_row("a", "dram", 1.0), energy_row("b", "dram", 2.0)])
    assert negative_energy_rows(energy) == 0
    bad = energy.set_column(energy.schema.get_field_index("idle_joules"), "idle_joules", [[0.0, -1.0]])
    assert negative_energy_rows(bad) == 1
    with pytest.raises(schemas.SchemaError):
        schemas.validate("task_energy", bad)
