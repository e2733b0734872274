"""Real WTA traces as the archive ships them (issue 14, point 4): column types other than the schema-1.0
document says, traces without generic_information.json or without a workflows table. They are read as they
are: converted without loss, warned about what is missing, refused only for what cannot be read, naming the
file and the column.

The fixtures are written here, with pyarrow, from the schema-1.0 field list (schemas.wta_checks) and the
quirks seen in published traces: Shell's Chronos trace stores `resource_used` as a string (`'[]'`), `parents`
as list<int64> and `children` as list<double>, memory and disk as int64, counts as int32, plus a pandas index
column and no resources table; the Askalon traces (`wtf-trace`) hold tasks only, with no workflows table and
no generic_information.json."""

import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import schemas
from datasets.formats.provenance import SOURCES_TABLE
from datasets.formats.publish import export_wfinstances, merge_into_dataset
from datasets.formats.wta_read import import_wta
from datasets.store import read_table
from schemas.formats import FormatError, check_wta

TASKS = "tasks/schema-1.0/part.0.parquet"


def write_table(root, name: str, columns: dict) -> None:
    folder = root / name / "schema-1.0"
    folder.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.table(columns), folder / "part.0.parquet")


def shell_like(root, resource_used=None):
    """Two workflows of three and one tasks, typed as the Chronos trace is (not as schema-1.0 says)."""
    write_table(
        root,
        "tasks",
        {
            "children": pa.array([[1.0], [2.0], [], []], pa.list_(pa.float64())),
            "disk_io_time": pa.array([-1] * 4, pa.int64()),
            "disk_space_requested": pa.array([-1] * 4, pa.int64()),
            "energy_consumption": pa.array([-1] * 4, pa.int64()),
            "group_id": pa.array([-1] * 4, pa.int32()),
            "id": pa.array([0, 1, 2, 3], pa.int64()),
            "memory_requested": pa.array([-1] * 4, pa.int64()),
            "network_io_time": pa.array([-1] * 4, pa.int64()),
            "nfrs": pa.array([" "] * 4),
            "params": pa.array(["{}"] * 4),
            "parents": pa.array([[], [0], [1], []], pa.list_(pa.int64())),
            "resource_amount_requested": pa.array([1.0, 1.0, 2.0, 1.0]),
            "resource_type": pa.array(["thread"] * 4),
            "resource_used": resource_used or pa.array(["[]", "7", "[7]", "node-b"]),
            "runtime": pa.array([7184, 9171, 5000, 1000], pa.int64()),
            "submission_site": pa.array([0] * 4, pa.int32()),
            "ts_submit": pa.array([0, 7184, 16355, 6000], pa.int64()),
            "type": pa.array(["composite"] * 4),
            "user_id": pa.array([-1] * 4, pa.int32()),
            "wait_time": pa.array([-1] * 4, pa.int64()),
            "workflow_id": pa.array([0, 0, 0, 1], pa.int64()),
            "__index_level_0__": pa.array([0, 1, 2, 3], pa.int64()),
        },
    )
    write_table(
        root,
        "workflows",
        {
            "approx_max_concurrent_tasks": pa.array([1, 1], pa.int32()),
            "critical_path_length": pa.array([21355, 1000], pa.int32()),
            "critical_path_task_count": pa.array([3, 1], pa.int32()),
            "id": pa.array([0, 1], pa.int64()),
            "nfrs": pa.array(["{}", "{}"]),
            "scheduler": pa.array(["ANANKE", "ANANKE"]),
            "task_count": pa.array([3, 1], pa.int32()),
            "total_disk_space_usage": pa.array([-1.0, -1.0]),
            "total_energy_consumption": pa.array([-1, -1], pa.int64()),
            "total_memory_usage": pa.array([-1.0, -1.0]),
            "total_network_usage": pa.array([-1.0, -1.0]),
            "total_resources": pa.array([3, 1], pa.int32()),
            "ts_submit": pa.array([0, 6000], pa.int64()),
        },
    )
    return root


def test_the_types_of_a_real_trace_are_read_without_loss(tmp_path):
    root = shell_like(tmp_path / "shell")
    result = import_wta(root)
    messages = [str(w) for w in result.warnings]
    assert all(w.severity == "warning" for w in result.warnings)
    assert any("generic_information.json: <file>: warning: is missing" in m for m in messages)
    assert not any("<columns>" in m for m in messages)  # every schema-1.0 column is there, typed otherwise
    tasks = {t["task_id"]: t for t in result.tables["tasks"].to_pylist()}
    # children stored as list<double>, parents as list<int64>: the same ids.
    assert (tasks["1"]["parents"], tasks["1"]["children"]) == (["0"], ["2"])
    # resource_used as text: '[]' is none, '7' and '[7]' the resource 7, a name stays a name; all of this trace.
    assert [tasks[t]["host_node"] for t in "0123"] == [None, "7@shell", "7@shell", "node-b@shell"]
    assert tasks["2"]["cpu_request_cores"] == 2.0  # 'thread' counts CPUs
    assert tasks["0"]["runtime_seconds"] == pytest.approx(7.184)
    workflows = {w["workflow_uid"]: w for w in result.tables["workflows"].to_pylist()}
    assert set(workflows) == {"shell:0", "shell:1"} and workflows["shell:0"]["task_count"] == 3
    # The trace's scheduler is the runtime system that recorded it; nothing else is claimed.
    (source, _) = result.tables[SOURCES_TABLE].to_pylist()
    assert (source["origin"], source["format"], source["file"], source["runtime_system_name"]) == (
        "imported",
        "WTA schema-1.0",
        "shell",
        "ANANKE",
    )
    assert source["runtime_system_version"] is None and source["description"] is None
    for name in ("workflows", "tasks", "machines", "task_energy"):
        assert schemas.check(name, result.tables[name]) == [], name


def test_a_trace_of_tasks_only_gets_its_workflows_from_the_tasks(tmp_path):
    """The wtf-trace layout: tasks/ only (int64 ids as large as the archive's), no workflows table, no
    generic_information.json, parents/children list<int64>, resource ids with no resources table."""
    root = tmp_path / "askalon"
    big = 1078341553348591493
    write_table(
        root,
        "tasks",
        {
            "id": pa.array([362334516345962206, 502010169100446658], pa.int64()),
            "ts_submit": pa.array([245604, 251325], pa.int64()),
            "submission_site": pa.array([174618386, 174618386], pa.int32()),
            "runtime": pa.array([5721, 8216], pa.int64()),
            "resource_type": pa.array(["CPU", "CPU"]),
            "resource_amount_requested": pa.array([1.0, 1.0]),
            "parents": pa.array([[], [362334516345962206]], pa.list_(pa.int64())),
            "children": pa.array([[502010169100446658], []], pa.list_(pa.int64())),
            "workflow_id": pa.array([big, big], pa.int64()),
            "params": pa.array(['{"input1": "ssh://host//input.1"}', "{}"]),
            "resource_used": pa.array([610574856226164330, 610574856226164330], pa.int64()),
        },
    )
    result = import_wta(root)
    messages = [str(w) for w in result.warnings]
    assert any("workflows/schema-1.0: <folder>: warning: is missing" in m for m in messages)
    assert any("generic_information.json: <file>: warning: is missing" in m for m in messages)
    assert any(
        f"{TASKS}: <columns>: warning: 10 schema-1.0 columns are absent and read as unknown: disk_io_time,"
        in m
        for m in messages
    )
    (workflow,) = result.tables["workflows"].to_pylist()
    assert workflow["workflow_uid"] == f"askalon:{big}" and workflow["task_count"] == 2
    assert workflow["started_at"] == result.tables["tasks"]["started_at"].to_pylist()[0]  # the first submit
    hosts = set(result.tables["tasks"]["host_node"].to_pylist())
    assert hosts == {"610574856226164330@askalon"}


@pytest.mark.parametrize(
    ("column", "values", "message"),
    [
        ("runtime", pa.array(["7184", "fast", "1", "2"]), "row 1: 'fast' is not a whole number"),
        ("ts_submit", pa.array([0.0, 7184.5, 1.0, 2.0]), "row 1: 7184.5 is not a whole number"),
        ("parents", pa.array([{"a": 1}] * 4), "type is struct<a: int64>, expected a list of ids"),
        ("children", pa.array([[0.5], [], [], []], pa.list_(pa.float64())), "not whole numbers, e.g. 0.5"),
        ("resource_used", pa.array(["[x", "", "", ""]), "row 0: '[x' is neither a resource id"),
    ],
)
def test_what_cannot_be_read_names_file_column_row_and_value(tmp_path, column, values, message):
    root = shell_like(tmp_path / "shell")
    table = pq.read_table(root / TASKS)
    table = table.set_column(table.schema.get_field_index(column), column, values)
    pq.write_table(table, root / TASKS)
    with pytest.raises(FormatError) as raised:
        import_wta(root)
    (finding,) = raised.value.findings
    assert finding.source.endswith(TASKS) and finding.where == f"column {column!r}"
    assert message in finding.message


def test_numbers_stored_as_text_are_read_as_numbers(tmp_path):
    root = shell_like(tmp_path / "shell")
    table = pq.read_table(root / TASKS)
    for column, values in (
        ("runtime", pa.array(["7184", "9171", "5000.0", " 1000 "])),
        ("children", pa.array(["[1]", "[2]", "[]", ""])),
        ("memory_requested", pa.array(["1024", "", "nan", "2048"])),
    ):
        table = table.set_column(table.schema.get_field_index(column), column, values)
    pq.write_table(table, root / TASKS)
    assert check_wta(root) and all(f.severity == "warning" for f in check_wta(root))
    tasks = {t["task_id"]: t for t in import_wta(root).tables["tasks"].to_pylist()}
    assert tasks["2"]["runtime_seconds"] == 5.0 and tasks["0"]["children"] == ["1"]


def test_two_traces_keep_their_machines_and_workflows_apart(tmp_path):
    """Resource 7 of one trace is not resource 7 of another; workflow 0 neither."""
    dataset = tmp_path / "dataset"
    for name, cores in (("alpha", 4.0), ("beta", 64.0)):
        root = shell_like(tmp_path / name)
        write_table(
            root,
            "resources",
            {"id": pa.array([7], pa.int64()), "num_resources": pa.array([cores]), "os": pa.array(["linux"])},
        )
        merge_into_dataset(dataset, import_wta(root).tables)
    machines = {m["host_node"]: m for m in read_table(dataset, "machines").to_pylist()}
    assert {h: m["cores"] for h, m in machines.items()} == {"7@alpha": 4, "7@beta": 64}
    # A trace's `os` is the machine's system as the trace says; no Kubernetes label is made up for it.
    assert all(dict(m["labels"]) == {} for m in machines.values())
    uids = set(read_table(dataset, "workflows")["workflow_uid"].to_pylist())
    assert uids == {"alpha:0", "alpha:1", "beta:0", "beta:1"}


def test_an_imported_wta_trace_exports_as_what_it_is(tmp_path):
    root = shell_like(tmp_path / "shell")
    write_table(root, "resources", {"id": pa.array([7], pa.int64()), "os": pa.array(["linux"])})
    (root / "workload" / "schema-1.0").mkdir(parents=True)
    (root / "workload" / "schema-1.0" / "generic_information.json").write_text(
        json.dumps({"total_workflows": 2, "total_tasks": 4, "workload_description": "Chronos IoT pipelines"})
    )
    merge_into_dataset(tmp_path / "dataset", import_wta(root).tables)
    bundle = export_wfinstances(tmp_path / "dataset", tmp_path / "out", keep_identifiers=True)
    assert [f.name for f in bundle.folders] == ["ananke"] and bundle.findings == []
    doc = json.loads((bundle.folders[0] / "shell" / "shell-unknown-3t-001.json").read_text())
    assert doc["runtimeSystem"] == {"name": "ANANKE", "version": "unknown"}
    assert doc["description"] == "Chronos IoT pipelines"
    assert doc["jouletrace"]["source"]["runtimeSystem"] == {"name": "ANANKE"}
    machine = doc["workflow"]["execution"]["machines"][0]
    assert machine["nodeName"] == "7" and machine["system"] == "linux"
    assert machine["jouletrace"]["hostNode"] == "7@shell" and machine["jouletrace"]["labels"] == {}
