"""WTA import and export: layout, int64 ids and back, millisecond times, Wh and joule energy, round trips."""

import json
import math
import shutil
from datetime import timedelta

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import schemas
from datasets.formats.provenance import SOURCES_TABLE
from datasets.formats.wfformat_read import EXPORTED_TABLES, hardware_labels, read_wfformat
from datasets.formats.wta_read import import_wta
from datasets.formats.wta_write import critical_path, max_concurrent_tasks, tables_to_wta, write_wta, wta_id
from datasets.store import read_table
from schemas.formats import WTA_TASKS, WTA_WORKFLOWS, FormatError, validate_wta


@pytest.fixture(scope="module")
def sample_tables(sample_dataset):
    return {name: read_table(sample_dataset, name) for name in EXPORTED_TABLES}


@pytest.fixture(scope="module")
def sample_trace(sample_tables, tmp_path_factory):
    root = tmp_path_factory.mktemp("wta")
    write_wta(tables_to_wta(sample_tables), root)
    return root


def additive_task_joules(task_energy: pa.Table) -> dict[tuple[str, str], float]:
    totals: dict[tuple[str, str], list[float]] = {}
    for row in task_energy.to_pylist():
        if row["device_kind"] in schemas.ADDITIVE_DEVICE_KINDS:
            totals.setdefault((row["workflow_uid"], row["task_id"]), []).append(row["energy_joules"])
    return {key: math.fsum(values) for key, values in totals.items()}


def test_layout_columns_and_types_follow_wta_schema_10(sample_trace):
    for name, schema in (("workflows", WTA_WORKFLOWS), ("tasks", WTA_TASKS)):
        table = pq.read_table(sample_trace / name / "schema-1.0" / "part.0.parquet")
        assert table.schema.names == sorted(table.schema.names)
        assert table.schema.equals(schema, check_metadata=False)
    tasks = pq.read_table(sample_trace / "tasks" / "schema-1.0" / "part.0.parquet")
    assert tasks.schema.field("parents").type == pa.list_(pa.int64())
    assert tasks.schema.field("energy_consumption").type == pa.int64()
    assert tasks.schema.field("energy_consumption_joules").type == pa.float64()
    assert (sample_trace / "resources" / "schema-1.0" / "part.0.parquet").is_file()
    assert validate_wta(sample_trace) == []


def test_ids_are_stable_int64_and_map_back(sample_tables, sample_trace):
    tasks = pq.read_table(sample_trace / "tasks" / "schema-1.0" / "part.0.parquet").to_pylist()
    first = sample_tables["tasks"].to_pylist()[0]
    expected = wta_id("tasks", first["workflow_uid"], first["task_id"])
    assert 0 <= expected < 2**63 and expected in {t["id"] for t in tasks}
    again = tables_to_wta(sample_tables)
    assert sorted(again.tasks["id"].to_pylist()) == sorted(t["id"] for t in tasks)


def test_energy_in_wh_truncated_and_in_joules(sample_tables, sample_trace):
    joules = additive_task_joules(sample_tables["task_energy"])
    id_of = {wta_id("tasks", uid, tid): (uid, tid) for uid, tid in joules}
    tasks = pq.read_table(sample_trace / "tasks" / "schema-1.0" / "part.0.parquet").to_pylist()
    short = 0
    for task in tasks:
        key = id_of.get(task["id"])
        if key is None:
            assert task["energy_consumption"] == -1 and task["energy_consumption_joules"] == -1.0
            continue
        assert task["energy_consumption_joules"] == joules[key]
        assert task["energy_consumption"] == math.floor(joules[key] / 3600)
        short += task["energy_consumption"] == 0 and joules[key] > 0
    assert short > 0  # tasks under 1 Wh: the joules column is what keeps them
    workflows = pq.read_table(sample_trace / "workflows" / "schema-1.0" / "part.0.parquet").to_pylist()
    by_uid = {w["workflow_uid"]: w["energy_joules"] for w in sample_tables["workflows"].to_pylist()}
    for wf in workflows:
        uid = next(u for u in by_uid if wta_id("workflows", u) == wf["id"])
        assert wf["total_energy_consumption_joules"] == by_uid[uid]
        assert wf["total_energy_consumption"] == math.floor(by_uid[uid] / 3600)
        assert wf["critical_path_length"] > 0 and wf["approx_max_concurrent_tasks"] >= 1


def test_generic_information_has_the_workload_keys_and_energy_statistics(sample_tables, sample_trace):
    info = json.loads((sample_trace / "workload" / "schema-1.0" / "generic_information.json").read_text())
    assert info["total_tasks"] == sample_tables["tasks"].num_rows and info["version"] == "1.0"
    wh = sorted(j / 3600 for j in additive_task_joules(sample_tables["task_energy"]).values())
    assert info["min_energy"] == pytest.approx(wh[0]) and info["max_energy"] == pytest.approx(wh[-1])
    assert info["mean_energy"] == pytest.approx(sum(wh) / len(wh))
    assert info["mean_energy_joules"] == pytest.approx(3600 * info["mean_energy"])
    assert info["energy_unit"] == "Wh" and info["num_users"] == -1


def test_sample_world_round_trips_on_every_field_wta_carries(sample_tables, sample_trace):
    back = import_wta(sample_trace)
    assert back.warnings == [] and back.notes == []
    before = {r["workflow_uid"]: r for r in sample_tables["workflows"].to_pylist()}
    after = {r["workflow_uid"]: r for r in back.tables["workflows"].to_pylist()}
    assert before.keys() == after.keys()
    for uid, row in before.items():
        for column in ("workflow_name", "started_at", "task_count", "energy_joules", "provenance"):
            assert after[uid][column] == row[column], (uid, column)
    carried = [
        "task_name", "template_name", "attempt", "phase", "host_node", "started_at", "finished_at",
        "time_resolution_seconds", "runtime_seconds", "parents", "children", "cpu_request_cores",
        "memory_request_bytes", "provenance",
    ]  # fmt: skip
    before = {(r["workflow_uid"], r["task_id"]): r for r in sample_tables["tasks"].to_pylist()}
    after = {(r["workflow_uid"], r["task_id"]): r for r in back.tables["tasks"].to_pylist()}
    assert before.keys() == after.keys()
    for key, row in before.items():
        for column in carried:
            assert after[key][column] == row[column], (key, column)
    totals = {(r["workflow_uid"], r["task_id"]): r for r in back.tables["task_energy"].to_pylist()}
    assert {k: r["energy_joules"] for k, r in totals.items()} == additive_task_joules(
        sample_tables["task_energy"]
    )
    assert {r["device_kind"] for r in totals.values()} == {"psys"}
    before = {r["host_node"]: r for r in sample_tables["machines"].to_pylist()}
    after = {r["host_node"]: r for r in back.tables["machines"].to_pylist()}
    for host, row in before.items():
        row["labels"] = hardware_labels(row["labels"])
        assert after[host] | {"labels": dict(after[host]["labels"])} == row
    for name, table in back.tables.items():
        if name != SOURCES_TABLE:
            assert schemas.check(name, table) == [], name
    # The runs say who recorded them: jouletrace (Argo Workflows), in the scheduler column and the id map.
    workflows = pq.read_table(sample_trace / "workflows" / "schema-1.0" / "part.0.parquet")
    assert set(workflows["scheduler"].to_pylist()) == {"Argo Workflows"}
    assert set(back.tables[SOURCES_TABLE]["origin"].to_pylist()) == {"jouletrace"}


def test_a_real_instance_round_trips_through_wta_at_millisecond_precision(shared_data, tmp_path):
    x = read_wfformat([shared_data / "wfinstances" / "blast-chameleon-small-002.json"]).tables
    write_wta(tables_to_wta(x), tmp_path)
    back = {(r["task_id"]): r for r in import_wta(tmp_path).tables["tasks"].to_pylist()}
    for row in x["tasks"].to_pylist():
        got = back[row["task_id"]]
        assert got["runtime_seconds"] == pytest.approx(row["runtime_seconds"], abs=0.0005)
        assert (got["parents"], got["children"], got["host_node"]) == (
            row["parents"],
            row["children"],
            row["host_node"],
        )


def write_foreign_trace(root, parents_type):
    """A trace as other WTA tools write it: no id map, float parents, Wh energy only, 0 total energy."""
    ids = pa.list_(parents_type)
    tables = {
        "tasks": pa.table(
            {
                "id": pa.array([5, 6], pa.int64()),
                "workflow_id": pa.array([9, 9], pa.int64()),
                "ts_submit": pa.array([1_000, 3_000], pa.int64()),
                "runtime": pa.array([2_000, -1], pa.int64()),
                "parents": pa.array([[], [5]], ids),
                "children": pa.array([[6], []], ids),
                "energy_consumption": pa.array([2, -1], pa.int64()),
                "resource_amount_requested": pa.array([1.0, -1.0]),
                "memory_requested": pa.array([512.0, -1.0]),
            }
        ),
        "workflows": pa.table({"id": pa.array([9], pa.int64()), "ts_submit": pa.array([1_000], pa.int64()),
                               "task_count": pa.array([2], pa.int32()),
                               "total_energy_consumption": pa.array([2], pa.int64())}),
    }  # fmt: skip
    for name, table in tables.items():
        (root / name / "schema-1.0").mkdir(parents=True)
        pq.write_table(table, root / name / "schema-1.0" / "part.0.parquet")
    info = root / "workload" / "schema-1.0" / "generic_information.json"
    info.parent.mkdir(parents=True)
    info.write_text(json.dumps({"total_tasks": 2, "total_workflows": 1}))
    return root


@pytest.mark.parametrize("parents_type", [pa.int64(), pa.float64()])
def test_foreign_traces_read_with_decimal_ids_and_wh_energy(tmp_path, parents_type):
    result = import_wta(write_foreign_trace(tmp_path / "chronos", parents_type))
    tasks = {t["task_id"]: t for t in result.tables["tasks"].to_pylist()}
    assert tasks["6"]["parents"] == ["5"] and tasks["5"]["children"] == ["6"]
    assert tasks["6"]["runtime_seconds"] is None and tasks["5"]["runtime_seconds"] == 2.0
    assert tasks["5"]["finished_at"] - tasks["5"]["started_at"] == timedelta(seconds=2)
    assert tasks["5"]["memory_request_bytes"] is None and any("memory_requested" in n for n in result.notes)
    (energy,) = result.tables["task_energy"].to_pylist()
    assert (energy["energy_joules"], energy["uncertainty_joules"]) == (7200.0, 3600.0)
    (workflow,) = result.tables["workflows"].to_pylist()
    # A foreign trace is one source: its workflow ids are scoped by the trace (folder) name.
    assert (workflow["workflow_uid"], workflow["workflow_name"], workflow["energy_joules"]) == (
        "chronos:9",
        "chronos-9",
        7200.0,
    )
    assert any("workload keys are missing" in str(w) for w in result.warnings)


def test_truncated_parquet_import_names_the_file(sample_trace, tmp_path):
    root = tmp_path / "t"
    shutil.copytree(sample_trace, root)
    part = root / "workflows" / "schema-1.0" / "part.0.parquet"
    part.write_bytes(part.read_bytes()[:100])
    with pytest.raises(
        FormatError, match=r"workflows/schema-1.0/part.0.parquet: <file>: not a readable Parquet"
    ):
        import_wta(root)


def test_critical_path_and_concurrency():
    tasks = [
        {"id": 1, "parents": [], "runtime": 1000, "ts_submit": 0},
        {"id": 2, "parents": [1], "runtime": 5000, "ts_submit": 1000},
        {"id": 3, "parents": [1], "runtime": 2000, "ts_submit": 1000},
        {"id": 4, "parents": [2, 3], "runtime": -1, "ts_submit": -1},
    ]
    assert critical_path(tasks) == (6000, 3)
    assert max_concurrent_tasks(tasks) == 2
    assert critical_path(
        [{"id": 1, "parents": [2], "runtime": 1}, {"id": 2, "parents": [1], "runtime": 1}]
    ) == (-1, -1)
