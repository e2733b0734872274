"""Stage 2, pieces: what each task draws on a device, as pieces of an amount over a time range.

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
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np

from datasets.attribution.constants import (
    BASIS_EQUAL,
    BASIS_KEPLER,
    BASIS_NONE,
    BASIS_REQUESTS,
    BASIS_USAGE,
    FIT_BASES,
    MICROCORES_PER_CORE,
    MIN_RAMP_RESOLUTION_US,
    RAMP_STEPS,
    US_PER_SECOND,
)
from datasets.attribution.tasks import _Readings, _Tasks, _Windows


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
    def main_rate(self) -> np.ndarray:
        """Per main piece, its amount per second of its own length (0 for a piece of no length)."""
        length_s = (self.end_us - self.start_us) / US_PER_SECOND
        return np.divide(self.amount, length_s, out=np.zeros(length_s.size), where=length_s > 0)

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
    refined_start, refined_end = (
        windows.idle_start.astype(float),
        windows.idle_end.astype(float),
    )
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
            has,
            BASIS_KEPLER if kepler_kind else BASIS_USAGE,
            BASIS_NONE if kepler_kind else basis,
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
