"""Split the energy each device's meter read among the workflow tasks that ran on its node.

Pure functions over Arrow tables: ``tasks`` + ``power_samples`` (+ ``machines``) -> ``task_energy`` and
``node_energy_balance``. Every step runs per device series, vectorised with numpy.

Series. Per (host_node, device_kind, device_id) the ``energy_counter_joules`` readings are used when there
are any (a counter integrates exactly), else the ``power_watts`` readings. Readings t_0 < ... < t_n; a series
with fewer than two readings carries no energy and is ignored.

Counter, interval i: delta_i = v_{i+1} - v_i, dt_i = t_{i+1} - t_i, energy e_i = delta_i + k_i * M
(M = counter_max_joules). The wrap count k_i is one the power bound allows, 0 <= e_i <= P_max * dt_i, with
k_i >= 1 when delta_i < 0. One allowed count is taken as is; with several, the count whose e_i is nearest
P_nb * dt_i, P_nb = mean power of the nearest intervals before and after whose count was unique (the fewest
wraps without such neighbours). A negative delta with no M, or with no allowed count, is a reset: the counter
restarted from 0 at an unknown time in the interval, so e_i = max(v_{i+1}, P_nb * dt_i). Cumulative
E(t_j) = sum_{i<j} e_i, and E(t) is linear between readings.

Gauge: power is linear between readings, so within a reading interval E(a, b) = (p(a) + p(b)) / 2 * (b - a).

Segments. The grid is the union of the reading times, the start/end of the tasks that can receive the
device's energy (clipped to [t_0, t_n]; time outside has no energy and is not covered) and the window
boundaries m * window_seconds since the epoch. Segment s: length dt_s, energy e_s = E(g_{s+1}) - E(g_s).

Idle power P_idle: duration-weighted median of e_s / dt_s over the segments in which no task runs on the
node (CPU zones) or holds the device (gpu, fpga) if they last >= 30 s, else the weighted 5th percentile over
all segments. Idle part i_s = min(e_s, P_idle * dt_s), dynamic part d_s = e_s - i_s.

Split of segment s among its running tasks (request r_k = cpu_request_cores, null -> 0):
- CPU zones (every kind but gpu/fpga): d_s * r_k / R_s, R_s = sum of running r; d_s / n_s when R_s = 0.
  Idle policy ``requests`` adds i_s * r_k / max(C, R_s), C = machines.cores of the node, else the node's
  peak concurrent requested cores.
- gpu/fpga: the h_s tasks holding the device get d_s / h_s and, under ``requests``, i_s / h_s.
- Policy ``none`` gives no idle energy; energy of a segment with no receiver is unattributed.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from schemas.tables import UTC_TIMESTAMP
from schemas.validation import conform, empty

IDLE_POLICIES = ("none", "requests")
# Accelerator kinds and the tasks column naming the devices a task holds.
ACCELERATOR_IDS = {"gpu": "gpu_ids", "fpga": "fpga_ids"}
# Generous per-device bound: above it a counter jump is not energy but a wrap or a reset.
MAX_DEVICE_POWER_WATTS = 5000.0
GAP_FACTOR = 3.0
MIN_IDLE_SECONDS = 30.0
IDLE_FALLBACK_QUANTILE = 0.05
FLAG_OK, FLAG_WRAP, FLAG_RESET = 0, 1, 2
US_PER_SECOND = 1_000_000
# Requests are summed in integer micro-cores so "nothing requested" is an exact zero.
MICROCORES_PER_CORE = 1e6
COUNTER = "energy_counter_joules"


@dataclass(frozen=True)
class Attribution:
    task_energy: pa.Table
    node_energy_balance: pa.Table


def unwrap_counter(
    values_joules: np.ndarray,
    times_seconds: np.ndarray,
    counter_max_joules: float | None,
    max_power_watts: float = MAX_DEVICE_POWER_WATTS,
) -> tuple[np.ndarray, np.ndarray]:
    """Raw counter readings -> (joules since the first reading, per-interval flag 0 ok, 1 wrapped, 2 reset).

    Readings must be sorted by strictly increasing time. Interval energy e_i = delta_i + k_i * M with the
    wrap count k_i allowed by 0 <= e_i <= max_power_watts * dt_i, disambiguated by the neighbours' power;
    a negative delta with no allowed count is a reset, e_i = max(v_{i+1}, P_nb * dt_i) (see the module doc).
    """
    values = np.asarray(values_joules, dtype=float)
    seconds = np.diff(np.asarray(times_seconds, dtype=float))
    delta = np.diff(values)
    wrap_joules = float(counter_max_joules or 0.0)
    if wrap_joules > 0:
        fewest = (delta < 0).astype(float)
        most = np.floor((max_power_watts * seconds - delta) / wrap_joules)
    else:
        fewest = most = np.zeros_like(delta)
    allowed = (most >= fewest) & ((delta >= 0) | (fewest > 0))
    reset = (delta < 0) & ~allowed
    unique = allowed & (most == fewest)
    neighbour_joules = _neighbour_mean((delta + fewest * wrap_joules) / seconds, unique) * seconds
    several = allowed & (most > fewest)
    nearest = np.divide(neighbour_joules - delta, wrap_joules, out=np.full_like(delta, np.nan), where=several)
    wraps = np.where(np.isfinite(nearest), np.clip(np.rint(nearest), fewest, most), fewest)
    energy = np.where(reset, np.fmax(values[1:], neighbour_joules), delta + wraps * wrap_joules)
    flags = np.where(reset, FLAG_RESET, np.where(wraps > 0, FLAG_WRAP, FLAG_OK)).astype(np.int8)
    return np.concatenate([np.zeros(min(values.size, 1)), np.cumsum(energy)]), flags


def _neighbour_mean(values: np.ndarray, reliable: np.ndarray) -> np.ndarray:
    """Mean of the nearest reliable value before and after each position (NaN if there is none)."""
    count = values.size
    positions = np.arange(count)
    before = np.maximum.accumulate(np.where(reliable, positions, -1))
    after = np.minimum.accumulate(np.where(reliable, positions, count)[::-1])[::-1]
    total = np.zeros(count)
    found = np.zeros(count)
    for position, ok in ((before, before >= 0), (after, after < count)):
        total += np.where(ok, values[np.clip(position, 0, max(count - 1, 0))], 0.0)
        found += ok
    return np.divide(total, found, out=np.full(count, np.nan), where=found > 0)


@dataclass(frozen=True)
class _Series:
    host_node: str
    device_kind: str
    device_id: str
    times_us: np.ndarray
    values: np.ndarray
    is_counter: bool
    counter_max_joules: float | None
    provenance: str


@dataclass(frozen=True)
class _Tasks:
    workflow_uid: np.ndarray
    task_id: np.ndarray
    start_us: np.ndarray
    end_us: np.ndarray
    request_microcores: np.ndarray
    resolution_seconds: np.ndarray
    by_node: dict[str, np.ndarray]
    holders: dict[tuple[str, str, str], np.ndarray]


def _numpy(column: pa.ChunkedArray) -> np.ndarray:
    return column.combine_chunks().to_numpy(zero_copy_only=False)


def _microseconds(column: pa.ChunkedArray) -> np.ndarray:
    return _numpy(column.cast(UTC_TIMESTAMP).cast(pa.int64()))


def _provenance(values: set[str]) -> str:
    """Keep the readings' provenance when they agree; a mix of sources makes the number an estimate."""
    return values.pop() if len(values) == 1 else "estimated"


def _device_series(samples: pa.Table) -> list[_Series]:
    """One series per device: its energy counter when it has one, else its power gauge."""
    if samples.num_rows == 0:
        return []
    key = pc.binary_join_element_wise(
        samples["host_node"], samples["device_kind"], samples["device_id"], "\x1f"
    ).combine_chunks()
    devices = key.dictionary_encode()
    codes = devices.indices.to_numpy()
    names = devices.dictionary.to_pylist()
    provenance = samples["provenance"].combine_chunks().dictionary_encode()
    provenance_codes = provenance.indices.to_numpy()
    provenance_names = provenance.dictionary.to_pylist()
    counter = _numpy(pc.equal(samples["value_kind"], COUNTER))
    times_us = _microseconds(samples["timestamp"])
    values = _numpy(samples["value"]).astype(float)
    counter_max = _numpy(samples["counter_max_joules"].cast(pa.float64())).astype(float)
    order = np.lexsort((times_us, ~counter, codes))
    starts = np.flatnonzero(np.diff(codes[order], prepend=-1))
    series = []
    for rows in np.split(order, starts[1:]):
        counters = int(counter[rows].sum())
        rows = rows[:counters] if counters else rows
        # A reading repeated at one timestamp carries no interval.
        rows = rows[np.diff(times_us[rows], prepend=times_us[rows[0]] - 1) > 0]
        if rows.size < 2:
            continue
        host_node, device_kind, device_id = names[codes[rows[0]]].split("\x1f")
        wrap = counter_max[rows]
        series.append(
            _Series(
                host_node=host_node,
                device_kind=device_kind,
                device_id=device_id,
                times_us=times_us[rows],
                values=values[rows],
                is_counter=counters > 0,
                counter_max_joules=float(np.nanmax(wrap)) if np.isfinite(wrap).any() else None,
                provenance=_provenance({provenance_names[c] for c in np.unique(provenance_codes[rows])}),
            )
        )
    return series


def _ran_tasks(tasks: pa.Table) -> _Tasks:
    """The tasks that ran (host_node and both times known), indexed by node and by held accelerator."""
    ran = pc.and_(
        pc.is_valid(tasks["host_node"]),
        pc.and_(pc.is_valid(tasks["started_at"]), pc.is_valid(tasks["finished_at"])),
    )
    tasks = tasks.filter(ran)
    start_us = _microseconds(tasks["started_at"])
    end_us = _microseconds(tasks["finished_at"])
    task_id = _numpy(tasks["task_id"]).astype(object)
    if (end_us < start_us).any():
        raise ValueError(f"tasks finish before they start: {list(task_id[end_us < start_us][:5])}")
    nodes = tasks["host_node"].to_pylist()
    by_node: dict[str, list[int]] = {}
    for index, node in enumerate(nodes):
        by_node.setdefault(node, []).append(index)
    holders: dict[tuple[str, str, str], list[int]] = {}
    for kind, column in ACCELERATOR_IDS.items():
        for index, (node, ids) in enumerate(zip(nodes, tasks[column].to_pylist(), strict=True)):
            for device_id in set(ids or ()):
                holders.setdefault((node, kind, device_id), []).append(index)
    requests = _numpy(tasks["cpu_request_cores"].cast(pa.float64())).astype(float)
    return _Tasks(
        workflow_uid=_numpy(tasks["workflow_uid"]).astype(object),
        task_id=task_id,
        start_us=start_us,
        end_us=end_us,
        request_microcores=np.rint(np.nan_to_num(requests) * MICROCORES_PER_CORE),
        resolution_seconds=_numpy(tasks["time_resolution_seconds"].cast(pa.float64())).astype(float),
        by_node={node: np.asarray(rows) for node, rows in by_node.items()},
        holders={key: np.asarray(rows) for key, rows in holders.items()},
    )


def _capacities(tasks: _Tasks, machines: pa.Table | None) -> dict[str, tuple[float, str]]:
    """Node capacity in micro-cores and where it came from: machines.cores, else the peak requested."""
    cores = {}
    if machines is not None:
        for node, count in zip(machines["host_node"].to_pylist(), machines["cores"].to_pylist(), strict=True):
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
        capacities[node] = (float(max(np.cumsum(change[order]).max(), 0.0)), "peak-requests")
    return capacities


def _weighted_quantile(values: np.ndarray, weights: np.ndarray, quantile: float) -> float:
    order = np.argsort(values)
    cumulative = np.cumsum(weights[order])
    return float(values[order][np.searchsorted(cumulative, quantile * cumulative[-1])])


def _idle_power(watts: np.ndarray, seconds: np.ndarray, idle: np.ndarray) -> tuple[float, str]:
    """Idle power from the device's own quiet time; without 30 s of it, a low percentile of all time."""
    if seconds[idle].sum() >= MIN_IDLE_SECONDS:
        return _weighted_quantile(watts[idle], seconds[idle], 0.5), "median-idle-segments"
    return _weighted_quantile(watts, seconds, IDLE_FALLBACK_QUANTILE), "p5-segments"


def _range_max(values: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """max(values[lo:hi]) per range (NaN when empty); ranges sorted by start keep one pass over values."""
    result = np.full(lo.size, np.nan)
    has = hi > lo
    if not has.any():
        return result
    order = np.argsort(lo[has], kind="stable")
    bounds = np.empty(2 * order.size, dtype=np.intp)
    bounds[0::2] = lo[has][order]
    bounds[1::2] = hi[has][order]
    maxima = np.empty(order.size)
    maxima[order] = np.maximum.reduceat(np.append(values, 0.0), bounds)[0::2]
    result[has] = maxima
    return result


def _cumulative(values: np.ndarray) -> np.ndarray:
    return np.concatenate([[0.0], np.cumsum(values)])


def _running(lo: np.ndarray, hi: np.ndarray, weights: np.ndarray, points: int) -> np.ndarray:
    """Per segment, the sum of the weights of the tasks whose grid range [lo, hi) holds it."""
    change = np.bincount(lo, weights, points) - np.bincount(hi, weights, points)
    return np.cumsum(change)[:-1]


def _segment_joules(
    series: _Series, times_s: np.ndarray, grid_s: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Energy of each grid segment (counter: interpolated E(t); gauge: trapezoid) and the counter flags."""
    if series.is_counter:
        cumulative_j, flags = unwrap_counter(series.values, times_s, series.counter_max_joules)
        return np.diff(np.interp(grid_s, times_s, cumulative_j)), flags
    watts = np.interp(grid_s, times_s, series.values)
    return 0.5 * (watts[:-1] + watts[1:]) * np.diff(grid_s), np.zeros(times_s.size - 1, dtype=np.int8)


def _methods(
    series: _Series, weights: np.ndarray, wraps: np.ndarray, resets: np.ndarray, idle: str
) -> np.ndarray:
    """The method string of each task row: reading, counter fixes in the window, split, then idle labels."""
    accelerator = series.device_kind in ACCELERATOR_IDS
    reading = "counter-interpolated" if series.is_counter else "gauge-trapezoid"
    return np.asarray(
        [
            reading
            + (";wraps-corrected" if wrapped else "")
            + (";reset-estimated" if was_reset else "")
            + (";split=holders" if accelerator else ";split=requests" if weight > 0 else ";split=equal")
            + f";{idle}"
            for wrapped, was_reset, weight in zip(wraps, resets, weights, strict=True)
        ],
        dtype=object,
    )


def _attribute_device(
    series: _Series,
    tasks: _Tasks,
    rows: np.ndarray,
    capacity: tuple[float, str],
    idle_policy: str,
    window_us: int,
) -> tuple[dict, dict]:
    """Task rows and balance rows of one device series (formulas in the module doc)."""
    first_us, last_us = int(series.times_us[0]), int(series.times_us[-1])
    times_s = (series.times_us - first_us) / US_PER_SECOND
    readings = times_s.size
    accelerator = series.device_kind in ACCELERATOR_IDS
    weights = np.zeros(rows.size) if accelerator else tasks.request_microcores[rows]
    start_s = (tasks.start_us[rows] - first_us) / US_PER_SECOND
    end_s = (tasks.end_us[rows] - first_us) / US_PER_SECOND
    duration_s = end_s - start_s
    bounds_us = np.arange(-(-first_us // window_us) * window_us, last_us, window_us, dtype=np.int64)
    bounds_us = bounds_us[bounds_us > first_us]
    bounds_s = (bounds_us - first_us) / US_PER_SECOND

    # Segments: every grid point where a reading, a task edge or a window boundary falls.
    start_in_s, end_in_s = np.clip(start_s, 0.0, times_s[-1]), np.clip(end_s, 0.0, times_s[-1])
    grid_s = np.unique(np.concatenate([times_s, start_in_s, end_in_s, bounds_s]))
    segment_s = np.diff(grid_s)
    segment_j, flags = _segment_joules(series, times_s, grid_s)
    lo, hi = np.searchsorted(grid_s, start_in_s), np.searchsorted(grid_s, end_in_s)
    running = _running(lo, hi, np.ones(rows.size), grid_s.size)
    requested = _running(lo, hi, weights, grid_s.size)

    idle_w, idle_method = _idle_power(segment_j / segment_s, segment_s, running == 0)
    idle_j = np.minimum(segment_j, idle_w * segment_s)
    dynamic_j = segment_j - idle_j
    # Per segment: joules per requested micro-core (core_*) and joules per running task (equal_*).
    zero = np.zeros_like(segment_j)
    to_tasks = idle_policy == "requests"
    if accelerator:
        core_dynamic_j = core_idle_j = zero
        equal_dynamic_j = np.divide(dynamic_j, running, out=zero.copy(), where=running > 0)
        equal_idle_j = np.divide(idle_j, running, out=zero.copy(), where=(running > 0) & to_tasks)
    else:
        core_dynamic_j = np.divide(dynamic_j, requested, out=zero.copy(), where=requested > 0)
        core_idle_j = np.divide(
            idle_j, np.maximum(capacity[0], requested), out=zero.copy(), where=(requested > 0) & to_tasks
        )
        equal_dynamic_j = np.divide(
            dynamic_j, running, out=zero.copy(), where=(requested == 0) & (running > 0)
        )
        equal_idle_j = zero
    core_j = core_dynamic_j + core_idle_j
    equal_j = equal_dynamic_j + equal_idle_j

    def received(core: np.ndarray, equal: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        """Joules each task got over grid points [a, b) from per-segment per-core and per-task shares."""
        core_sum, equal_sum = _cumulative(core), _cumulative(equal)
        return weights * (core_sum[b] - core_sum[a]) + (equal_sum[b] - equal_sum[a])

    dynamic_joules = received(core_dynamic_j, equal_dynamic_j, lo, hi)
    idle_joules = received(core_idle_j, equal_idle_j, lo, hi)
    energy_joules = dynamic_joules + idle_joules
    average_w = np.divide(energy_joules, duration_s, out=np.zeros(rows.size), where=duration_s > 0)
    # A task with a request never runs where the equal split applies, and one without gets no per-core share.
    peak_w = np.where(
        weights > 0,
        weights * _range_max(core_j / segment_s, lo, hi),
        _range_max(equal_j / segment_s, lo, hi),
    )

    reading_s = np.diff(times_s)
    covered_interval = reading_s <= GAP_FACTOR * np.median(reading_s)
    covered = covered_interval[np.searchsorted(times_s, grid_s[:-1], side="right") - 1]
    covered_s = _cumulative(segment_s * covered)
    at_start = np.searchsorted(times_s, start_s, side="right") - 1
    at_end = np.searchsorted(times_s, end_s, side="right") - 1
    start_interval = np.clip(at_start, 0, readings - 2)
    end_interval = np.clip(at_end, 0, readings - 2)
    point_covered = (at_start >= 0) & (at_start < readings - 1) & covered_interval[start_interval]
    coverage = np.minimum(
        np.divide(covered_s[hi] - covered_s[lo], duration_s, out=point_covered * 1.0, where=duration_s > 0),
        1.0,
    )
    past_reading = np.searchsorted(times_s, end_s, side="left")
    samples = np.maximum(past_reading - (at_start + 1), 0)

    reading_grid = np.searchsorted(grid_s, times_s)
    start_inside = (at_start >= 0) & (at_start < readings - 1) & (times_s[start_interval] < start_s)
    end_inside = (at_end >= 0) & (at_end < readings - 1) & (times_s[end_interval] < end_s)
    start_edge_j = received(core_j, equal_j, lo, np.minimum(reading_grid[start_interval + 1], hi))
    end_edge_j = received(core_j, equal_j, np.maximum(reading_grid[end_interval], lo), hi)
    uncovered_j = received(core_j * ~covered, equal_j * ~covered, lo, hi)
    uncertainty_joules = (
        tasks.resolution_seconds[rows] * average_w * 2.0
        + 0.5 * np.where(start_inside, start_edge_j, 0.0)
        + 0.5 * np.where(end_inside, end_edge_j, 0.0)
        + 0.5 * uncovered_j
    )

    # Counter fixes in the reading intervals the task window overlaps: [first_interval, past_interval).
    first_interval = np.clip(at_start, 0, readings - 1)
    past_interval = np.maximum(np.clip(past_reading, 0, readings - 1), first_interval)
    wraps, resets = _cumulative(flags == FLAG_WRAP), _cumulative(flags == FLAG_RESET)
    if not to_tasks:
        idle = "idle=none"
    else:
        idle = "idle=holders" if accelerator else f"idle=requests/capacity={capacity[1]}"
    task_rows = {
        "workflow_uid": tasks.workflow_uid[rows],
        "task_id": tasks.task_id[rows],
        "device_kind": np.full(rows.size, series.device_kind, dtype=object),
        "device_id": np.full(rows.size, series.device_id, dtype=object),
        "energy_joules": energy_joules,
        "dynamic_joules": dynamic_joules,
        "idle_joules": idle_joules,
        "avg_power_watts": np.where(duration_s > 0, average_w, np.nan),
        "peak_power_watts": peak_w,
        "coverage": coverage,
        "samples": samples.astype(np.int64),
        "method": _methods(
            series,
            weights,
            wraps[past_interval] - wraps[first_interval],
            resets[past_interval] - resets[first_interval],
            f"{idle};idle_power={idle_method}",
        ),
        "uncertainty_joules": uncertainty_joules,
        "provenance": np.full(rows.size, series.provenance, dtype=object),
    }

    attributed_j = requested * core_j + running * equal_j
    window = np.searchsorted(bounds_s, grid_s[:-1], side="right")
    windows = bounds_s.size + 1
    measured_joules = np.bincount(window, segment_j, windows)
    attributed_joules = np.bincount(window, attributed_j, windows)
    balance_rows = {
        "host_node": np.full(windows, series.host_node, dtype=object),
        "device_kind": np.full(windows, series.device_kind, dtype=object),
        "device_id": np.full(windows, series.device_id, dtype=object),
        "window_start": np.concatenate([[first_us], bounds_us]),
        "window_end": np.concatenate([bounds_us, [last_us]]),
        "measured_joules": measured_joules,
        "attributed_joules": attributed_joules,
        "unattributed_joules": measured_joules - attributed_joules,
        "provenance": np.full(windows, series.provenance, dtype=object),
    }
    return task_rows, balance_rows


def _table(name: str, parts: list[dict], sort_keys: list[str]) -> pa.Table:
    if not parts:
        return empty(name)
    columns = {}
    for column in parts[0]:
        values = np.concatenate([part[column] for part in parts])
        if column in ("window_start", "window_end"):
            values = pa.array(values.astype(np.int64)).cast(UTC_TIMESTAMP)
        columns[column] = values
    return conform(name, columns).sort_by([(key, "ascending") for key in sort_keys])


def attribute(
    tasks: pa.Table,
    samples: pa.Table,
    machines: pa.Table | None = None,
    *,
    idle_policy: str = "requests",
    window_seconds: float = 3600.0,
) -> Attribution:
    """Per-task, per-device energy and a per-window balance of every device series.

    Task rows: one per (task, device) for every CPU-zone series on the task's node and every held gpu/fpga
    with a series; a task whose node (or held device) has no series gets no row, and a task outside a
    series' readings gets a row with energy 0 and coverage 0. Tasks without host_node or either time are
    skipped.
    - energy_joules = dynamic_joules + idle_joules, summed over the task's segments (module doc).
    - avg_power_watts = energy / (finished - started), null for a zero-length task.
    - peak_power_watts = max over the task's segments of its attributed joules / dt_s.
    - coverage = the part of the task window inside reading intervals no longer than 3x the median one
      (a zero-length task: 1 if its instant lies in such an interval, else 0).
    - samples = readings strictly inside the task window.
    - uncertainty_joules = 2 * time_resolution_seconds * avg_power + 0.5 * (joules the task got from the
      reading interval holding its start + from the one holding its end) + 0.5 * joules in uncovered time.
    - provenance: the readings' provenance when they all agree, else "estimated".
    Balance rows: per device and window [m * window_seconds, (m + 1) * window_seconds) clipped to the series'
    first and last reading; measured = sum e_s, attributed = sum given to tasks, unattributed = the rest.
    """
    if idle_policy not in IDLE_POLICIES:
        raise ValueError(f"idle_policy {idle_policy!r} is not one of {IDLE_POLICIES}")
    window_us = round(window_seconds * US_PER_SECOND)
    if window_us <= 0:
        raise ValueError(f"window_seconds must be positive, got {window_seconds}")
    ran = _ran_tasks(tasks)
    capacities = _capacities(ran, machines)
    none = np.zeros(0, dtype=np.intp)
    task_parts, balance_parts = [], []
    for series in _device_series(samples):
        if series.device_kind in ACCELERATOR_IDS:
            rows = ran.holders.get((series.host_node, series.device_kind, series.device_id), none)
        else:
            rows = ran.by_node.get(series.host_node, none)
        capacity = capacities.get(series.host_node, (0.0, "peak-requests"))
        task_rows, balance_rows = _attribute_device(series, ran, rows, capacity, idle_policy, window_us)
        task_parts.append(task_rows)
        balance_parts.append(balance_rows)
    return Attribution(
        task_energy=_table(
            "task_energy", task_parts, ["workflow_uid", "task_id", "device_kind", "device_id"]
        ),
        node_energy_balance=_table(
            "node_energy_balance", balance_parts, ["host_node", "device_kind", "device_id", "window_start"]
        ),
    )
