"""Split the energy each device's meter read among the workflow tasks that ran on its node.

Pure functions over Arrow tables: ``tasks`` + ``power_samples`` (+ ``machines``, ``container_samples``) ->
``task_energy``, ``node_energy_balance`` and a ``diagnostics`` table. Every step runs per device series,
vectorised with numpy and compiled loops (datasets/kernels.py), nodes side by side on threads; zones read in
one agent step share their segments. docs/attribution.md explains the choices and the speed, docs/accuracy.md
how well they measure.

Readings. Per (host_node, device_kind, device_id) the ``energy_counter_joules`` readings are used when there
are any, else the ``power_watts`` readings. NaN and negative readings are dropped (counted in
``diagnostics``), repeated readings at one instant are dropped when equal and an error when not. Readings
t_0 < ... < t_n give reading intervals j = [t_j, t_{j+1}] of energy e_j:
- counter: e_j = delta_j + k_j * M (M = counter_max_joules), the wrap count k_j one the power bound allows,
  0 <= e_j <= P_max * dt_j, with k_j >= 1 when delta_j < 0; with several allowed counts the one whose e_j is
  nearest the neighbouring intervals' power x dt_j. A drop no count explains (or one needing 10x the
  neighbours' power) is a reset: e_j = max(v_{j+1}, P_nb * dt_j), "reset-estimated" in ``method``.
- trailing-average gauge (source nvml, dcgm, agent/nvml: the driver's power is the mean of the last ~1 s):
  reading p_{j+1} holds over the interval before it, e_j = p_{j+1} * dt_j ("gauge-trailing-average-1s").
- instantaneous gauge (hwmon, xrt, ...): power linear between readings, e_j = (p_j + p_{j+1}) / 2 * dt_j
  ("gauge-trapezoid").

Task times. Argo truncates startedAt/finishedAt to r = time_resolution_seconds, so the true instant lies in
[t, t + r): the idle window of a task is [start + r/2, end + r/2] ([t + r/3, t + 2r/3] when both truncate to
one instant), plus the node's clock skew when corrected. With a CPU-seconds (else GPU busy-time) counter its
edges are where the counter leaves 0 and reaches its total, extrapolated at the rate of a neighbouring
interval the task ran through (a two-interval run keeps Argo's length, placed by the counter), kept inside
[t, t + r). The wide window [start, end + r] holds every instant the task may have run.

Pieces. What each task draws on a CPU zone is a set of pieces [a, b] with an amount A and rate A / (b - a):
- usage (share "usage", the task has an agent-cgroup or cAdvisor CPU-seconds counter, joined on pod_uid,
  else pod_name): one piece per pair of consecutive readings of each container, A = the CPU-seconds between
  them (a drop is a container restart: A = the new value); A = the first value from the window start to
  the first reading; the last rate held to the end of the idle window after the last reading. Pieces are
  cut to the wide window, keeping their amount;
- requests: the task's presence times its requested cores: P(start <= t) P(end > t), ramps of RAMP_STEPS
  steps over [start, start + r] and [end, end + r], 1 between;
- equal (no request, no usage): its presence, served only where no other piece draws;
- kepler (share "kepler"): pieces of the pod's Kepler energy counter of that zone, in joules.
GPU/FPGA: every task holding the device has equal pieces of its presence; when every holder has a GPU
busy-time counter of that GPU (gpu_busy_seconds_counter, device_id its UUID, source agent-nvml) also usage
pieces of it, built as above (the equal pieces then serve only where no busy time rises). A task whose ids
list UNMAPPED_DEVICE g times (it requested g devices, which ones is unknown) holds every device of the kind
on its node with weight g / N (N = the node's series of that kind), a known holder with weight 1: its equal
pieces are its presence x weight.

Segments. The grid is the union of the reading times, the window boundaries m * window_seconds and every
piece and idle-window edge, inside [t_0, t_n]. A segment s of interval j gets e_s = e_j * m_s dt_s /
sum_{s' in j} m_s' dt_s' with the modelled power m_s = P_idle + W_s (CPU zones and GPUs split by busy time;
W_s below) or P_idle + w_h * N_s (other GPU/FPGA, w_h the mean dynamic power per holder); without a model
e_s = e_j * dt_s / dt_j, or the trapezoid of a gauge's linear power.

Idle power P_idle: ``idle_power_watts`` from configuration, else the duration-weighted median of e_s / dt_s
over the quiet segments (whose reading interval meets no task's wide window) if they last >= 30 s, else the
weighted 5th percentile of all segments. i_s = min(e_s, P_idle dt_s), d_s = e_s - i_s.

Split. W_s = sum over the pieces in s of w_c * rate, c = (template@CPU model of the node, basis), w_c = the
fitted watts per unit (split "fitted") or the common w_0 (split "plain"): a type draws other watts per
CPU-second on another CPU model, so it has a weight per model (the template alone where machines does not
say). A piece gets d_s * w_c rate / W_s; equal pieces share
d_s by presence where W_s = 0; kepler pieces get min(rate * dt_s * e_s / E_kind,s, e_s * rate / W_s),
E_kind,s the node's energy of that kind in s (the zone's share of the pod's joules, never more than measured).
Idle: policy "requests" gives i_s * r_k / max(C, R_s) (C = machines.cores, else the node's peak concurrent
requested cores; R_s = requested cores running), "time" i_s / n_s among the n_s tasks running, "none"
nothing; GPU/FPGA idle goes to the holders (i_s / h_s) unless "none"; share "kepler" gives no idle. Where
holders of unmapped devices are among them, by weight: i_s w_k / max(1, sum w) under "requests" (the idle
of devices nobody requested stays unattributed), i_s w_k / sum w under "time".

Fit (per device kind, all nodes pooled, every reading interval j a design row; GPUs with busy-time pieces
too): D_j = e_j - P_idle dt_j ~= sum_c w_c X_jc, X_jc = the amount of the pieces of column c inside
interval j. w minimises sum_j (D_j - X_j w)^2 / dt_j + lambda |w - w_0|^2, w_0 = sum D / sum X, with
lambda = sigma^2 / (0.5 w_0)^2: sigma^2 = the residual variance of a nearly unregularised first solve (the
zones of one node count as one datum), so well-determined data are fitted exactly and a template with little
data stays near w_0. w is clipped to [0.25, 4] w_0. The relative residual
rho = sqrt((RSS - M) / sum_c w_c^2 G_cc) and each column's standard error feed the uncertainty;
M = sum_j var_j / dt_j is what a gauge's reading noise and unseen changes put in the residual (var_j below),
counted on their own.

Uncertainty: u = sqrt(B^2 + (K sigma)^2), K = UNCERTAINTY_COVERAGE_FACTOR, so [E - u, E + u] holds the truth
in >= 95% of the tasks of every length (docs/accuracy.md). B bounds Argo's truncation: r/2 x the task's
power at each edge (only its idle share with a usage series), plus |skew| x those powers when the skew is
estimated but not corrected. sigma^2 sums:
- edge sampling: beta (1 - phi) f d_j for the reading interval holding an edge, phi the part of it inside
  the task, f the task's share of the edge segment's dynamic energy, beta = rho (modelled spread) or
  1 / sqrt(3) (uniform spread);
- gauges: sum_j f_j^2 var_j, var_j = (|p_{j+1} - p_j| dt'_j)^2 / 12 + (sigma_g p dt_j)^2, over the task's
  intervals (f_j its share of interval j's dynamic energy, dt'_j the unmeasured part of the interval, sigma_g
  the relative reading noise from the second differences), and the task's modelled power x its overlap with
  an edge interval's unmeasured part (a reading catches it or misses it);
- gaps (intervals > 3x the median): the energy taken from them / sqrt(3) (1 for gauges) and how far the
  price there strays from the model; reset-estimated intervals: the energy taken from them;
- split: sqrt(2) SPLIT_CALIBRATION rho_k sum_s d_s f_ks (1 - f_ks), rho_k^2 = rho^2 + se_c^2 / w_c^2 (0.5
  for equal shares);
- idle estimate: its standard error x |idle_k / P_idle - sum_s dt_s f_ks|;
- idle shared by count (policy "time", GPU/FPGA holders): per edge of another task j inside the task's
  window, r_j / 2 x w_k p_s w_j / (W_s - w_j) (p_s the idle watts per unit of weight, W_s the weight running):
  that edge moves idle between j and the tasks beside it;
- outside the readings: the uncovered seconds x the task's average power; usage tail: the energy of the
  extrapolated last piece / sqrt(3).
Rows of tasks without readings get energy 0, coverage 0, "no-readings: ..." in method and u = duration x
the highest average power of any row of that device kind (the best-known bound).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from datasets import kernels
from datasets.attribution.options import AttributionOptions
from schemas.tables import UTC_TIMESTAMP
from schemas.validation import conform, empty, schema_of

if TYPE_CHECKING:  # streaming reads datasets with pyarrow.dataset, imported only then (start-up time)
    import pyarrow.dataset as ds

# Accelerator kinds and the tasks column naming the devices a task holds.
ACCELERATOR_IDS = {"gpu": "gpu_ids", "fpga": "fpga_ids"}
# A device id standing for one device of the node whose id was not read (collectors/task_resources.py):
# the task requested it, but which of the node's devices it got is unknown.
UNMAPPED_DEVICE = "unmapped"
CPU_ZONE_DEVICES = {"cpu_package": "package", "dram": "dram"}
# Gauges whose reading is the mean power over this many seconds before it (NVML on Ampere+, DCGM).
TRAILING_AVERAGE_SECONDS = {"nvml": 1.0, "dcgm": 1.0, "agent/nvml": 1.0}
USAGE_SOURCES = ("agent-cgroup", "cadvisor")
KEPLER_SOURCE = "kepler"
CPU_SECONDS = "cpu_seconds_counter"
# Seconds of SM activity of a container's processes on one GPU (the agent, from NVML per-process samples).
GPU_BUSY_SECONDS = "gpu_busy_seconds_counter"
GPU_BUSY_SOURCES = ("agent-nvml",)
COUNTER = "energy_counter_joules"
# Generous per-device bound: above it a counter jump is not energy but a wrap or a reset.
MAX_DEVICE_POWER_WATTS = 5000.0
GAP_FACTOR = 3.0
# A wrap that would mean this many times the neighbouring intervals' power is taken for a reset.
RESET_POWER_FACTOR = 10.0
MIN_IDLE_SECONDS = 30.0
IDLE_FALLBACK_QUANTILE = 0.05
# Relative standard error of an idle power taken from the 5th percentile instead of quiet time.
IDLE_FALLBACK_RELATIVE_ERROR = 0.1
FLAG_OK, FLAG_WRAP, FLAG_RESET = 0, 1, 2
US_PER_SECOND = 1_000_000
MICROCORES_PER_CORE = 1e6
MIN_RATE = 1e-9
NO_TEMPLATE = "(none)"
# Prior spread of a template's watts per unit around the common value, relative: sets the ridge.
TEMPLATE_SPREAD = 0.5
FIT_BOUNDS = (0.25, 4.0)
# Smallest ridge, relative to the median column norm: keeps nearly collinear columns from amplifying
# rounding (a template that only ever runs beside another).
RIDGE_FLOOR = 1e-6
# Relative uncertainty of an equal split (time-sliced GPU, tasks without requests): usage unknown.
EQUAL_SPLIT_RELATIVE_ERROR = 0.5
UNCERTAINTY_COVERAGE_FACTOR = 2.0
SPLIT_CALIBRATION = 2.0
# Candidate clock shifts per second of tolerance when estimating the skew.
SKEW_STEPS_PER_SECOND = 20
# Steps of the ramps that model a truncated start or end, and the resolution from which they are used.
RAMP_STEPS = 4
MIN_RAMP_RESOLUTION_US = 1000
BASIS_USAGE, BASIS_REQUESTS, BASIS_EQUAL, BASIS_KEPLER, BASIS_NONE = range(5)
FIT_BASES = 2  # usage and requests pieces get fitted columns
DAY_US = 86_400 * US_PER_SECOND
STREAM_MARGIN_SECONDS = 3600.0
# Segments (grid points over all series) that attribute() keeps from the fit pass for the split pass.
KEPT_CUT_POINTS = 30_000_000
# Readings from which the columns are scanned for runs side by side.
PARALLEL_SCAN_ROWS = 1_000_000
# Strings compared in one block when looking for runs, and below how many they are compared one by one.
SCAN_BLOCK_ROWS = 65_536
SCAN_ROW_BY_ROW = 256
# The emit range of a computation over all time (in memory): results for every instant.
EVERYTHING = (np.iinfo(np.int64).min, np.iinfo(np.int64).max)

DIAGNOSTICS = pa.schema(
    [
        pa.field("host_node", pa.string()),
        pa.field("device_kind", pa.string()),
        pa.field("device_id", pa.string()),
        pa.field("item", pa.string(), nullable=False),
        pa.field("value", pa.float64()),
        pa.field("detail", pa.string()),
    ]
)


@dataclass(frozen=True)
class Attribution:
    task_energy: pa.Table
    node_energy_balance: pa.Table
    diagnostics: pa.Table = field(default_factory=DIAGNOSTICS.empty_table)


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
    values = np.ascontiguousarray(values_joules, dtype=float)
    seconds = np.diff(np.asarray(times_seconds, dtype=float))
    if values.size < 2:
        return np.zeros(values.size), np.zeros(0, dtype=np.int8)
    energy, flags = kernels.unwrap_intervals(
        values, seconds, float(counter_max_joules or 0.0), float(max_power_watts), RESET_POWER_FACTOR
    )
    return np.concatenate([[0.0], np.cumsum(energy)]), flags


# ---------------------------------------------------------------------------------------------------------
# Inputs: device series, tasks, per-container counters


@dataclass(frozen=True)
class _Series:
    host_node: str
    device_kind: str
    device_id: str
    times_us: np.ndarray
    values: np.ndarray
    rule: str  # "counter", "trailing" or "trapezoid"
    counter_max_joules: float | None
    provenance: str

    @property
    def key(self) -> tuple[str, str, str]:
        return self.host_node, self.device_kind, self.device_id


def _numpy(column: pa.ChunkedArray | pa.Array) -> np.ndarray:
    if isinstance(column, pa.ChunkedArray):
        column = column.combine_chunks()
    return column.to_numpy(zero_copy_only=False)


def _microseconds(column: pa.ChunkedArray) -> np.ndarray:
    return _numpy(column.cast(UTC_TIMESTAMP).cast(pa.int64()))


def _moment(microseconds: int) -> str:
    return datetime.fromtimestamp(microseconds / US_PER_SECOND, UTC).isoformat()


def _codes(column: pa.ChunkedArray) -> tuple[np.ndarray, list]:
    if pa.types.is_dictionary(column.type):  # chunks read from files may each bring their own dictionary
        column = column.cast(column.type.value_type)
    encoded = column.combine_chunks().dictionary_encode()
    return _numpy(encoded.indices), encoded.dictionary.to_pylist()


def _key_codes(table: pa.Table, names: tuple[str, ...]) -> tuple[np.ndarray, list[tuple]]:
    """Per row, the number of its key (the values of columns `names`) in order of first appearance, and the
    keys. Each column is encoded alone and the codes combined: encoding joined strings costs far more."""
    combined = np.zeros(table.num_rows, dtype=np.int64)
    columns = []
    for name in names:
        codes, values = _codes(table[name])
        combined = combined * len(values) + codes
        columns.append(values)
    codes, used = _codes(pa.chunked_array([combined]))
    digits = np.unravel_index(np.asarray(used, dtype=np.int64), [len(values) for values in columns])
    keys = [
        tuple(values[i] for values, i in zip(columns, row, strict=True)) for row in zip(*digits, strict=True)
    ]
    return codes, keys


def _mark_changes(column: pa.ChunkedArray, changed: np.ndarray) -> bool:
    """Mark the rows whose value differs from the row before; False when the column's type has no fast
    path here (then the caller falls back to Arrow's run-end encoding)."""
    offset = 0
    for chunk in column.chunks:
        if not len(chunk):
            continue
        if offset:  # a chunk's first row against the previous chunk's last (their dictionaries may differ)
            changed[offset] |= column[offset - 1].as_py() != column[offset].as_py()
        if chunk.null_count:
            return False
        part = changed[offset : offset + len(chunk)]
        if pa.types.is_dictionary(chunk.type):
            kernels.mark_code_changes(_numpy(chunk.indices), part)
        elif pa.types.is_string(chunk.type) or pa.types.is_large_string(chunk.type):
            width = np.int32 if pa.types.is_string(chunk.type) else np.int64
            _, offsets, data = chunk.buffers()
            positions = np.frombuffer(offsets, dtype=width)[chunk.offset : chunk.offset + len(chunk) + 1]
            _mark_string_changes(positions, np.frombuffer(data or b"", dtype=np.uint8), part)
        else:
            return False
        offset += len(chunk)
    return True


def _mark_string_changes(offsets: np.ndarray, data: np.ndarray, changed: np.ndarray) -> None:
    """changed[i] |= (string i differs from string i - 1), by blocks: a block of rows equal to their
    predecessors is one run of equal lengths whose bytes equal themselves shifted by one string (a memcmp);
    blocks that are not are halved until small, then compared row by row."""
    pending = [
        (lo, min(lo + SCAN_BLOCK_ROWS, offsets.size - 1))
        for lo in range(1, offsets.size - 1, SCAN_BLOCK_ROWS)
    ]
    while pending:
        lo, hi = pending.pop()
        length = offsets[lo] - offsets[lo - 1]
        if (offsets[lo : hi + 1] - offsets[lo - 1 : hi] == length).all() and np.array_equal(
            data[offsets[lo] : offsets[hi]], data[offsets[lo - 1] : offsets[hi - 1]]
        ):
            continue
        if hi - lo <= SCAN_ROW_BY_ROW:
            kernels.mark_string_changes(offsets[lo - 1 : hi + 1], data, changed[lo - 1 : hi])
            continue
        middle = (lo + hi) // 2
        pending += [(lo, middle), (middle, hi)]


def _run_starts(column: pa.ChunkedArray) -> np.ndarray:
    """Where the column's runs of equal values start (the first is 0), and its length at the end."""
    changed = np.zeros(len(column), dtype=bool)
    if not _mark_changes(column, changed):
        runs = pc.run_end_encode(column.combine_chunks(), run_end_type=pa.int64())
        changed[_numpy(runs.run_ends)[:-1]] = True
    changed[:1] = True
    return np.append(np.flatnonzero(changed), len(column))


def _runs(table: pa.Table, names: tuple[str, ...], threads: int) -> dict[str, np.ndarray]:
    """The run starts of each column, the columns side by side when the table is large."""
    threads = threads if table.num_rows >= PARALLEL_SCAN_ROWS else 1
    return dict(
        zip(names, _in_order(lambda name: _run_starts(table[name]), list(names), threads), strict=True)
    )


def _key_rows(
    table: pa.Table, names: tuple[str, ...], runs: dict[str, np.ndarray]
) -> list[tuple[tuple, slice | np.ndarray]]:
    """Each key (values of columns `names`) and its rows: a slice when its rows are contiguous, as readings
    grouped by series are (then only the runs of equal values are looked at, not every row's strings),
    else the positions of its rows in order."""
    bounds = np.unique(np.concatenate([runs[name] for name in names]))
    starts, ends = bounds[:-1], bounds[1:]
    if starts.size <= max(1024, table.num_rows // 64):
        at = pa.array(starts)
        keys = list(zip(*(table[name].take(at).to_pylist() for name in names), strict=True))
        if len(set(keys)) == len(keys):
            return [(key, slice(int(lo), int(hi))) for key, lo, hi in zip(keys, starts, ends, strict=True)]
        # A key in a few runs (files of several days one after another): its runs' rows in order.
        runs_of: dict[tuple, list[np.ndarray]] = {}
        for key, lo, hi in zip(keys, starts.tolist(), ends.tolist(), strict=True):
            runs_of.setdefault(key, []).append(np.arange(lo, hi))
        return [(key, np.concatenate(parts)) for key, parts in runs_of.items()]
    codes, keys = _key_codes(table, names)
    order = np.argsort(codes, kind="stable")
    groups = np.split(order, np.flatnonzero(np.diff(codes[order])) + 1)
    return [(keys[codes[rows[0]]], rows) for rows in groups]


def _positions(rows: slice | np.ndarray) -> np.ndarray:
    return np.arange(rows.start, rows.stop) if isinstance(rows, slice) else rows


def _diagnostic(item: str, value: float | None, detail: str | None = None, key=(None, None, None)) -> dict:
    host_node, device_kind, device_id = key
    return {
        "host_node": host_node,
        "device_kind": device_kind,
        "device_id": device_id,
        "item": item,
        "value": value,
        "detail": detail,
    }


def _clean(
    times_us: np.ndarray, values: np.ndarray, where: str, what: str, emit: tuple[int, int]
) -> tuple[np.ndarray | None, dict[str, int]]:
    """Positions (sorted by time) of the usable readings of one series (None: all, as they are) and how many
    in `emit` were dropped.

    NaN/inf and negative values are dropped; equal readings at one instant collapse to one; different
    values at one instant are an error naming the series and the time.
    """
    finite = np.isfinite(values)
    negative = finite & (values < 0)
    if finite.all() and not negative.any():
        step = np.diff(times_us)
        if (step > 0).all():
            return None, {"nan": 0, "negative": 0, "duplicate": 0}
    keep = np.flatnonzero(finite & ~negative)
    step = np.diff(times_us[keep])
    if (step < 0).any():
        keep = keep[np.argsort(times_us[keep], kind="stable")]
        step = np.diff(times_us[keep])
    same = np.flatnonzero(step == 0) + 1
    if same.size:
        conflict = values[keep[same]] != values[keep[same - 1]]
        if conflict.any():
            at = same[np.argmax(conflict)]
            raise ValueError(
                f"{where}: conflicting {what} readings at {_moment(int(times_us[keep[at]]))}: "
                f"{values[keep[at - 1]]} and {values[keep[at]]}"
            )
    counted = (times_us >= emit[0]) & (times_us < emit[1])
    dropped = {
        "nan": int((~finite & counted).sum()),
        "negative": int((negative & counted).sum()),
        "duplicate": int(counted[keep[same]].sum()),
    }
    return np.delete(keep, same), dropped


class _Distinct:
    """The distinct values of a column over row ranges, from its runs of equal values (found once)."""

    def __init__(self, table: pa.Table, name: str, starts: np.ndarray):
        self.column = table[name]
        self.starts = starts
        self.values = self.column.take(pa.array(self.starts[:-1])).to_pylist() if table.num_rows else []

    def at(self, rows: slice | np.ndarray) -> set:
        if isinstance(rows, slice):
            first = np.searchsorted(self.starts, rows.start, side="right") - 1
            last = np.searchsorted(self.starts, rows.stop, side="left")
            return set(self.values[first:last])
        return set(pc.unique(self.column.take(pa.array(rows))).to_pylist())


def _device_series(
    samples: pa.Table, emit: tuple[int, int] = EVERYTHING, threads: int = 1
) -> tuple[list[_Series], list[dict]]:
    """One series per device (its energy counter when it has one, else its power gauge) and diagnostics."""
    if samples.num_rows == 0:
        return [], []
    keys = ("host_node", "device_kind", "device_id")
    runs = _runs(samples, (*keys, "source", "provenance", "value_kind"), threads)
    sources_of, provenances_of, kinds_of = (
        _Distinct(samples, name, runs[name]) for name in ("source", "provenance", "value_kind")
    )
    counter = np.repeat([kind == COUNTER for kind in kinds_of.values], np.diff(kinds_of.starts))
    times_us = _microseconds(samples["timestamp"])
    values = np.asarray(_numpy(samples["value"].cast(pa.float64())), dtype=float)
    counter_max = np.asarray(_numpy(samples["counter_max_joules"].cast(pa.float64())), dtype=float)
    series, notes = [], []
    for (host_node, device_kind, device_id), rows in _key_rows(samples, keys, runs):
        is_counter = counter[rows]
        counters = int(is_counter.sum())
        if 0 < counters < is_counter.size:
            rows = _positions(rows)[is_counter]
        what = COUNTER if counters else "power_watts"
        keep, dropped = _clean(
            times_us[rows], values[rows], f"{host_node}/{device_kind}/{device_id}", what, emit
        )
        if keep is not None:
            rows = _positions(rows)[keep]
        lost = {reason: count for reason, count in dropped.items() if count}
        if lost:
            detail = ", ".join(f"{count} {reason}" for reason, count in lost.items())
            notes.append(
                _diagnostic(
                    "readings_dropped", float(sum(lost.values())), detail, (host_node, device_kind, device_id)
                )
            )
        if times_us[rows].size < 2:
            notes.append(
                _diagnostic(
                    "series_ignored",
                    float(rows.size),
                    "fewer than two readings",
                    (host_node, device_kind, device_id),
                )
            )
            continue
        sources = sources_of.at(rows)
        if counters:
            rule = "counter"
        elif sources <= set(TRAILING_AVERAGE_SECONDS):
            rule = "trailing"
        else:
            rule = "trapezoid"
        wrap = counter_max[rows]
        provenances = provenances_of.at(rows)
        series.append(
            _Series(
                host_node=host_node,
                device_kind=device_kind,
                device_id=device_id,
                times_us=times_us[rows],
                values=values[rows],
                rule=rule,
                counter_max_joules=float(np.nanmax(wrap)) if np.isfinite(wrap).any() else None,
                # Mixed provenance makes the number an estimate.
                provenance=provenances.pop() if len(provenances) == 1 else "estimated",
            )
        )
    return sorted(series, key=lambda one: one.key), notes


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
    templates = pc.fill_null(tasks["template_name"], NO_TEMPLATE)
    if machines is None or "cpu_model" not in machines.column_names or not machines.num_rows:
        return templates.combine_chunks().dictionary_encode()
    models = dict(zip(machines["host_node"].to_pylist(), machines["cpu_model"].to_pylist(), strict=True))
    cpu = pa.array([models.get(node) for node in tasks["host_node"].to_pylist()], pa.string())
    classes = pc.if_else(pc.is_valid(cpu), pc.binary_join_element_wise(templates, cpu, "@"), templates)
    return (
        classes.combine_chunks().dictionary_encode()
        if isinstance(classes, pa.ChunkedArray)
        else classes.dictionary_encode()
    )


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


def _machine_devices(machines: pa.Table | None) -> dict[str, tuple[list[tuple[str, str]], bool]]:
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
            pc.equal(containers["value_kind"], value_kind), pc.is_in(containers["source"], pa.array(sources))
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
        pc.cast(pa.array(task), pa.string()), pc.fill_null(chosen["container_id"], ""), kinds, devices, "\x1f"
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
        pc.not_equal(chosen["host_node"], pa.array(tasks.node[matched], pa.string())), False
    )
    task[_numpy(wrong_host)] = -1
    return task


# ---------------------------------------------------------------------------------------------------------
# Pieces: what each task draws on a series


@dataclass(frozen=True)
class _Pieces:
    """The tasks a series splits among and what each draws: weighted main pieces and equal pieces."""

    rows: np.ndarray  # task indices
    windows: _Windows
    basis: np.ndarray  # per row
    task: np.ndarray  # main pieces: position in rows
    start_us: np.ndarray
    end_us: np.ndarray
    amount: np.ndarray
    column: np.ndarray  # fit column, -1 for kepler pieces
    tail: np.ndarray  # the amount is extrapolated
    equal_task: np.ndarray
    equal_start_us: np.ndarray
    equal_end_us: np.ndarray
    equal_presence: np.ndarray  # the chance the task runs there (ramps at truncated edges)
    # GPU/FPGA: each row's weight as a holder (1; a task holding unmapped devices of the node: their count
    # over the node's devices of the kind), and whether it holds unmapped devices. None: all 1, none.
    weight: np.ndarray | None = None
    pooled: np.ndarray | None = None

    @cached_property
    def edges(self) -> tuple[np.ndarray, list[np.ndarray]]:
        """The distinct edge instants (us, sorted) of the idle windows, main and equal pieces, and where each
        of those six arrays' values is among them; the zones of a node share their pieces, so once a node."""
        parts = (
            self.windows.idle_start,
            self.windows.idle_end,
            self.start_us,
            self.end_us,
            self.equal_start_us,
            self.equal_end_us,
        )
        distinct, inverse = np.unique(np.concatenate(parts).astype(np.int64), return_inverse=True)
        return distinct, np.split(inverse, np.cumsum([part.size for part in parts])[:-1])


def _slices(sorted_keys: np.ndarray, wanted: np.ndarray) -> np.ndarray:
    """Positions in `sorted_keys` of every element equal to one of `wanted`."""
    lo = np.searchsorted(sorted_keys, wanted, side="left")
    hi = np.searchsorted(sorted_keys, wanted, side="right")
    counts = hi - lo
    return np.repeat(lo - np.cumsum(counts) + counts, counts) + np.arange(counts.sum())


def _counter_pieces(
    readings: _Readings, positions: np.ndarray, rows: np.ndarray, windows: _Windows
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(row position, start, end, amount, extrapolated) of the pieces of the counters at `positions`.

    Consecutive readings of a series give a piece with the amount between them; the first value is spread
    from the window start to the first reading; after the last reading its rate holds to the idle window's
    end. Pieces that do not touch the task's wide window are dropped.
    """
    row_of = np.searchsorted(rows, readings.task[positions])
    series = readings.series[positions]
    times = readings.times_us[positions]
    amount = readings.increments[positions]
    first = np.diff(series, prepend=-1) != 0
    last = np.append(first[1:], True)[: positions.size]
    inner = np.flatnonzero(~first)
    head = np.flatnonzero(first)
    head_start = np.minimum(windows.wide_start[row_of[head]], times[head])
    piece_row = np.concatenate([row_of[inner], row_of[head]])
    start = np.concatenate([times[inner - 1], head_start])
    end = np.concatenate([times[inner], times[head]])
    piece_amount = np.concatenate([amount[inner], amount[head]])
    # The rate of the last piece of each series (0 for a series of one reading) continues to the end.
    rate_per_us = np.divide(piece_amount, end - start, out=np.zeros(piece_amount.size), where=end > start)
    ends = np.flatnonzero(last)
    last_piece = np.full(positions.size, -1)
    last_piece[inner] = np.arange(inner.size)
    last_piece[head] = inner.size + np.arange(head.size)
    tail_rate = rate_per_us[last_piece[ends]]
    tail_end = windows.idle_end[row_of[ends]]
    tails = tail_end > times[ends]
    piece_row = np.concatenate([piece_row, row_of[ends][tails]])
    start = np.concatenate([start, times[ends][tails]])
    end = np.concatenate([end, tail_end[tails]])
    piece_amount = np.concatenate([piece_amount, (tail_rate * (tail_end - times[ends]))[tails]])
    extrapolated = np.concatenate([np.zeros(inner.size + head.size, bool), np.ones(int(tails.sum()), bool)])
    # Usage lies inside the task's wide window: a piece reaching past it keeps its amount inside it.
    start = np.maximum(start, windows.wide_start[piece_row])
    end = np.minimum(end, windows.wide_end[piece_row])
    touches = end > start
    return (
        piece_row[touches],
        start[touches],
        end[touches],
        piece_amount[touches],
        extrapolated[touches],
    )


def _presence(windows: _Windows, positions: np.ndarray) -> tuple[np.ndarray, ...]:
    """(position, start, end, presence) pieces of the time the tasks at `positions` may have run.

    A truncated edge t hides a true edge uniform in [t, t + r), so a task runs at time t with probability
    P(start <= t) P(end > t): ramps of RAMP_STEPS steps over [start, start + r] and [end, end + r], 1 between;
    twice the product when both edges were truncated to one instant (the start comes first). Times kept
    to the microsecond give plain windows.
    """
    resolution = windows.resolution[positions]
    start = windows.wide_start[positions]
    end = windows.wide_end[positions] - resolution
    fraction = np.arange(RAMP_STEPS + 1) / RAMP_STEPS
    ramped = resolution >= MIN_RAMP_RESOLUTION_US
    edges = np.sort(
        np.concatenate(
            [
                start[:, None] + resolution[:, None] * fraction[None, :],
                end[:, None] + resolution[:, None] * fraction[None, :],
            ],
            axis=1,
        ),
        axis=1,
    )
    lo, hi = edges[:, :-1], edges[:, 1:]
    middle = (lo + hi) / 2
    scale = np.maximum(resolution, 1)[:, None]
    presence = np.clip((middle - start[:, None]) / scale, 0, 1) * np.clip(
        (end[:, None] + scale - middle) / scale, 0, 1
    )
    presence *= np.where(end == start, 2.0, 1.0)[:, None]
    position = np.broadcast_to(positions[:, None], lo.shape)
    keep = ramped[:, None] & (hi > lo) & (presence > 0)
    plain = positions[~ramped]
    return (
        np.concatenate([position[keep], plain]),
        np.concatenate([np.rint(lo[keep]).astype(np.int64), windows.idle_start[plain]]),
        np.concatenate([np.rint(hi[keep]).astype(np.int64), windows.idle_end[plain]]),
        np.concatenate([presence[keep], np.ones(plain.size)]),
    )


def _usage_edges(readings: _Readings, rows: np.ndarray, windows: _Windows) -> _Windows:
    """Idle windows of tasks with a CPU-seconds counter, refined where the counter starts and stops rising.

    Between a reading of 0 and the first one above 0 the container started; at the rate of the next
    interval it started U_1 / rate before the first rising reading. Likewise it ended (U_n - U_{n-1}) / rate
    after the last reading before the total, at the rate of the interval before. A neighbouring rate is used
    only when the task ran through that whole interval; a run of two intervals keeps Argo's length, placed
    by the counter. Estimates stay inside the bounds Argo's truncation gives, [t, t + r); a task without a
    usable counter keeps the midpoints.
    """
    positions = _slices(readings.task, rows)
    if positions.size < 3:
        return windows
    row = np.searchsorted(rows, readings.task[positions])
    series = readings.series[positions]
    times = readings.times_us[positions].astype(float)
    increment = readings.increments[positions]
    first = np.diff(series, prepend=-1) != 0
    total = np.cumsum(increment)
    used = total - np.maximum.accumulate(np.where(first, total - increment, -np.inf))
    same_before = np.concatenate([[False], series[1:] == series[:-1]])
    same_after = np.append(same_before[1:], False)
    step = np.diff(times, append=np.nan)
    rate_after = np.divide(np.append(increment[1:], 0.0), step, out=np.zeros(times.size), where=step > 0)
    gap_before = np.diff(times, prepend=np.nan)
    rate_before = np.divide(
        np.concatenate([[0.0], increment[:-1]]),
        np.append(np.nan, gap_before[:-1]),
        out=np.zeros(times.size),
        where=np.append(np.nan, gap_before[:-1]) > 0,
    )
    # The neighbouring interval's rate stands for the edge's only if the task ran through all of it: the
    # counter still rises in the interval after it (start), or already rose in the one before it (end).
    rising_after = np.append(same_after[1:-1] & (increment[2:] > 0), [False, False])
    rising_before = np.concatenate([[False, False], same_before[1:-1] & (increment[:-2] > 0)])
    leaves_zero = (used > 0) & same_before & (np.append(np.nan, used[:-1]) == 0) & same_after
    rises = leaves_zero & (rate_after > 0) & rising_after
    # A run of two intervals (rising at one reading, done by the next): no interval lies inside it, so its
    # length is Argo's (unbiased under truncation) and the counter places it, U_1 before the reading and
    # U_2 after.
    after = np.append(increment[1:], 0.0)
    pair = leaves_zero & (after > 0) & ~rising_after
    length = (windows.idle_end - windows.idle_start)[row] * used / np.where(pair, used + after, 1.0)
    pair_start = np.maximum(times - length, times - gap_before)
    pair_end = np.minimum(times + length * after / np.where(pair, used, 1.0), times + step)
    start_us = np.maximum(times - used / np.where(rises, rate_after, 1.0), times - gap_before)
    stops = (increment > 0) & same_before & np.concatenate([[False], same_before[:-1]]) & (rate_before > 0)
    stops &= ~np.append(same_after[:-1] & (increment[1:] > 0), False) & rising_before
    end_us = np.minimum(times - gap_before + increment / np.where(stops, rate_before, 1.0), times)
    refined_start, refined_end = windows.idle_start.astype(float), windows.idle_end.astype(float)
    earliest = np.full(rows.size, np.inf)
    np.minimum.at(earliest, row[rises], start_us[rises])
    np.minimum.at(earliest, row[pair], pair_start[pair])
    latest = np.full(rows.size, -np.inf)
    np.maximum.at(latest, row[stops], end_us[stops])
    np.maximum.at(latest, row[pair], pair_end[pair])
    resolution = windows.resolution.astype(float)
    bounded_start = (earliest >= windows.wide_start) & (earliest <= windows.wide_start + resolution)
    end_floor = windows.wide_end - resolution
    bounded_end = (latest >= end_floor) & (latest <= windows.wide_end)
    refined_start = np.where(bounded_start, earliest, refined_start)
    refined_end = np.where(bounded_end, latest, refined_end)
    ordered = refined_end >= refined_start
    return _Windows(
        np.where(ordered, np.rint(refined_start), windows.idle_start).astype(np.int64),
        np.where(ordered, np.rint(refined_end), windows.idle_end).astype(np.int64),
        windows.wide_start,
        windows.wide_end,
        windows.resolution,
    )


def _cpu_pieces(
    tasks: _Tasks,
    rows: np.ndarray,
    windows: _Windows,
    readings: _Readings | None,
    kepler_kind: str | None,
) -> _Pieces:
    """Pieces of the node's tasks on a CPU zone: usage (or Kepler) series, else requests, else equal."""
    count = rows.size
    basis = np.where(tasks.request_microcores[rows] > 0, BASIS_REQUESTS, BASIS_EQUAL)
    empty_f, empty_i = np.zeros(0), np.zeros(0, dtype=np.int64)
    measured = (empty_i, empty_i, empty_i, empty_f, np.zeros(0, bool))
    if readings is not None:
        positions = _slices(readings.task, rows)
        if kepler_kind is not None:
            positions = positions[readings.device_kind[positions] == kepler_kind]
        measured = _counter_pieces(readings, positions, rows, windows)
        has = np.zeros(count, bool)
        has[np.searchsorted(rows, readings.task[positions])] = True
        basis = np.where(
            has, BASIS_KEPLER if kepler_kind else BASIS_USAGE, BASIS_NONE if kepler_kind else basis
        )
    piece_row, start, end, amount, tail = measured
    requested_row, requested_start, requested_end, presence = _presence(
        windows, np.flatnonzero(basis == BASIS_REQUESTS)
    )
    cores = tasks.request_microcores[rows][requested_row] / MICROCORES_PER_CORE
    requested_s = (requested_end - requested_start) / US_PER_SECOND
    equal_row, equal_start, equal_end, equal_presence = _presence(
        windows, np.flatnonzero(basis == BASIS_EQUAL)
    )
    column = FIT_BASES * tasks.template[rows]
    return _Pieces(
        rows=rows,
        windows=windows,
        basis=basis,
        task=np.concatenate([piece_row, requested_row]),
        start_us=np.concatenate([start, requested_start]),
        end_us=np.concatenate([end, requested_end]),
        amount=np.concatenate([amount, cores * presence * requested_s]),
        column=np.concatenate(
            [
                column[piece_row] + BASIS_USAGE if kepler_kind is None else np.full(piece_row.size, -1),
                column[requested_row] + BASIS_REQUESTS,
            ]
        ),
        tail=np.concatenate([tail, np.zeros(requested_row.size, bool)]),
        equal_task=equal_row,
        equal_start_us=equal_start,
        equal_end_us=equal_end,
        equal_presence=equal_presence,
    )


def _holder_pieces(
    tasks: _Tasks,
    rows: np.ndarray,
    windows: _Windows,
    holders: np.ndarray,
    busy: _Readings | None,
    device_id: str,
    pooled: np.ndarray | None = None,
    unmapped: tuple[np.ndarray, int] | None = None,
) -> _Pieces:
    """Pieces of the tasks holding one GPU/FPGA: equal pieces over the time each holder may have run, and
    when every holder has a GPU busy-time counter of this device, its pieces too (they split where any
    of them rises; the equal pieces only where none does).

    `pooled`: tasks holding devices of this node whose ids are unknown; `unmapped` (their counts per task,
    the node's devices of the kind): each holds this device with weight count / devices, a known holder 1.
    """
    explicit = np.isin(rows, holders)
    in_pool = np.isin(rows, pooled) if pooled is not None and pooled.size else np.zeros(rows.size, bool)
    keep = explicit | in_pool
    held_rows = rows[keep]
    weight = pool = None
    if in_pool.any() and unmapped is not None:
        counts, devices = unmapped
        pool = in_pool[keep]
        weight = explicit[keep] + pool * counts[held_rows] / max(devices, 1)
    held = _Windows(*(getattr(windows, name)[keep] for name in _Windows.__dataclass_fields__))
    position, start, end, presence = _presence(held, np.arange(held_rows.size))
    none_i, none_f = np.zeros(0, dtype=np.int64), np.zeros(0)
    measured = (none_i, none_i, none_i, none_f, np.zeros(0, bool))
    basis = np.full(held_rows.size, BASIS_EQUAL)
    if busy is not None and held_rows.size:
        positions = _slices(busy.task, held_rows)
        positions = positions[busy.device_id[positions] == device_id]
        has = np.zeros(held_rows.size, bool)
        has[np.searchsorted(held_rows, busy.task[positions])] = True
        if has.all():
            measured = _counter_pieces(busy, positions, held_rows, held)
            basis[:] = BASIS_USAGE
    piece_row, piece_start, piece_end, amount, tail = measured
    return _Pieces(
        rows=held_rows,
        windows=held,
        basis=basis,
        task=piece_row,
        start_us=piece_start,
        end_us=piece_end,
        amount=amount,
        column=FIT_BASES * tasks.template[held_rows][piece_row] + BASIS_USAGE,
        tail=tail,
        equal_task=position,
        equal_start_us=start,
        equal_end_us=end,
        equal_presence=presence,
        weight=weight,
        pooled=pool,
    )


# ---------------------------------------------------------------------------------------------------------
# Cutting a series into segments


def _cumulative(values: np.ndarray) -> np.ndarray:
    return kernels.cumulative(np.ascontiguousarray(values, dtype=float))


def _running(lo: np.ndarray, hi: np.ndarray, weights: np.ndarray, points: int) -> np.ndarray:
    """Per segment, the sum of the weights of the ranges [lo, hi) of grid points that hold it.

    Summed with compensation: the sum must stay the sum of the ranges holding the segment, not keep crumbs
    of large ranges that ended before it."""
    return kernels.running(lo, hi, np.ascontiguousarray(weights, dtype=float), points)


@dataclass(frozen=True)
class _Prefix:
    """Compensated prefix sums of per-segment values: sums over ranges of segments to ~100 bits, so a price
    that is huge where little draws does not swallow the small ones after it."""

    high: np.ndarray
    low: np.ndarray

    def between(self, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
        return (self.high[hi] - self.high[lo]) + (self.low[hi] - self.low[lo])


def _holding(lo: np.ndarray, hi: np.ndarray, points: int) -> np.ndarray:
    """Per segment, how many of the ranges [lo, hi) of grid points hold it (counted in integers: exact)."""
    return kernels.holding(lo, hi, points)


def _range_max(values: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """max(values[lo:hi]) per range (NaN when empty)."""
    return kernels.range_max(np.ascontiguousarray(values, dtype=float), lo, hi)


@dataclass(frozen=True)
class _Cut:
    """One series cut into segments; times in seconds after its first reading."""

    series: _Series
    pieces: _Pieces
    times_s: np.ndarray
    grid_s: np.ndarray
    segment_s: np.ndarray
    interval: np.ndarray  # reading interval of each segment
    interval_j: np.ndarray  # energy of each reading interval
    segment_j: np.ndarray  # spread uniformly (counters, trailing gauges) or integrated (trapezoid)
    flags: np.ndarray
    covered: np.ndarray  # per reading interval: no gap
    idle_start_s: np.ndarray
    idle_end_s: np.ndarray
    idle_lo: np.ndarray
    idle_hi: np.ndarray
    main_lo: np.ndarray
    main_hi: np.ndarray
    main_rate: np.ndarray  # amount per second of the piece's own length
    equal_lo: np.ndarray
    equal_hi: np.ndarray
    quiet: np.ndarray  # the segment's reading interval meets no task's wide window
    bounds_us: np.ndarray
    bounds_s: np.ndarray

    @property
    def origin_us(self) -> int:
        return int(self.series.times_us[0])


def _quiet(
    grid_s: np.ndarray, interval: np.ndarray, intervals: int, start_s: np.ndarray, end_s: np.ndarray
) -> np.ndarray:
    """Segments whose whole reading interval is clear of every window a task may have run in."""
    lo = np.clip(np.searchsorted(grid_s, start_s, side="right") - 1, 0, grid_s.size - 1)
    hi = np.maximum(np.searchsorted(grid_s, end_s, side="left"), lo + 1)
    busy = _holding(lo, hi, grid_s.size + 1)[: grid_s.size - 1] > 0
    return np.bincount(interval, busy, intervals)[interval] == 0


def _interval_energy(series: _Series, times_s: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Energy of each reading interval under the series' rule, and the counter flags."""
    if series.rule == "counter":
        cumulative_j, flags = unwrap_counter(series.values, times_s, series.counter_max_joules)
        return np.diff(cumulative_j), flags
    none = np.zeros(times_s.size - 1, dtype=np.int8)
    if series.rule == "trailing":
        return series.values[1:] * np.diff(times_s), none
    return 0.5 * (series.values[1:] + series.values[:-1]) * np.diff(times_s), none


def _series_energy(
    series: _Series, times_s: np.ndarray, grid_s: np.ndarray, reading: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The series' own energies on a segment grid (`reading`: each grid point's reading interval): per
    reading interval with the counter flags, and per segment (spread uniformly, or the gauge's trapezoid)."""
    interval_j, flags = _interval_energy(series, times_s)
    if series.rule == "trapezoid":
        watts = kernels.interpolate(grid_s, reading, times_s, series.values)
        return interval_j, flags, 0.5 * (watts[:-1] + watts[1:]) * np.diff(grid_s)
    return interval_j, flags, np.diff(kernels.interpolate(grid_s, reading, times_s, _cumulative(interval_j)))


def _cut(series: _Series, pieces: _Pieces, window_us: int, like: _Cut | None = None) -> _Cut:
    """Segments of one series: every reading, window boundary, piece edge and idle-window edge.

    `like`: a cut of another series of the node with the same pieces and reading times (the zones an agent
    reads in one step), whose segments this one shares: only the energies are the series' own."""
    if like is not None:
        reading = np.append(like.interval, like.times_s.size - 2)
        interval_j, flags, segment_j = _series_energy(series, like.times_s, like.grid_s, reading)
        return replace(like, series=series, interval_j=interval_j, segment_j=segment_j, flags=flags)
    first_us, last_us = int(series.times_us[0]), int(series.times_us[-1])
    times_s = (series.times_us - first_us) / US_PER_SECOND
    end_s = times_s[-1]

    def seconds(us: np.ndarray) -> np.ndarray:
        return np.clip((us - first_us) / US_PER_SECOND, 0.0, end_s)

    bounds_us = np.arange(-(-first_us // window_us) * window_us, last_us, window_us, dtype=np.int64)
    bounds_us = bounds_us[bounds_us > first_us]
    bounds_s = (bounds_us - first_us) / US_PER_SECOND
    windows = pieces.windows
    idle_start_s = (windows.idle_start - first_us) / US_PER_SECOND
    idle_end_s = (windows.idle_end - first_us) / US_PER_SECOND
    distinct_us, where = pieces.edges
    grid_s, reading, position = kernels.merge_grid(times_s, bounds_s, seconds(distinct_us))
    segment_s = np.diff(grid_s)
    interval_j, flags, segment_j = _series_energy(series, times_s, grid_s, reading)
    interval = reading[:-1]
    reading_s = np.diff(times_s)
    idle_lo, idle_hi, main_lo, main_hi, equal_lo, equal_hi = (position[part] for part in where)
    length_s = (pieces.end_us - pieces.start_us) / US_PER_SECOND
    return _Cut(
        series=series,
        pieces=pieces,
        times_s=times_s,
        grid_s=grid_s,
        segment_s=segment_s,
        interval=interval,
        interval_j=interval_j,
        segment_j=segment_j,
        flags=flags,
        covered=reading_s <= GAP_FACTOR * np.median(reading_s),
        idle_start_s=idle_start_s,
        idle_end_s=idle_end_s,
        idle_lo=idle_lo,
        idle_hi=idle_hi,
        main_lo=main_lo,
        main_hi=main_hi,
        main_rate=np.divide(pieces.amount, length_s, out=np.zeros(length_s.size), where=length_s > 0),
        equal_lo=equal_lo,
        equal_hi=equal_hi,
        quiet=_quiet(
            grid_s, interval, times_s.size - 1, seconds(windows.wide_start), seconds(windows.wide_end)
        ),
        bounds_us=bounds_us,
        bounds_s=bounds_s,
    )


# ---------------------------------------------------------------------------------------------------------
# Per-series statistics gathered before attributing: idle power, gauge noise, the fit's normal equations


def _emitted(cut: _Cut, seconds: np.ndarray, emit: tuple[int, int]) -> np.ndarray:
    """Which instants (seconds after the series' first reading) fall in the half-open range `emit` (us)."""
    return _emitted_times(cut.origin_us, seconds, emit)


@dataclass
class _SeriesStats:
    """What the whole series contributes to its idle power, its gauge noise and the fit of its kind."""

    idle_watts: list[np.ndarray] = field(default_factory=list)
    idle_seconds: list[np.ndarray] = field(default_factory=list)
    all_watts: list[np.ndarray] = field(default_factory=list)
    all_seconds: list[np.ndarray] = field(default_factory=list)
    noise: list[np.ndarray] = field(default_factory=list)
    reading_seconds: list[np.ndarray] = field(default_factory=list)
    moment_joules: np.ndarray | None = None  # sum_j X_jc e_j / dt_j
    moment_idle: np.ndarray | None = None  # sum_j X_jc (multiplies -P_idle)
    sum_joules: float = 0.0
    sum_seconds: float = 0.0
    sum_squares: float = 0.0  # sum_j e_j^2 / dt_j
    # Of sum_j var(e_j) / dt_j, what a gauge's readings add to the fit's residual: the part per unit of
    # squared relative reading noise, and the changes between readings it cannot see.
    sum_noise_unit: float = 0.0
    sum_unmeasured: float = 0.0
    sum_amount: float = 0.0
    rows: int = 0

    def release(self) -> None:
        for samples in (self.idle_watts, self.idle_seconds, self.all_watts, self.all_seconds, self.noise):
            samples.clear()
        self.reading_seconds.clear()


def _gather(cut: _Cut, stats: _SeriesStats, emit: tuple[int, int]) -> None:
    """Add the cut's idle candidates and gauge second differences within `emit` to `stats`."""
    inside = _emitted(cut, cut.grid_s[:-1], emit)
    watts = cut.segment_j / cut.segment_s
    quiet = inside & cut.quiet
    stats.idle_watts.append(watts[quiet])
    stats.idle_seconds.append(cut.segment_s[quiet])
    stats.all_watts.append(watts[inside])
    stats.all_seconds.append(cut.segment_s[inside])
    reading = _emitted(cut, cut.times_s[:-1], emit)
    stats.reading_seconds.append(np.diff(cut.times_s)[reading])
    if cut.series.rule != "counter" and cut.times_s.size > 2:
        power = cut.series.values
        middle = power[1:-1]
        second = np.abs(power[2:] - 2 * middle + power[:-2])
        usable = reading[1:] & (middle > 1e-6)
        stats.noise.append(second[usable] / middle[usable])


def _design(
    cuts: list[_Cut], columns: int, stats: list[_SeriesStats], gram: np.ndarray, emit: tuple[int, int]
) -> None:
    """Add the reading intervals of cuts sharing one segment grid (zones of one kind read together) to the
    normal equations: rows D_j ~ sum_c w_c X_jc, weight 1 / dt_j, X built once for them all.

    A compiled sweep over the intervals (kernels.design_rows) keeps only the pieces running in each one, so a
    row costs the few columns present in it."""
    cut = cuts[0]
    fitted = (cut.pieces.column >= 0) & (cut.main_hi > cut.main_lo)
    if not fitted.any():
        return
    order = np.flatnonzero(fitted)
    order = order[np.argsort(cut.main_lo[order], kind="stable")]
    moment_joules = np.zeros((len(cuts), columns))
    moment_idle = np.zeros(columns)
    sums = np.zeros((len(cuts), 7))
    gauge = [_gauge_variance_parts(one.series, one.times_s) for one in cuts]
    kernels.design_rows(
        cut.times_s,
        np.stack([one.interval_j for one in cuts]),
        np.stack([reading for reading, _ in gauge]),
        np.stack([unmeasured for _, unmeasured in gauge]),
        _emitted(cut, cut.times_s[:-1], emit),
        cut.grid_s[cut.main_lo[order]],
        cut.grid_s[cut.main_hi[order]],
        cut.main_rate[order],
        cut.pieces.column[order].astype(np.int64),
        columns,
        gram,
        moment_joules,
        moment_idle,
        sums,
    )
    for one, moment, (joules, seconds, squares, amount, rows, noise_unit, unmeasured) in zip(
        stats, moment_joules, sums, strict=True
    ):
        if one.moment_joules is None:
            one.moment_joules, one.moment_idle = np.zeros(columns), np.zeros(columns)
        one.moment_joules += moment
        one.moment_idle += moment_idle
        one.sum_joules += joules
        one.sum_seconds += seconds
        one.sum_squares += squares
        one.sum_noise_unit += noise_unit
        one.sum_unmeasured += unmeasured
        one.sum_amount += amount
        one.rows += int(rows)


@dataclass(frozen=True)
class _Idle:
    watts: float
    method: str
    standard_error_watts: float


def _weighted_quantile(values: np.ndarray, weights: np.ndarray, quantile: float) -> float:
    return float(
        kernels.weighted_quantile(
            np.ascontiguousarray(values, dtype=float), np.ascontiguousarray(weights, dtype=float), quantile
        )
    )


def _idle_power(stats: _SeriesStats, configured: float | None) -> _Idle:
    """Idle power: configured, else the device's quiet time, else a low percentile of all its time."""
    if configured is not None:
        return _Idle(float(configured), "configured", 0.0)
    watts, seconds = np.concatenate(stats.idle_watts), np.concatenate(stats.idle_seconds)
    if seconds.sum() >= MIN_IDLE_SECONDS:
        median = _weighted_quantile(watts, seconds, 0.5)
        spread = _weighted_quantile(np.abs(watts - median), seconds, 0.5) * 1.4826
        readings = seconds.sum() / max(float(np.median(np.concatenate(stats.reading_seconds))), 1e-9)
        return _Idle(median, "median-idle-segments", spread / math.sqrt(max(readings, 1.0)))
    low = _weighted_quantile(
        np.concatenate(stats.all_watts), np.concatenate(stats.all_seconds), IDLE_FALLBACK_QUANTILE
    )
    return _Idle(low, "p5-segments", IDLE_FALLBACK_RELATIVE_ERROR * low)


def _gauge_noise(stats: _SeriesStats) -> float:
    """Relative noise of a gauge's readings: robust spread of its second differences (white noise: x sqrt 6)."""
    values = np.concatenate(stats.noise) if stats.noise else np.zeros(0)
    return float(np.median(values) * 1.4826 / math.sqrt(6.0)) if values.size else 0.0


@dataclass(frozen=True)
class _Model:
    """Watts per unit of each fit column, the common value, and each column's relative uncertainty."""

    weights: np.ndarray
    common_watts: float
    relative_error: np.ndarray
    fitted: bool


def _solve(
    gram: np.ndarray, parts: list[tuple[_SeriesStats, float, float]], columns: int, fitted: bool
) -> tuple[_Model, float]:
    """The ridge fit of one device kind (module doc) from its normal equations, and its relative residual."""
    moment, total_j, total_amount, squares, rows = np.zeros(columns), 0.0, 0.0, 0.0, 0.0
    measurement = 0.0
    for stats, idle_watts, independence, noise in parts:
        if stats.moment_joules is None:
            continue
        moment += stats.moment_joules - idle_watts * stats.moment_idle
        total_j += stats.sum_joules - idle_watts * stats.sum_seconds
        squares += stats.sum_squares - 2 * idle_watts * stats.sum_joules + idle_watts**2 * stats.sum_seconds
        measurement += noise**2 * stats.sum_noise_unit + stats.sum_unmeasured
        total_amount += stats.sum_amount
        rows += stats.rows * independence
    common = total_j / total_amount if total_amount > 0 else 0.0
    if not common > 0:
        unknown = np.full(columns, EQUAL_SPLIT_RELATIVE_ERROR)
        return _Model(np.ones(columns), 0.0, unknown, fitted), EQUAL_SPLIT_RELATIVE_ERROR
    norms = np.diag(gram)
    used = norms > 0

    # The residual relative to each column's own power (sum_c w_c^2 G_cc), not to the sum's: intervals
    # shared by n tasks average n deviations, and a task's share moves with its own.
    def residual(weights: np.ndarray) -> float:
        return max(squares - 2 * weights @ moment + weights @ gram @ weights, 0.0)

    # What the tasks' own deviations from the model leave: a gauge's reading noise and the changes it
    # cannot see between readings are in the residual too, and the uncertainty counts them on their own,
    # per interval.
    def deviations(weights: np.ndarray) -> float:
        return max(residual(weights) - measurement, 0.0)

    if not fitted:
        plain = np.full(columns, common)
        relative = math.sqrt(deviations(plain) / max(plain**2 @ norms, 1e-300))
        return _Model(plain, common, np.full(columns, relative), False), relative
    floor = RIDGE_FLOOR * float(np.median(norms[used]))
    first = np.linalg.solve(gram + floor * np.eye(columns), moment + floor * common)
    variance = residual(first) / max(rows - int(used.sum()), 1.0)
    ridge = max(variance / (TEMPLATE_SPREAD * common) ** 2, floor)
    system = gram + ridge * np.eye(columns)
    weights = np.clip(np.linalg.solve(system, moment + ridge * common), *(common * b for b in FIT_BOUNDS))
    relative = math.sqrt(deviations(weights) / max(weights**2 @ norms, 1e-300))
    standard_error = np.sqrt(variance * np.diag(np.linalg.inv(system)))
    per_column = np.sqrt(relative**2 + (standard_error / weights) ** 2)
    return _Model(weights, common, per_column, True), relative


# ---------------------------------------------------------------------------------------------------------
# Attributing one series


@dataclass(frozen=True)
class _Settings:
    idle_policy: str
    window_us: int
    fitted: bool
    share: str
    idle_power_watts: dict[tuple[str, str], float]
    skew_tolerance_seconds: float
    correct_skew: bool


@dataclass(frozen=True)
class _Skew:
    seconds: float
    applied: bool
    step_seconds: float

    def label(self) -> str:
        return f";skew={self.seconds:+.2f}s({'corrected' if self.applied else 'estimated'})"


def _spread(cut: _Cut, model_watts: np.ndarray) -> np.ndarray:
    """Each reading interval's energy over its segments in proportion to the modelled power."""
    return kernels.spread(cut.interval, cut.interval_j, cut.segment_s, model_watts, cut.segment_j)


def _gauge_variance_parts(series: _Series, times_s: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per reading interval, the variance of a gauge's energy as (the part per unit of squared relative
    reading noise, the part of changes it cannot see between readings); a counter has neither."""
    if series.rule == "counter":
        none = np.zeros(times_s.size - 1)
        return none, none
    dt, power = np.diff(times_s), series.values
    if series.rule == "trailing":
        unmeasured = np.maximum(dt - TRAILING_AVERAGE_SECONDS.get("nvml", 1.0), 0.0)
        reading = (power[1:] * dt) ** 2
    else:
        unmeasured = dt
        reading = (power[1:] ** 2 + power[:-1] ** 2) / 4 * dt**2
    return reading, (np.abs(np.diff(power)) * unmeasured) ** 2 / 12


def _gauge_variance(cut: _Cut, noise: float) -> np.ndarray:
    """Per reading interval, the variance of a gauge's energy: unmeasured changes and reading noise."""
    reading, unmeasured = _gauge_variance_parts(cut.series, cut.times_s)
    return noise**2 * reading + unmeasured


def _attribute_cut(
    cut: _Cut,
    tasks: _Tasks,
    model: _Model | None,
    spread_error: float,
    idle: _Idle,
    capacity: tuple[float, str],
    settings: _Settings,
    kind_fraction: np.ndarray | None,
    noise: float,
    skew: _Skew | None,
    mig: bool,
    emit: tuple[int, int],
    memo: dict | None = None,
) -> tuple[dict, dict]:
    """Task rows and balance rows of one series (formulas in the module doc).

    memo: what depends only on the segments, the pieces and the kind, shared by the zones of a node that
    share their segments (kept by the caller per segment grid and kind)."""
    series, pieces = cut.series, cut.pieces
    memo = {} if memo is None else memo

    def once(name: str, compute):
        if name not in memo:
            memo[name] = compute()
        return memo[name]

    rows, count = pieces.rows, pieces.rows.size
    accelerator = series.device_kind in ACCELERATOR_IDS
    kepler = kind_fraction is not None
    segment_s, points = cut.segment_s, cut.grid_s.size

    def draws() -> tuple[np.ndarray, ...]:
        weight = np.ones(pieces.column.size) if model is None or kepler else model.weights[pieces.column]
        weighted_rate = weight * cut.main_rate
        # Rates below a nano-unit per second (rounding crumbs of counters) draw nothing: dividing by them
        # overflows.
        weighted_rate = np.where(weighted_rate > MIN_RATE, weighted_rate, 0.0)
        drawing = _running(cut.main_lo, cut.main_hi, weighted_rate, points)
        # Whether anyone draws is counted in integers: a float running sum leaves crumbs where nobody does.
        drawn = weighted_rate > 0
        main = _holding(cut.main_lo[drawn], cut.main_hi[drawn], points) > 0
        presence = pieces.equal_presence
        if pieces.weight is not None:  # holders of unmapped devices draw by their share of them
            presence = presence * pieces.weight[pieces.equal_task]
        sharing = _running(cut.equal_lo, cut.equal_hi, presence, points)
        present = presence > 0
        shared = _holding(cut.equal_lo[present], cut.equal_hi[present], points) > 0
        return (
            weighted_rate,
            np.where(main, drawing, 0.0),
            main,
            presence,
            np.where(shared, sharing, 0.0),
            shared,
        )

    weighted_rate, drawing, main, presence, sharing, shared = once("draws", draws)
    # Within a reading interval the energy follows the modelled power: idle plus what the pieces draw at
    # the fitted watts per unit, or (GPU/FPGA without busy-time counters) the device's mean dynamic power
    # per holder.
    model_w, holder_w = None, 0.0
    by_holders = accelerator and pieces.task.size == 0
    if by_holders and shared.any():
        uniform_dynamic = cut.segment_j - np.minimum(cut.segment_j, max(idle.watts, 0.0) * segment_s)
        holder_w = uniform_dynamic[shared].sum() / (sharing * segment_s).sum()
        model_w = idle.watts + holder_w * sharing if holder_w > 0 else None
    elif model is not None and not kepler and model.common_watts > 0 and main.any():
        model_w = idle.watts + drawing
    modelled = model_w is not None
    segment_j = _spread(cut, model_w) if modelled else cut.segment_j

    def idles() -> tuple:
        idle_floor = -np.inf
        if settings.idle_policy == "none" or kepler:
            idle_weight, idle_label = np.zeros(count), "idle=none"
        elif accelerator and pieces.weight is not None:
            # Holders of unmapped devices pay the device's idle by their share of the node's devices; under
            # "requests" the idle of devices nobody holds stays unattributed (one device's worth at most).
            idle_weight, idle_label = pieces.weight, "idle=holders"
            if settings.idle_policy == "requests":
                idle_label, idle_floor = "idle=holders-by-request", 1.0
        elif accelerator or settings.idle_policy == "time":
            idle_weight, idle_label = np.ones(count), "idle=holders" if accelerator else "idle=time"
        else:
            idle_weight, idle_label = tasks.request_microcores[rows], f"idle=requests/capacity={capacity[1]}"
            # Under "requests" the idle power of cores nobody reserved stays unattributed.
            idle_floor = capacity[0]
        idle_running = _running(cut.idle_lo, cut.idle_hi, idle_weight, points)
        return idle_weight, idle_label, idle_running, idle_floor

    idle_weight, idle_label, idle_running, idle_floor = once("idles", idles)
    covered = once("covered", lambda: cut.covered[cut.interval])
    idle_j, dynamic_j, prices, per_second, prefix, spread_c, gaps, interval_dynamic = kernels.prices(
        np.ascontiguousarray(segment_j, dtype=float),
        segment_s,
        float(idle.watts),
        drawing,
        main,
        sharing,
        shared,
        idle_running,
        float(idle_floor),
        kind_fraction if kepler else np.zeros(0),
        kepler,
        covered,
        cut.interval,
        cut.interval_j.size,
    )
    price, equal_price, idle_price = prices.T

    def received(sums: tuple[np.ndarray, ...]) -> np.ndarray:
        """Joules each task got, from the prefix sums of the main, equal and idle prices over some segments."""
        main_c, equal_c, idle_c = sums
        return (
            np.bincount(pieces.task, weighted_rate * (main_c[cut.main_hi] - main_c[cut.main_lo]), count)
            + np.bincount(
                pieces.equal_task, presence * (equal_c[cut.equal_hi] - equal_c[cut.equal_lo]), count
            )
            + idle_weight * (idle_c[cut.idle_hi] - idle_c[cut.idle_lo])
        )

    main_c, equal_c, idle_c = (_Prefix(prefix[:, 2 * i], prefix[:, 2 * i + 1]) for i in range(3))
    # Every share is summed per balance window, so the task rows add up to what the balance attributes.
    window_edges = once(
        "window_edges", lambda: np.concatenate([[0], np.searchsorted(cut.grid_s, cut.bounds_s), [points - 1]])
    )
    windows = window_edges.size - 1
    attributed_joules = np.zeros(windows)

    def shares(owner: np.ndarray, lo: np.ndarray, hi: np.ndarray, weight: np.ndarray, total: _Prefix):
        """Joules of each range [lo, hi) at `weight` x the per-segment price summed in `total`: per owner and
        per range, and added to each balance window's attributed joules."""
        return kernels.range_shares(
            lo,
            hi,
            np.ascontiguousarray(weight, dtype=float),
            owner,
            total.high,
            total.low,
            window_edges,
            count,
            attributed_joules,
        )

    main_joules, piece_j = shares(pieces.task, cut.main_lo, cut.main_hi, weighted_rate, main_c)
    equal_joules, _ = shares(pieces.equal_task, cut.equal_lo, cut.equal_hi, presence, equal_c)
    idle_joules, _ = shares(np.arange(count), cut.idle_lo, cut.idle_hi, idle_weight, idle_c)
    dynamic_joules = main_joules + equal_joules
    energy_joules = dynamic_joules + idle_joules
    times_s, readings = cut.times_s, cut.times_s.size
    segments = segment_s.size

    def frame() -> dict[str, np.ndarray]:
        """Where each task's window lies among the segments and readings, and what it covers."""
        duration_s = cut.idle_end_s - cut.idle_start_s
        covered_c = _cumulative(segment_s * covered)
        at_start = np.searchsorted(times_s, cut.idle_start_s, side="right") - 1
        start_interval = np.clip(at_start, 0, readings - 2)
        point_covered = (at_start >= 0) & (at_start < readings - 1) & cut.covered[start_interval]
        past_reading = np.searchsorted(times_s, cut.idle_end_s, side="left")
        inside_s = cut.grid_s[cut.idle_hi] - cut.grid_s[cut.idle_lo]
        first_seg = np.clip(cut.idle_lo, 0, segments - 1)
        last_seg = np.clip(cut.idle_hi - 1, 0, segments - 1)
        resolution_s = tasks.resolution_us[rows] / US_PER_SECOND
        edge_segs = []
        for edge_s, side in (
            (cut.idle_start_s + resolution_s / 2, "right"),
            (cut.idle_end_s - resolution_s / 2, "left"),
        ):
            at = np.searchsorted(cut.grid_s, np.clip(edge_s, 0.0, times_s[-1]), side=side) - (side == "right")
            edge_segs.append(np.clip(at, first_seg, last_seg))
        first_interval = np.clip(at_start, 0, readings - 1)
        return {
            "duration_s": duration_s,
            "inside_s": inside_s,
            "coverage": np.minimum(
                np.divide(
                    covered_c[cut.idle_hi] - covered_c[cut.idle_lo],
                    duration_s,
                    out=point_covered * 1.0,
                    where=duration_s > 0,
                ),
                1.0,
            ),
            "samples": np.maximum(past_reading - (at_start + 1), 0),
            "outside": (
                (inside_s <= 0)
                & ((duration_s > 0) | ~point_covered)
                & ((cut.idle_end_s <= 0) | (cut.idle_start_s >= times_s[-1]))
            ),
            "first_seg": first_seg,
            "last_seg": last_seg,
            "has_window": cut.idle_hi > cut.idle_lo,
            "resolution_s": resolution_s,
            "follows_window": np.isin(pieces.basis, (BASIS_REQUESTS, BASIS_EQUAL)),
            "start_edge_seg": edge_segs[0],
            "end_edge_seg": edge_segs[1],
            "first_interval": first_interval,
            "past_interval": np.maximum(np.clip(past_reading, 0, readings - 1), first_interval),
        }

    where = once("frame", frame)
    duration_s, inside_s, coverage = (where[name] for name in ("duration_s", "inside_s", "coverage"))
    samples, outside = where["samples"], where["outside"]
    average_w = np.divide(energy_joules, duration_s, out=np.zeros(count), where=duration_s > 0)

    dynamic_peak = np.full(count, np.nan)
    kernels.group_fmax(
        dynamic_peak, pieces.task, weighted_rate * _range_max(per_second[0], cut.main_lo, cut.main_hi)
    )
    kernels.group_fmax(
        dynamic_peak, pieces.equal_task, presence * _range_max(per_second[1], cut.equal_lo, cut.equal_hi)
    )
    idle_peak = idle_weight * _range_max(per_second[2], cut.idle_lo, cut.idle_hi)
    peak_w = np.where(
        np.isnan(dynamic_peak) & np.isnan(idle_peak),
        np.nan,
        np.nan_to_num(dynamic_peak) + np.nan_to_num(idle_peak),
    )

    # Uncertainty components (module doc), each a standard deviation in joules.
    first_seg, last_seg, has_window = where["first_seg"], where["last_seg"], where["has_window"]

    def hits(name: str) -> tuple[np.ndarray, ...]:
        """The main and equal pieces holding each task's segment `name`, with those segments."""
        seg = where[name]
        main_seg, equal_seg = seg[pieces.task], seg[pieces.equal_task]
        main_hit = (cut.main_lo <= main_seg) & (cut.main_hi > main_seg)
        equal_hit = (cut.equal_lo <= equal_seg) & (cut.equal_hi > equal_seg)
        return (
            main_hit,
            main_seg[main_hit],
            pieces.task[main_hit],
            equal_hit,
            equal_seg[equal_hit],
            pieces.equal_task[equal_hit],
        )

    def dynamic_in(name: str) -> np.ndarray:
        """Joules of dynamic energy each task got in its segment `name`."""
        main_hit, main_seg, main_task, equal_hit, equal_seg, equal_task = once(name, lambda: hits(name))
        return np.bincount(main_task, weighted_rate[main_hit] * price[main_seg], count) + np.bincount(
            equal_task, presence[equal_hit] * equal_price[equal_seg], count
        )

    def modelled_in(name: str) -> np.ndarray:
        """Watts the model gives each task in its segment `name`."""
        main_hit, _, main_task, equal_hit, _, equal_task = once(name, lambda: hits(name))
        main_w = weighted_rate if modelled else np.zeros(weighted_rate.size)
        return np.bincount(main_task, main_w[main_hit], count) + np.bincount(
            equal_task, holder_w * presence[equal_hit], count
        )

    dynamic_edge = [dynamic_in(name) * has_window for name in ("first_seg", "last_seg")]
    # Argo's truncation bounds each true edge within +-r/2 of the estimate: a bound, not a deviation. A
    # task whose share follows its window draws its full power just inside the ramps at its edges.
    resolution_s, follows_window = where["resolution_s"], where["follows_window"]
    edge_power = np.zeros(count)
    for name in ("start_edge_seg", "end_edge_seg"):
        seg = where[name]
        own = np.where(follows_window, dynamic_in(name), 0.0) + idle_weight * idle_price[seg]
        edge_power += own / segment_s[seg] * has_window
    timing_bound = resolution_s / 2 * edge_power
    if skew is not None:
        timing_bound += (skew.step_seconds / 2 if skew.applied else abs(skew.seconds)) * edge_power
    variance = np.zeros(count)
    if idle_label in ("idle=time", "idle=holders"):
        variance += _neighbour_edges(where, idle_weight, idle_running, idle_price, segment_s)
    interval_s = np.diff(times_s)
    if modelled or series.rule != "trapezoid":
        beta = (EQUAL_SPLIT_RELATIVE_ERROR if by_holders else spread_error) if modelled else 1 / math.sqrt(3)
        for seg, dynamic_seg in zip((first_seg, last_seg), dynamic_edge, strict=True):
            j = cut.interval[seg]
            lo = np.maximum(cut.idle_start_s, times_s[j])
            hi = np.minimum(cut.idle_end_s, times_s[j + 1])
            phi = np.clip((hi - lo) / interval_s[j], 0.0, 1.0)
            fraction = np.divide(dynamic_seg, dynamic_j[seg], out=np.zeros(count), where=dynamic_j[seg] > 0)
            variance += (beta * (1.0 - phi) * fraction * interval_dynamic[j]) ** 2
    if series.rule != "counter":
        # Reading noise and unmeasured changes land in each interval's dynamic energy (idle is one estimate)
        # and are shared as it is: a task alone in an interval takes all of that interval's error.
        variance += kernels.share_variance(
            np.concatenate([pieces.task, pieces.equal_task]),
            np.concatenate([cut.main_lo, cut.equal_lo]),
            np.concatenate([cut.main_hi, cut.equal_hi]),
            np.concatenate([weighted_rate, presence]),
            np.concatenate([np.zeros(pieces.task.size, np.int64), np.ones(pieces.equal_task.size, np.int64)]),
            prices,
            cut.interval,
            interval_dynamic,
            _gauge_variance(cut, noise),
            count,
        )
        # A gauge does not see between readings: at an edge, a reading that caught the task doubles its
        # modelled power over the unmeasured part of the interval, one that missed it loses all of it.
        window_s = TRAILING_AVERAGE_SECONDS["nvml"] if series.rule == "trailing" else 0.0
        for name in ("first_seg", "last_seg"):
            j = cut.interval[where[name]]
            overlap = np.minimum(cut.idle_end_s, times_s[j + 1]) - np.maximum(cut.idle_start_s, times_s[j])
            unmeasured = np.maximum(interval_s[j] - window_s, 0.0) / interval_s[j]
            variance += (modelled_in(name) * np.maximum(overlap, 0.0) * unmeasured) ** 2 * has_window
    gap_scale = 1.0 if series.rule == "trapezoid" else 1.0 / math.sqrt(3.0)
    variance += (gap_scale * received(gaps.T)) ** 2
    if modelled and not cut.covered.all():
        # In a gap the model alone places the energy: how far the price strays from it is a bias too.
        model_c, gap_c = once("gap_seconds", lambda: _cumulative(segment_s * ~covered)), gaps[:, 0]
        gap_model_j = weighted_rate * (model_c[cut.main_hi] - model_c[cut.main_lo])
        gap_given_j = weighted_rate * (gap_c[cut.main_hi] - gap_c[cut.main_lo])
        variance += np.bincount(pieces.task, gap_given_j - gap_model_j, count) ** 2
    if (cut.flags == FLAG_RESET).any():
        estimated = cut.flags[cut.interval] == FLAG_RESET
        variance += received(tuple(_cumulative(p * estimated) for p in (price, equal_price, idle_price))) ** 2
    if not kepler:
        squares_c, equal_squares_c, seconds_c, equal_seconds_c = spread_c.T
        main_spread = np.maximum(
            piece_j - weighted_rate**2 * (squares_c[cut.main_hi] - squares_c[cut.main_lo]), 0.0
        )
        relative = (
            model.relative_error[pieces.column]
            if model is not None
            else np.full(pieces.column.size, EQUAL_SPLIT_RELATIVE_ERROR)
        )
        equal_spread = np.maximum(
            presence * equal_c.between(cut.equal_lo, cut.equal_hi)
            - presence**2 * (equal_squares_c[cut.equal_hi] - equal_squares_c[cut.equal_lo]),
            0.0,
        )
        split = np.bincount(
            pieces.task, relative * main_spread, count
        ) + EQUAL_SPLIT_RELATIVE_ERROR * np.bincount(pieces.equal_task, equal_spread, count)
        variance += 2.0 * (SPLIT_CALIBRATION * split) ** 2
        dynamic_seconds = np.bincount(
            pieces.task, weighted_rate * (seconds_c[cut.main_hi] - seconds_c[cut.main_lo]), count
        ) + np.bincount(
            pieces.equal_task,
            presence * (equal_seconds_c[cut.equal_hi] - equal_seconds_c[cut.equal_lo]),
            count,
        )
        idle_seconds = np.divide(idle_joules, idle.watts, out=np.zeros(count), where=idle.watts > 0)
        variance += (idle.standard_error_watts * (idle_seconds - dynamic_seconds)) ** 2
    outside_s = np.maximum(duration_s - inside_s, 0.0)
    variance += (outside_s * np.divide(energy_joules, inside_s, out=np.zeros(count), where=inside_s > 0)) ** 2
    tail_j = np.bincount(pieces.task[pieces.tail], piece_j[pieces.tail], count)
    variance += tail_j**2 / 3.0
    uncertainty_joules = np.hypot(timing_bound, UNCERTAINTY_COVERAGE_FACTOR * np.sqrt(variance))

    first_interval, past_interval = where["first_interval"], where["past_interval"]
    flagged = cut.flags.any()
    wraps, resets = (_cumulative(cut.flags == flag) if flagged else None for flag in (FLAG_WRAP, FLAG_RESET))

    def labels() -> tuple[list[str], np.ndarray]:
        whole = pieces.equal_presence >= 1
        holders = _range_max(
            _holding(cut.equal_lo[whole], cut.equal_hi[whole], points), cut.equal_lo, cut.equal_hi
        )
        return _split_labels(
            pieces.basis, settings, accelerator, holders, pieces.equal_task, count, pieces.pooled
        )

    tail = f";{idle_label};idle_power={idle.method}" + (skew.label() if skew is not None else "")
    tail += ";mig" if mig and series.device_kind == "gpu" else ""
    reading = {
        "counter": "counter-interpolated",
        "trailing": "gauge-trailing-average-1s",
        "trapezoid": "gauge-trapezoid",
    }[series.rule]
    # Each distinct combination of the flags and the split label is spelt once, not once per row.
    label_names, label_of = once("labels", labels)
    wrapped = wraps[past_interval] != wraps[first_interval] if flagged else np.zeros(count, bool)
    was_reset = resets[past_interval] != resets[first_interval] if flagged else np.zeros(count, bool)
    gap = (coverage < 1.0) & ~outside
    spelt, which = np.unique(
        label_of * 16 + outside * 8 + wrapped * 4 + was_reset * 2 + gap, return_inverse=True
    )
    texts = [
        ("no-readings: outside readings;" if combination & 8 else "")
        + reading
        + (";wraps-corrected" if combination & 4 else "")
        + (";reset-estimated" if combination & 2 else "")
        + (";gap" if combination & 1 else "")
        + f";split={label_names[combination // 16]}"
        + tail
        for combination in spelt.tolist()
    ]
    methods = np.asarray(texts, dtype=object)[which]
    emitted = (tasks.start_us[rows] >= emit[0]) & (tasks.start_us[rows] < emit[1])
    task_rows = {
        "_task": rows,
        "energy_joules": energy_joules,
        "dynamic_joules": dynamic_joules,
        "idle_joules": idle_joules,
        "avg_power_watts": np.where(duration_s > 0, average_w, np.nan),
        "peak_power_watts": peak_w,
        "coverage": np.where(outside, 0.0, coverage),
        "samples": samples.astype(np.int64),
        "method": methods,
        "uncertainty_joules": uncertainty_joules,
        # Seconds of which nothing was read: their bound comes from other rows of the kind (Engine.result).
        "_unread_s": np.where(outside, np.maximum(duration_s, 0.0), 0.0),
    }
    task_rows = {name: values[emitted] for name, values in task_rows.items()} | {
        "device_kind": series.device_kind,
        "device_id": series.device_id,
        "provenance": series.provenance,
    }

    first_us, last_us = cut.origin_us, int(series.times_us[-1])
    window_start = np.concatenate([[first_us], cut.bounds_us])
    # Summed per window, not as differences of one running sum: a window stays exact beside large ones.
    measured_joules = kernels.window_sums(np.ascontiguousarray(segment_j, dtype=float), window_edges)
    balance_rows = {
        "host_node": np.full(windows, series.host_node, dtype=object),
        "device_kind": np.full(windows, series.device_kind, dtype=object),
        "device_id": np.full(windows, series.device_id, dtype=object),
        "window_start": window_start,
        "window_end": np.concatenate([cut.bounds_us, [last_us]]),
        "measured_joules": measured_joules,
        "attributed_joules": attributed_joules,
        "unattributed_joules": measured_joules - attributed_joules,
        "provenance": np.full(windows, series.provenance, dtype=object),
    }
    kept = (window_start >= emit[0]) & (window_start < emit[1])
    return task_rows, {name: values[kept] for name, values in balance_rows.items()}


def _neighbour_edges(
    where: dict[str, np.ndarray],
    weight: np.ndarray,
    running: np.ndarray,
    idle_price: np.ndarray,
    segment_s: np.ndarray,
) -> np.ndarray:
    """Variance of each task's idle share from the other tasks' edges, when idle is shared by count.

    An edge of task j known within +-r_j/2 moves idle between j and the tasks beside it: task k's idle
    changes by r_j/2 x w_k x p_s x w_j / (W_s - w_j) (p_s the idle watts per unit of weight, W_s the weight
    running). Each neighbouring edge counts as one standard deviation: short tasks' windows, whose length
    truncation hides, move their neighbours' idle by about that much each."""
    unit_w = idle_price / segment_s
    total = np.zeros(segment_s.size)
    own = np.zeros(weight.size)
    for name in ("start_edge_seg", "end_edge_seg"):
        seg = where[name]
        others = running[seg] - weight
        moved = np.divide(
            where["resolution_s"] / 2 * unit_w[seg] * weight,
            others,
            out=np.zeros(weight.size),
            where=(others > 1e-9 * np.maximum(running[seg], 1e-300)) & where["has_window"],
        )
        total += np.bincount(seg, moved**2, segment_s.size)
        own += moved**2
    summed = _cumulative(total)
    seg_lo = where["first_seg"]
    seg_hi = np.where(where["has_window"], where["last_seg"] + 1, seg_lo)
    return weight**2 * np.maximum(summed[seg_hi] - summed[seg_lo] - own, 0.0)


def _split_labels(
    basis: np.ndarray,
    settings: _Settings,
    accelerator: bool,
    shared: np.ndarray | None,
    equal_task: np.ndarray,
    count: int,
    pooled: np.ndarray | None = None,
) -> tuple[list[str], np.ndarray]:
    """The split part of each row's method, what its share was computed from: the names, and each row's
    position among them. Holders of unmapped devices: `unmapped-sole-holder` where no other task held a
    device of the kind on the node meanwhile (exact), else `unmapped-by-request`."""
    if accelerator:
        most = np.zeros(count)
        kernels.group_fmax(most, equal_task, np.nan_to_num(shared))
        sliced = np.where(basis == BASIS_USAGE, 1, 2)
        names = ["exclusive", "time-sliced-usage", "time-sliced-equal"]
        index = np.where(most > 1, sliced, 0)
        if pooled is not None:
            names += ["unmapped-sole-holder", "unmapped-by-request"]
            index = np.where(pooled & (basis != BASIS_USAGE), np.where(most > 1, 4, 3), index)
        return names, index
    fitted = "-fitted" if settings.fitted else ""
    fallback = "(no-usage-series)" if settings.share == "usage" else ""
    names = {
        BASIS_USAGE: f"usage{fitted}",
        BASIS_REQUESTS: f"requests{fitted}{fallback}",
        BASIS_EQUAL: f"equal{fallback}",
        BASIS_KEPLER: "kepler",
        BASIS_NONE: "kepler(no-series)",
    }
    return [names[b] for b in range(len(names))], basis


# ---------------------------------------------------------------------------------------------------------
# Clock skew


@dataclass
class _SkewStats:
    """Sums of the correlation of power changes with requested-core changes, per candidate shift."""

    shifts_s: np.ndarray
    sums: np.ndarray  # rows: n, a, b, aa, bb, ab


def _skew_candidates(tolerance_s: float) -> np.ndarray:
    step = max(1.0 / SKEW_STEPS_PER_SECOND, 2.0 * tolerance_s / 200)
    count = int(round(tolerance_s / step))
    return np.arange(-count, count + 1) * step


def _skew_gather(
    series: _Series, tasks: _Tasks, rows: np.ndarray, stats: _SkewStats, emit: tuple[int, int]
) -> None:
    """Correlate the series' power steps with the tasks' requested-core steps under each candidate shift."""
    if rows.size == 0:
        return
    origin = int(series.times_us[0])
    times_s = (series.times_us - origin) / US_PER_SECOND
    energy_j, _ = _interval_energy(series, times_s)
    interval_s = np.diff(times_s)
    power = energy_j / interval_s
    requests = tasks.request_microcores[rows] / MICROCORES_PER_CORE
    weight = requests if (requests > 0).any() else np.ones(rows.size)
    windows = _windows(tasks, rows, 0)
    edges = np.concatenate([windows.idle_start, windows.idle_end]) - origin
    change = np.concatenate([weight, -weight])
    order = np.argsort(edges, kind="stable")
    edges_s, change = edges[order] / US_PER_SECOND, change[order]
    running = np.cumsum(change)
    cumulative = np.concatenate([[0.0], np.cumsum(running[:-1] * np.diff(edges_s))])
    inside = _emitted_times(origin, times_s[1:-1], emit)
    a = np.diff(power)[inside]
    for index, shift in enumerate(stats.shifts_s):
        core_seconds = np.diff(np.interp(times_s - shift, edges_s, cumulative))
        b = np.diff(core_seconds / interval_s)[inside]
        stats.sums[:, index] += (a.size, a.sum(), b.sum(), (a * a).sum(), (b * b).sum(), (a * b).sum())


def _emitted_times(origin_us: int, seconds: np.ndarray, emit: tuple[int, int]) -> np.ndarray:
    if emit == EVERYTHING:
        return np.ones(seconds.size, bool)
    at_us = origin_us + seconds * US_PER_SECOND
    return (at_us >= emit[0]) & (at_us < emit[1])


def _skew_estimate(stats: _SkewStats) -> tuple[float, float]:
    """The shift with the highest correlation (refined by a parabola through its neighbours) and that
    correlation; 0 when nothing correlates."""
    n, a, b, aa, bb, ab = stats.sums
    denominator = np.sqrt(np.maximum(n * aa - a * a, 0.0) * np.maximum(n * bb - b * b, 0.0))
    correlation = np.divide(n * ab - a * b, denominator, out=np.zeros(n.size), where=denominator > 0)
    best = int(np.argmax(correlation))
    if not correlation[best] > 0:
        return 0.0, 0.0
    shift = float(stats.shifts_s[best])
    if 0 < best < correlation.size - 1:
        left, middle, right = correlation[best - 1 : best + 2]
        curvature = left - 2 * middle + right
        if curvature < 0:
            step = stats.shifts_s[1] - stats.shifts_s[0]
            shift += float(np.clip(0.5 * (left - right) / curvature, -0.5, 0.5) * step)
    return shift, float(correlation[best])


# ---------------------------------------------------------------------------------------------------------
# The engine: gather statistics node by node, fit, then attribute node by node


@dataclass(frozen=True)
class _Chunk:
    """A node's readings and container counters for one stretch of time, and which results it emits."""

    node: str
    series: list[_Series]
    usage: _Readings | None
    kepler: _Readings | None
    emit: tuple[int, int] = EVERYTHING
    gpu_busy: _Readings | None = None


@dataclass(frozen=True)
class _NodeIdle:
    idle: dict[tuple[str, str, str], _Idle]
    noise: dict[tuple[str, str, str], float]
    notes: list[dict]


@dataclass
class _Split:
    """What attributing one chunk gives: task and balance rows, rows of devices without readings, and the
    highest average power seen per kind (the bound of unread seconds)."""

    task_parts: list[dict] = field(default_factory=list)
    balance_parts: list[dict] = field(default_factory=list)
    missing: list[dict] = field(default_factory=list)
    reference_w: dict[str, float] = field(default_factory=dict)


def _in_order(work, items: list, threads: int) -> Iterator:
    """work(item) for each item, on `threads` threads, yielded in the items' order.

    The compiled kernels and numpy's array loops release the GIL, so nodes attribute side by side; at most
    2 x threads results wait at a time, so memory stays that of a few nodes."""
    if threads <= 1 or len(items) <= 1:
        yield from map(work, items)
        return
    from collections import deque
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(threads, thread_name_prefix="jouletrace-attribute") as pool:
        pending: deque = deque()
        for item in items:
            pending.append(pool.submit(work, item))
            if len(pending) >= 2 * threads:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()


class _Engine:
    def __init__(self, ran: _Tasks, machines: pa.Table | None, settings: _Settings):
        self.tasks = ran
        self.settings = settings
        self.capacities = _capacities(ran, machines)
        self.machine_devices = _machine_devices(machines)
        # Per node, then per series: a node's worker writes only its own node's entry.
        self.stats: dict[str, dict[tuple[str, str, str], _SeriesStats]] = {}
        self.grams: dict[str, np.ndarray] = {}
        self.skew_stats: dict[str, _SkewStats] = {}
        self.skews: dict[str, _Skew] = {}
        self.idle: dict[tuple[str, str, str], _Idle] = {}
        self.noise: dict[tuple[str, str, str], float] = {}
        self.models: dict[str, tuple[_Model, float]] = {}
        self.notes: list[dict] = []
        self.task_parts: list[dict] = []
        self.balance_parts: list[dict] = []
        self.missing: list[dict] = []
        self.reference_w: dict[str, float] = {}

    def rows_of(self, node: str, chunk: _Chunk) -> np.ndarray:
        """The node's tasks whose window reaches into the chunk's readings (all of them in memory)."""
        rows = self.tasks.by_node.get(node, np.zeros(0, dtype=np.int64))
        if chunk.emit == EVERYTHING or not chunk.series:
            return rows
        first = min(int(s.times_us[0]) for s in chunk.series)
        last = max(int(s.times_us[-1]) for s in chunk.series)
        reach = (self.tasks.end_us[rows] + self.tasks.resolution_us[rows] >= first) & (
            self.tasks.start_us[rows] <= last
        )
        return rows[reach]

    # pass 0: clock skew
    def gather_skew(self, chunk: _Chunk) -> None:
        if self.settings.skew_tolerance_seconds <= 0:
            return
        cpu = sorted(
            (s for s in chunk.series if s.device_kind not in ACCELERATOR_IDS),
            key=lambda s: (s.device_kind != "cpu_package", s.device_id),
        )
        if not cpu:
            return
        shifts = _skew_candidates(self.settings.skew_tolerance_seconds)
        stats = self.skew_stats.setdefault(chunk.node, _SkewStats(shifts, np.zeros((6, shifts.size))))
        _skew_gather(cpu[0], self.tasks, self.rows_of(chunk.node, chunk), stats, chunk.emit)

    def finish_skew(self) -> None:
        step = 1.0 / SKEW_STEPS_PER_SECOND
        for node, stats in self.skew_stats.items():
            seconds, correlation = _skew_estimate(stats)
            self.skews[node] = _Skew(seconds, self.settings.correct_skew, step)
            self.notes.append(
                _diagnostic("skew_seconds", seconds, f"correlation {correlation:.3f}", (node, None, None))
            )

    # pass 1: cut, gather idle/noise/fit statistics
    def cuts(self, chunk: _Chunk) -> list[_Cut]:
        node = chunk.node
        rows = self.rows_of(node, chunk)
        skew = self.skews.get(node)
        skew_us = round(skew.seconds * US_PER_SECOND) if skew is not None and skew.applied else 0
        windows = _windows(self.tasks, rows, skew_us)
        share = self.settings.share
        # Where a counter starts and stops rising refines the edges: GPU busy time, then CPU time where
        # a task has both (a container uses its CPU before its GPU).
        if chunk.gpu_busy is not None:
            windows = _usage_edges(chunk.gpu_busy, rows, windows)
        if share == "usage" and chunk.usage is not None:
            windows = _usage_edges(chunk.usage, rows, windows)
        cpu = _cpu_pieces(self.tasks, rows, windows, chunk.usage if share == "usage" else None, None)
        result: list[_Cut] = []
        devices = {kind: sum(s.device_kind == kind for s in chunk.series) for kind in ACCELERATOR_IDS}
        for series in chunk.series:
            kind = series.device_kind
            if kind in ACCELERATOR_IDS:
                none = np.zeros(0, dtype=np.int64)
                holders = self.tasks.holders.get(series.key, none)
                pooled = self.tasks.holders.get((node, kind, UNMAPPED_DEVICE), none)
                unmapped = (self.tasks.unmapped[kind], devices[kind]) if pooled.size else None
                pieces = _holder_pieces(
                    self.tasks, rows, windows, holders, chunk.gpu_busy, series.device_id, pooled, unmapped
                )
            elif share == "kepler":
                pieces = _cpu_pieces(self.tasks, rows, windows, chunk.kepler, kind)
            else:
                pieces = cpu
            like = next(
                (
                    cut
                    for cut in result
                    if cut.pieces is pieces and np.array_equal(cut.series.times_us, series.times_us)
                ),
                None,
            )
            result.append(_cut(series, pieces, self.settings.window_us, like))
        return result

    def gather(self, chunk: _Chunk, cuts: list[_Cut]) -> dict[str, np.ndarray]:
        """Add the cuts' idle, noise and fit statistics to their series' and return the chunk's part of
        each kind's normal equations (summed by `add_grams` in chunk order: the same sums on any thread)."""
        columns = self.tasks.columns
        grams: dict[str, np.ndarray] = {}
        together: dict[tuple[int, str], tuple[list[_Cut], list[_SeriesStats]]] = {}
        for cut in cuts:
            stats = self.stats.setdefault(chunk.node, {}).setdefault(cut.series.key, _SeriesStats())
            _gather(cut, stats, chunk.emit)
            kind = cut.series.device_kind
            # GPUs split by busy time fit their watts per busy-second; CPU zones unless Kepler splits them.
            fits = cut.pieces.task.size > 0 if kind in ACCELERATOR_IDS else self.settings.share != "kepler"
            if fits:
                group = together.setdefault((id(cut.grid_s), kind), ([], []))
                group[0].append(cut)
                group[1].append(stats)
        for (_, kind), (group_cuts, group_stats) in together.items():
            gram = grams.setdefault(kind, np.zeros((columns, columns)))
            _design(group_cuts, columns, group_stats, gram, chunk.emit)
        return grams

    def add_grams(self, grams: dict[str, np.ndarray]) -> None:
        for kind, gram in grams.items():
            if kind in self.grams:
                self.grams[kind] += gram
            else:
                self.grams[kind] = gram

    def node_idle(self, node: str) -> _NodeIdle:
        """Idle power and gauge noise of the node's series once its fit pass is done; their per-segment
        samples are let go. Applied by `finish_node` (in node order: the notes keep their order)."""
        configured = self.settings.idle_power_watts
        done = _NodeIdle({}, {}, [])
        for key, stats in self.stats.get(node, {}).items():
            idle = done.idle[key] = _idle_power(stats, configured.get((key[0], key[1])))
            noise = done.noise[key] = _gauge_noise(stats)
            stats.release()
            done.notes.append(_diagnostic("idle_power_watts", idle.watts, idle.method, key))
            if noise > 0:
                done.notes.append(_diagnostic("gauge_noise_relative", noise, None, key))
        return done

    def finish_node(self, done: _NodeIdle) -> None:
        self.idle.update(done.idle)
        self.noise.update(done.noise)
        self.notes += done.notes

    def finish_statistics(self) -> None:
        for kind, gram in self.grams.items():
            series = {key: stats for node in sorted(self.stats) for key, stats in self.stats[node].items()}
            keys = [key for key in series if key[1] == kind]
            # Sockets of one node see the same tasks: their rows are one datum for the residual's degrees
            # of freedom, so splitting a meter into zones does not change the fit.
            zones = {node: sum(key[0] == node for key in keys) for node, _, _ in keys}
            if kind in ACCELERATOR_IDS:  # separate devices, each with its own tasks
                zones = dict.fromkeys(zones, 1)
            parts = [
                (series[key], self.idle[key].watts, 1.0 / zones[key[0]], self.noise[key]) for key in keys
            ]
            model, relative = _solve(gram, parts, self.tasks.columns, self.settings.fitted)
            self.models[kind] = (model, relative)
            self.notes.append(
                _diagnostic(
                    "fit_relative_residual",
                    relative,
                    "fitted" if model.fitted else "plain",
                    (None, kind, None),
                )
            )
            used = np.flatnonzero(np.diag(gram) > 0)
            for column in used:
                template = self.tasks.template_names[column // FIT_BASES]
                basis = "usage" if column % FIT_BASES == BASIS_USAGE else "requests"
                self.notes.append(
                    _diagnostic(
                        "fit_watts_per_unit",
                        float(model.weights[column]),
                        f"{template}/{basis}",
                        (None, kind, None),
                    )
                )

    # pass 2: attribute
    def attribute(self, chunk: _Chunk, cuts: list[_Cut]) -> _Split:
        """Task and balance rows of the chunk's series; `take` adds them to the result (in chunk order)."""
        split = _Split()
        node = chunk.node
        mig = self.machine_devices.get(node, ([], False))[1]
        capacity = self.capacities.get(node, (0.0, "peak-requests"))
        kind_energy = self._kind_energy(cuts) if self.settings.share == "kepler" else {}
        memos: dict[tuple[int, str], dict] = {}
        for cut in cuts:
            kind = cut.series.device_kind
            model, relative = self.models.get(kind, (None, 1.0 / math.sqrt(3.0)))
            if kind in ACCELERATOR_IDS and cut.pieces.task.size == 0:
                model, relative = None, 1.0 / math.sqrt(3.0)
            fraction = None
            if kind in kind_energy:
                absolute = cut.origin_us + cut.grid_s * US_PER_SECOND
                node_kind_j = np.diff(kind_energy[kind](absolute))
                own_j = np.diff(np.interp(cut.grid_s, cut.times_s, _cumulative(cut.interval_j)))
                fraction = np.divide(own_j, node_kind_j, out=np.ones(own_j.size), where=node_kind_j > 0)
            task_rows, balance_rows = _attribute_cut(
                cut,
                self.tasks,
                model,
                relative,
                self.idle[cut.series.key],
                capacity,
                self.settings,
                fraction,
                self.noise[cut.series.key],
                self.skews.get(node),
                mig,
                chunk.emit,
                memos.setdefault((id(cut.grid_s), kind), {}),
            )
            split.task_parts.append(task_rows)
            split.balance_parts.append(balance_rows)
            seen = task_rows["avg_power_watts"][task_rows["coverage"] > 0]
            seen = seen[np.isfinite(seen)]
            if seen.size:
                split.reference_w[kind] = max(split.reference_w.get(kind, 0.0), float(seen.max()))
        split.missing = self._missing_rows(chunk)
        return split

    def take(self, split: _Split) -> None:
        self.task_parts += split.task_parts
        self.balance_parts += split.balance_parts
        self.missing += split.missing
        for kind, watts in split.reference_w.items():
            self.reference_w[kind] = max(self.reference_w.get(kind, 0.0), watts)

    def _kind_energy(self, cuts: list[_Cut]):
        """Per CPU-zone kind, the node's cumulative energy of that kind as a function of absolute us."""
        functions = {}
        for kind in {cut.series.device_kind for cut in cuts} - set(ACCELERATOR_IDS):
            parts = [
                (cut.series.times_us.astype(float), _cumulative(cut.interval_j))
                for cut in cuts
                if cut.series.device_kind == kind
            ]
            functions[kind] = lambda at, parts=parts: sum(
                np.interp(at, times, energy) for times, energy in parts
            )
        return functions

    def _missing_rows(self, chunk: _Chunk) -> list[dict]:
        """Rows with coverage 0 and a reason for the devices a task should draw on that have no series."""
        node, tasks = chunk.node, self.tasks
        rows = self.rows_of(node, chunk)
        rows = rows[(tasks.start_us[rows] >= chunk.emit[0]) & (tasks.start_us[rows] < chunk.emit[1])]
        if rows.size == 0:
            return []
        present = {(s.device_kind, s.device_id) for s in chunk.series}
        zones = {(s.device_kind, s.device_id) for s in chunk.series if s.device_kind not in ACCELERATOR_IDS}
        # The sockets of `machines` name the zones of a kind only when no series of that kind exists: one
        # series may meter all sockets (Kepler's "package").
        metered = {kind for kind, _ in zones}
        implied = {(kind, device) for kind, device in self.machine_devices.get(node, ([], False))[0]}
        expected = {(kind, device) for kind, device in implied if kind not in metered} | zones
        wanted: list[tuple[np.ndarray, str, str, str]] = []
        if not expected:
            wanted.append((rows, "cpu_package", "unknown", "no-readings: node has no series"))
        for kind, device_id in sorted(expected - present):
            wanted.append((rows, kind, device_id, f"no-readings: node has no {kind} series for {device_id}"))
        for kind, ids in tasks.held.get(node, {}).items():
            for device_id in sorted(ids):
                if (kind, device_id) in present:
                    continue
                reason = f"no-readings: node has no {kind} series for {device_id}"
                if device_id == UNMAPPED_DEVICE:
                    # Holders of unmapped devices draw on every series of the kind the node has.
                    if any(have == kind for have, _ in present):
                        continue
                    reason = f"no-readings: node has no {kind} series (device ids unmapped)"
                holders = rows[np.isin(rows, tasks.holders[(node, kind, device_id)])]
                wanted.append((holders, kind, device_id, reason))
        return [
            {"rows": holders, "device_kind": kind, "device_id": device_id, "method": reason}
            for holders, kind, device_id, reason in wanted
            if holders.size
        ]

    def result(self) -> Attribution:
        tasks = self.tasks
        for part in self.missing:
            rows = part["rows"]
            count = rows.size
            duration_s = (tasks.end_us[rows] - tasks.start_us[rows]) / US_PER_SECOND
            self.task_parts.append(
                {
                    "_task": rows,
                    "device_kind": part["device_kind"],
                    "device_id": part["device_id"],
                    "energy_joules": np.zeros(count),
                    "dynamic_joules": np.zeros(count),
                    "idle_joules": np.zeros(count),
                    "avg_power_watts": np.where(duration_s > 0, 0.0, np.nan),
                    "peak_power_watts": np.full(count, np.nan),
                    "coverage": np.zeros(count),
                    "samples": np.zeros(count, dtype=np.int64),
                    "method": np.full(count, part["method"], dtype=object),
                    "uncertainty_joules": np.zeros(count),
                    "provenance": "estimated",
                    "_unread_s": np.maximum(duration_s, 0.0),
                }
            )
        self.missing = []
        for part in self.task_parts:
            part["uncertainty_joules"] = np.hypot(
                part["uncertainty_joules"],
                part.pop("_unread_s") * self.reference_w.get(part["device_kind"], 0.0),
            )
        return Attribution(
            task_energy=_task_energy_table(self.task_parts, tasks),
            node_energy_balance=_table(
                "node_energy_balance",
                self.balance_parts,
                ["host_node", "device_kind", "device_id", "window_start"],
            ),
            diagnostics=pa.Table.from_pylist(self.notes, schema=DIAGNOSTICS),
        )


def _task_energy_table(parts: list[dict], tasks: _Tasks) -> pa.Table:
    """task_energy from the parts (task row indices, per-part device and provenance, per-row values), sorted
    by workflow, task and device: ids are taken from Arrow and sorted as integer ranks, not as strings."""
    parts = [part for part in parts if part["_task"].size]
    if not parts:
        return empty("task_energy")
    task = np.concatenate([part["_task"] for part in parts])
    counts = [part["_task"].size for part in parts]
    columns: dict = {
        "workflow_uid": tasks.ids["workflow_uid"].take(pa.array(task)),
        "task_id": tasks.ids["task_id"].take(pa.array(task)),
    }
    codes = {}
    for name in ("device_kind", "device_id", "provenance"):
        names = sorted({part[name] for part in parts})
        codes[name] = np.repeat([names.index(part[name]) for part in parts], counts)
        columns[name] = pa.array(names, pa.string()).take(pa.array(codes[name]))
    for column in parts[0]:
        if column.startswith("_") or column in codes:
            continue
        values = np.concatenate([part[column] for part in parts])
        columns[column] = pa.array(values, mask=np.isnan(values)) if values.dtype.kind == "f" else values
    order = np.lexsort((codes["device_id"], codes["device_kind"], tasks.rank[task]))
    return conform("task_energy", columns).take(pa.array(order))


def _table(name: str, parts: list[dict], sort_keys: list[str]) -> pa.Table:
    parts = [part for part in parts if len(next(iter(part.values())))]
    if not parts:
        return empty(name)
    columns = {}
    for column in parts[0]:
        values = np.concatenate([part[column] for part in parts])
        if column in ("window_start", "window_end"):
            values = pa.array(values.astype(np.int64)).cast(UTC_TIMESTAMP)
        elif values.dtype.kind == "f":
            values = pa.array(values, mask=np.isnan(values))
        columns[column] = values
    return conform(name, columns).sort_by([(key, "ascending") for key in sort_keys])


def _settings(options: AttributionOptions) -> _Settings:
    """The engine's settings from the user's options (checked when the options were made)."""
    share = "requests" if options.split == "requests" else options.share
    return _Settings(
        idle_policy=options.idle_policy,
        window_us=options.window_us,
        fitted=options.split == "fitted",
        share=share or "",
        idle_power_watts=dict(options.idle_power_watts),
        skew_tolerance_seconds=float(options.skew_tolerance_seconds),
        correct_skew=options.correct_skew,
    )


def _resolve_share(settings: _Settings, usage: _Readings | None) -> _Settings:
    """The default share: measured usage when any task has a usage series, else requested cores."""
    if settings.share:
        return settings
    return _Settings(**{**settings.__dict__, "share": "usage" if usage is not None else "requests"})


def attribute(
    tasks: pa.Table,
    samples: pa.Table,
    machines: pa.Table | None = None,
    options: AttributionOptions | None = None,
    *,
    containers: pa.Table | None = None,
    **changes,
) -> Attribution:
    """Per-task, per-device energy, a per-window balance of every device series, and diagnostics.

    Task rows: one per (task, device) for every CPU-zone series on the task's node (and every zone its
    `machines` row implies) and every held gpu/fpga; a device without readings gives a row with energy 0,
    coverage 0 and the reason in `method`, as does a task outside a series' readings. Tasks without
    host_node or either time are skipped.
    - energy_joules = dynamic_joules + idle_joules; avg_power_watts = energy / duration (null at 0 s);
      peak_power_watts = the highest attributed power over a segment;
    - coverage = the part of the task window inside reading intervals no longer than 3x the median one;
    - samples = readings strictly inside the window; uncertainty_joules: the module doc;
    - method: reading rule; wraps-corrected / reset-estimated / gap; split=...; idle=...; idle_power=...
      (+ skew, mig); provenance: the readings' when they agree, else "estimated".
    options: AttributionOptions (split, share, idle_policy, idle power, skew, window, threads; defaults
    there); keyword `changes` replace single fields of it (`attribute(t, s, split="plain")`). `containers`:
    CPU-seconds counters (share "usage"), Kepler's per-pod joules (share "kepler"), GPU busy-seconds.
    Balance rows: per device and window [m * window_seconds, (m + 1) * window_seconds) clipped to the series'
    first and last reading; measured = sum e_s, attributed = sum given to tasks, unattributed = the rest.
    """
    options = replace(options or AttributionOptions(), **changes)
    settings = _settings(options)
    workers = options.worker_threads
    ran = _ran_tasks(tasks, machines)
    series, notes = _device_series(samples, threads=workers)
    usage, usage_notes = _container_readings(containers, ran, CPU_SECONDS, USAGE_SOURCES)
    settings = _resolve_share(settings, usage)
    kepler, kepler_notes = (None, [])
    if settings.share == "kepler":
        kepler, kepler_notes = _container_readings(containers, ran, COUNTER, (KEPLER_SOURCE,))
    gpu_busy, gpu_notes = _container_readings(containers, ran, GPU_BUSY_SECONDS, GPU_BUSY_SOURCES)
    engine = _Engine(ran, machines, settings)
    engine.notes += notes + usage_notes + kepler_notes + gpu_notes
    engine.notes.append(_diagnostic("share", None, settings.share))
    by_node: dict[str, list[_Series]] = {}
    for one in series:
        by_node.setdefault(one.host_node, []).append(one)
    chunks = [
        _Chunk(node, by_node.get(node, []), usage, kepler, EVERYTHING, gpu_busy)
        for node in sorted(set(by_node) | set(ran.by_node))
    ]
    for chunk in chunks:
        engine.gather_skew(chunk)
    engine.finish_skew()
    # The fit pass's cuts are kept for the split pass while their segments total at most KEPT_CUT_POINTS;
    # the other nodes' cuts are made again, so memory stays bounded on large inputs.
    kept: dict[str, list[_Cut]] = {}
    points = 0

    def fit_pass(chunk: _Chunk) -> tuple[list[_Cut], dict[str, np.ndarray], _NodeIdle]:
        cuts = engine.cuts(chunk)
        grams = engine.gather(chunk, cuts)
        return cuts, grams, engine.node_idle(chunk.node)

    for chunk, (cuts, grams, done) in zip(chunks, _in_order(fit_pass, chunks, workers), strict=True):
        engine.add_grams(grams)
        engine.finish_node(done)
        size = sum(cut.grid_s.size for cut in cuts)
        if points + size <= KEPT_CUT_POINTS:
            kept[chunk.node] = cuts
            points += size
    engine.finish_statistics()

    def split_pass(chunk: _Chunk) -> _Split:
        cuts = kept.pop(chunk.node, None)
        return engine.attribute(chunk, engine.cuts(chunk) if cuts is None else cuts)

    for split in _in_order(split_pass, chunks, workers):
        engine.take(split)
    return engine.result()


# ---------------------------------------------------------------------------------------------------------
# Streaming a trace dataset node by node and day by day


def _day_chunks(
    node: str,
    tasks: _Tasks,
    power: ds.Dataset,
    containers: ds.Dataset | None,
    settings: _Settings,
    margin_us: int,
) -> Iterator[_Chunk]:
    """The node's readings day by day: each day's readings plus a margin and the whole of every task
    starting that day, emitting only that day's results."""
    from datasets.traces import PARTITION_COLUMN

    at_node = pc.field("host_node") == node
    bounds = power.to_table(columns=["timestamp"], filter=at_node)["timestamp"]
    rows = tasks.by_node.get(node, np.zeros(0, dtype=np.int64))
    instants = [tasks.start_us[rows], tasks.end_us[rows]]
    if len(bounds):
        extremes = pc.min_max(bounds)
        instants.append(np.array([extremes["min"].value, extremes["max"].value], dtype=np.int64))
    everything = np.concatenate(instants)
    if everything.size == 0:
        return
    first_day, last_day = int(everything.min()) // DAY_US, int(everything.max()) // DAY_US
    for day in range(first_day, last_day + 1):
        emit = (day * DAY_US, (day + 1) * DAY_US)
        starting = rows[(tasks.start_us[rows] >= emit[0]) & (tasks.start_us[rows] < emit[1])]
        latest = int((tasks.end_us[starting] + tasks.resolution_us[starting]).max()) if starting.size else 0
        load = (emit[0] - margin_us, max(emit[1], latest) + margin_us)
        dates = [
            datetime.fromtimestamp(d * 86_400, UTC).strftime("%Y-%m-%d")
            for d in range(load[0] // DAY_US, (load[1] - 1) // DAY_US + 1)
        ]
        in_time = (
            pc.field(PARTITION_COLUMN).isin(dates)
            & (pc.field("timestamp") >= pa.scalar(load[0], UTC_TIMESTAMP))
            & (pc.field("timestamp") < pa.scalar(load[1], UTC_TIMESTAMP))
        )
        samples = power.to_table(filter=at_node & in_time)
        series, _ = _device_series(_without_partition(samples, "power_samples"), emit)
        usage = kepler = gpu_busy = None
        if containers is not None:
            reaching = rows[
                (tasks.end_us[rows] + tasks.resolution_us[rows] >= load[0])
                & (tasks.start_us[rows] <= load[1])
            ]
            uids = [uid for uid in tasks.pod_uid[reaching] if uid is not None]
            mine = at_node | pc.field("pod_uid").isin(uids)
            table = _without_partition(containers.to_table(filter=mine & in_time), "container_samples")
            if settings.share == "usage":
                usage, _ = _container_readings(table, tasks, CPU_SECONDS, USAGE_SOURCES, emit)
            elif settings.share == "kepler":
                kepler, _ = _container_readings(table, tasks, COUNTER, (KEPLER_SOURCE,), emit)
            gpu_busy, _ = _container_readings(table, tasks, GPU_BUSY_SECONDS, GPU_BUSY_SOURCES, emit)
        if series or starting.size:
            yield _Chunk(node, series, usage, kepler, emit, gpu_busy)


def _node_datasets(dataset: ds.Dataset, folder: Path):
    """node -> the part of `dataset` that may hold the node's rows: the files whose row-group statistics say
    they hold that node only (a file per node and day, as agents spool them), plus every file holding more
    than one. A node's reads then open its own files, not every file of every day."""
    import pyarrow.dataset as ds

    own: dict[str, list[str]] = {}
    shared: list[str] = []
    for fragment in dataset.get_fragments():
        fragment.ensure_complete_metadata()
        nodes = set()
        for group in fragment.row_groups:
            statistics = (group.statistics or {}).get("host_node") or {}
            nodes.add(statistics.get("min") if statistics.get("min") == statistics.get("max") else None)
        if len(nodes) == 1 and None not in nodes:
            own.setdefault(nodes.pop(), []).append(fragment.path)
        else:
            shared.append(fragment.path)
    if not own:
        return lambda node: dataset

    def of(node: str) -> ds.Dataset:
        return ds.dataset(
            own.get(node, []) + shared,
            schema=dataset.schema,
            format=dataset.format,
            partitioning="hive",
            partition_base_dir=str(folder),
        )

    return of


def _without_partition(table: pa.Table, name: str) -> pa.Table:
    from datasets.traces import PARTITION_COLUMN

    if PARTITION_COLUMN in table.column_names:
        table = table.drop_columns([PARTITION_COLUMN])
    return conform(name, table, keep_dictionaries=True)


def attribute_dataset(
    root: str | Path,
    out_root: str | Path | None = None,
    options: AttributionOptions | None = None,
    *,
    margin_seconds: float = STREAM_MARGIN_SECONDS,
    **changes,
) -> Attribution:
    """`attribute` over a hive-partitioned trace dataset (datasets/traces.py), holding one node-day at a time.

    Pass 1 reads each node day by day (with `margin_seconds` of readings either side, and the whole of every
    task that starts that day) and keeps only the idle-power samples of that node and the small normal
    equations of the fit; pass 2 reads the same chunks again and attributes them with the pooled fit. The
    result equals the in-memory `attribute` on the same tables up to float rounding (the clock-skew pass,
    when asked, reads them once more). Balance windows must divide a day. With `out_root`, task_energy and
    node_energy_balance are also written there. options and `changes` as for `attribute`.
    """
    import pyarrow.dataset as ds

    from datasets.traces import read_table, write_dataset

    root = Path(root)
    options = replace(options or AttributionOptions(), **changes)
    workers = options.worker_threads
    settings = _settings(options)
    if DAY_US % settings.window_us:
        raise ValueError(
            f"window_seconds {options.window_seconds} does not divide a day: streaming cuts at midnight"
        )
    machines = read_table(root, "machines") if (root / "machines").exists() else None
    ran = _ran_tasks(read_table(root, "tasks"), machines)
    # String columns stay dictionary-encoded as Parquet stores them: decoding every row costs more than
    # attributing it, and the engine reads them by runs.
    encoded = ds.ParquetFileFormat(
        read_options=ds.ParquetReadOptions(
            dictionary_columns={
                field.name for field in schema_of("power_samples") if pa.types.is_string(field.type)
            }
        )
    )
    power = ds.dataset(
        root / "power_samples", format=encoded, partitioning="hive", exclude_invalid_files=True
    )
    containers = None
    if (root / "container_samples").exists():
        containers = ds.dataset(
            root / "container_samples", format="parquet", partitioning="hive", exclude_invalid_files=True
        )
    if not settings.share:
        has_usage = containers is not None and containers.count_rows(
            filter=(pc.field("value_kind") == CPU_SECONDS) & pc.field("source").isin(list(USAGE_SOURCES))
        )
        settings = _Settings(**{**settings.__dict__, "share": "usage" if has_usage else "requests"})
    engine = _Engine(ran, machines, settings)
    engine.notes.append(_diagnostic("share", None, settings.share))
    nodes = sorted(
        set(pc.unique(power.to_table(columns=["host_node"])["host_node"]).to_pylist()) | set(ran.by_node)
    )
    margin_us = round(margin_seconds * US_PER_SECOND)

    power_of = _node_datasets(power, root / "power_samples")

    def chunks(node: str) -> Iterator[_Chunk]:
        return _day_chunks(node, ran, power_of(node), containers, settings, margin_us)

    if settings.skew_tolerance_seconds > 0:
        for node in nodes:
            for chunk in chunks(node):
                engine.gather_skew(chunk)
        engine.finish_skew()

    def fit_pass(node: str) -> tuple[list[dict[str, np.ndarray]], _NodeIdle]:
        parts = [engine.gather(chunk, engine.cuts(chunk)) for chunk in chunks(node)]
        return parts, engine.node_idle(node)

    for parts, done in _in_order(fit_pass, nodes, workers):
        for grams in parts:
            engine.add_grams(grams)
        engine.finish_node(done)
    engine.finish_statistics()

    def split_pass(node: str) -> list[_Split]:
        return [engine.attribute(chunk, engine.cuts(chunk)) for chunk in chunks(node)]

    for splits in _in_order(split_pass, nodes, workers):
        for split in splits:
            engine.take(split)
    result = engine.result()
    if out_root is not None:
        write_dataset(
            out_root, {"task_energy": result.task_energy, "node_energy_balance": result.node_energy_balance}
        )
    return result
