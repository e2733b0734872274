"""Stage 6, the uncertainty of every task row: a bound from Argo's truncated times and a standard deviation
summed from its sources, each term a function of the series' split (split.py).

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
the highest average power of any row of that device kind (the best-known bound; engine.py).

The terms are added in a fixed order, so a result does not depend on which of them apply.
"""

from __future__ import annotations

import math

import numpy as np

from datasets import kernels
from datasets.attribution.common import _cumulative
from datasets.attribution.constants import (
    EQUAL_SPLIT_RELATIVE_ERROR,
    FLAG_RESET,
    SPLIT_CALIBRATION,
    TRAILING_AVERAGE_SECONDS,
    UNCERTAINTY_COVERAGE_FACTOR,
)
from datasets.attribution.fit import _Idle, _Model
from datasets.attribution.segments import _gauge_variance
from datasets.attribution.skew import _Skew
from datasets.attribution.split import _SeriesSplit, _TaskFrame


def uncertainty_joules(
    split: _SeriesSplit,
    model: _Model | None,
    spread_error: float,
    idle: _Idle,
    noise: float,
    skew: _Skew | None,
) -> np.ndarray:
    """u of each task row of the series (module doc)."""
    frame, rule = split.grid.frame, split.cut.series.rule
    terms: list[np.ndarray] = []  # added in this order, one by one (the sum's rounding is kept)
    if split.grid.idle.label in ("idle=time", "idle=holders"):
        shares = split.grid.idle
        terms.append(
            _neighbour_edges(frame, shares.weight, shares.running, split.idle_price, split.cut.segment_s)
        )
    if split.modelled or rule != "trapezoid":
        terms += _edge_sampling(split, spread_error)
    if rule != "counter":
        terms += _gauge_reading(split, noise)
    terms += _gaps_and_resets(split)
    if not split.kepler:
        terms += _split_and_idle_estimate(split, model, idle)
    outside_s = np.maximum(frame.duration_s - frame.inside_s, 0.0)
    inside_power = np.divide(
        split.energy_joules, frame.inside_s, out=np.zeros(split.count), where=frame.inside_s > 0
    )
    terms.append((outside_s * inside_power) ** 2)
    pieces = split.cut.pieces
    tail_j = np.bincount(pieces.task[pieces.tail], split.piece_j[pieces.tail], split.count)
    terms.append(tail_j**2 / 3.0)
    variance = np.zeros(split.count)
    for term in terms:
        variance += term
    return np.hypot(_timing_bound(split, skew), UNCERTAINTY_COVERAGE_FACTOR * np.sqrt(variance))


def _timing_bound(split: _SeriesSplit, skew: _Skew | None) -> np.ndarray:
    """Argo's truncation bounds each true edge within +-r/2 of the estimate: a bound, not a deviation. A
    task whose share follows its window draws its full power just inside the ramps at its edges."""
    frame, idle_weight = split.grid.frame, split.grid.idle.weight
    edge_power = np.zeros(split.count)
    for name in ("start_edge_seg", "end_edge_seg"):
        seg = getattr(frame, name)
        own = (
            np.where(frame.follows_window, split.dynamic_in(name), 0.0) + idle_weight * split.idle_price[seg]
        )
        edge_power += own / split.cut.segment_s[seg] * frame.has_window
    bound = frame.resolution_s / 2 * edge_power
    if skew is not None:
        bound += (skew.step_seconds / 2 if skew.applied else abs(skew.seconds)) * edge_power
    return bound


def _edge_sampling(split: _SeriesSplit, spread_error: float) -> list[np.ndarray]:
    """The part of an edge reading interval the model (or a uniform spread) placed inside the task."""
    cut, frame = split.cut, split.grid.frame
    interval_s = np.diff(cut.times_s)
    if split.modelled:
        beta = EQUAL_SPLIT_RELATIVE_ERROR if split.by_holders else spread_error
    else:
        beta = 1 / math.sqrt(3)
    terms = []
    for name in ("first_seg", "last_seg"):
        seg = getattr(frame, name)
        dynamic_seg = split.dynamic_in(name) * frame.has_window
        j = cut.interval[seg]
        lo = np.maximum(cut.idle_start_s, cut.times_s[j])
        hi = np.minimum(cut.idle_end_s, cut.times_s[j + 1])
        phi = np.clip((hi - lo) / interval_s[j], 0.0, 1.0)
        dynamic = split.dynamic_j[seg]
        fraction = np.divide(dynamic_seg, dynamic, out=np.zeros(split.count), where=dynamic > 0)
        terms.append((beta * (1.0 - phi) * fraction * split.interval_dynamic[j]) ** 2)
    return terms


def _gauge_reading(split: _SeriesSplit, noise: float) -> list[np.ndarray]:
    """Reading noise and unmeasured changes land in each interval's dynamic energy (idle is one estimate)
    and are shared as it is: a task alone in an interval takes all of that interval's error. And a gauge
    does not see between readings: at an edge, a reading that caught the task doubles its modelled power
    over the unmeasured part of the interval, one that missed it loses all of it."""
    cut, frame, draws, pieces = split.cut, split.grid.frame, split.grid.draws, split.cut.pieces
    shared = kernels.share_variance(
        np.concatenate([pieces.task, pieces.equal_task]),
        np.concatenate([cut.main_lo, cut.equal_lo]),
        np.concatenate([cut.main_hi, cut.equal_hi]),
        np.concatenate([draws.weighted_rate, draws.presence]),
        np.concatenate([np.zeros(pieces.task.size, np.int64), np.ones(pieces.equal_task.size, np.int64)]),
        split.prices,
        cut.interval,
        split.interval_dynamic,
        _gauge_variance(cut, noise),
        split.count,
    )
    terms = [shared]
    interval_s = np.diff(cut.times_s)
    window_s = TRAILING_AVERAGE_SECONDS["nvml"] if cut.series.rule == "trailing" else 0.0
    for name in ("first_seg", "last_seg"):
        j = cut.interval[getattr(frame, name)]
        overlap = np.minimum(cut.idle_end_s, cut.times_s[j + 1]) - np.maximum(
            cut.idle_start_s, cut.times_s[j]
        )
        unmeasured = np.maximum(interval_s[j] - window_s, 0.0) / interval_s[j]
        terms.append(
            (split.modelled_in(name) * np.maximum(overlap, 0.0) * unmeasured) ** 2 * frame.has_window
        )
    return terms


def _gaps_and_resets(split: _SeriesSplit) -> list[np.ndarray]:
    """The energy taken from gaps and from reset-estimated intervals, and in gaps how far the price strays
    from the model (there the model alone places the energy: a bias too)."""
    cut, draws, pieces = split.cut, split.grid.draws, split.cut.pieces
    gap_scale = 1.0 if cut.series.rule == "trapezoid" else 1.0 / math.sqrt(3.0)
    terms = [(gap_scale * split.received(split.gaps.T)) ** 2]
    if split.modelled and not cut.covered.all():
        model_c, gap_c = split.grid.gap_seconds_c, split.gaps[:, 0]
        gap_model_j = draws.weighted_rate * (model_c[cut.main_hi] - model_c[cut.main_lo])
        gap_given_j = draws.weighted_rate * (gap_c[cut.main_hi] - gap_c[cut.main_lo])
        terms.append(np.bincount(pieces.task, gap_given_j - gap_model_j, split.count) ** 2)
    if (cut.flags == FLAG_RESET).any():
        estimated = cut.flags[cut.interval] == FLAG_RESET
        prices = (split.price, split.equal_price, split.idle_price)
        terms.append(split.received(tuple(_cumulative(p * estimated) for p in prices)) ** 2)
    return terms


def _split_and_idle_estimate(split: _SeriesSplit, model: _Model | None, idle: _Idle) -> list[np.ndarray]:
    """How far a task's share moves if its power deviates from its template's by the fit's relative
    residual (2x calibrated), and the idle estimate's standard error over the task's idle seconds."""
    cut, draws, pieces, count = split.cut, split.grid.draws, split.cut.pieces, split.count
    squares_c, equal_squares_c, seconds_c, equal_seconds_c = split.spread_c.T
    main_spread = np.maximum(
        split.piece_j - draws.weighted_rate**2 * (squares_c[cut.main_hi] - squares_c[cut.main_lo]), 0.0
    )
    relative = (
        model.relative_error[pieces.column]
        if model is not None
        else np.full(pieces.column.size, EQUAL_SPLIT_RELATIVE_ERROR)
    )
    equal_spread = np.maximum(
        draws.presence * split.equal_c.between(cut.equal_lo, cut.equal_hi)
        - draws.presence**2 * (equal_squares_c[cut.equal_hi] - equal_squares_c[cut.equal_lo]),
        0.0,
    )
    shares = np.bincount(
        pieces.task, relative * main_spread, count
    ) + EQUAL_SPLIT_RELATIVE_ERROR * np.bincount(pieces.equal_task, equal_spread, count)
    split_term = 2.0 * (SPLIT_CALIBRATION * shares) ** 2
    dynamic_seconds = np.bincount(
        pieces.task, draws.weighted_rate * (seconds_c[cut.main_hi] - seconds_c[cut.main_lo]), count
    ) + np.bincount(
        pieces.equal_task,
        draws.presence * (equal_seconds_c[cut.equal_hi] - equal_seconds_c[cut.equal_lo]),
        count,
    )
    idle_seconds = np.divide(split.idle_joules, idle.watts, out=np.zeros(count), where=idle.watts > 0)
    return [split_term, (idle.standard_error_watts * (idle_seconds - dynamic_seconds)) ** 2]


def _neighbour_edges(
    frame: _TaskFrame,
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
        seg = getattr(frame, name)
        others = running[seg] - weight
        moved = np.divide(
            frame.resolution_s / 2 * unit_w[seg] * weight,
            others,
            out=np.zeros(weight.size),
            where=(others > 1e-9 * np.maximum(running[seg], 1e-300)) & frame.has_window,
        )
        total += np.bincount(seg, moved**2, segment_s.size)
        own += moved**2
    summed = _cumulative(total)
    seg_lo = frame.first_seg
    seg_hi = np.where(frame.has_window, frame.last_seg + 1, seg_lo)
    return weight**2 * np.maximum(summed[seg_hi] - summed[seg_lo] - own, 0.0)
