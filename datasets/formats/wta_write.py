"""WTA (Workflow Trace Archive) schema-1.0 Parquet traces in and out of the trace model.

Layout (the WTA Python tools'): `<trace>/{workflows,tasks,resources}/schema-1.0/part.0.parquet` and
`<trace>/workload/schema-1.0/generic_information.json`, plus jouletrace's own
`<trace>/jouletrace-ids/schema-1.0/part.0.parquet`, which maps every int64 id back to the model's string id
(WTA ids are int64: a task's is the first 63 bits of SHA-256 of its workflow uid and task id, so re-exports
keep ids). Times are epoch milliseconds, -1 means unknown. `energy_consumption` is in the archive's unit,
Wh as int64, truncated as the archive does; `energy_consumption_joules` (float64) is added so short tasks
keep their energy, and `total_energy_consumption(_joules)` per workflow likewise. A task's energy is the sum
over the meters whose joules add up (schemas.ADDITIVE_DEVICE_KINDS). Where a run came from is written as its
source gave it: `scheduler` is the runtime system that recorded it, a task's command rides in its params, an
imported machine's name and description in its resource details, and the id map's `source` column holds the
run's source object (the WfFormat extension's). Import is datasets.formats.wta_read (importable from here). What
WTA cannot carry is listed in docs/formats.md.
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

from datasets.formats.provenance import Origins, origins_of, runtime_system_label
from datasets.formats.wfformat_read import LABEL_OS, hardware_labels
from datasets.formats.wfformat_write import source_extension
from datasets.store import replace_folder, write_bytes_atomic
from schemas.formats import JOULES_PER_WH, summed_device_joules
from schemas.wta_checks import (
    WTA_GENERIC_INFORMATION,
    WTA_ID_MAP,
    WTA_ID_MAP_DIR,
    WTA_RESOURCES,
    WTA_STATISTICS,
    WTA_TASKS,
    WTA_VERSION_DIR,
    WTA_WORKFLOWS,
)

UNKNOWN = -1
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
BYTES_PER_GIB = 2**30
WTA_TASK_TYPE = "atomic"
WTA_RESOURCE_TYPE = "core"
WTA_MACHINE_TYPE = "cluster node"
# A trace without our id map or params: the model's time resolution of millisecond times.
MILLISECOND = 0.001
_IMPORT_NAMES = frozenset({"import_wta", "read_wta", "wta_to_tables"})


def __getattr__(name: str):
    if name in _IMPORT_NAMES:
        import datasets.formats.wta_read

        return getattr(datasets.formats.wta_read, name)
    raise AttributeError(f"module 'datasets.formats.wta_write' has no attribute {name!r}")


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
    domain: str = "Scientific",
    description: str = "",
    authors: Sequence[str] = (),
) -> WtaTrace:
    """The WTA trace of `tables` (workflows, tasks, and optionally machines, task_energy and the dataset's
    `sources`). Each workflow's `scheduler` is the runtime system that recorded it (empty when unknown)."""
    origins = origins_of(tables)
    ids = _IdRegistry()
    workflows = tables["workflows"].to_pylist()
    tasks = tables["tasks"].to_pylist()
    machines = tables["machines"].to_pylist() if "machines" in tables else []
    energy: dict[tuple[str, str], list[dict]] = {}
    if "task_energy" in tables:
        for row in tables["task_energy"].to_pylist():
            energy.setdefault((row["workflow_uid"], row["task_id"]), []).append(row)
    for wf in workflows:
        source = source_extension(origins, wf["workflow_uid"])
        ids.add("workflows", wf["workflow_uid"], wf["workflow_name"], source)
    for task in tasks:
        ids.add("tasks", task["workflow_uid"], task["task_id"])
    for host in sorted(
        {m["host_node"] for m in machines} | {t["host_node"] for t in tasks if t["host_node"]}
    ):
        ids.add("resources", None, host)
    task_rows = [_task_row(t, ids, energy.get((t["workflow_uid"], t["task_id"]), []), origins) for t in tasks]
    by_workflow: dict[int, list[dict]] = {}
    for row in task_rows:
        by_workflow.setdefault(row["workflow_id"], []).append(row)
    workflow_rows = [
        _workflow_row(
            wf,
            ids.of("workflows", wf["workflow_uid"]),
            by_workflow,
            _scheduler(origins.runtime_system(wf["workflow_uid"])),
        )
        for wf in workflows
    ]
    task_table = pa.Table.from_pylist(task_rows, schema=WTA_TASKS)
    resource_rows = [_resource_row(m, ids.of("resources", None, m["host_node"]), origins) for m in machines]
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

    def add(self, table: str, workflow_uid: str | None, name: str, source: dict | None = None) -> None:
        key = (table, workflow_uid, name) if table != "workflows" else (table, workflow_uid)
        if key in self.ids:
            return
        new = wta_id(table, *(p for p in key[1:] if p is not None))
        clash = self.taken.get((table, new))
        if clash is not None:
            raise ValueError(f"WTA ids of {clash[1:]} and {key[1:]} collide ({new}); rename one")
        self.ids[key] = new
        self.taken[(table, new)] = key
        self.rows.append(
            {
                "table": table,
                "id": new,
                "workflow_uid": workflow_uid,
                "name": name,
                "source": json.dumps(source, sort_keys=True) if source is not None else None,
            }
        )

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


def _scheduler(system: Mapping | None) -> str:
    return runtime_system_label(system) if system else ""


def _task_row(task: dict, ids: _IdRegistry, energy_rows: list[dict], origins: Origins) -> dict:
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
            ("command", origins.command(uid, task["task_id"])),
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


def _resource_row(machine: dict, resource_id: int, origins: Origins) -> dict:
    labels = dict(machine["labels"])
    described = origins.machines.get(machine["host_node"])
    source = None
    if described is not None:
        source = {k: v for k, v in described.items() if k != "host_node" and v is not None}
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
            ("source", source),
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
        "os": (source or {}).get("system") or labels.get(LABEL_OS, ""),
        "details": json.dumps({"jouletrace": details}, sort_keys=True),
    }


def params_of(text: str | None) -> dict:
    """jouletrace's fields in a params or details JSON (empty for foreign or unparseable text)."""
    try:
        params = json.loads(text) if text else {}
    except json.JSONDecodeError:
        return {}
    inner = params.get("jouletrace") if isinstance(params, dict) else None
    return inner if isinstance(inner, dict) else {}


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
