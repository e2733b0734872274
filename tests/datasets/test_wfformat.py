"""WfFormat import and export: real WfInstances files and the sample world round-trip and validate, with
the project schema, the upstream 1.5 schema and WfCommons' own validator as judges."""

import json
import logging
import math
import re
from datetime import UTC, datetime, timedelta

import pyarrow as pa
import pytest

import schemas
from datasets.formats.wfformat_read import (
    EXPORTED_TABLES,
    combine_imports,
    escape_task_id,
    hardware_labels,
    read_wfformat,
    tables_to_wfformat,
    unescape_task_id,
    wfformat_to_tables,
)
from datasets.store import read_table
from schemas.formats import FormatError, check_wfformat, read_json
from schemas.tables import KEYS

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
TASK_ID_15 = re.compile(r"^[0-9a-zA-Z-_.#]*$")
# wfcommons 1.6 asks jsonschema for the draft of the 1.5 schema's unversioned "$schema" and gets a warning.
pytestmark = pytest.mark.filterwarnings("ignore:The metaschema specified by:DeprecationWarning")


@pytest.fixture(scope="module")
def upstream_schema(shared_data):
    return json.loads((shared_data / "wfformat" / "wfcommons-schema-1.5.json").read_text())


@pytest.fixture(scope="module")
def wfcommons_validator(shared_data):
    """WfCommons' SchemaValidator on the vendored 1.5 schema (never the network)."""
    schema = pytest.importorskip("wfcommons.wfinstances.schema")
    return schema.SchemaValidator(
        shared_data / "wfformat" / "wfcommons-schema-1.5.json", logger=logging.getLogger("wfcommons-judge")
    )


@pytest.fixture(scope="module")
def sample_tables(sample_dataset):
    return {name: read_table(sample_dataset, name) for name in EXPORTED_TABLES}


def rows_by_key(name: str, table: pa.Table, only_hardware_labels: bool = False) -> dict[tuple, dict]:
    """Rows keyed by the table's natural key, map columns as dicts, so tables compare field by field."""
    rows = {}
    for row in table.to_pylist():
        if "labels" in row:
            row["labels"] = hardware_labels(row["labels"]) if only_hardware_labels else dict(row["labels"])
        rows[tuple(row[k] for k in KEYS[name])] = row
    return rows


def assert_same_tables(before: dict, after: dict, only_hardware_labels: bool = False) -> None:
    for name in EXPORTED_TABLES:
        old = rows_by_key(name, before[name], only_hardware_labels)
        new = rows_by_key(name, after[name], only_hardware_labels)
        assert old.keys() == new.keys(), name
        for key, row in old.items():
            for column, value in row.items():
                assert new[key][column] == value, f"{name} {key} {column}: {value!r} -> {new[key][column]!r}"


def assert_judges_accept(doc, upstream_schema, wfcommons_validator):
    assert [str(f) for f in check_wfformat(doc, doc["name"], upstream_schema) if f.severity == "error"] == []
    wfcommons_validator.validate_instance(doc)  # raises RuntimeError on errors
    assert wfcommons_validator.errors == []


@pytest.mark.parametrize("name", INSTANCES)
def test_every_real_instance_round_trips_and_revalidates(
    shared_data, upstream_schema, wfcommons_validator, name
):
    original = read_json(shared_data / "wfinstances" / name)
    imported = read_wfformat([shared_data / "wfinstances" / name])
    export = tables_to_wfformat(imported.tables)
    assert export.notes == []
    (doc,) = export.documents.values()
    assert_judges_accept(doc, upstream_schema, wfcommons_validator)
    assert_same_tables(imported.tables, wfformat_to_tables(doc, "export").tables)

    # The export says what the file said, in every field both carry.
    assert doc["name"] == original["name"]
    before, after = original["workflow"]["execution"], doc["workflow"]["execution"]
    assert after["makespanInSeconds"] == before["makespanInSeconds"]
    assert (
        datetime.fromisoformat(after["executedAt"]) == imported.tables["workflows"]["started_at"][0].as_py()
    )
    spec_before = {t["id"]: t for t in original["workflow"]["specification"]["tasks"]}
    spec_after = {t["id"]: t for t in doc["workflow"]["specification"]["tasks"]}
    assert spec_after.keys() == spec_before.keys()
    for task_id, task in spec_before.items():
        for key in ("name", "parents", "children"):
            assert spec_after[task_id][key] == task[key]
    executed_after = {t["id"]: t for t in after["tasks"]}
    for task in before["tasks"]:
        for key in ("runtimeInSeconds", "avgCPU", "memoryInBytes", "readBytes", "writtenBytes", "coreCount"):
            assert executed_after[task["id"]].get(key) == task.get(key), (task["id"], key)
        if "machines" in task:
            assert executed_after[task["id"]]["machines"] == task["machines"]
    machines_before = {m["nodeName"]: m for m in before["machines"]}
    for machine in after.get("machines", []):
        expected = {k: v for k, v in machines_before[machine["nodeName"]].items()}
        assert {k: v for k, v in machine.items() if k != "jouletrace"} == expected
        assert machine["jouletrace"]["labels"] == {}  # no node label is made up for a foreign machine
    # Where it came from: the runtime system and every command as the file gave them.
    assert doc["runtimeSystem"] == original["runtimeSystem"]
    assert doc["jouletrace"]["source"]["file"] == name
    for task in before["tasks"]:
        assert executed_after[task["id"]]["command"] == task["command"], task["id"]


def test_the_three_timestamp_forms_of_wfinstances_become_utc_start_times(shared_data):
    files = [
        shared_data / "wfinstances" / n
        for n in (
            "helloworld-chain-5-chameleon.json",
            "epigenomics-chameleon-hep-1seq-50k-001.json",
            "sarek-dirt02-001.json",
        )
    ]
    starts = read_wfformat(files).tables["workflows"]["started_at"].to_pylist()
    assert starts == [
        datetime(2023, 5, 10, 16, 23, 32, tzinfo=UTC),  # 05-10-23T16:23:32Z
        datetime(2020, 4, 8, 17, 11, 4, tzinfo=UTC),  # 20200408T171104+0000
        datetime(2023, 3, 21, 23, 21, 6, tzinfo=UTC),  # 2023-03-21T13:21:06-10:00
    ]


def test_import_keeps_what_the_file_says_and_marks_the_rest_unknown(shared_data):
    result = read_wfformat([shared_data / "wfinstances" / "sarek-dirt02-001.json"])
    workflow = result.tables["workflows"].to_pylist()[0]
    assert workflow["workflow_uid"] == "sarek-dirt02-001" and workflow["phase"] == "Unknown"
    assert workflow["energy_joules"] is None and result.tables["task_energy"].num_rows == 0
    tasks = result.tables["tasks"].to_pylist()
    assert {t["provenance"] for t in tasks} == {"measured"}
    # One machine declared and none per task (Nextflow): every task ran on it. It is this run's machine.
    assert {t["host_node"] for t in tasks} == {"dirt02@sarek-dirt02-001"}
    (source,) = result.tables["sources"].to_pylist()
    assert (source["runtime_system_name"], source["runtime_system_version"]) == ("Nextflow", "23.04.1")
    assert source["application"] == "sarek" and source["file"] == "sarek-dirt02-001.json"
    assert [m["node_name"] for m in source["machines"]] == ["dirt02"]
    assert len(source["commands"]) == len(tasks)
    assert schemas.check("tasks", result.tables["tasks"]) == []


def test_files_giving_one_workflow_twice_and_machines_of_the_same_name(shared_data, tmp_path):
    montage = shared_data / "wfinstances" / "montage-chameleon-dss-05d-001.json"
    genome = shared_data / "wfinstances" / "1000genome-chameleon-2ch-250k-001.json"
    result = read_wfformat([montage, genome])
    # Both runs name a machine pegasus-5, at 1299 and 2197 MHz: two machines, each of its own run.
    assert result.notes == []
    speeds = {m["host_node"]: m["cpu_speed_mhz"] for m in result.tables["machines"].to_pylist()}
    assert speeds["pegasus-5@montage-chameleon-dss-05d-001"] == 1299
    assert speeds["pegasus-5@1000genome-chameleon-2ch-250k-001"] == 2197
    assert schemas.check("machines", result.tables["machines"]) == []
    copy = tmp_path / "x" / montage.name
    copy.parent.mkdir()
    copy.write_bytes(montage.read_bytes())
    with pytest.raises(ValueError, match="montage-chameleon-dss-05d-001' was already read from"):
        read_wfformat([montage, copy])


def test_an_unparseable_timestamp_names_file_and_field(shared_data, tmp_path):
    doc = read_json(shared_data / "wfinstances" / "helloworld-chain-5-chameleon.json")
    doc["workflow"]["execution"]["executedAt"] = "half past ten"
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(doc))
    with pytest.raises(
        FormatError, match=r"bad.json: workflow.execution.executedAt: timestamp 'half past ten'"
    ):
        read_wfformat([bad])


def test_foreign_energy_becomes_a_platform_total_and_is_written_back(shared_data):
    doc = read_json(shared_data / "wfinstances" / "helloworld-chain-5-chameleon.json")
    doc["workflow"]["execution"]["tasks"][0]["energyInKWh"] = 0.002
    doc["workflow"]["execution"]["tasks"][0]["avgPowerInW"] = 71.7
    tables = wfformat_to_tables(doc).tables
    (row,) = tables["task_energy"].to_pylist()
    assert (row["device_kind"], row["device_id"], row["avg_power_watts"]) == ("psys", "total", 71.7)
    assert row["energy_joules"] == pytest.approx(7200.0) and row["idle_joules"] == 0.0
    assert tables["workflows"]["energy_joules"][0].as_py() == pytest.approx(7200.0)
    (exported,) = tables_to_wfformat(tables).documents.values()
    first = exported["workflow"]["execution"]["tasks"][0]
    assert first["energyInKWh"] == pytest.approx(0.002)
    assert_same_tables(tables, wfformat_to_tables(exported).tables)


def test_legacy_14_documents_import():
    doc = {
        "name": "legacy",
        "schemaVersion": "1.4",
        "workflow": {
            "makespanInSeconds": 20.0,
            "executedAt": "20200408T154143+0000",
            "machines": [{"nodeName": "n1", "cpu": {"count": 8, "speed": 2400}}],
            "tasks": [
                {"name": "a", "type": "compute", "parents": [], "runtimeInSeconds": 5.0, "cores": 2,
                 "energy": 0.001, "machine": "n1"},
                {"name": "b", "type": "compute", "parents": ["a"], "runtimeInSeconds": 15.0},
            ],
        },
    }  # fmt: skip
    tables = wfformat_to_tables(doc).tables
    tasks = {t["task_id"]: t for t in tables["tasks"].to_pylist()}
    assert tasks["a"]["children"] == ["b"] and tasks["a"]["cpu_request_cores"] == 2.0
    assert tasks["a"]["host_node"] == "n1@wfformat" and tasks["b"]["host_node"] is None
    assert tables["task_energy"]["energy_joules"].to_pylist() == [pytest.approx(3600.0)]
    assert tables["machines"].to_pylist()[0]["cores"] == 8


def test_sample_world_exports_validate_and_round_trip(sample_tables, upstream_schema, wfcommons_validator):
    export = tables_to_wfformat(sample_tables)
    assert export.notes == [] and len(export.documents) == sample_tables["workflows"].num_rows
    imported = []
    for doc in export.documents.values():
        assert_judges_accept(doc, upstream_schema, wfcommons_validator)
        assert doc["schemaVersion"] == "1.5"
        imported.append(wfformat_to_tables(doc))
    back = combine_imports(imported)
    assert back.notes == []  # every document describes a shared machine the same way
    # Machines: WfFormat carries the hardware labels only (OS, architecture, NFD, GPU feature discovery).
    assert_same_tables(sample_tables, back.tables, only_hardware_labels=True)


def test_energy_fields_are_the_additive_joules(sample_tables):
    energy = {}
    for row in sample_tables["task_energy"].to_pylist():
        if row["device_kind"] in schemas.ADDITIVE_DEVICE_KINDS:
            key = (row["workflow_uid"], row["task_id"])
            energy[key] = energy.get(key, 0.0) + row["energy_joules"]
    checked = 0
    devices_seen = set()
    for uid, doc in tables_to_wfformat(sample_tables).documents.items():
        for task in doc["workflow"]["execution"]["tasks"]:
            ext = task["jouletrace"]
            if "energy" not in ext:
                assert (uid, task["id"]) not in energy
                continue
            joules = energy[(uid, unescape_task_id(task["id"]))]
            assert task["energyInKWh"] == pytest.approx(joules / 3.6e6, rel=1e-12)
            if task["runtimeInSeconds"] > 0:
                assert task["avgPowerInW"] == pytest.approx(joules / task["runtimeInSeconds"], rel=1e-12)
            devices_seen |= {d["deviceKind"] for d in ext["energy"]["devices"]}
            checked += 1
        for machine in doc["workflow"]["execution"].get("machines", []):
            assert set(machine["jouletrace"]) >= {"gpuModels", "fpgaModels", "provenance"}
    assert checked == len(energy)
    assert devices_seen == {"cpu_package", "dram", "gpu", "fpga"}


def test_task_ids_outside_the_wfformat_pattern_are_escaped_reversibly():
    odd = ["step 1/2", "ä#x", "plain-id_1.2"]
    for task_id in odd:
        assert (
            TASK_ID_15.match(escape_task_id(task_id)) and unescape_task_id(escape_task_id(task_id)) == task_id
        )
    assert escape_task_id("plain-id_1.2") == "plain-id_1.2"
    start = datetime(2026, 11, 2, 8, tzinfo=UTC)
    workflows = schemas.conform(
        "workflows",
        [dict(workflow_uid="w", workflow_name="odd", cluster="c", phase="Succeeded", started_at=start,
              finished_at=start + timedelta(seconds=5), makespan_seconds=5.0, task_count=3,
              provenance="measured")],
    )  # fmt: skip
    base = dict(
        workflow_uid="w",
        attempt=0,
        phase="Succeeded",
        time_resolution_seconds=1.0,
        gpu_ids=[],
        fpga_ids=[],
        provenance="measured",
    )
    tasks = schemas.conform(
        "tasks",
        [
            base | dict(task_id=odd[0], task_name="a", parents=[], children=[odd[1]], started_at=start,
                        finished_at=start + timedelta(seconds=1), runtime_seconds=1.0),
            base | dict(task_id=odd[1], task_name="b", parents=[odd[0]], children=[], runtime_seconds=2.0),
            # Never ran: no execution entry, its model fields ride on the specification task.
            base | dict(task_id=odd[2], task_name="c", parents=[], children=[], phase="Omitted",
                        reason="skipped", started_at=start),
        ],
    )  # fmt: skip
    tables = {"workflows": workflows, "tasks": tasks, "machines": schemas.empty("machines"),
              "task_energy": schemas.empty("task_energy")}  # fmt: skip
    (doc,) = tables_to_wfformat(tables).documents.values()
    assert [t["id"] for t in doc["workflow"]["specification"]["tasks"]] == [
        "plain-id_1.2",
        "step#201#2f2",
        "#c3#a4#23x",
    ]
    assert "jouletrace" in doc["workflow"]["specification"]["tasks"][0]
    assert_same_tables(tables, wfformat_to_tables(doc).tables)


def test_workflows_wfformat_cannot_hold_are_left_out_with_a_note():
    workflows = schemas.conform(
        "workflows",
        [dict(workflow_uid="w", workflow_name="running", cluster="c", phase="Running", task_count=0,
              provenance="measured")],
    )  # fmt: skip
    export = tables_to_wfformat({"workflows": workflows, "tasks": schemas.empty("tasks")})
    assert export.documents == {} and export.notes == ["workflow w (running) not written: it has no tasks"]


def test_energy_totals_are_rounding_exact_sums(sample_tables):
    (doc, *_) = tables_to_wfformat(sample_tables).documents.values()
    for task in doc["workflow"]["execution"]["tasks"]:
        energy = task["jouletrace"].get("energy")
        if energy:
            additive = [d["energyJoules"] for d in energy["devices"] if d["deviceKind"] != "psys"]
            assert energy["totalJoules"] == math.fsum(additive)
