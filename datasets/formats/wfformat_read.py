"""WfFormat (WfCommons JSON) in and out of the trace model.

Import reads WfFormat 1.0-1.5 documents (older ones upgraded to the 1.5 layout; 1.6 read as 1.5) into
`workflows`, `tasks`, `machines` and `task_energy`, and a `sources` row (datasets.formats.provenance) that keeps
what the model has no column for: the runtime system, the file, the application, task commands, machine
names and descriptions. A foreign file's machines are its own (`<nodeName>@<workflow_uid>`), with no node
labels made up for them. Runtimes and resource use are `measured` (by the source); energy rows exist only
where the file has energy. A document written by jouletrace carries a `jouletrace` extension object that
gives back every model field WfFormat has no place for, so import(export(x)) == x.

Export (datasets.formats.wfformat_write, importable from here) writes one schema-1.5 document per workflow.
docs/formats.md lists what each direction keeps and loses.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

import pyarrow as pa

import schemas
from datasets.formats.provenance import (
    ORIGIN_IMPORTED,
    SOURCES_TABLE,
    application_from_file,
    scoped_host,
    sources_table,
)
from schemas.formats import (
    EXTENSION_KEY,
    JOULES_PER_KWH,
    LEGACY_VERSIONS,
    Finding,
    parse_timestamp,
    read_json,
    timestamp_resolution_seconds,
    upgrade_wfformat,
    validate_wfformat,
)

# 1.1 adds `source` (where the run came from) on the document and `hostNode` on machines.
EXTENSION_VERSION = "1.1"
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
    """Model tables read from a file or folder (plus `sources`, where each run came from), what could not
    be kept (notes) and format warnings."""

    tables: dict[str, pa.Table]
    notes: list[str] = field(default_factory=list)
    warnings: list[Finding] = field(default_factory=list)


# The export side lives in datasets.formats.wfformat_write; these names stay importable from here.
_EXPORT_NAMES = frozenset(
    {"WfFormatExport", "attribution_summary", "document_file_bytes", "method_parts", "tables_to_wfformat"}
)


def __getattr__(name: str):
    if name in _EXPORT_NAMES:
        import datasets.formats.wfformat_write

        return getattr(datasets.formats.wfformat_write, name)
    raise AttributeError(f"module 'datasets.formats.wfformat_read' has no attribute {name!r}")


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
    """Concatenate imports. Machines of foreign files are per run and never meet; a machine of jouletrace's
    own exports (a Kubernetes node) declared by several files is kept once (the first file's row when they
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
        for name in ("workflows", "tasks", "task_energy", SOURCES_TABLE)
    }
    tables["machines"] = schemas.conform("machines", list(machines.values()))
    return ImportResult(tables, notes, [w for r in results for w in r.warnings])


def wfformat_to_tables(doc: object, source: str = "<memory>", default_uid: str = "wfformat") -> ImportResult:
    """Model tables of one WfFormat document (validated first: FormatError lists every error) and its
    sources row. `source` is the file the document was read from (its name is recorded)."""
    warnings = validate_wfformat(doc, source)
    version = doc.get("schemaVersion")
    if version in LEGACY_VERSIONS:
        doc = upgrade_wfformat(doc)
    reader = _DocumentReader(doc, source, default_uid, version)
    return ImportResult(reader.tables(), reader.notes, warnings)


class _DocumentReader:
    """Turns one valid WfFormat document into model rows, collecting notes on what it could not keep."""

    def __init__(self, doc: Mapping, source: str, default_uid: str, version: str):
        self.doc = doc
        self.source = source
        self.version = version
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
        # The model's host_node of every machine name: jouletrace's own exports say it when it differs.
        self.hosts = {
            m["nodeName"]: m.get(EXTENSION_KEY, {}).get("hostNode", m["nodeName"])
            for m in self.declared_machines
        }

    def task_id(self, text: str) -> str:
        return unescape_task_id(text) if self.ours else text

    def host(self, node_name: str) -> str:
        """A foreign file's machines are that run's own: the name is scoped by the workflow uid."""
        if self.ours:
            return self.hosts.get(node_name, node_name)
        return scoped_host(node_name, self.uid)

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
            SOURCES_TABLE: sources_table(self.sources()),
        }

    def sources(self) -> list[dict]:
        """The run's sources row: what the file says about where it came from. A jouletrace export says it
        in its extension (nothing for older exports, which did not)."""
        source = (self.ext or {}).get("source")
        if self.ours and source is None:
            return []
        if self.ours and source["origin"] != ORIGIN_IMPORTED:
            return [{"workflow_uid": self.uid, "origin": source["origin"]}]
        if self.ours:
            described = source
            system = source.get("runtimeSystem") or {}
        else:
            known = not self.source.startswith("<")
            described = {
                "format": f"WfFormat {self.version}",
                "file": Path(self.source).name if known else None,
                "application": application_from_file(self.source) if known else None,
                "description": self.doc.get("description"),
            }
            system = self.doc.get("runtimeSystem") or {}
        commands = [
            {
                "task_id": self.task_id(t["id"]),
                "program": t["command"].get("program"),
                "arguments": t["command"].get("arguments"),
            }
            for t in self.executed.values()
            if isinstance(t.get("command"), Mapping)
        ]
        machines = [
            {
                "host_node": self.host(m["nodeName"]),
                "node_name": m["nodeName"],
                "system": m.get("system"),
                "architecture": m.get("architecture"),
                "release": m.get("release"),
                "cpu_vendor": m.get("cpu", {}).get("vendor"),
            }
            for m in self.declared_machines
            if not self.ours or EXTENSION_KEY in m
        ]
        return [
            {
                "workflow_uid": self.uid,
                "origin": ORIGIN_IMPORTED,
                "format": described.get("format"),
                "file": described.get("file"),
                "runtime_system_name": system.get("name"),
                "runtime_system_version": system.get("version"),
                "runtime_system_url": system.get("url"),
                "application": described.get("application"),
                "description": described.get("description"),
                "commands": commands,
                "machines": machines,
            }
        ]

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
            "host_node": self.host(hosts[0]) if hosts else None,
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
                    "host_node": self.host(machine["nodeName"]),
                    "cpu_model": (ext or {}).get("cpuModel"),
                    "sockets": (ext or {}).get("sockets"),
                    "cores": cpu.get("coreCount"),
                    "cpu_speed_mhz": (ext or {}).get("cpuSpeedInMHz", cpu.get("speedInMHz")),
                    "memory_bytes": machine.get("memoryInBytes"),
                    "gpu_models": (ext or {}).get("gpuModels", []),
                    "fpga_models": (ext or {}).get("fpgaModels", []),
                    # A foreign file's system, architecture, release and CPU vendor stay in the sources row:
                    # they are not Kubernetes node labels.
                    "labels": ext["labels"] if ext else {},
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


def hardware_labels(labels: Iterable[tuple[str, str]] | Mapping[str, str]) -> dict[str, str]:
    """The node labels that describe hardware (OS, architecture, NFD and GPU feature discovery)."""
    items = labels.items() if isinstance(labels, Mapping) else labels
    return {k: v for k, v in sorted(items) if k.startswith(HARDWARE_LABEL_PREFIXES)}
