"""WfFormat export: one validated schema-1.5 document per workflow of the trace model.

WfFormat's own fields where they exist (`energyInKWh` and `avgPowerInW` per task, from the meters whose
joules add up), the `jouletrace` extension for the rest. Where a run came from is written as its source gave
it (datasets.formats.provenance): the runtime system that recorded it (Argo Workflows for runs jouletrace collected,
none when nobody recorded one), task commands, machine names and descriptions; the extension's `source`
object says whether jouletrace collected the run or imported it, and from which file.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime

import pyarrow as pa

import schemas
from datasets.formats.provenance import (
    ORIGIN_IMPORTED,
    ORIGIN_JOULETRACE,
    SOURCES_TABLE,
    Origins,
    origins_of,
)
from datasets.formats.wfformat_read import (
    EXTENSION_VERSION,
    LABEL_ARCH,
    LABEL_CPU_VENDOR,
    LABEL_KERNEL,
    LABEL_OS,
    TASK_ID_ESCAPE,
    WFFORMAT_SYSTEMS,
    escape_task_id,
    hardware_labels,
)
from schemas.formats import (
    EXTENSION_KEY,
    JOULES_PER_KWH,
    WFFORMAT_VERSION,
    counted_device_rows,
    format_timestamp,
    validate_wfformat,
)


@dataclass
class WfFormatExport:
    """One WfFormat document per exported workflow (by workflow_uid), and why others were left out."""

    documents: dict[str, dict]
    notes: list[str] = field(default_factory=list)


def method_parts(method: str) -> dict[str, str]:
    """task_energy.method as parts: `reading` (first part), then its key=value parts (split, idle,
    idle_power) and flags (wraps-corrected, reset-estimated)."""
    parts = method.split(";")
    out = {"reading": parts[0]}
    for part in parts[1:]:
        key, _, value = part.partition("=")
        out[key] = value if _ else "yes"
    return out


def attribution_summary(methods: Iterable[str]) -> dict[str, list[str]]:
    """The distinct method strings, and the distinct readings, splits, idle policies and idle power
    estimates they name."""
    methods = sorted(set(methods))
    parsed = [method_parts(m) for m in methods]
    return {
        "methods": methods,
        "readings": sorted({p["reading"] for p in parsed}),
        "split": sorted({p["split"] for p in parsed if "split" in p}),
        "idle": sorted({p["idle"] for p in parsed if "idle" in p}),
        "idlePower": sorted({p["idle_power"] for p in parsed if "idle_power" in p}),
    }


def tables_to_wfformat(
    tables: Mapping[str, pa.Table],
    *,
    created_at: datetime | None = None,
    identifiers: Mapping | None = None,
) -> WfFormatExport:
    """One validated WfFormat 1.5 document per workflow of `tables` (workflows, tasks, and optionally
    machines, task_energy and the dataset's `sources`). Workflows without tasks, start time, makespan or any
    task that ran cannot be written (WfFormat requires them) and are listed in the notes."""
    for name, table in tables.items():
        if name != SOURCES_TABLE:
            schemas.validate(name, table, source=f"{name} to export")
    tasks = _grouped(tables["tasks"], ("workflow_uid",))
    energy = _grouped(tables.get("task_energy"), ("workflow_uid", "task_id"))
    machines = {m["host_node"]: m for m in _rows(tables.get("machines"))}
    origins = origins_of(tables)
    created = created_at or datetime.now(UTC)
    workflows = sorted(
        _rows(tables["workflows"]),
        key=lambda w: (w["started_at"] is None, w["started_at"] or 0, w["workflow_uid"]),
    )
    out = WfFormatExport({})
    for workflow in workflows:
        uid = workflow["workflow_uid"]
        own_tasks = tasks.get((uid,), [])
        problem = _not_writable(workflow, own_tasks)
        if problem:
            out.notes.append(f"workflow {uid} ({workflow['workflow_name']}) not written: {problem}")
            continue
        writer = _DocumentWriter(workflow, own_tasks, energy, machines, origins, out.notes)
        doc = writer.document(created, identifiers or {"anonymised": False})
        validate_wfformat(doc, f"export of workflow {uid}")
        out.documents[uid] = doc
    return out


def _rows(table: pa.Table | None) -> list[dict]:
    return [] if table is None else table.to_pylist()


def _grouped(table: pa.Table | None, keys: tuple[str, ...]) -> dict[tuple, list[dict]]:
    groups: dict[tuple, list[dict]] = {}
    for row in _rows(table):
        groups.setdefault(tuple(row[k] for k in keys), []).append(row)
    return groups


def _not_writable(workflow: Mapping, tasks: list[dict]) -> str | None:
    if not tasks:
        return "it has no tasks"
    if workflow["started_at"] is None:
        return "its start time is unknown"
    if workflow["makespan_seconds"] is None and workflow["finished_at"] is None:
        return "it has not finished (no makespan)"
    if all(t["runtime_seconds"] is None for t in tasks):
        return "none of its tasks ran"
    return None


def source_extension(origins: Origins, uid: str) -> dict | None:
    """The extension's `source` object: who recorded the run and, for an imported run, from where."""
    origin = origins.of(uid)
    if origin == ORIGIN_JOULETRACE:
        return {"origin": ORIGIN_JOULETRACE}
    row = origins.sources.get(uid)
    if origin != ORIGIN_IMPORTED or row is None:
        return None
    return _dropping_nulls(
        {
            "origin": ORIGIN_IMPORTED,
            "format": row["format"],
            "file": row["file"],
            "application": row["application"],
            "description": row["description"],
            "runtimeSystem": origins.runtime_system(uid),
        }
    )


class _DocumentWriter:
    def __init__(
        self,
        workflow: dict,
        tasks: list[dict],
        energy: dict,
        machines: dict,
        origins: Origins,
        notes: list[str],
    ):
        self.workflow = workflow
        self.uid = workflow["workflow_uid"]
        self.tasks = sorted(
            tasks, key=lambda t: (t["started_at"] is None, t["started_at"] or 0, t["task_id"])
        )
        self.energy = energy
        self.machines = machines
        self.origins = origins
        self.notes = notes

    def document(self, created: datetime, identifiers: Mapping) -> dict:
        wf = self.workflow
        spec_tasks, exec_tasks, methods = [], [], []
        for task in self.tasks:
            rows = self.energy.get((self.uid, task["task_id"]), [])
            methods += [r["method"] for r in rows]
            spec, executed = self.task(task, rows)
            spec_tasks.append(spec)
            if executed is not None:
                exec_tasks.append(executed)
        makespan = wf["makespan_seconds"]
        if makespan is None:
            makespan = (wf["finished_at"] - wf["started_at"]).total_seconds()
        execution = {
            "makespanInSeconds": makespan,
            "executedAt": format_timestamp(wf["started_at"]),
            "tasks": exec_tasks,
        }
        hosts = dict.fromkeys(
            t["host_node"]
            for t in self.tasks
            if t["host_node"] is not None and t["runtime_seconds"] is not None
        )
        if hosts:
            execution["machines"] = [self.machine(h) for h in hosts]
        doc = {
            "name": wf["workflow_name"],
            "description": self.description(bool(methods)),
            "createdAt": format_timestamp(created),
            "schemaVersion": WFFORMAT_VERSION,
        }
        system = self.origins.runtime_system(self.uid)
        if system:
            doc["runtimeSystem"] = {"name": system["name"], "version": system.get("version") or "unknown"}
            if system.get("url"):
                doc["runtimeSystem"]["url"] = system["url"]
        doc["workflow"] = {"specification": {"tasks": spec_tasks}, "execution": execution}
        doc[EXTENSION_KEY] = _dropping_nulls(
            {
                "extensionVersion": EXTENSION_VERSION,
                "modelSchemaVersion": schemas.SCHEMA_VERSION,
                "workflowUid": self.uid,
                "namespace": wf["namespace"],
                "cluster": wf["cluster"],
                "phase": wf["phase"],
                "provenance": wf["provenance"],
                "energyJoules": wf["energy_joules"],
                "taskIdEscape": TASK_ID_ESCAPE,
                "attribution": attribution_summary(methods),
                "identifiers": dict(identifiers),
                "source": source_extension(self.origins, self.uid),
            }
        )
        return doc

    def description(self, has_energy: bool) -> str:
        name = self.workflow["workflow_name"]
        row = self.origins.sources.get(self.uid)
        if self.origins.of(self.uid) == ORIGIN_IMPORTED and row:
            if row["description"]:
                return row["description"]
            return f"Workflow run {name}, imported by jouletrace from {row['file'] or 'a trace file'}."
        energy = " with per-task energy" if has_energy else ""
        if self.origins.of(self.uid) != ORIGIN_JOULETRACE:
            return f"Workflow run {name}{energy}, written by jouletrace (where it was recorded is not known)."
        if self.workflow["provenance"] == "synthetic":
            return f"Workflow run {name}{energy}, simulated by jouletrace's sample world (synthetic)."
        return f"Workflow run {name}{energy}, traced by jouletrace from Argo Workflows and Kubernetes."

    def task(self, task: dict, energy_rows: list[dict]) -> tuple[dict, dict | None]:
        task_id = escape_task_id(task["task_id"])
        spec = {
            "name": task["task_name"],
            "id": task_id,
            "parents": [escape_task_id(p) for p in task["parents"]],
            "children": [escape_task_id(c) for c in task["children"]],
        }
        ext = _dropping_nulls(
            {
                "templateName": task["template_name"],
                "attempt": task["attempt"],
                "phase": task["phase"],
                "reason": task["reason"],
                "podName": task["pod_name"],
                "podUid": task["pod_uid"],
                "timeResolutionInSeconds": task["time_resolution_seconds"],
                "cpuRequestCores": task["cpu_request_cores"],
                "memoryRequestInBytes": task["memory_request_bytes"],
                "gpuIds": task["gpu_ids"],
                "fpgaIds": task["fpga_ids"],
                "provenance": task["provenance"],
                "energy": self.task_energy(task, energy_rows),
            }
        )
        runtime = task["runtime_seconds"]
        if runtime is None:
            if task["started_at"] is not None:
                ext["startedAt"] = format_timestamp(task["started_at"])
            spec[EXTENSION_KEY] = ext
            return spec, None
        executed = {"id": task_id, "runtimeInSeconds": runtime}
        if task["started_at"] is not None:
            executed["executedAt"] = format_timestamp(task["started_at"])
        command = self.origins.command(self.uid, task["task_id"])
        if command is not None:
            executed["command"] = _dropping_nulls(dict(command))
        if task["cpu_request_cores"] is not None and task["cpu_request_cores"] >= 1:
            executed["coreCount"] = task["cpu_request_cores"]
        for key, column in (
            ("avgCPU", "avg_cpu_percent"),
            ("readBytes", "read_bytes"),
            ("writtenBytes", "written_bytes"),
            ("memoryInBytes", "memory_peak_bytes"),
        ):
            if task[column] is not None:
                executed[key] = task[column]
        if "energy" in ext:
            total = ext["energy"]["totalJoules"]
            executed["energyInKWh"] = total / JOULES_PER_KWH
            if runtime > 0:
                executed["avgPowerInW"] = total / runtime
        if task["host_node"] is not None:
            executed["machines"] = [self.origins.node_name(task["host_node"])]
        executed[EXTENSION_KEY] = ext
        return spec, executed

    def task_energy(self, task: dict, rows: list[dict]) -> dict | None:
        if not rows:
            return None
        counted = counted_device_rows(rows, "device_kind")
        if not counted:
            self.notes.append(
                f"task {task['task_id']} of workflow {task['workflow_uid']}: its energy rows are only of "
                "meters that do not add up (cpu_core); not written"
            )
            return None
        devices = [
            _dropping_nulls(
                {
                    "deviceKind": r["device_kind"],
                    "deviceId": r["device_id"],
                    "energyJoules": r["energy_joules"],
                    "dynamicJoules": r["dynamic_joules"],
                    "idleJoules": r["idle_joules"],
                    "avgPowerInW": r["avg_power_watts"],
                    "peakPowerInW": r["peak_power_watts"],
                    "coverage": r["coverage"],
                    "samples": r["samples"],
                    "method": r["method"],
                    "uncertaintyJoules": r["uncertainty_joules"],
                    "provenance": r["provenance"],
                }
            )
            for r in sorted(rows, key=lambda r: (r["device_kind"], r["device_id"]))
        ]
        return {
            "totalJoules": math.fsum(r["energy_joules"] for r in counted),
            "dynamicJoules": math.fsum(r["dynamic_joules"] for r in counted),
            "idleJoules": math.fsum(r["idle_joules"] for r in counted),
            # Half-widths add: the devices' errors are not known to be independent.
            "uncertaintyJoules": math.fsum(r["uncertainty_joules"] for r in counted),
            "coverage": min(r["coverage"] for r in counted),
            "devices": devices,
        }

    def machine(self, host: str) -> dict:
        """A machine entry: its name and description as the source gave them (an imported machine), or as
        its hardware labels say (a Kubernetes node); nothing it does not say."""
        entry = {"nodeName": self.origins.node_name(host)}
        machine = self.machines.get(host)
        if machine is None:
            return entry
        labels = dict(machine["labels"])
        described = self.origins.machines.get(host)
        if described is not None:
            system, architecture = described["system"], described["architecture"]
            release, vendor = described["release"], described["cpu_vendor"]
        else:
            system, architecture = labels.get(LABEL_OS), labels.get(LABEL_ARCH)
            release, vendor = labels.get(LABEL_KERNEL), labels.get(LABEL_CPU_VENDOR)
        if system in WFFORMAT_SYSTEMS:
            entry["system"] = system
        if architecture:
            entry["architecture"] = architecture
        if release:
            entry["release"] = release
        if machine["memory_bytes"] is not None and machine["memory_bytes"] >= 1:
            entry["memoryInBytes"] = machine["memory_bytes"]
        cpu = {}
        if machine["cores"] is not None and machine["cores"] >= 1:
            cpu["coreCount"] = machine["cores"]
        if machine["cpu_speed_mhz"] is not None and round(machine["cpu_speed_mhz"]) >= 1:
            cpu["speedInMHz"] = round(machine["cpu_speed_mhz"])
        if vendor:
            cpu["vendor"] = vendor
        if cpu:
            entry["cpu"] = cpu
        entry[EXTENSION_KEY] = _dropping_nulls(
            {
                "hostNode": host if host != entry["nodeName"] else None,
                "cpuModel": machine["cpu_model"],
                "sockets": machine["sockets"],
                "cpuSpeedInMHz": machine["cpu_speed_mhz"],
                "gpuModels": machine["gpu_models"],
                "fpgaModels": machine["fpga_models"],
                "labels": hardware_labels(labels),
                "provenance": machine["provenance"],
            }
        )
        return entry


def _dropping_nulls(mapping: dict) -> dict:
    return {k: v for k, v in mapping.items() if v is not None}


def document_file_bytes(doc: Mapping) -> bytes:
    """The bytes of a WfFormat file: indented JSON, no NaN (it is not JSON)."""
    return (json.dumps(doc, indent=2, allow_nan=False, ensure_ascii=False) + "\n").encode()
