"""Stage 2, task windows: the tasks that ran, their windows on the readings' clock, node capacities,
the devices machines imply, and per-container counters joined to tasks.

Task times. Argo truncates startedAt/finishedAt to r = time_resolution_seconds, so the true instant lies in
[t, t + r): the idle window of a task is [start + r/2, end + r/2] ([t + r/3, t + 2r/3] when both truncate to
one instant), plus the node's clock skew when corrected. With a CPU-seconds (else GPU busy-time) counter its
edges are where the counter leaves 0 and reaches its total, extrapolated at the rate of a neighbouring
interval the task ran through (a two-interval run keeps Argo's length, placed by the counter), kept inside
[t, t + r). The wide window [start, end + r] holds every instant the task may have run.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from datasets.attribution.common import (
    _codes,
    _diagnostic,
    _microseconds,
    _moment,
    _numpy,
)
from datasets.attribution.constants import (
    ACCELERATOR_IDS,
    CPU_ZONE_DEVICES,
    EVERYTHING,
    FIT_BASES,
    MICROCORES_PER_CORE,
    NO_TEMPLATE,
    UNMAPPED_DEVICE,
    US_PER_SECOND,
)
from datasets.attribution.series import _clean


@dataclass(frozen=True)
class _Tasks:
    """The tasks that ran (host_node and both times known), indexed by node and by held accelerator."""

    workflow_uid: np.ndarray
    task_id: np.ndarray
    node: np.ndarray
    start_us: np.ndarray
    end_us: np.ndarray
    resolution_us: np.ndarray
    request_microcores: np.ndarray
    template: np.ndarray
    template_names: list[str]
    pod_uid: np.ndarray
    pod_name: np.ndarray
    by_node: dict[str, np.ndarray]
    ids: pa.Table  # workflow_uid, task_id
    rank: np.ndarray  # position of each task in (workflow_uid, task_id) order
    holders: dict[tuple[str, str, str], np.ndarray]
    held: dict[str, dict[str, set[str]]]
    # Per accelerator kind, each task's count of held devices whose id is unknown (UNMAPPED_DEVICE).
    unmapped: dict[str, np.ndarray] = field(default_factory=dict)

    @property
    def columns(self) -> int:
        return FIT_BASES * len(self.template_names)


def _fit_classes(tasks: pa.Table, machines: pa.Table | None) -> pa.DictionaryArray:
    """Each task's fit class: its template on its node's CPU model (``template@cpu model``), since a task
    type's watts per CPU-second differ between CPU models; the template alone where the model is unknown."""
    classes = pc.fill_null(tasks["template_name"], NO_TEMPLATE)
    cpu = _cpu_models(tasks, machines)
    if cpu is not None:
        classes = pc.if_else(pc.is_valid(cpu), pc.binary_join_element_wise(classes, cpu, "@"), classes)
    if isinstance(classes, pa.ChunkedArray):
        classes = classes.combine_chunks()
    return classes.dictionary_encode()


def _cpu_models(tasks: pa.Table, machines: pa.Table | None) -> pa.Array | None:
    """Each task's node's CPU model from `machines` (None: no model is known), looked up once per node."""
    if machines is None or "cpu_model" not in machines.column_names or not machines.num_rows:
        return None
    models = dict(zip(machines["host_node"].to_pylist(), machines["cpu_model"].to_pylist(), strict=True))
    nodes = pc.dictionary_encode(tasks["host_node"].combine_chunks())
    cpu = pa.array([models.get(node) for node in nodes.dictionary.to_pylist()], pa.string())
    cpu = cpu.take(nodes.indices)
    return None if cpu.null_count == len(cpu) else cpu


def _ran_tasks(tasks: pa.Table, machines: pa.Table | None = None) -> _Tasks:
    """Tasks with a node and both times; a task that finishes before it starts is an error naming it."""
    ran = pc.and_(
        pc.is_valid(tasks["host_node"]),
        pc.and_(pc.is_valid(tasks["started_at"]), pc.is_valid(tasks["finished_at"])),
    )
    tasks = tasks.filter(ran)
    start_us = _microseconds(tasks["started_at"])
    end_us = _microseconds(tasks["finished_at"])
    workflow_uid = _numpy(tasks["workflow_uid"]).astype(object)
    task_id = _numpy(tasks["task_id"]).astype(object)
    backwards = np.flatnonzero(end_us < start_us)
    if backwards.size:
        named = ", ".join(
            f"{workflow_uid[i]}/{task_id[i]} ({_moment(int(start_us[i]))} -> {_moment(int(end_us[i]))})"
            for i in backwards[:5]
        )
        raise ValueError(f"{backwards.size} tasks finish before they start: {named}")
    nodes = _numpy(tasks["host_node"]).astype(object)
    node_codes, node_names = _codes(tasks["host_node"])
    order = np.argsort(node_codes, kind="stable")
    groups = np.split(order, np.flatnonzero(np.diff(node_codes[order])) + 1) if order.size else []
    by_node = {node_names[node_codes[rows[0]]]: rows for rows in groups}
    holders: dict[tuple[str, str, str], list[int]] = {}
    held: dict[str, dict[str, set[str]]] = {}
    unmapped: dict[str, np.ndarray] = {}
    for kind, column in ACCELERATOR_IDS.items():
        holding = np.flatnonzero(_numpy(pc.fill_null(pc.list_value_length(tasks[column]), 0)) > 0)
        ids_of = tasks[column].take(pa.array(holding)).to_pylist()
        for index, ids in zip(holding.tolist(), ids_of, strict=True):
            node = nodes[index]
            if UNMAPPED_DEVICE in ids:
                unmapped.setdefault(kind, np.zeros(tasks.num_rows))[index] = ids.count(UNMAPPED_DEVICE)
            for device_id in set(ids):
                holders.setdefault((node, kind, device_id), []).append(index)
                held.setdefault(node, {}).setdefault(kind, set()).add(device_id)
    ids = tasks.select(["workflow_uid", "task_id"]).combine_chunks()
    order = _numpy(pc.sort_indices(ids, sort_keys=[("workflow_uid", "ascending"), ("task_id", "ascending")]))
    rank = np.empty(order.size, dtype=np.int64)
    rank[order] = np.arange(order.size)
    requests = _numpy(tasks["cpu_request_cores"].cast(pa.float64())).astype(float)
    resolution = _numpy(tasks["time_resolution_seconds"].cast(pa.float64())).astype(float)
    templates = _fit_classes(tasks, machines)
    pod_uid = tasks["pod_uid"] if "pod_uid" in tasks.column_names else pa.nulls(tasks.num_rows, pa.string())
    return _Tasks(
        workflow_uid=workflow_uid,
        task_id=task_id,
        node=nodes,
        start_us=start_us,
        end_us=end_us,
        resolution_us=np.rint(np.nan_to_num(resolution) * US_PER_SECOND).astype(np.int64),
        request_microcores=np.rint(np.clip(np.nan_to_num(requests), 0.0, None) * MICROCORES_PER_CORE),
        template=_numpy(templates.indices).astype(np.intp),
        template_names=templates.dictionary.to_pylist(),
        pod_uid=_numpy(pod_uid).astype(object),
        pod_name=_numpy(tasks["pod_name"]).astype(object),
        by_node=by_node,
        ids=ids,
        rank=rank,
        holders={key: np.asarray(rows) for key, rows in holders.items()},
        held=held,
        unmapped=unmapped,
    )


@dataclass(frozen=True)
class _Windows:
    """Per task of a node, in microseconds on the readings' clock: idle window and the wider usage window."""

    idle_start: np.ndarray
    idle_end: np.ndarray
    wide_start: np.ndarray
    wide_end: np.ndarray
    resolution: np.ndarray


def _windows(tasks: _Tasks, rows: np.ndarray, skew_us: int) -> _Windows:
    """Truncated times t hide true instants uniform in [t, t + r): the expected true edges are t + r/2, or
    t + r/3 and t + 2r/3 when both were truncated to the same instant (then the start precedes the end)."""
    resolution = tasks.resolution_us[rows]
    start, end = tasks.start_us[rows] + skew_us, tasks.end_us[rows] + skew_us
    same = end == start
    idle_start = start + np.where(same, resolution // 3, resolution // 2)
    idle_end = end + np.where(same, 2 * resolution // 3, resolution // 2)
    return _Windows(idle_start, idle_end, start, end + resolution, resolution)


def _capacities(tasks: _Tasks, machines: pa.Table | None) -> dict[str, tuple[float, str]]:
    """Node capacity in micro-cores and where it came from: machines.cores, else the peak requested."""
    cores = {}
    if machines is not None:
        for node, count in zip(
            machines["host_node"].to_pylist(),
            machines["cores"].to_pylist(),
            strict=True,
        ):
            if count:
                cores[node] = count * MICROCORES_PER_CORE
    capacities = {}
    for node, rows in tasks.by_node.items():
        if node in cores:
            capacities[node] = (cores[node], "machines")
            continue
        requests = tasks.request_microcores[rows]
        times = np.concatenate([tasks.start_us[rows], tasks.end_us[rows]])
        change = np.concatenate([requests, -requests])
        order = np.lexsort((change, times))  # a release at the same instant comes before a start
        capacities[node] = (
            float(max(np.cumsum(change[order]).max(), 0.0)),
            "peak-requests",
        )
    return capacities


def _machine_devices(
    machines: pa.Table | None,
) -> dict[str, tuple[list[tuple[str, str]], bool]]:
    """Per node: the CPU-zone devices its sockets imply, and whether its GPUs are MIG-partitioned."""
    devices: dict[str, tuple[list[tuple[str, str]], bool]] = {}
    if machines is None:
        return devices
    for row in machines.select(["host_node", "sockets", "gpu_models", "labels"]).to_pylist():
        zones = [
            (kind, f"{prefix}-{socket}")
            for socket in range(row["sockets"] or 0)
            for kind, prefix in CPU_ZONE_DEVICES.items()
        ]
        labels = dict(row["labels"] or [])
        mig = (
            labels.get("nvidia.com/mig.strategy", "none") not in ("", "none")
            or labels.get("nvidia.com/mig.config", "all-disabled") not in ("", "all-disabled")
            or any("MIG" in (model or "") for model in row["gpu_models"] or [])
        )
        devices[row["host_node"]] = (zones, mig)
    return devices


@dataclass(frozen=True)
class _Readings:
    """Cleaned per-container counter readings joined to tasks, sorted by (task, series, time)."""

    task: np.ndarray
    series: np.ndarray
    times_us: np.ndarray
    increments: np.ndarray  # amount since the previous reading of the series (first: the value itself)
    device_kind: np.ndarray
    device_id: np.ndarray


def _container_readings(
    containers: pa.Table | None,
    tasks: _Tasks,
    value_kind: str,
    sources: tuple[str, ...],
    emit: tuple[int, int] = EVERYTHING,
) -> tuple[_Readings | None, list[dict]]:
    """The counters of `value_kind` from `sources` (first listed source wins per task), joined to tasks."""
    if containers is None or containers.num_rows == 0:
        return None, []
    chosen = containers.filter(
        pc.and_(
            pc.equal(containers["value_kind"], value_kind),
            pc.is_in(containers["source"], pa.array(sources)),
        )
    )
    if chosen.num_rows == 0:
        return None, []
    task = _join_tasks(chosen, tasks)
    chosen, task = chosen.filter(pa.array(task >= 0)), task[task >= 0]
    if task.size == 0:
        return None, []
    rank = np.asarray([sources.index(s) for s in chosen["source"].to_pylist()])
    best = np.full(tasks.task_id.size, len(sources))
    np.minimum.at(best, task, rank)
    keep = rank == best[task]
    chosen, task = chosen.filter(pa.array(keep)), task[keep]
    kinds = pc.fill_null(chosen["device_kind"], "").combine_chunks()
    devices = (
        pc.fill_null(chosen["device_id"], "").combine_chunks()
        if "device_id" in chosen.column_names
        else pa.array([""] * chosen.num_rows, pa.string())
    )
    key = pc.binary_join_element_wise(
        pc.cast(pa.array(task), pa.string()),
        pc.fill_null(chosen["container_id"], ""),
        kinds,
        devices,
        "\x1f",
    )
    series, _ = _codes(key)
    times_us = _microseconds(chosen["timestamp"])
    values = _numpy(chosen["value"].cast(pa.float64())).astype(float)
    order = np.lexsort((times_us, series))
    starts = np.flatnonzero(np.diff(series[order], prepend=-1))
    kept, notes = [], []
    dropped_total = 0
    for rows in np.split(order, starts[1:]):
        where = f"{tasks.node[task[rows[0]]]}/{tasks.pod_name[task[rows[0]]] or tasks.task_id[task[rows[0]]]}"
        keep_rows, dropped = _clean(times_us[rows], values[rows], where, value_kind, emit)
        dropped_total += dropped["nan"] + dropped["negative"]
        kept.append(rows if keep_rows is None else rows[keep_rows])
    order = np.concatenate(kept)
    if dropped_total:
        notes.append(_diagnostic(f"{value_kind}_dropped", float(dropped_total), "NaN or negative"))
    series, values, times_us = series[order], values[order], times_us[order]
    first = np.diff(series, prepend=-1) != 0
    increments = np.diff(values, prepend=0.0)
    # A counter that goes back restarted (container restart): the new value is what was used since.
    increments = np.where(first | (increments < 0), values, increments)
    counted = (times_us >= emit[0]) & (times_us < emit[1])
    restarts = int((~first & (np.diff(values, prepend=0.0) < 0) & counted).sum())
    if restarts:
        notes.append(_diagnostic(f"{value_kind}_restarts", float(restarts), "counter restarted from 0"))
    order_task = task[order]
    resort = np.lexsort((times_us, series, order_task))
    return (
        _Readings(
            task=order_task[resort],
            series=series[resort],
            times_us=times_us[resort],
            increments=increments[resort],
            device_kind=_numpy(kinds.take(pa.array(order[resort]))).astype(object),
            device_id=_numpy(devices.take(pa.array(order[resort]))).astype(object),
        ),
        notes,
    )


def _join_tasks(chosen: pa.Table, tasks: _Tasks) -> np.ndarray:
    """Task index of every container row: pod_uid, else pod_name (on the same node when it says); -1 none."""
    task = np.full(chosen.num_rows, -1, dtype=np.int64)
    for column, ids, usable in (
        ("pod_uid", tasks.pod_uid, np.ones(chosen.num_rows, bool)),
        ("pod_name", tasks.pod_name, _numpy(pc.is_null(chosen["pod_uid"]))),
    ):
        known = np.flatnonzero([value is not None for value in ids])
        if known.size == 0:
            continue
        found = pc.index_in(chosen[column], value_set=pa.array(ids[known], pa.string()))
        hit = (task < 0) & usable & _numpy(pc.is_valid(found))
        task[hit] = known[_numpy(pc.fill_null(found, 0))[hit]]
    matched = np.where(task >= 0, task, 0)
    wrong_host = pc.fill_null(
        pc.not_equal(chosen["host_node"], pa.array(tasks.node[matched], pa.string())),
        False,
    )
    task[_numpy(wrong_host)] = -1
    return task
