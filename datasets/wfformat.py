"""WfFormat (WfCommons JSON) in and out of the trace model.

Import reads WfFormat 1.0-1.5 documents (older ones upgraded to the 1.5 layout; 1.6 read as 1.5) into
`workflows`, `tasks`, `machines` and `task_energy`. Runtimes and resource use are `measured`; energy rows
exist only where the file has energy. A document written by jouletrace carries a `jouletrace` extension
object that gives back every model field WfFormat has no place for, so import(export(x)) == x.

Export writes one schema-1.5 document per workflow: WfFormat's own fields where they exist (`energyInKWh`
and `avgPowerInW` per task, from the meters whose joules add up), the extension for the rest (per-device
joules, dynamic/idle split, coverage, method, uncertainty and provenance per task; CPU/GPU/FPGA models per
machine; workflow identity, energy and attribution policy). Every document is validated before it is
returned. docs/formats.md lists what each direction keeps and loses.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow as pa

import schemas
from schemas.formats import (
    EXTENSION_KEY,
    JOULES_PER_KWH,
    LEGACY_VERSIONS,
    WFFORMAT_VERSION,
    Finding,
    counted_device_rows,
    format_timestamp,
    parse_timestamp,
    read_json,
    timestamp_resolution_seconds,
    upgrade_wfformat,
    validate_wfformat,
)

EXTENSION_VERSION = "1.0"
TASK_ID_ESCAPE = "hash-hex-utf8"
# What a foreign document does not say: the model needs a value, this one says "not known".
UNKNOWN_CLUSTER = "unknown"
UNKNOWN_PHASE = "Unknown"
# A task total of unknown composition (WfFormat energyInKWh, WTA energy_consumption) is kept as one platform
# (psys) row: it is whole-task energy, not any single meter, and never summed with cpu_package/dram/gpu/fpga.
TOTAL_DEVICE_KIND = "psys"
TOTAL_DEVICE_ID = "total"
EXPORTED_TABLES = ("workflows", "tasks", "machines", "task_energy")

# Kubernetes node labels that WfFormat machine fields map to, and the label families that describe hardware
# (the only labels exported; the rest can name sites, teams or hosts).
LABEL_OS = "kubernetes.io/os"
LABEL_ARCH = "kubernetes.io/arch"
LABEL_KERNEL = "feature.node.kubernetes.io/kernel-version.full"
LABEL_CPU_VENDOR = "feature.node.kubernetes.io/cpu-model.vendor_id"
HARDWARE_LABEL_PREFIXES = (
    "kubernetes.io/os",
    "kubernetes.io/arch",
    "beta.kubernetes.io/os",
    "beta.kubernetes.io/arch",
    "node.kubernetes.io/instance-type",
    "feature.node.kubernetes.io/",
    "nvidia.com/",
    "amd.com/",
)
WFFORMAT_SYSTEMS = ("linux", "macos", "windows")

_PLAIN_ID_CHAR = re.compile(r"[0-9A-Za-z_.-]")


@dataclass
class ImportResult:
    """Model tables read from a file or folder, what could not be kept (notes) and format warnings."""

    tables: dict[str, pa.Table]
    notes: list[str] = field(default_factory=list)
    warnings: list[Finding] = field(default_factory=list)


@dataclass
class WfFormatExport:
    """One WfFormat document per exported workflow (by workflow_uid), and why others were left out."""

    documents: dict[str, dict]
    notes: list[str] = field(default_factory=list)


# ------------------------------------------------------------------------------------------------- ids


def escape_task_id(task_id: str) -> str:
    """A WfFormat 1.5 task id (`^[0-9a-zA-Z-_.#]*$`) for any model id: every other character, and '#'
    itself, becomes '#' plus two lowercase hex digits per UTF-8 byte. Argo node ids pass unchanged."""
    return "".join(
        ch if _PLAIN_ID_CHAR.fullmatch(ch) else "".join(f"#{b:02x}" for b in ch.encode()) for ch in task_id
    )


def unescape_task_id(text: str) -> str:
    """The model id behind an escaped WfFormat task id."""
    out = bytearray()
    i = 0
    while i < len(text):
        if text[i] == "#":
            pair = text[i + 1 : i + 3]
            if not re.fullmatch(r"[0-9a-f]{2}", pair):
                raise ValueError(f"task id {text!r}: '#' at {i} is not followed by two lowercase hex digits")
            out.append(int(pair, 16))
            i += 3
        else:
            out += text[i].encode()
            i += 1
    try:
        return out.decode()
    except UnicodeDecodeError:
        raise ValueError(f"task id {text!r}: escaped bytes are not UTF-8") from None


# --------------------------------------------------------------------------------------------- import


def read_wfformat(paths: Iterable[str | Path]) -> ImportResult:
    """Import WfFormat files into one set of model tables. A foreign file's workflow_uid is its file name
    without .json; files that give the same workflow twice are an error naming both."""
    results, origin = [], {}
    for path in paths:
        path = Path(path)
        result = wfformat_to_tables(read_json(path), str(path), default_uid=path.stem)
        uid = result.tables["workflows"]["workflow_uid"][0].as_py()
        if uid in origin:
            raise ValueError(f"{path}: workflow {uid!r} was already read from {origin[uid]}")
        origin[uid] = path
        results.append(result)
    if not results:
        raise ValueError("no WfFormat file given")
    return combine_imports(results)


def combine_imports(results: list[ImportResult]) -> ImportResult:
    """Concatenate imports; a machine declared by several files is kept once (the first file's row when they
    disagree, said in the notes)."""
    notes = [n for r in results for n in r.notes]
    machines: dict[str, dict] = {}
    for result in results:
        for row in result.tables["machines"].to_pylist():
            kept = machines.setdefault(row["host_node"], row)
            if kept != row:
                notes.append(
                    f"machine {row['host_node']!r} is described differently by two files; kept the first"
                )
    tables = {
        name: pa.concat_tables([r.tables[name] for r in results])
        for name in ("workflows", "tasks", "task_energy")
    }
    tables["machines"] = schemas.conform("machines", list(machines.values()))
    return ImportResult(tables, notes, [w for r in results for w in r.warnings])


def wfformat_to_tables(doc: object, source: str = "<memory>", default_uid: str = "wfformat") -> ImportResult:
    """Model tables of one WfFormat document (validated first: FormatError lists every error)."""
    warnings = validate_wfformat(doc, source)
    if doc.get("schemaVersion") in LEGACY_VERSIONS:
        doc = upgrade_wfformat(doc)
    reader = _DocumentReader(doc, source, default_uid)
    return ImportResult(reader.tables(), reader.notes, warnings)


class _DocumentReader:
    """Turns one valid WfFormat document into model rows, collecting notes on what it could not keep."""

    def __init__(self, doc: Mapping, source: str, default_uid: str):
        self.doc = doc
        self.source = source
        self.ext = doc.get(EXTENSION_KEY)
        self.ours = self.ext is not None
        self.uid = self.ext["workflowUid"] if self.ours else default_uid
        self.notes: list[str] = []
        workflow = doc["workflow"]
        self.spec_tasks = workflow["specification"]["tasks"]
        self.execution = workflow.get("execution") or {}
        self.executed = {t["id"]: t for t in self.execution.get("tasks", [])}
        self.declared_machines = self.execution.get("machines", [])
        executed_at = self.execution.get("executedAt")
        self.started = parse_timestamp(executed_at) if executed_at else None
        self.resolution = timestamp_resolution_seconds(executed_at) if executed_at else 1.0
        # A foreign file with one machine and no machine per task (Nextflow traces) ran every task on it.
        no_task_machines = not any(t.get("machines") for t in self.executed.values())
        self.only_host = (
            self.declared_machines[0]["nodeName"]
            if not self.ours and len(self.declared_machines) == 1 and no_task_machines
            else None
        )

    def task_id(self, text: str) -> str:
        return unescape_task_id(text) if self.ours else text

    def tables(self) -> dict[str, pa.Table]:
        tasks, energy = [], []
        for spec in self.spec_tasks:
            row, rows = self.task(spec)
            tasks.append(row)
            energy += rows
        return {
            "workflows": schemas.conform("workflows", [self.workflow(energy)]),
            "tasks": schemas.conform("tasks", tasks),
            "machines": schemas.conform("machines", self.machines()),
            "task_energy": schemas.conform("task_energy", energy),
        }

    def workflow(self, energy: list[dict]) -> dict:
        ext = self.ext or {}
        makespan = self.execution.get("makespanInSeconds")
        finished = (
            self.started + timedelta(seconds=makespan) if self.started and makespan is not None else None
        )
        if self.ours:
            total = ext.get("energyJoules")
        else:
            total = math.fsum(r["energy_joules"] for r in energy) if energy else None
        return {
            "workflow_uid": self.uid,
            "workflow_name": self.doc["name"],
            "namespace": ext.get("namespace"),
            "cluster": ext.get("cluster", UNKNOWN_CLUSTER),
            "phase": ext.get("phase", UNKNOWN_PHASE),
            "started_at": self.started,
            "finished_at": finished,
            "makespan_seconds": makespan,
            "task_count": len(self.spec_tasks),
            "energy_joules": total,
            "provenance": ext.get("provenance", "measured"),
        }

    def task(self, spec: Mapping) -> tuple[dict, list[dict]]:
        executed = self.executed.get(spec["id"])
        task_id = self.task_id(spec["id"])
        ext = (executed or {}).get(EXTENSION_KEY) or spec.get(EXTENSION_KEY) or {}
        runtime = executed["runtimeInSeconds"] if executed else None
        resolution = self.resolution
        if executed and "executedAt" in executed:
            started = parse_timestamp(executed["executedAt"])
            resolution = timestamp_resolution_seconds(executed["executedAt"])
        elif "startedAt" in ext:
            started = parse_timestamp(ext["startedAt"])
        else:
            started = None
        finished = started + timedelta(seconds=runtime) if started and runtime is not None else None
        executed = executed or {}
        hosts = executed.get("machines") or ([self.only_host] if self.only_host and executed else [])
        if len(hosts) > 1:
            self.notes.append(f"{self.source}: task {task_id!r} ran on {len(hosts)} machines; kept the first")
        row = {
            "workflow_uid": self.uid,
            "task_id": task_id,
            "task_name": spec["name"],
            "template_name": ext.get("templateName"),
            "attempt": ext.get("attempt", 0),
            "phase": ext.get("phase", UNKNOWN_PHASE),
            "reason": ext.get("reason"),
            "pod_name": ext.get("podName"),
            "pod_uid": ext.get("podUid"),
            "host_node": hosts[0] if hosts else None,
            "started_at": started,
            "finished_at": finished,
            "time_resolution_seconds": ext.get("timeResolutionInSeconds", resolution),
            "runtime_seconds": runtime,
            "parents": [self.task_id(p) for p in spec["parents"]],
            "children": [self.task_id(c) for c in spec["children"]],
            "cpu_request_cores": ext.get("cpuRequestCores", executed.get("coreCount")),
            "memory_request_bytes": ext.get("memoryRequestInBytes"),
            "gpu_ids": ext.get("gpuIds", []),
            "fpga_ids": ext.get("fpgaIds", []),
            "avg_cpu_percent": executed.get("avgCPU"),
            "memory_peak_bytes": _whole(executed.get("memoryInBytes")),
            "read_bytes": _whole(executed.get("readBytes")),
            "written_bytes": _whole(executed.get("writtenBytes")),
            "provenance": ext.get("provenance", "measured"),
        }
        return row, self.energy_rows(row, executed, ext)

    def energy_rows(self, task: dict, executed: Mapping, ext: Mapping) -> list[dict]:
        key = {"workflow_uid": self.uid, "task_id": task["task_id"]}
        if "energy" in ext:
            return [
                key
                | {
                    "device_kind": d["deviceKind"],
                    "device_id": d["deviceId"],
                    "energy_joules": d["energyJoules"],
                    "dynamic_joules": d["dynamicJoules"],
                    "idle_joules": d["idleJoules"],
                    "avg_power_watts": d.get("avgPowerInW"),
                    "peak_power_watts": d.get("peakPowerInW"),
                    "coverage": d["coverage"],
                    "samples": d["samples"],
                    "method": d["method"],
                    "uncertainty_joules": d["uncertaintyJoules"],
                    "provenance": d["provenance"],
                }
                for d in ext["energy"]["devices"]
            ]
        if "energyInKWh" not in executed:
            if "avgPowerInW" in executed:
                self.notes.append(
                    f"{self.source}: task {task['task_id']!r} has avgPowerInW but no energy; not kept"
                )
            return []
        joules = executed["energyInKWh"] * JOULES_PER_KWH
        return [
            key
            | total_energy_row(
                joules,
                executed.get("avgPowerInW"),
                "wfformat:energyInKWh (device and dynamic/idle split unknown; all counted as dynamic)",
                0.0,
                task["provenance"],
            )
        ]

    def machines(self) -> list[dict]:
        rows = []
        for machine in self.declared_machines:
            ext = machine.get(EXTENSION_KEY)
            if self.ours and ext is None:
                continue  # declared by jouletrace only because a task names it; not in the machines table
            cpu = machine.get("cpu", {})
            rows.append(
                {
                    "host_node": machine["nodeName"],
                    "cpu_model": (ext or {}).get("cpuModel"),
                    "sockets": (ext or {}).get("sockets"),
                    "cores": cpu.get("coreCount"),
                    "cpu_speed_mhz": (ext or {}).get("cpuSpeedInMHz", cpu.get("speedInMHz")),
                    "memory_bytes": machine.get("memoryInBytes"),
                    "gpu_models": (ext or {}).get("gpuModels", []),
                    "fpga_models": (ext or {}).get("fpgaModels", []),
                    "labels": ext["labels"] if ext else _labels_of(machine),
                    "provenance": (ext or {}).get("provenance", "measured"),
                }
            )
        return rows


def total_energy_row(
    joules: float, avg_power_watts: float | None, method: str, uncertainty_joules: float, provenance: str
) -> dict:
    """A task_energy row (without its keys) for a task total whose device split a format does not say."""
    return {
        "device_kind": TOTAL_DEVICE_KIND,
        "device_id": TOTAL_DEVICE_ID,
        "energy_joules": joules,
        "dynamic_joules": joules,
        "idle_joules": 0.0,
        "avg_power_watts": avg_power_watts,
        "peak_power_watts": None,
        "coverage": 1.0,
        "samples": 0,
        "method": method,
        "uncertainty_joules": uncertainty_joules,
        "provenance": provenance,
    }


def _whole(value: float | None) -> int | None:
    return None if value is None else round(value)


def _labels_of(machine: Mapping) -> dict[str, str]:
    """Node labels equivalent to a foreign machine's system, architecture, kernel release and CPU vendor."""
    labels = {
        LABEL_OS: machine.get("system"),
        LABEL_ARCH: machine.get("architecture"),
        LABEL_KERNEL: machine.get("release"),
        LABEL_CPU_VENDOR: machine.get("cpu", {}).get("vendor"),
    }
    return {k: v for k, v in labels.items() if v is not None}


def hardware_labels(labels: Iterable[tuple[str, str]] | Mapping[str, str]) -> dict[str, str]:
    """The node labels that describe hardware (OS, architecture, NFD and GPU feature discovery)."""
    items = labels.items() if isinstance(labels, Mapping) else labels
    return {k: v for k, v in sorted(items) if k.startswith(HARDWARE_LABEL_PREFIXES)}


# --------------------------------------------------------------------------------------------- export


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
    runtime_system: Mapping[str, str] | None = None,
    created_at: datetime | None = None,
    identifiers: Mapping | None = None,
) -> WfFormatExport:
    """One validated WfFormat 1.5 document per workflow of `tables` (workflows, tasks, and optionally
    machines and task_energy). Workflows without tasks, start time, makespan or any task that ran cannot be
    written (WfFormat requires them) and are listed in the notes."""
    for name, table in tables.items():
        schemas.validate(name, table, source=f"{name} to export")
    tasks = _grouped(tables["tasks"], ("workflow_uid",))
    energy = _grouped(tables.get("task_energy"), ("workflow_uid", "task_id"))
    machines = {m["host_node"]: m for m in _rows(tables.get("machines"))}
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
        writer = _DocumentWriter(workflow, own_tasks, energy, machines, out.notes)
        doc = writer.document(runtime_system, created, identifiers or {"anonymised": False})
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


class _DocumentWriter:
    def __init__(self, workflow: dict, tasks: list[dict], energy: dict, machines: dict, notes: list[str]):
        self.workflow = workflow
        self.tasks = sorted(
            tasks, key=lambda t: (t["started_at"] is None, t["started_at"] or 0, t["task_id"])
        )
        self.energy = energy
        self.machines = machines
        self.notes = notes

    def document(self, runtime_system, created: datetime, identifiers: Mapping) -> dict:
        wf = self.workflow
        spec_tasks, exec_tasks, methods = [], [], []
        for task in self.tasks:
            rows = self.energy.get((wf["workflow_uid"], task["task_id"]), [])
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
        hosts = list(dict.fromkeys(h for t in exec_tasks for h in t.get("machines", [])))
        if hosts:
            execution["machines"] = [self.machine(h) for h in hosts]
        doc = {
            "name": wf["workflow_name"],
            "description": f"Workflow run {wf['workflow_name']} with per-task energy, written by jouletrace.",
            "createdAt": format_timestamp(created),
            "schemaVersion": WFFORMAT_VERSION,
        }
        if runtime_system:
            doc["runtimeSystem"] = dict(runtime_system)
        doc["workflow"] = {"specification": {"tasks": spec_tasks}, "execution": execution}
        doc[EXTENSION_KEY] = _dropping_nulls(
            {
                "extensionVersion": EXTENSION_VERSION,
                "modelSchemaVersion": schemas.SCHEMA_VERSION,
                "workflowUid": wf["workflow_uid"],
                "namespace": wf["namespace"],
                "cluster": wf["cluster"],
                "phase": wf["phase"],
                "provenance": wf["provenance"],
                "energyJoules": wf["energy_joules"],
                "taskIdEscape": TASK_ID_ESCAPE,
                "attribution": attribution_summary(methods),
                "identifiers": dict(identifiers),
            }
        )
        return doc

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
            executed["machines"] = [task["host_node"]]
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
        entry = {"nodeName": host}
        machine = self.machines.get(host)
        if machine is None:
            return entry
        labels = dict(machine["labels"])
        if labels.get(LABEL_OS) in WFFORMAT_SYSTEMS:
            entry["system"] = labels[LABEL_OS]
        if labels.get(LABEL_ARCH):
            entry["architecture"] = labels[LABEL_ARCH]
        if labels.get(LABEL_KERNEL):
            entry["release"] = labels[LABEL_KERNEL]
        if machine["memory_bytes"] is not None and machine["memory_bytes"] >= 1:
            entry["memoryInBytes"] = machine["memory_bytes"]
        cpu = {}
        if machine["cores"] is not None and machine["cores"] >= 1:
            cpu["coreCount"] = machine["cores"]
        if machine["cpu_speed_mhz"] is not None and round(machine["cpu_speed_mhz"]) >= 1:
            cpu["speedInMHz"] = round(machine["cpu_speed_mhz"])
        if labels.get(LABEL_CPU_VENDOR):
            cpu["vendor"] = labels[LABEL_CPU_VENDOR]
        if cpu:
            entry["cpu"] = cpu
        entry[EXTENSION_KEY] = _dropping_nulls(
            {
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
