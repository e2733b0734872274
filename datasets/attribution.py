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
- CPU zones (every kind but gpu/fpga): d_s * u_k / U_s, U_s = sum of running u, with u_k = r_k (split
  ``requests``) or u_k = r_k * w_T(k) (split ``fitted``, below); d_s / n_s among the n_s running tasks when
  none of them requested cores. Idle policy ``requests`` adds i_s * r_k / max(C, R_s) under either split,
  R_s = sum of running r, C = machines.cores of the node, else the node's peak concurrent requested cores.
- gpu/fpga: the h_s tasks holding the device get d_s / h_s and, under ``requests``, i_s / h_s.
- Policy ``none`` gives no idle energy; energy of a segment with no receiver is unattributed.

Fitted split. Tasks of one template T (tasks.template_name, null -> one shared "(none)") are taken to draw
w_T watts of dynamic power per requested core on a device kind. Per kind, over the reading intervals j of
every series of that kind on all nodes together that a requesting task overlaps:
    D_j = e_j - P_idle * dt_j  ~=  sum_T w_T * X_jT,   X_jT = sum_{k of T on the node} r_k * overlap(k, j) s.
w_T minimises sum_j (D_j - X_j w)^2 / dt_j + lambda * sum_T (w_T - w0)^2 (the 1/dt_j weight makes every
second of readings count alike), with the common value w0 = sum D_j / sum X_jT and lambda = 0.02 x the
median over templates of sum_j X_jT^2 / dt_j, so a template with little data (or none) stays near w0; then
w_T is clipped to [0.25, 4] x w0. Only ratios of w within a segment matter, so the pooled fit needs no model
of per-node hardware differences (a node-wide scale cancels in d_s * u_k / U_s). With w0 <= 0 the split
falls back to u_k = r_k and the spread below stays uniform.
With counters, ``fitted`` also spreads each reading interval's energy e_j over its segments s in proportion
to the modelled power instead of uniformly: e_s = e_j * m_s dt_s / sum_{s' in j} m_s' dt_s', with
m_s = P_idle + sum of running r_k * w_T(k) (P_idle estimated first from the uniform spread).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from schemas.tables import UTC_TIMESTAMP
from schemas.validation import conform, empty

IDLE_POLICIES = ("none", "requests")
SPLITS = ("requests", "fitted")
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
# Tasks without a template_name share one template in the fit.
NO_TEMPLATE = "(none)"
# Ridge strength of the fit, as a fraction of the median squared (weighted) column norm of X: a template
# with a fiftieth of a typical template's data is pulled halfway to the common value.
RIDGE_FRACTION = 0.02
# Fitted W/core is kept within these multiples of the common value.
FIT_BOUNDS = (0.25, 4.0)


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
    template: np.ndarray
    template_count: int
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
    templates = pc.fill_null(tasks["template_name"], NO_TEMPLATE).combine_chunks().dictionary_encode()
    return _Tasks(
        workflow_uid=_numpy(tasks["workflow_uid"]).astype(object),
        task_id=task_id,
        start_us=start_us,
        end_us=end_us,
        request_microcores=np.rint(np.nan_to_num(requests) * MICROCORES_PER_CORE),
        resolution_seconds=_numpy(tasks["time_resolution_seconds"].cast(pa.float64())).astype(float),
        template=templates.indices.to_numpy(zero_copy_only=False).astype(np.intp),
        template_count=len(templates.dictionary),
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
    series: _Series, weights: np.ndarray, wraps: np.ndarray, resets: np.ndarray, split: str, idle: str
) -> np.ndarray:
    """The method string of each task row: reading, counter fixes in the window, split, then idle labels."""
    accelerator = series.device_kind in ACCELERATOR_IDS
    reading = "counter-interpolated" if series.is_counter else "gauge-trapezoid"
    return np.asarray(
        [
            reading
            + (";wraps-corrected" if wrapped else "")
            + (";reset-estimated" if was_reset else "")
            + (";split=holders" if accelerator else f";split={split}" if weight > 0 else ";split=equal")
            + f";{idle}"
            for wrapped, was_reset, weight in zip(wraps, resets, weights, strict=True)
        ],
        dtype=object,
    )


@dataclass(frozen=True)
class _Segments:
    """One device series cut into segments, with its idle power; times in seconds after its first reading."""

    series: _Series
    rows: np.ndarray
    times_s: np.ndarray
    start_s: np.ndarray
    end_s: np.ndarray
    bounds_us: np.ndarray
    bounds_s: np.ndarray
    grid_s: np.ndarray
    segment_j: np.ndarray
    flags: np.ndarray
    interval: np.ndarray
    lo: np.ndarray
    hi: np.ndarray
    idle_watts: float
    idle_method: str


def _cut(series: _Series, tasks: _Tasks, rows: np.ndarray, window_us: int) -> _Segments:
    """Segments of one series (every reading, task edge and window boundary) and its idle power."""
    first_us, last_us = int(series.times_us[0]), int(series.times_us[-1])
    times_s = (series.times_us - first_us) / US_PER_SECOND
    start_s = (tasks.start_us[rows] - first_us) / US_PER_SECOND
    end_s = (tasks.end_us[rows] - first_us) / US_PER_SECOND
    bounds_us = np.arange(-(-first_us // window_us) * window_us, last_us, window_us, dtype=np.int64)
    bounds_us = bounds_us[bounds_us > first_us]
    bounds_s = (bounds_us - first_us) / US_PER_SECOND
    start_in_s, end_in_s = np.clip(start_s, 0.0, times_s[-1]), np.clip(end_s, 0.0, times_s[-1])
    grid_s = np.unique(np.concatenate([times_s, start_in_s, end_in_s, bounds_s]))
    segment_j, flags = _segment_joules(series, times_s, grid_s)
    lo, hi = np.searchsorted(grid_s, start_in_s), np.searchsorted(grid_s, end_in_s)
    segment_s = np.diff(grid_s)
    running = _running(lo, hi, np.ones(rows.size), grid_s.size)
    idle_watts, idle_method = _idle_power(segment_j / segment_s, segment_s, running == 0)
    return _Segments(
        series=series,
        rows=rows,
        times_s=times_s,
        start_s=start_s,
        end_s=end_s,
        bounds_us=bounds_us,
        bounds_s=bounds_s,
        grid_s=grid_s,
        segment_j=segment_j,
        flags=flags,
        interval=np.searchsorted(times_s, grid_s[:-1], side="right") - 1,
        lo=lo,
        hi=hi,
        idle_watts=idle_watts,
        idle_method=idle_method,
    )


@dataclass(frozen=True)
class _Design:
    """Sparse rows of the fit: entries X[row, template] in core-seconds, each row's D_j (J) and dt_j (s)."""

    row: np.ndarray
    template: np.ndarray
    core_seconds: np.ndarray
    dynamic_joules: np.ndarray
    interval_seconds: np.ndarray


def _design(segments: _Segments, tasks: _Tasks) -> _Design:
    """The reading intervals of one series that a requesting task overlaps, as rows of the fit (module doc)."""
    times_s = segments.times_s
    start_s = np.clip(segments.start_s, 0.0, times_s[-1])
    end_s = np.clip(segments.end_s, 0.0, times_s[-1])
    first = np.clip(np.searchsorted(times_s, start_s, side="right") - 1, 0, times_s.size - 2)
    count = np.where(end_s > start_s, np.maximum(np.searchsorted(times_s, end_s) - first, 0), 0)
    task = np.repeat(np.arange(count.size), count)
    interval = first[task] + np.arange(task.size) - np.repeat(np.cumsum(count) - count, count)
    overlap_s = np.minimum(end_s[task], times_s[interval + 1]) - np.maximum(start_s[task], times_s[interval])
    cores = tasks.request_microcores[segments.rows][task] / MICROCORES_PER_CORE
    templates = tasks.template_count
    keys, entry = np.unique(interval * templates + tasks.template[segments.rows][task], return_inverse=True)
    core_seconds = np.bincount(entry, cores * overlap_s, keys.size)
    keep = core_seconds > 0
    keys, core_seconds = keys[keep], core_seconds[keep]
    intervals, row = np.unique(keys // templates, return_inverse=True)
    interval_s = np.diff(times_s)
    interval_j = np.bincount(segments.interval, segments.segment_j, interval_s.size)
    return _Design(
        row=row,
        template=keys % templates,
        core_seconds=core_seconds,
        dynamic_joules=(interval_j - segments.idle_watts * interval_s)[intervals],
        interval_seconds=interval_s[intervals],
    )


@dataclass(frozen=True)
class _Fit:
    """Fitted dynamic W per requested core of one device kind: common value and per-template multiples."""

    common_watts: float
    relative: np.ndarray


def _fit_watts_per_core(designs: list[_Design], templates: int) -> _Fit:
    """Ridge least squares of D_j ~ sum_T w_T X_jT over all series of a kind, pulled toward w0 (module doc)."""
    offsets = np.cumsum([0] + [design.dynamic_joules.size for design in designs])
    row = np.concatenate([design.row + offset for design, offset in zip(designs, offsets[:-1], strict=True)])
    template = np.concatenate([design.template for design in designs])
    core_seconds = np.concatenate([design.core_seconds for design in designs])
    dynamic_joules = np.concatenate([design.dynamic_joules for design in designs])
    # Rows weigh 1 / dt_j: an interval's noise grows with its length, and every second of readings counts
    # alike whatever the node's reading interval.
    row_weight = 1.0 / np.concatenate([design.interval_seconds for design in designs])
    total = core_seconds.sum()
    common_watts = dynamic_joules.sum() / total if total > 0 else 0.0
    if not common_watts > 0:
        return _Fit(common_watts=0.0, relative=np.ones(templates))
    # X^T X from pairs of entries in one row (entries are sorted by row, so a row's entries are adjacent).
    gram = np.zeros(templates * templates)
    for gap in range(row.size):
        a = np.flatnonzero(row[: row.size - gap] == row[gap:])
        if a.size == 0:
            break
        b = a + gap
        products = core_seconds[a] * core_seconds[b] * row_weight[row[a]]
        gram += np.bincount(template[a] * templates + template[b], products, gram.size)
        if gap:
            gram += np.bincount(template[b] * templates + template[a], products, gram.size)
    gram = gram.reshape(templates, templates)
    moment = np.bincount(template, core_seconds * dynamic_joules[row] * row_weight[row], templates)
    norms = np.diag(gram)
    ridge = RIDGE_FRACTION * np.median(norms[norms > 0])
    watts = np.linalg.solve(gram + ridge * np.eye(templates), moment + ridge * common_watts)
    return _Fit(common_watts=common_watts, relative=np.clip(watts / common_watts, *FIT_BOUNDS))


def _modelled_joules(segments: _Segments, segment_s: np.ndarray, dynamic_watts: np.ndarray) -> np.ndarray:
    """Each reading interval's energy spread over its segments in proportion to the modelled power."""
    model_j = (segments.idle_watts + dynamic_watts) * segment_s
    interval_model_j = np.bincount(segments.interval, model_j)[segments.interval]
    interval_j = np.bincount(segments.interval, segments.segment_j)[segments.interval]
    return np.divide(
        interval_j * model_j, interval_model_j, out=segments.segment_j.copy(), where=interval_model_j > 0
    )


def _attribute_device(
    segments: _Segments,
    tasks: _Tasks,
    capacity: tuple[float, str],
    idle_policy: str,
    fit: _Fit | None,
) -> tuple[dict, dict]:
    """Task rows and balance rows of one device series (formulas in the module doc)."""
    series, rows, times_s, grid_s = segments.series, segments.rows, segments.times_s, segments.grid_s
    lo, hi, start_s, end_s = segments.lo, segments.hi, segments.start_s, segments.end_s
    first_us, last_us = int(series.times_us[0]), int(series.times_us[-1])
    readings = times_s.size
    accelerator = series.device_kind in ACCELERATOR_IDS
    weights = np.zeros(rows.size) if accelerator else tasks.request_microcores[rows]
    # Dynamic split weights: requested cores times the template's fitted multiple of the common W/core.
    relative = np.ones(rows.size) if fit is None else fit.relative[tasks.template[rows]]
    split_weights = weights * relative
    duration_s = end_s - start_s
    segment_s = np.diff(grid_s)
    running = _running(lo, hi, np.ones(rows.size), grid_s.size)
    requested = _running(lo, hi, weights, grid_s.size)
    weighted = _running(lo, hi, split_weights, grid_s.size)
    segment_j = segments.segment_j
    if fit is not None and series.is_counter:
        segment_j = _modelled_joules(segments, segment_s, fit.common_watts * weighted / MICROCORES_PER_CORE)

    idle_j = np.minimum(segment_j, segments.idle_watts * segment_s)
    dynamic_j = segment_j - idle_j
    # Per segment: joules per split weight (dynamic) or requested micro-core (idle), and per running task.
    zero = np.zeros_like(segment_j)
    to_tasks = idle_policy == "requests"
    if accelerator:
        core_dynamic_j = core_idle_j = zero
        equal_dynamic_j = np.divide(dynamic_j, running, out=zero.copy(), where=running > 0)
        equal_idle_j = np.divide(idle_j, running, out=zero.copy(), where=(running > 0) & to_tasks)
    else:
        core_dynamic_j = np.divide(dynamic_j, weighted, out=zero.copy(), where=requested > 0)
        core_idle_j = np.divide(
            idle_j, np.maximum(capacity[0], requested), out=zero.copy(), where=(requested > 0) & to_tasks
        )
        equal_dynamic_j = np.divide(
            dynamic_j, running, out=zero.copy(), where=(requested == 0) & (running > 0)
        )
        equal_idle_j = zero
    equal_j = equal_dynamic_j + equal_idle_j

    def received(
        dynamic: np.ndarray, idle: np.ndarray, equal: np.ndarray, a: np.ndarray, b: np.ndarray
    ) -> np.ndarray:
        """Joules each task got over grid points [a, b) from per-weight, per-core and per-task shares."""
        dynamic_sum, idle_sum, equal_sum = _cumulative(dynamic), _cumulative(idle), _cumulative(equal)
        return (
            split_weights * (dynamic_sum[b] - dynamic_sum[a])
            + weights * (idle_sum[b] - idle_sum[a])
            + (equal_sum[b] - equal_sum[a])
        )

    dynamic_joules = received(core_dynamic_j, zero, equal_dynamic_j, lo, hi)
    idle_joules = received(zero, core_idle_j, equal_idle_j, lo, hi)
    energy_joules = dynamic_joules + idle_joules
    average_w = np.divide(energy_joules, duration_s, out=np.zeros(rows.size), where=duration_s > 0)
    # A task with a request never runs where the equal split applies, and one without gets no per-core
    # share; tasks with one split multiple share one per-core power curve.
    peak_w = _range_max(equal_j / segment_s, lo, hi)
    for multiple in np.unique(relative[weights > 0]):
        group = (weights > 0) & (relative == multiple)
        per_core_w = (multiple * core_dynamic_j + core_idle_j) / segment_s
        peak_w[group] = weights[group] * _range_max(per_core_w, lo[group], hi[group])

    reading_s = np.diff(times_s)
    covered_interval = reading_s <= GAP_FACTOR * np.median(reading_s)
    covered = covered_interval[segments.interval]
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
    start_edge_j = received(
        core_dynamic_j, core_idle_j, equal_j, lo, np.minimum(reading_grid[start_interval + 1], hi)
    )
    end_edge_j = received(
        core_dynamic_j, core_idle_j, equal_j, np.maximum(reading_grid[end_interval], lo), hi
    )
    uncovered_j = received(core_dynamic_j * ~covered, core_idle_j * ~covered, equal_j * ~covered, lo, hi)
    uncertainty_joules = (
        tasks.resolution_seconds[rows] * average_w * 2.0
        + 0.5 * np.where(start_inside, start_edge_j, 0.0)
        + 0.5 * np.where(end_inside, end_edge_j, 0.0)
        + 0.5 * uncovered_j
    )

    # Counter fixes in the reading intervals the task window overlaps: [first_interval, past_interval).
    first_interval = np.clip(at_start, 0, readings - 1)
    past_interval = np.maximum(np.clip(past_reading, 0, readings - 1), first_interval)
    flags = segments.flags
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
            "requests" if fit is None else "fitted",
            f"{idle};idle_power={segments.idle_method}",
        ),
        "uncertainty_joules": uncertainty_joules,
        "provenance": np.full(rows.size, series.provenance, dtype=object),
    }

    attributed_j = weighted * core_dynamic_j + requested * core_idle_j + running * equal_j
    bounds_us, bounds_s = segments.bounds_us, segments.bounds_s
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
    split: str = "fitted",
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
    split: "requests" splits CPU-zone dynamic energy by requested cores, "fitted" by requested cores times
    a per-template W/core fitted from the readings (module doc); idle shares are the same under both.
    Balance rows: per device and window [m * window_seconds, (m + 1) * window_seconds) clipped to the series'
    first and last reading; measured = sum e_s, attributed = sum given to tasks, unattributed = the rest.
    """
    if idle_policy not in IDLE_POLICIES:
        raise ValueError(f"idle_policy {idle_policy!r} is not one of {IDLE_POLICIES}")
    if split not in SPLITS:
        raise ValueError(f"split {split!r} is not one of {SPLITS}")
    window_us = round(window_seconds * US_PER_SECOND)
    if window_us <= 0:
        raise ValueError(f"window_seconds must be positive, got {window_seconds}")
    ran = _ran_tasks(tasks)
    capacities = _capacities(ran, machines)
    none = np.zeros(0, dtype=np.intp)
    cut = []
    for series in _device_series(samples):
        if series.device_kind in ACCELERATOR_IDS:
            rows = ran.holders.get((series.host_node, series.device_kind, series.device_id), none)
        else:
            rows = ran.by_node.get(series.host_node, none)
        cut.append(_cut(series, ran, rows, window_us))
    fits = {}
    if split == "fitted":
        for kind in {segments.series.device_kind for segments in cut} - set(ACCELERATOR_IDS):
            designs = [_design(segments, ran) for segments in cut if segments.series.device_kind == kind]
            fits[kind] = _fit_watts_per_core(designs, ran.template_count)
    task_parts, balance_parts = [], []
    for segments in cut:
        capacity = capacities.get(segments.series.host_node, (0.0, "peak-requests"))
        fit = fits.get(segments.series.device_kind)
        task_rows, balance_rows = _attribute_device(segments, ran, capacity, idle_policy, fit)
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
