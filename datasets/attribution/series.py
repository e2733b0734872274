"""Stage 1, reading device series: readings -> one series per device, cleaned, with its reading rule.

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
Which rule a gauge gets is declared with its source in schemas.kinds.POWER_SOURCES; validation refuses a
source that is not there.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from datasets import kernels
from datasets.attribution.common import (
    _codes,
    _diagnostic,
    _in_order,
    _microseconds,
    _moment,
    _numpy,
    _values_at,
)
from datasets.attribution.constants import (
    COUNTER,
    EVERYTHING,
    MAX_DEVICE_POWER_WATTS,
    PARALLEL_SCAN_ROWS,
    RESET_POWER_FACTOR,
    SCAN_BLOCK_ROWS,
    SCAN_ROW_BY_ROW,
    TRAILING_AVERAGE_SECONDS,
)


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
        values,
        seconds,
        float(counter_max_joules or 0.0),
        float(max_power_watts),
        RESET_POWER_FACTOR,
    )
    return np.concatenate([[0.0], np.cumsum(energy)]), flags


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
        zip(
            names,
            _in_order(lambda name: _run_starts(table[name]), list(names), threads),
            strict=True,
        )
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
        keys = list(zip(*(_values_at(table[name], starts) for name in names), strict=True))
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


def _clean(
    times_us: np.ndarray,
    values: np.ndarray,
    where: str,
    what: str,
    emit: tuple[int, int],
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
        self.values = _values_at(self.column, self.starts[:-1])

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
            times_us[rows],
            values[rows],
            f"{host_node}/{device_kind}/{device_id}",
            what,
            emit,
        )
        if keep is not None:
            rows = _positions(rows)[keep]
        lost = {reason: count for reason, count in dropped.items() if count}
        if lost:
            detail = ", ".join(f"{count} {reason}" for reason, count in lost.items())
            notes.append(
                _diagnostic(
                    "readings_dropped",
                    float(sum(lost.values())),
                    detail,
                    (host_node, device_kind, device_id),
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
