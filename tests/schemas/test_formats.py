"""The format checks: timestamps, WfFormat schema and semantic rules, WTA folders, all with located errors."""

import copy
import json
from datetime import UTC, datetime

import jsonschema
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from schemas.formats import (
    PROJECT_SCHEMA_FILE,
    FormatError,
    check_wfformat,
    check_wta,
    parse_timestamp,
    project_schema,
    read_json,
    timestamp_resolution_seconds,
    upgrade_wfformat,
    validate_wfformat,
    validate_wta,
)

ID_TYPE = pa.int64()
INSTANCES = [
    "1000genome-chameleon-2ch-250k-001.json",
    "blast-chameleon-small-002.json",
    "epigenomics-chameleon-hep-1seq-50k-001.json",
    "helloworld-chain-5-chameleon.json",
    "helloworld-forkjoin-10-chameleon.json",
    "montage-chameleon-dss-05d-001.json",
    "sarek-dirt02-001.json",
    "scrnaseq-dirt02-001.json",
]


@pytest.fixture(scope="module")
def upstream_schema(shared_data):
    return json.loads((shared_data / "wfformat" / "wfcommons-schema-1.5.json").read_text())


def small_doc() -> dict:
    """A valid three-task WfFormat 1.5 document: a -> b -> c."""
    return {
        "name": "small",
        "schemaVersion": "1.5",
        "workflow": {
            "specification": {
                "tasks": [
                    {"name": "a", "id": "a", "parents": [], "children": ["b"], "outputFiles": ["f1"]},
                    {"name": "b", "id": "b", "parents": ["a"], "children": ["c"], "inputFiles": ["f1"]},
                    {"name": "c", "id": "c", "parents": ["b"], "children": []},
                ],
                "files": [{"id": "f1", "sizeInBytes": 10}],
            },
            "execution": {
                "makespanInSeconds": 3.0,
                "executedAt": "2026-11-02T08:00:00Z",
                "machines": [{"nodeName": "n1"}],
                "tasks": [
                    {"id": "a", "runtimeInSeconds": 1.0, "machines": ["n1"]},
                    {"id": "b", "runtimeInSeconds": 1.0},
                    {"id": "c", "runtimeInSeconds": 1.0},
                ],
            },
        },
    }


def errors(findings):
    return [str(f) for f in findings if f.severity == "error"]


@pytest.mark.parametrize(
    ("text", "expected", "resolution"),
    [
        ("05-10-23T16:23:32Z", datetime(2023, 5, 10, 16, 23, 32, tzinfo=UTC), 1.0),  # WfCommons helloworld
        ("20200408T154143+0000", datetime(2020, 4, 8, 15, 41, 43, tzinfo=UTC), 1.0),  # Pegasus 4.9
        ("2023-03-29T10:02:36-10:00", datetime(2023, 3, 29, 20, 2, 36, tzinfo=UTC), 1.0),  # Nextflow
        ("2020-12-30T02:24:13.593719", datetime(2020, 12, 30, 2, 24, 13, 593719, tzinfo=UTC), 1e-6),
        ("2026-11-02T08:08:29.5Z", datetime(2026, 11, 2, 8, 8, 29, 500000, tzinfo=UTC), 0.1),
    ],
)
def test_every_timestamp_form_of_wfinstances_parses_to_utc(text, expected, resolution):
    assert parse_timestamp(text) == expected
    assert timestamp_resolution_seconds(text) == resolution


@pytest.mark.parametrize("text", ["yesterday", "2026-11-02", "13-45-23T10:00:00Z", "", 1700000000])
def test_unparseable_timestamps_are_refused_with_the_value(text):
    with pytest.raises(ValueError, match="timestamp"):
        parse_timestamp(text)


def test_project_schema_is_a_valid_draft_2020_12_schema():
    jsonschema.Draft202012Validator.check_schema(project_schema())
    assert PROJECT_SCHEMA_FILE.name == "wfformat_energy.schema.json"


@pytest.mark.parametrize("name", INSTANCES)
def test_real_instances_pass_the_project_and_upstream_schemas(shared_data, upstream_schema, name):
    doc = read_json(shared_data / "wfinstances" / name)
    assert errors(check_wfformat(doc, name, upstream_schema)) == []


def test_small_document_is_valid():
    assert check_wfformat(small_doc()) == []


def mutated(change) -> list[str]:
    doc = small_doc()
    change(doc)
    return errors(check_wfformat(doc, "doc.json"))


def test_a_missing_task_id_is_located():
    found = mutated(lambda d: d["workflow"]["specification"]["tasks"][1].pop("id"))
    assert found == ["doc.json: workflow.specification.tasks[1]: 'id' is a required property"]


def test_a_bad_type_is_located_with_the_task_id():
    def change(d):
        d["workflow"]["execution"]["tasks"][2]["runtimeInSeconds"] = "1 s"

    assert found_one(
        mutated(change), "workflow.execution.tasks[2] (id 'c').runtimeInSeconds", "is not of type"
    )


def found_one(found, where, text):
    assert len(found) == 1, found
    assert where in found[0] and text in found[0], found[0]
    return True


def test_duplicate_ids_undeclared_references_and_files_are_errors():
    def change(d):
        tasks = d["workflow"]["specification"]["tasks"]
        tasks[2]["id"] = "b"
        tasks[0]["children"].append("ghost")
        tasks[2]["inputFiles"] = ["nowhere"]

    found = mutated(change)
    assert any("tasks[2] (id 'b')" in f and "declared more than once" in f for f in found)
    assert any("tasks[0] (id 'a').children" in f and "'ghost' is not a task" in f for f in found)
    assert any("file 'nowhere' is not declared" in f for f in found)


def test_a_cycle_is_an_error_naming_its_tasks():
    def change(d):
        tasks = d["workflow"]["specification"]["tasks"]
        tasks[0]["parents"] = ["c"]
        tasks[2]["children"] = ["a"]

    assert found_one(mutated(change), "workflow.specification.tasks", "cycle: 3 tasks")


def test_execution_rules_of_wfcommons():
    def change(d):
        execution = d["workflow"]["execution"]
        execution["tasks"].append({"id": "zz", "runtimeInSeconds": 1.0})
        execution["tasks"][1]["machines"] = ["n9"]

    found = mutated(change)
    assert any("tasks[3] (id 'zz')" in f and "not in workflow.specification.tasks" in f for f in found)
    assert any("machine 'n9' is not declared" in f for f in found)


def test_an_unparseable_executed_at_is_located():
    found = mutated(lambda d: d["workflow"]["execution"].update(executedAt="last tuesday"))
    assert found_one(found, "workflow.execution.executedAt", "'last tuesday' is not in a known form")


def test_warnings_do_not_fail_validation():
    doc = small_doc()
    doc["workflow"]["execution"]["tasks"].pop()
    doc["workflow"]["specification"]["tasks"][2]["parents"] = []
    warnings = validate_wfformat(doc)
    assert {w.severity for w in warnings} == {"warning"}
    assert any("no execution entry" in str(w) for w in warnings)
    assert any("one side only" in str(w) for w in warnings)


def test_extension_energy_must_add_up():
    doc = small_doc()
    doc["jouletrace"] = {
        "extensionVersion": "1.0",
        "modelSchemaVersion": "1",
        "workflowUid": "u",
        "cluster": "c",
        "phase": "Succeeded",
        "provenance": "measured",
        "taskIdEscape": "hash-hex-utf8",
        "attribution": {"methods": [], "readings": [], "split": [], "idle": [], "idlePower": []},
        "identifiers": {"anonymised": False},
    }
    device = {
        "deviceKind": "cpu_package",
        "deviceId": "package-0",
        "energyJoules": 3.6e6,
        "dynamicJoules": 3.0e6,
        "idleJoules": 0.6e6,
        "coverage": 1.0,
        "samples": 3,
        "method": "m",
        "uncertaintyJoules": 1.0,
        "provenance": "measured",
    }
    task = doc["workflow"]["execution"]["tasks"][0]
    task["jouletrace"] = {
        "attempt": 0,
        "phase": "Succeeded",
        "provenance": "measured",
        "timeResolutionInSeconds": 1.0,
        "gpuIds": [],
        "fpgaIds": [],
        "energy": {
            "totalJoules": 3.6e6,
            "dynamicJoules": 3.0e6,
            "idleJoules": 0.6e6,
            "uncertaintyJoules": 1.0,
            "coverage": 1.0,
            "devices": [device],
        },
    }
    task["energyInKWh"] = 1.0
    task["avgPowerInW"] = 3.6e6
    assert check_wfformat(doc) == []
    bad = copy.deepcopy(doc)
    bad["workflow"]["execution"]["tasks"][0]["energyInKWh"] = 2.0
    assert found_one(errors(check_wfformat(bad)), "tasks[0] (id 'a').energyInKWh", "2.0 kWh != ")
    bad = copy.deepcopy(doc)
    bad["workflow"]["execution"]["executedAt"] = "20260408T154143+0000"
    assert found_one(errors(check_wfformat(bad)), "workflow.execution.executedAt", "not an RFC 3339 UTC time")
    bad = copy.deepcopy(doc)
    bad["workflow"]["execution"]["tasks"][0]["jouletrace"]["energy"]["devices"][0]["deviceKind"] = "toaster"
    assert found_one(errors(check_wfformat(bad)), "devices[0].deviceKind", "'toaster' is not one of")


def test_extension_11_says_where_the_run_came_from():
    doc = small_doc()
    doc["runtimeSystem"] = {"name": "Pegasus", "version": "4.9.3"}
    doc["jouletrace"] = {
        "extensionVersion": "1.1",
        "modelSchemaVersion": "1",
        "workflowUid": "u",
        "cluster": "unknown",
        "phase": "Unknown",
        "provenance": "measured",
        "taskIdEscape": "hash-hex-utf8",
        "attribution": {"methods": [], "readings": [], "split": [], "idle": [], "idlePower": []},
        "identifiers": {"anonymised": False},
        "source": {
            "origin": "imported",
            "format": "WfFormat 1.5",
            "file": "u.json",
            "runtimeSystem": {"name": "Pegasus", "version": "4.9.3"},
        },
    }
    doc["workflow"]["execution"]["machines"] = [
        {
            "nodeName": "n1",
            "jouletrace": {
                "hostNode": "n1@u",
                "gpuModels": [],
                "fpgaModels": [],
                "labels": {},
                "provenance": "measured",
            },
        }
    ]
    assert errors(check_wfformat(doc)) == []
    bad = copy.deepcopy(doc)
    bad["jouletrace"]["source"]["origin"] = "argo"
    assert found_one(errors(check_wfformat(bad)), "jouletrace.source.origin", "'argo' is not one of")


def legacy_doc() -> dict:
    """A WfFormat 1.4 document: flat tasks, parents by name, `machine`, `cores`, `energy`, `avgPower`."""
    return {
        "name": "legacy",
        "schemaVersion": "1.4",
        "wms": {"name": "Pegasus", "version": "4.9"},
        "workflow": {
            "makespanInSeconds": 20.0,
            "executedAt": "20200408T154143+0000",
            "machines": [{"nodeName": "n1", "cpu": {"count": 8, "speed": 2400, "vendor": "GenuineIntel"}}],
            "tasks": [
                {
                    "name": "prep",
                    "type": "compute",
                    "parents": [],
                    "runtimeInSeconds": 5.0,
                    "cores": 2,
                    "energy": 0.001,
                    "avgPower": 720.0,
                    "machine": "n1",
                    "files": [{"name": "in.txt", "sizeInBytes": 3, "link": "input"}],
                },
                {"name": "run", "id": "7", "type": "compute", "parents": ["prep"], "runtimeInSeconds": 15.0},
            ],
        },
    }


def test_legacy_documents_are_upgraded_to_the_15_layout():
    doc = upgrade_wfformat(legacy_doc())
    spec = doc["workflow"]["specification"]
    assert doc["schemaVersion"] == "1.5" and doc["runtimeSystem"]["name"] == "Pegasus"
    assert [(t["id"], t["parents"], t["children"]) for t in spec["tasks"]] == [
        ("prep", [], ["run_7"]),
        ("run_7", ["prep"], []),
    ]
    assert spec["files"] == [{"id": "in.txt", "sizeInBytes": 3}]
    first = doc["workflow"]["execution"]["tasks"][0]
    assert first["coreCount"] == 2 and first["energyInKWh"] == 0.001 and first["avgPowerInW"] == 720.0
    assert first["machines"] == ["n1"]
    assert doc["workflow"]["execution"]["machines"][0]["cpu"] == {
        "coreCount": 8,
        "speedInMHz": 2400,
        "vendor": "GenuineIntel",
    }
    assert check_wfformat(legacy_doc()) == []


def test_legacy_errors_say_the_document_was_upgraded():
    doc = legacy_doc()
    doc["workflow"]["tasks"][1]["parents"] = ["missing"]
    found = errors(check_wfformat(doc, "old.json"))
    assert found and all("old.json (upgraded from schema 1.4 to 1.5)" in f for f in found)


def test_schema_16_is_read_with_the_15_rules():
    doc = small_doc()
    doc["schemaVersion"] = "1.6"
    assert check_wfformat(doc) == []


def test_invalid_json_reports_line_and_column(tmp_path):
    file = tmp_path / "broken.json"
    file.write_text('{"name": "x",\n "workflow": }')
    with pytest.raises(FormatError, match=r"broken.json: line 2, column 14: not valid JSON"):
        read_json(file)


# --------------------------------------------------------------------------------------------- WTA


def write_trace(root, tasks: dict, workflows: dict | None = None, generic: dict | None = None):
    for name, columns in (("tasks", tasks), ("workflows", workflows or {"id": [1], "ts_submit": [0]})):
        folder = root / name / "schema-1.0"
        folder.mkdir(parents=True, exist_ok=True)
        pq.write_table(pa.table(columns), folder / "part.0.parquet")
    info = root / "workload" / "schema-1.0" / "generic_information.json"
    info.parent.mkdir(parents=True, exist_ok=True)
    info.write_text(json.dumps(generic if generic is not None else {"total_tasks": 3, "total_workflows": 1}))
    return root


def three_tasks(parents_type: pa.DataType = ID_TYPE) -> dict:
    ids = pa.list_(parents_type)
    return {
        "id": pa.array([10, 11, 12], pa.int64()),
        "workflow_id": pa.array([1, 1, 1], pa.int64()),
        "ts_submit": pa.array([0, 1000, 2000], pa.int64()),
        "runtime": pa.array([1000, 1000, -1], pa.int64()),
        "parents": pa.array([[], [10], [11]], ids),
        "children": pa.array([[11], [12], []], ids),
    }


def test_wta_with_double_parents_is_valid_and_warns_about_missing_workload_keys(tmp_path):
    warnings = validate_wta(write_trace(tmp_path, three_tasks(pa.float64())))
    assert {w.severity for w in warnings} == {"warning"}
    assert any("workload keys are missing" in str(w) for w in warnings)
    # The trace lacks most schema-1.0 columns: said once per table, and read as unknown.
    assert any("tasks/schema-1.0/part.0.parquet: <columns>" in str(w) for w in warnings)


def test_wta_ids_that_are_not_whole_numbers_are_refused(tmp_path):
    tasks = three_tasks(pa.float64())
    tasks["parents"] = pa.array([[], [10.5], [11]], pa.list_(pa.float64()))
    found = errors(check_wta(write_trace(tmp_path, tasks)))
    assert found_one(found, "column 'parents'", "not whole numbers, e.g. 10.5")


def test_wta_located_errors(tmp_path):
    tasks = three_tasks()
    tasks["parents"] = pa.array([[12], [10], [11, 99]], pa.list_(pa.int64()))
    tasks["children"] = pa.array([[11], [12], [10]], pa.list_(pa.int64()))
    tasks["id"] = pa.array([10, 11, 11], pa.int64())
    found = errors(check_wta(write_trace(tmp_path, tasks, generic={"total_tasks": 4, "total_workflows": 1})))
    part = str(tmp_path / "tasks" / "schema-1.0" / "part.0.parquet")
    assert f"{part}: row 2: column 'id': task id 11 is used more than once" in found
    assert f"{part}: row 2: column 'parents': task 99 does not exist" in found
    assert any("cycle" in f for f in found)
    assert any("generic_information.json: total_tasks: says 4, the trace holds 3" in f for f in found)


def test_wta_bad_types_and_missing_columns_name_file_and_column(tmp_path):
    tasks = three_tasks()
    tasks["runtime"] = pa.array(["1", "2", "three"])
    tasks["ts_submit"] = pa.array([True, False, True])
    del tasks["workflow_id"]
    found = errors(check_wta(write_trace(tmp_path, tasks)))
    assert any("column 'runtime': row 2: 'three' is not a whole number (int64 expected)" in f for f in found)
    assert any("column 'ts_submit': type is bool, expected int64" in f for f in found)
    assert any("column 'workflow_id': required column is missing" in f for f in found)


def test_wta_values_that_convert_without_loss_are_converted(tmp_path):
    tasks = three_tasks()
    tasks["runtime"] = pa.array(["1000", "1000.0", "-1"])
    tasks["ts_submit"] = pa.array([0.0, 1000.0, float("nan")])
    tasks["parents"] = pa.array(["[]", "[10]", "11"])
    assert errors(check_wta(write_trace(tmp_path, tasks))) == []


def test_truncated_parquet_is_a_located_error(tmp_path):
    root = write_trace(tmp_path, three_tasks())
    part = root / "tasks" / "schema-1.0" / "part.0.parquet"
    part.write_bytes(part.read_bytes()[:-40])
    with pytest.raises(
        FormatError, match=r"part.0.parquet: <file>: not a readable Parquet file \(truncated\?\)"
    ):
        validate_wta(root)


def test_a_folder_without_the_layout_is_refused(tmp_path):
    found = check_wta(tmp_path)
    assert any("tasks/schema-1.0: <folder>: is missing" in f for f in errors(found))
    # Real traces ship without the workload file or the workflows table: warnings, not errors.
    assert [str(f) for f in found if f.severity == "warning"] == [
        f"{tmp_path}/workflows/schema-1.0: <folder>: warning: is missing: workflows are taken from the tasks' "
        "workflow_id (start = first task submit)",
        f"{tmp_path}/workload/schema-1.0/generic_information.json: <file>: warning: is missing: the workload "
        "description (domain, authors, statistics) is unknown",
    ]
