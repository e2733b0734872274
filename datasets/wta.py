"""WTA (Workflow Trace Archive) schema-1.0 Parquet traces in and out of the trace model.

Layout (the WTA Python tools'): `<trace>/{workflows,tasks,resources}/schema-1.0/part.0.parquet` and
`<trace>/workload/schema-1.0/generic_information.json`, plus jouletrace's own
`<trace>/jouletrace-ids/schema-1.0/part.0.parquet`, which maps every int64 id back to the model's string id
(WTA ids are int64: a task's is the first 63 bits of SHA-256 of its workflow uid and task id, so re-exports
keep ids). Times are epoch milliseconds, -1 means unknown. `energy_consumption` is in the archive's unit,
Wh as int64, truncated as the archive does; `energy_consumption_joules` (float64) is added so short tasks
keep their energy, and `total_energy_consumption(_joules)` per workflow likewise. A task's energy is the sum
over the meters whose joules add up (schemas.ADDITIVE_DEVICE_KINDS). Reading accepts parents/children
stored as list<int64> or list<double>. What WTA cannot carry is listed in docs/formats.md.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

import schemas
from datasets.traces import replace_folder, write_bytes_atomic
from datasets.wfformat import (
    UNKNOWN_CLUSTER,
    UNKNOWN_PHASE,
    ImportResult,
    hardware_labels,
    total_energy_row,
)
from schemas.formats import (
    JOULES_PER_WH,
    WTA_GENERIC_INFORMATION,
    WTA_ID_MAP,
    WTA_ID_MAP_DIR,
    WTA_RESOURCES,
    WTA_STATISTICS,
    WTA_TASKS,
    WTA_VERSION_DIR,
    WTA_WORKFLOWS,
    read_generic_information,
    read_wta_table,
    summed_device_joules,
    validate_wta,
)

UNKNOWN = -1
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
BYTES_PER_GIB = 2**30
WTA_TASK_TYPE = "atomic"
WTA_RESOURCE_TYPE = "core"
WTA_MACHINE_TYPE = "cluster node"
# A trace without our id map or params: the model's time resolution of millisecond times.
MILLISECOND = 0.001
# Provenance of a workflow read back from WTA: the least certain of its tasks'.
_PROVENANCE_RANK = {"measured": 0, "estimated": 1, "synthetic": 2}


@dataclass
class WtaTrace:
    """The tables of one WTA trace and its workload description, in the schema-1.0 column types."""

    workflows: pa.Table
    tasks: pa.Table
    resources: pa.Table
    id_map: pa.Table | None
    generic_information: dict


def wta_id(kind: str, *parts: str) -> int:
    """A stable non-negative int64 id for a model string id (first 63 bits of SHA-256)."""
    digest = hashlib.sha256("\0".join((kind, *parts)).encode()).digest()
    return int.from_bytes(digest[:8], "big") & 0x7FFF_FFFF_FFFF_FFFF


def to_milliseconds(value: datetime | None) -> int:
    return UNKNOWN if value is None else (value - EPOCH) // timedelta(milliseconds=1)


def from_milliseconds(value: int | None) -> datetime | None:
    return None if value is None or value < 0 else EPOCH + timedelta(milliseconds=value)


# --------------------------------------------------------------------------------------------- export


def tables_to_wta(
    tables: Mapping[str, pa.Table],
    *,
    scheduler: str = "",
    domain: str = "Scientific",
    description: str = "",
    authors: Sequence[str] = (),
) -> WtaTrace:
    """The WTA trace of `tables` (workflows, tasks, and optionally machines and task_energy)."""
    ids = _IdRegistry()
    workflows = tables["workflows"].to_pylist()
    tasks = tables["tasks"].to_pylist()
    machines = tables["machines"].to_pylist() if "machines" in tables else []
    energy: dict[tuple[str, str], list[dict]] = {}
    if "task_energy" in tables:
        for row in tables["task_energy"].to_pylist():
            energy.setdefault((row["workflow_uid"], row["task_id"]), []).append(row)
    for wf in workflows:
        ids.add("workflows", wf["workflow_uid"], wf["workflow_name"])
    for task in tasks:
        ids.add("tasks", task["workflow_uid"], task["task_id"])
    for host in sorted(
        {m["host_node"] for m in machines} | {t["host_node"] for t in tasks if t["host_node"]}
    ):
        ids.add("resources", None, host)
    task_rows = [_task_row(t, ids, energy.get((t["workflow_uid"], t["task_id"]), [])) for t in tasks]
    by_workflow: dict[int, list[dict]] = {}
    for row in task_rows:
        by_workflow.setdefault(row["workflow_id"], []).append(row)
    workflow_rows = [
        _workflow_row(wf, ids.of("workflows", wf["workflow_uid"]), by_workflow, scheduler) for wf in workflows
    ]
    task_table = pa.Table.from_pylist(task_rows, schema=WTA_TASKS)
    resource_rows = [_resource_row(m, ids.of("resources", None, m["host_node"])) for m in machines]
    return WtaTrace(
        workflows=pa.Table.from_pylist(workflow_rows, schema=WTA_WORKFLOWS),
        tasks=task_table,
        resources=pa.Table.from_pylist(resource_rows, schema=WTA_RESOURCES),
        id_map=ids.table(),
        generic_information=generic_information(
            task_rows, workflow_rows, tasks, domain=domain, description=description, authors=authors
        ),
    )


class _IdRegistry:
    """int64 ids of the model's string ids, refusing (astronomically unlikely) collisions."""

    def __init__(self):
        self.rows: list[dict] = []
        self.ids: dict[tuple, int] = {}
        self.taken: dict[tuple[str, int], tuple] = {}

    def add(self, table: str, workflow_uid: str | None, name: str) -> None:
        key = (table, workflow_uid, name) if table != "workflows" else (table, workflow_uid)
        if key in self.ids:
            return
        new = wta_id(table, *(p for p in key[1:] if p is not None))
        clash = self.taken.get((table, new))
        if clash is not None:
            raise ValueError(f"WTA ids of {clash[1:]} and {key[1:]} collide ({new}); rename one")
        self.ids[key] = new
        self.taken[(table, new)] = key
        self.rows.append({"table": table, "id": new, "workflow_uid": workflow_uid, "name": name})

    def of(self, table: str, workflow_uid: str | None, name: str | None = None) -> int:
        key = (table, workflow_uid) if table == "workflows" else (table, workflow_uid, name)
        try:
            return self.ids[key]
        except KeyError:
            what = {"workflows": "workflow", "tasks": "task", "resources": "machine"}[table]
            where = f" of workflow {workflow_uid!r}" if table == "tasks" else ""
            label = workflow_uid if table == "workflows" else name
            raise ValueError(f"{what} {label!r}{where} is referred to but not in the tables") from None

    def table(self) -> pa.Table:
        return pa.Table.from_pylist(self.rows, schema=WTA_ID_MAP)


def _task_row(task: dict, ids: _IdRegistry, energy_rows: list[dict]) -> dict:
    uid = task["workflow_uid"]
    joules = summed_device_joules(energy_rows, "device_kind", "energy_joules") if energy_rows else None
    runtime = task["runtime_seconds"]
    params = {
        key: value
        for key, value in (
            ("task_name", task["task_name"]),
            ("template_name", task["template_name"]),
            ("attempt", task["attempt"]),
            ("phase", task["phase"]),
            ("provenance", task["provenance"]),
            ("time_resolution_seconds", task["time_resolution_seconds"]),
        )
        if value is not None
    }
    return {
        "id": ids.of("tasks", uid, task["task_id"]),
        "type": WTA_TASK_TYPE,
        "ts_submit": to_milliseconds(task["started_at"]),
        "submission_site": UNKNOWN,
        "runtime": UNKNOWN if runtime is None else round(runtime * 1000),
        "resource_type": WTA_RESOURCE_TYPE,
        "resource_amount_requested": _or_unknown(task["cpu_request_cores"]),
        "parents": [ids.of("tasks", uid, p) for p in task["parents"]],
        "children": [ids.of("tasks", uid, c) for c in task["children"]],
        "user_id": UNKNOWN,
        "group_id": UNKNOWN,
        "nfrs": "{}",
        "workflow_id": ids.of("workflows", uid),
        "wait_time": UNKNOWN,
        "params": json.dumps({"jouletrace": params}, sort_keys=True),
        "memory_requested": _or_unknown(task["memory_request_bytes"]),
        "network_io_time": UNKNOWN,
        "disk_io_time": UNKNOWN,
        "disk_space_requested": float(UNKNOWN),
        "energy_consumption": UNKNOWN if joules is None else math.floor(joules / JOULES_PER_WH),
        "energy_consumption_joules": float(UNKNOWN) if joules is None else joules,
        "resource_used": ids.of("resources", None, task["host_node"]) if task["host_node"] else UNKNOWN,
    }


def _or_unknown(value: float | None) -> float:
    return float(UNKNOWN) if value is None else float(value)


def _workflow_row(wf: dict, workflow_id: int, by_workflow: dict[int, list[dict]], scheduler: str) -> dict:
    tasks = by_workflow.get(workflow_id, [])
    path_ms, path_tasks = critical_path(tasks)
    joules = wf["energy_joules"]
    cpu = [t["resource_amount_requested"] for t in tasks if t["resource_amount_requested"] >= 0]
    memory = [t["memory_requested"] for t in tasks if t["memory_requested"] >= 0]
    return {
        "id": workflow_id,
        "ts_submit": to_milliseconds(wf["started_at"]),
        "task_count": len(tasks),
        "critical_path_length": path_ms,
        "critical_path_task_count": path_tasks,
        "approx_max_concurrent_tasks": max_concurrent_tasks(tasks),
        "nfrs": "{}",
        "scheduler": scheduler,
        "total_resources": math.fsum(cpu) if cpu else float(UNKNOWN),
        "total_memory_usage": math.fsum(memory) if memory else float(UNKNOWN),
        "total_network_usage": float(UNKNOWN),
        "total_disk_space_usage": float(UNKNOWN),
        "total_energy_consumption": UNKNOWN if joules is None else math.floor(joules / JOULES_PER_WH),
        "total_energy_consumption_joules": float(UNKNOWN) if joules is None else joules,
    }


def critical_path(tasks: list[dict]) -> tuple[int, int]:
    """Length (ms, sum of runtimes) and task count of the heaviest dependency chain; unknown runtimes count
    0. (-1, -1) without tasks or when the graph has a cycle."""
    if not tasks:
        return UNKNOWN, UNKNOWN
    runtime = {t["id"]: max(t["runtime"], 0) for t in tasks}
    parents = {t["id"]: [p for p in t["parents"] if p in runtime] for t in tasks}
    best: dict[int, tuple[int, int]] = {}
    order = _topological(parents)
    if order is None:
        return UNKNOWN, UNKNOWN
    for task in order:
        before = max((best[p] for p in parents[task]), default=(0, 0))
        best[task] = (before[0] + runtime[task], before[1] + 1)
    return max(best.values())


def _topological(parents: dict[int, list[int]]) -> list[int] | None:
    waiting = {t: len(ps) for t, ps in parents.items()}
    children: dict[int, list[int]] = {}
    for task, ps in parents.items():
        for p in ps:
            children.setdefault(p, []).append(task)
    ready = sorted(t for t, n in waiting.items() if n == 0)
    order = []
    while ready:
        task = ready.pop()
        order.append(task)
        for child in children.get(task, []):
            waiting[child] -= 1
            if waiting[child] == 0:
                ready.append(child)
    return order if len(order) == len(parents) else None


def max_concurrent_tasks(tasks: list[dict]) -> int:
    """The most tasks running at once (observed intervals, ends before starts at equal times); -1 if no task
    has both a start and a runtime."""
    events = [(t["ts_submit"], 1) for t in tasks if t["ts_submit"] >= 0 and t["runtime"] >= 0]
    events += [
        (t["ts_submit"] + t["runtime"], -1) for t in tasks if t["ts_submit"] >= 0 and t["runtime"] >= 0
    ]
    if not events:
        return UNKNOWN
    running = most = 0
    for _, step in sorted(events):
        running += step
        most = max(most, running)
    return most


def _resource_row(machine: dict, resource_id: int) -> dict:
    labels = dict(machine["labels"])
    details = {
        key: value
        for key, value in (
            ("sockets", machine["sockets"]),
            ("cpu_speed_mhz", machine["cpu_speed_mhz"]),
            ("memory_bytes", machine["memory_bytes"]),
            ("gpu_models", machine["gpu_models"]),
            ("fpga_models", machine["fpga_models"]),
            ("labels", hardware_labels(labels)),
            ("provenance", machine["provenance"]),
        )
        if value is not None
    }
    memory = machine["memory_bytes"]
    return {
        "id": resource_id,
        "type": WTA_MACHINE_TYPE,
        "num_resources": _or_unknown(machine["cores"]),
        "proc_model": machine["cpu_model"] or "",
        "memory": UNKNOWN if memory is None else memory // BYTES_PER_GIB,
        "disk_space": UNKNOWN,
        "network": UNKNOWN,
        "os": labels.get("kubernetes.io/os", ""),
        "details": json.dumps({"jouletrace": details}, sort_keys=True),
    }


def _statistics(values: list[float], subject: str) -> dict[str, float]:
    """The WTA workload statistics of one quantity (sample std, linear quartiles); -1 when unknown."""
    keys = [f"{s}_{subject}" for s in WTA_STATISTICS]
    if not values:
        return dict.fromkeys(keys, float(UNKNOWN))
    data = np.asarray(values, dtype=float)
    mean = float(data.mean())
    std = float(data.std(ddof=1)) if data.size > 1 else float(UNKNOWN)
    stats = [
        float(data.min()),
        float(data.max()),
        std,
        mean,
        float(np.median(data)),
        float(np.quantile(data, 0.25)),
        float(np.quantile(data, 0.75)),
        std / mean if mean > 0 and std >= 0 else float(UNKNOWN),
    ]
    return dict(zip(keys, stats, strict=True))


def generic_information(
    task_rows: list[dict],
    workflow_rows: list[dict],
    tasks: list[dict],
    *,
    domain: str,
    description: str,
    authors: Sequence[str],
) -> dict:
    """generic_information.json of the WTA Workload object, plus the energy statistics in joules and the
    energy unit (`energy_unit`, Wh) of the archive's own energy statistics."""
    cpu = [t["resource_amount_requested"] for t in task_rows if t["resource_amount_requested"] >= 0]
    starts = [t["started_at"] for t in tasks if t["started_at"] is not None]
    ends = [t["finished_at"] for t in tasks if t["finished_at"] is not None]
    joules = [t["energy_consumption_joules"] for t in task_rows if t["energy_consumption_joules"] >= 0]
    info = {
        "total_workflows": len(workflow_rows),
        "total_tasks": len(task_rows),
        "domain": domain,
        "date_start": to_milliseconds(min(starts)) if starts else UNKNOWN,
        "date_end": to_milliseconds(max(ends)) if ends else UNKNOWN,
        "num_sites": UNKNOWN,
        "num_resources": math.fsum(cpu),
        "num_users": UNKNOWN,
        "num_groups": UNKNOWN,
        "total_resource_seconds": math.fsum(
            t["resource_amount_requested"] * t["runtime"] / 1000
            for t in task_rows
            if t["resource_amount_requested"] >= 0 and t["runtime"] >= 0
        ),
        "authors": list(authors),
        **_statistics(cpu, "resource_task"),
        **_statistics([t["memory_requested"] for t in task_rows if t["memory_requested"] >= 0], "memory"),
        **_statistics([], "network_usage"),
        **_statistics([], "disk_space_usage"),
        **_statistics([j / JOULES_PER_WH for j in joules], "energy"),
        **_statistics(joules, "energy_joules"),
        "energy_unit": "Wh",
        "workload_description": description,
        "version": "1.0",
    }
    return info


def write_wta(trace: WtaTrace, root: str | Path) -> list[Path]:
    """Write the trace under `root`. Each table folder is replaced whole (staged, then renamed), so stale
    part files of an earlier export never mix in; other content of `root` is left alone."""
    root = Path(root)
    written = []
    for name, table in (
        ("workflows", trace.workflows),
        ("tasks", trace.tasks),
        ("resources", trace.resources),
        (WTA_ID_MAP_DIR, trace.id_map),
    ):
        written.append(_replace_table_folder(root / name / WTA_VERSION_DIR, table))
    info = json.dumps(trace.generic_information, indent=2, allow_nan=False).encode()
    written.append(write_bytes_atomic(info + b"\n", root / WTA_GENERIC_INFORMATION))
    return written


def _replace_table_folder(folder: Path, table: pa.Table) -> Path:
    replace_folder(
        folder, lambda staging: pq.write_table(table, staging / "part.0.parquet", compression="snappy")
    )
    return folder / "part.0.parquet"


# --------------------------------------------------------------------------------------------- import


def read_wta(root: str | Path) -> WtaTrace:
    """The tables of a WTA trace folder in the schema-1.0 types (check it first: `import_wta` does)."""
    root = Path(root)
    parts = {name: read_wta_table(root, name) for name in ("workflows", "tasks", "resources", WTA_ID_MAP_DIR)}
    return WtaTrace(
        workflows=parts["workflows"].table,
        tasks=parts["tasks"].table,
        resources=parts["resources"].table if parts["resources"] else WTA_RESOURCES.empty_table(),
        id_map=parts[WTA_ID_MAP_DIR].table if parts[WTA_ID_MAP_DIR] else None,
        generic_information=read_generic_information(root),
    )


def import_wta(root: str | Path) -> ImportResult:
    """Model tables of a WTA trace folder, after checking it (FormatError lists every error), with its
    format warnings."""
    warnings = validate_wta(root)
    result = wta_to_tables(read_wta(root))
    result.warnings = warnings
    return result


def wta_to_tables(trace: WtaTrace) -> ImportResult:
    """Model tables of a WTA trace. With jouletrace's id map the model's string ids come back; without it,
    ids are the decimal int64 ids. Energy becomes one platform-total row per task (WTA has no device split):
    from energy_consumption_joules when present, else from the Wh column (uncertainty 1 Wh: truncation)."""
    names: dict[tuple[str, int], tuple[str | None, str]] = {}
    if trace.id_map is not None:
        for row in trace.id_map.to_pylist():
            names[(row["table"], row["id"])] = (row["workflow_uid"], row["name"])
    ours = trace.id_map is not None
    notes: list[str] = []

    def workflow_uid(wid: int) -> str:
        return names[("workflows", wid)][0] if ("workflows", wid) in names else str(wid)

    def task_id(tid: int) -> str:
        return names[("tasks", tid)][1] if ("tasks", tid) in names else str(tid)

    def host(rid: int | None) -> str | None:
        if rid is None or rid < 0:
            return None
        return names[("resources", rid)][1] if ("resources", rid) in names else str(rid)

    columns = trace.tasks.to_pydict()
    count = trace.tasks.num_rows

    def column(name: str, default) -> list:
        return columns[name] if name in columns else [default] * count

    tasks, energy = [], []
    for i in range(count):
        params = _jouletrace_params(column("params", None)[i])
        started = from_milliseconds(columns["ts_submit"][i])
        runtime_ms = columns["runtime"][i]
        runtime = runtime_ms / 1000 if runtime_ms is not None and runtime_ms >= 0 else None
        cpu = column("resource_amount_requested", UNKNOWN)[i]
        memory = column("memory_requested", UNKNOWN)[i]
        uid = workflow_uid(columns["workflow_id"][i])
        row = {
            "workflow_uid": uid,
            "task_id": task_id(columns["id"][i]),
            "task_name": params.get("task_name", task_id(columns["id"][i])),
            "template_name": params.get("template_name"),
            "attempt": params.get("attempt", 0),
            "phase": params.get("phase", UNKNOWN_PHASE),
            "host_node": host(column("resource_used", UNKNOWN)[i]),
            "started_at": started,
            "finished_at": started + timedelta(seconds=runtime) if started and runtime is not None else None,
            "time_resolution_seconds": params.get("time_resolution_seconds", MILLISECOND),
            "runtime_seconds": runtime,
            "parents": [task_id(p) for p in columns["parents"][i] or []],
            "children": [task_id(c) for c in columns["children"][i] or []],
            "cpu_request_cores": cpu if cpu is not None and cpu >= 0 else None,
            # Foreign traces do not say memory's unit; jouletrace writes bytes.
            "memory_request_bytes": round(memory) if ours and memory is not None and memory >= 0 else None,
            "gpu_ids": [],
            "fpga_ids": [],
            "provenance": params.get("provenance", "measured"),
        }
        tasks.append(row)
        total = _task_total(
            column("energy_consumption_joules", None)[i], column("energy_consumption", None)[i]
        )
        if total is not None:
            joules, method, uncertainty = total
            avg = joules / runtime if runtime else None
            energy.append(
                {"workflow_uid": uid, "task_id": row["task_id"]}
                | total_energy_row(joules, avg, method, uncertainty, row["provenance"])
            )
    if not ours and any(m is not None and m >= 0 for m in column("memory_requested", None)):
        notes.append("memory_requested is not kept: a WTA trace does not say its unit")
    return ImportResult(
        {
            "workflows": schemas.conform(
                "workflows", _workflow_rows(trace.workflows, tasks, workflow_uid, names)
            ),
            "tasks": schemas.conform("tasks", tasks),
            "machines": schemas.conform("machines", _machine_rows(trace.resources, host)),
            "task_energy": schemas.conform("task_energy", energy),
        },
        notes,
    )


def _jouletrace_params(text: str | None) -> dict:
    """jouletrace's fields in a task's params JSON (empty for foreign or unparseable params)."""
    try:
        params = json.loads(text) if text else {}
    except json.JSONDecodeError:
        return {}
    inner = params.get("jouletrace") if isinstance(params, dict) else None
    return inner if isinstance(inner, dict) else {}


def _task_total(joules: float | None, wh: int | None) -> tuple[float, str, float] | None:
    if joules is not None and joules >= 0:
        return joules, "wta:energy_consumption_joules (device and dynamic/idle split unknown)", 0.0
    if wh is not None and wh >= 0:
        return (
            wh * JOULES_PER_WH,
            "wta:energy_consumption Wh, truncated (device and dynamic/idle split unknown)",
            JOULES_PER_WH,
        )
    return None


def _workflow_rows(table: pa.Table, tasks: list[dict], workflow_uid, names: dict) -> list[dict]:
    by_uid: dict[str, list[dict]] = {}
    for task in tasks:
        by_uid.setdefault(task["workflow_uid"], []).append(task)
    columns = table.to_pydict()
    missing = [None] * table.num_rows
    joules_column = columns.get("total_energy_consumption_joules", missing)
    wh_column = columns.get("total_energy_consumption", missing)
    rows = []
    for i, wid in enumerate(columns["id"]):
        uid = workflow_uid(wid)
        own = by_uid.get(uid, [])
        started = from_milliseconds(columns["ts_submit"][i])
        ends = [t["finished_at"] for t in own if t["finished_at"] is not None]
        finished = max(ends) if ends and started else None
        rows.append(
            {
                "workflow_uid": uid,
                "workflow_name": names[("workflows", wid)][1]
                if ("workflows", wid) in names
                else f"wta-{wid}",
                "cluster": UNKNOWN_CLUSTER,
                "phase": UNKNOWN_PHASE,
                "started_at": started,
                "finished_at": finished,
                "makespan_seconds": (finished - started).total_seconds() if finished else None,
                "task_count": len(own),
                "energy_joules": _workflow_total(joules_column[i], wh_column[i], own),
                "provenance": max(
                    (t["provenance"] for t in own), key=_PROVENANCE_RANK.__getitem__, default="measured"
                ),
            }
        )
    return rows


def _workflow_total(joules: float | None, wh: int | None, tasks: list[dict]) -> float | None:
    if joules is not None and joules >= 0:
        return joules
    # The WTA tools write 0 Wh (a sum over no energies) when no task has energy.
    return wh * JOULES_PER_WH if wh is not None and wh >= 0 and tasks else None


def _machine_rows(table: pa.Table, host) -> list[dict]:
    rows = []
    for resource in table.to_pylist():
        details = _jouletrace_params(resource.get("details"))
        cores = resource.get("num_resources")
        memory_gib = resource.get("memory")
        os_name = resource.get("os")
        rows.append(
            {
                "host_node": host(resource["id"]),
                "cpu_model": resource.get("proc_model") or None,
                "sockets": details.get("sockets"),
                "cores": round(cores) if cores is not None and cores >= 0 else None,
                "cpu_speed_mhz": details.get("cpu_speed_mhz"),
                "memory_bytes": details.get(
                    "memory_bytes",
                    memory_gib * BYTES_PER_GIB if memory_gib is not None and memory_gib >= 0 else None,
                ),
                "gpu_models": details.get("gpu_models", []),
                "fpga_models": details.get("fpga_models", []),
                "labels": details.get("labels", {"kubernetes.io/os": os_name} if os_name else {}),
                "provenance": details.get("provenance", "measured"),
            }
        )
    return rows
