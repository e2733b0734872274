"""Stage 5, the split: each segment's energy among the tasks running in it.

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

Zones read in one agent step share their segments: what depends only on the segments, the pieces and the
kind is computed once per grid and kind (`grid_shares`) and handed to each zone's `split_series`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from datasets import kernels
from datasets.attribution.common import _cumulative, _holding, _Prefix, _range_max, _running, _Settings
from datasets.attribution.constants import (
    ACCELERATOR_IDS,
    BASIS_EQUAL,
    BASIS_REQUESTS,
    MIN_RATE,
    US_PER_SECOND,
)
from datasets.attribution.fit import _Idle, _Model
from datasets.attribution.pieces import _Pieces
from datasets.attribution.segments import _Cut, _spread
from datasets.attribution.tasks import _Tasks

EDGE_SEGMENTS = ("first_seg", "last_seg", "start_edge_seg", "end_edge_seg")


@dataclass(frozen=True)
class _Draws:
    """What the pieces draw per segment: main pieces at their (fitted) weighted rates, equal pieces by
    presence; `main`/`shared` say where anyone draws (counted in integers, not from float sums)."""

    weighted_rate: np.ndarray
    drawing: np.ndarray
    main: np.ndarray
    presence: np.ndarray
    sharing: np.ndarray
    shared: np.ndarray


def _draws(cut: _Cut, model: _Model | None, kepler: bool) -> _Draws:
    pieces, points = cut.pieces, cut.grid_s.size
    weight = np.ones(pieces.column.size) if model is None or kepler else model.weights[pieces.column]
    weighted_rate = weight * cut.pieces.main_rate
    # Rates below a nano-unit per second (rounding crumbs of counters) draw nothing: dividing by them
    # overflows.
    weighted_rate = np.where(weighted_rate > MIN_RATE, weighted_rate, 0.0)
    drawing = _running(cut.main_lo, cut.main_hi, weighted_rate, points)
    drawn = weighted_rate > 0
    main = _holding(cut.main_lo[drawn], cut.main_hi[drawn], points) > 0
    presence = pieces.equal_presence
    if pieces.weight is not None:  # holders of unmapped devices draw by their share of them
        presence = presence * pieces.weight[pieces.equal_task]
    sharing = _running(cut.equal_lo, cut.equal_hi, presence, points)
    present = presence > 0
    shared = _holding(cut.equal_lo[present], cut.equal_hi[present], points) > 0
    return _Draws(
        weighted_rate, np.where(main, drawing, 0.0), main, presence, np.where(shared, sharing, 0.0), shared
    )


@dataclass(frozen=True)
class _IdleShares:
    """Each task's weight in the idle energy, the rule's label, the weight running per segment and the
    floor under it (idle of capacity nobody reserved stays unattributed)."""

    weight: np.ndarray
    label: str
    running: np.ndarray
    floor: float


def idle_rule(
    pieces: _Pieces,
    accelerator: bool,
    tasks: _Tasks,
    settings: _Settings,
    capacity: tuple[float, str],
    kepler: bool,
) -> tuple[np.ndarray, str, float]:
    """Each piece's weight in the idle share, the rule's label, and the floor under the weight running
    (the exact and the fast mode both split idle power by it)."""
    floor = -np.inf
    if settings.idle_policy == "none" or kepler:
        weight, label = np.zeros(pieces.rows.size), "idle=none"
    elif accelerator and pieces.weight is not None:
        # Holders of unmapped devices pay the device's idle by their share of the node's devices; under
        # "requests" the idle of devices nobody holds stays unattributed (one device's worth at most).
        weight, label = pieces.weight, "idle=holders"
        if settings.idle_policy == "requests":
            label, floor = "idle=holders-by-request", 1.0
    elif accelerator or settings.idle_policy == "time":
        weight, label = np.ones(pieces.rows.size), "idle=holders" if accelerator else "idle=time"
    else:
        weight, label = tasks.request_microcores[pieces.rows], f"idle=requests/capacity={capacity[1]}"
        # Under "requests" the idle power of cores nobody reserved stays unattributed.
        floor = capacity[0]
    return weight, label, floor


def _idle_shares(
    cut: _Cut, tasks: _Tasks, settings: _Settings, capacity: tuple[float, str], kepler: bool
) -> _IdleShares:
    accelerator = cut.series.device_kind in ACCELERATOR_IDS
    weight, label, floor = idle_rule(cut.pieces, accelerator, tasks, settings, capacity, kepler)
    return _IdleShares(weight, label, _running(cut.idle_lo, cut.idle_hi, weight, cut.grid_s.size), floor)


@dataclass(frozen=True)
class _TaskFrame:
    """Where each task's window lies among the segments and readings, and what it covers."""

    duration_s: np.ndarray
    inside_s: np.ndarray
    coverage: np.ndarray
    samples: np.ndarray
    outside: np.ndarray
    first_seg: np.ndarray
    last_seg: np.ndarray
    has_window: np.ndarray
    resolution_s: np.ndarray
    follows_window: np.ndarray
    start_edge_seg: np.ndarray
    end_edge_seg: np.ndarray
    first_interval: np.ndarray
    past_interval: np.ndarray


def _task_frame(cut: _Cut, tasks: _Tasks, covered: np.ndarray) -> _TaskFrame:
    times_s, readings, segments = cut.times_s, cut.times_s.size, cut.segment_s.size
    duration_s = cut.idle_end_s - cut.idle_start_s
    covered_c = _cumulative(cut.segment_s * covered)
    at_start = np.searchsorted(times_s, cut.idle_start_s, side="right") - 1
    start_interval = np.clip(at_start, 0, readings - 2)
    point_covered = (at_start >= 0) & (at_start < readings - 1) & cut.covered[start_interval]
    past_reading = np.searchsorted(times_s, cut.idle_end_s, side="left")
    inside_s = cut.grid_s[cut.idle_hi] - cut.grid_s[cut.idle_lo]
    first_seg = np.clip(cut.idle_lo, 0, segments - 1)
    last_seg = np.clip(cut.idle_hi - 1, 0, segments - 1)
    resolution_s = tasks.resolution_us[cut.pieces.rows] / US_PER_SECOND
    edge_segs = []
    for edge_s, side in (
        (cut.idle_start_s + resolution_s / 2, "right"),
        (cut.idle_end_s - resolution_s / 2, "left"),
    ):
        at = np.searchsorted(cut.grid_s, np.clip(edge_s, 0.0, times_s[-1]), side=side) - (side == "right")
        edge_segs.append(np.clip(at, first_seg, last_seg))
    first_interval = np.clip(at_start, 0, readings - 1)
    covered_part = np.divide(
        covered_c[cut.idle_hi] - covered_c[cut.idle_lo],
        duration_s,
        out=point_covered * 1.0,
        where=duration_s > 0,
    )
    return _TaskFrame(
        duration_s=duration_s,
        inside_s=inside_s,
        coverage=np.minimum(covered_part, 1.0),
        samples=np.maximum(past_reading - (at_start + 1), 0),
        outside=(
            (inside_s <= 0)
            & ((duration_s > 0) | ~point_covered)
            & ((cut.idle_end_s <= 0) | (cut.idle_start_s >= times_s[-1]))
        ),
        first_seg=first_seg,
        last_seg=last_seg,
        has_window=cut.idle_hi > cut.idle_lo,
        resolution_s=resolution_s,
        follows_window=np.isin(cut.pieces.basis, (BASIS_REQUESTS, BASIS_EQUAL)),
        start_edge_seg=edge_segs[0],
        end_edge_seg=edge_segs[1],
        first_interval=first_interval,
        past_interval=np.maximum(np.clip(past_reading, 0, readings - 1), first_interval),
    )


@dataclass(frozen=True)
class _EdgeHits:
    """The main and equal pieces holding each task's segment at one of its edges, with those segments."""

    main_hit: np.ndarray
    main_seg: np.ndarray
    main_task: np.ndarray
    equal_hit: np.ndarray
    equal_seg: np.ndarray
    equal_task: np.ndarray


def _edge_hits(cut: _Cut, seg: np.ndarray) -> _EdgeHits:
    pieces = cut.pieces
    main_seg, equal_seg = seg[pieces.task], seg[pieces.equal_task]
    main_hit = (cut.main_lo <= main_seg) & (cut.main_hi > main_seg)
    equal_hit = (cut.equal_lo <= equal_seg) & (cut.equal_hi > equal_seg)
    return _EdgeHits(
        main_hit,
        main_seg[main_hit],
        pieces.task[main_hit],
        equal_hit,
        equal_seg[equal_hit],
        pieces.equal_task[equal_hit],
    )


@dataclass(frozen=True)
class _GridShares:
    """What depends only on the segments, the pieces and the device kind: shared by the zones of a node
    read in one agent step (computed from the first of them)."""

    draws: _Draws
    idle: _IdleShares
    covered: np.ndarray
    window_edges: np.ndarray
    frame: _TaskFrame
    hits: dict[str, _EdgeHits]
    gap_seconds_c: np.ndarray
    holders: np.ndarray


def grid_shares(
    cut: _Cut,
    tasks: _Tasks,
    model: _Model | None,
    settings: _Settings,
    capacity: tuple[float, str],
    kepler: bool,
) -> _GridShares:
    covered = cut.covered[cut.interval]
    frame = _task_frame(cut, tasks, covered)
    whole = cut.pieces.equal_presence >= 1
    points = cut.grid_s.size
    return _GridShares(
        draws=_draws(cut, model, kepler),
        idle=_idle_shares(cut, tasks, settings, capacity, kepler),
        covered=covered,
        # Every share is summed per balance window, so the task rows add up to what the balance attributes.
        window_edges=np.concatenate([[0], np.searchsorted(cut.grid_s, cut.bounds_s), [points - 1]]),
        frame=frame,
        hits={name: _edge_hits(cut, getattr(frame, name)) for name in EDGE_SEGMENTS},
        gap_seconds_c=_cumulative(cut.segment_s * ~covered),
        holders=_range_max(
            _holding(cut.equal_lo[whole], cut.equal_hi[whole], points), cut.equal_lo, cut.equal_hi
        ),
    )


@dataclass(frozen=True)
class _SeriesSplit:
    """One series' energy split among its tasks: the segments' energies and prices, and each task's
    joules. The uncertainty terms (uncertainty.py) and the rows (rows.py) read it."""

    cut: _Cut
    grid: _GridShares
    count: int
    kepler: bool
    by_holders: bool
    modelled: bool
    holder_w: float
    segment_j: np.ndarray
    dynamic_j: np.ndarray
    prices: np.ndarray
    per_second: np.ndarray
    main_c: _Prefix
    equal_c: _Prefix
    spread_c: np.ndarray
    gaps: np.ndarray
    interval_dynamic: np.ndarray
    piece_j: np.ndarray
    dynamic_joules: np.ndarray
    idle_joules: np.ndarray
    energy_joules: np.ndarray
    attributed_joules: np.ndarray

    @property
    def price(self) -> np.ndarray:
        return self.prices[:, 0]

    @property
    def equal_price(self) -> np.ndarray:
        return self.prices[:, 1]

    @property
    def idle_price(self) -> np.ndarray:
        return self.prices[:, 2]

    def received(self, sums: tuple[np.ndarray, ...]) -> np.ndarray:
        """Joules each task got, from the prefix sums of the main, equal and idle prices over some segments."""
        main_c, equal_c, idle_c = sums
        cut, draws, pieces = self.cut, self.grid.draws, self.cut.pieces
        return (
            np.bincount(
                pieces.task, draws.weighted_rate * (main_c[cut.main_hi] - main_c[cut.main_lo]), self.count
            )
            + np.bincount(
                pieces.equal_task,
                draws.presence * (equal_c[cut.equal_hi] - equal_c[cut.equal_lo]),
                self.count,
            )
            + self.grid.idle.weight * (idle_c[cut.idle_hi] - idle_c[cut.idle_lo])
        )

    def dynamic_in(self, name: str) -> np.ndarray:
        """Joules of dynamic energy each task got in its segment `name` (EDGE_SEGMENTS)."""
        hit, draws = self.grid.hits[name], self.grid.draws
        return np.bincount(
            hit.main_task, draws.weighted_rate[hit.main_hit] * self.price[hit.main_seg], self.count
        ) + np.bincount(
            hit.equal_task, draws.presence[hit.equal_hit] * self.equal_price[hit.equal_seg], self.count
        )

    def modelled_in(self, name: str) -> np.ndarray:
        """Watts the model gives each task in its segment `name`."""
        hit, draws = self.grid.hits[name], self.grid.draws
        main_w = draws.weighted_rate if self.modelled else np.zeros(draws.weighted_rate.size)
        return np.bincount(hit.main_task, main_w[hit.main_hit], self.count) + np.bincount(
            hit.equal_task, self.holder_w * draws.presence[hit.equal_hit], self.count
        )


def _model_watts(cut: _Cut, grid: _GridShares, model: _Model | None, idle: _Idle, kepler: bool):
    """(modelled power per segment or None, mean dynamic watts per holder, split by holders): within a
    reading interval the energy follows the modelled power, idle plus what the pieces draw at the fitted
    watts per unit, or (GPU/FPGA without busy-time counters) the device's mean dynamic power per holder."""
    draws = grid.draws
    by_holders = cut.series.device_kind in ACCELERATOR_IDS and cut.pieces.task.size == 0
    if by_holders and draws.shared.any():
        uniform_dynamic = cut.segment_j - np.minimum(cut.segment_j, max(idle.watts, 0.0) * cut.segment_s)
        holder_w = uniform_dynamic[draws.shared].sum() / (draws.sharing * cut.segment_s).sum()
        return (idle.watts + holder_w * draws.sharing if holder_w > 0 else None), holder_w, by_holders
    if model is not None and not kepler and model.common_watts > 0 and draws.main.any():
        return idle.watts + draws.drawing, 0.0, by_holders
    return None, 0.0, by_holders


def split_series(
    cut: _Cut, grid: _GridShares, model: _Model | None, idle: _Idle, kind_fraction: np.ndarray | None
) -> _SeriesSplit:
    """The series' segment energies, their prices per unit of what each task draws, and each task's joules
    (summed per balance window as they are given)."""
    kepler = kind_fraction is not None
    pieces, count, draws = cut.pieces, cut.pieces.rows.size, grid.draws
    model_w, holder_w, by_holders = _model_watts(cut, grid, model, idle, kepler)
    segment_j = _spread(cut, model_w) if model_w is not None else cut.segment_j
    _, dynamic_j, prices, per_second, prefix, spread_c, gaps, interval_dynamic = kernels.prices(
        np.ascontiguousarray(segment_j, dtype=float),
        cut.segment_s,
        float(idle.watts),
        draws.drawing,
        draws.main,
        draws.sharing,
        draws.shared,
        grid.idle.running,
        float(grid.idle.floor),
        kind_fraction if kepler else np.zeros(0),
        kepler,
        grid.covered,
        cut.interval,
        cut.interval_j.size,
    )
    main_c, equal_c, idle_c = (_Prefix(prefix[:, 2 * i], prefix[:, 2 * i + 1]) for i in range(3))
    attributed_joules = np.zeros(grid.window_edges.size - 1)

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
            grid.window_edges,
            count,
            attributed_joules,
        )

    main_joules, piece_j = shares(pieces.task, cut.main_lo, cut.main_hi, draws.weighted_rate, main_c)
    equal_joules, _ = shares(pieces.equal_task, cut.equal_lo, cut.equal_hi, draws.presence, equal_c)
    idle_joules, _ = shares(np.arange(count), cut.idle_lo, cut.idle_hi, grid.idle.weight, idle_c)
    dynamic_joules = main_joules + equal_joules
    return _SeriesSplit(
        cut=cut,
        grid=grid,
        count=count,
        kepler=kepler,
        by_holders=by_holders,
        modelled=model_w is not None,
        holder_w=holder_w,
        segment_j=segment_j,
        dynamic_j=dynamic_j,
        prices=prices,
        per_second=per_second,
        main_c=main_c,
        equal_c=equal_c,
        spread_c=spread_c,
        gaps=gaps,
        interval_dynamic=interval_dynamic,
        piece_j=piece_j,
        dynamic_joules=dynamic_joules,
        idle_joules=idle_joules,
        energy_joules=dynamic_joules + idle_joules,
        attributed_joules=attributed_joules,
    )


def peak_watts(split: _SeriesSplit) -> np.ndarray:
    """The highest attributed power of each task over a segment (dynamic plus idle)."""
    cut, draws, per_second = split.cut, split.grid.draws, split.per_second
    dynamic_peak = np.full(split.count, np.nan)
    kernels.group_fmax(
        dynamic_peak,
        cut.pieces.task,
        draws.weighted_rate * _range_max(per_second[0], cut.main_lo, cut.main_hi),
    )
    kernels.group_fmax(
        dynamic_peak,
        cut.pieces.equal_task,
        draws.presence * _range_max(per_second[1], cut.equal_lo, cut.equal_hi),
    )
    idle_peak = split.grid.idle.weight * _range_max(per_second[2], cut.idle_lo, cut.idle_hi)
    return np.where(
        np.isnan(dynamic_peak) & np.isnan(idle_peak),
        np.nan,
        np.nan_to_num(dynamic_peak) + np.nan_to_num(idle_peak),
    )
