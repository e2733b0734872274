"""Stage 4, the fitted model: per-series statistics, the idle power and the pooled watts-per-unit fit.

Idle power P_idle: ``idle_power_watts`` from configuration, else the duration-weighted median of e_s / dt_s
over the quiet segments (whose reading interval meets no task's wide window) if they last >= 30 s, else the
weighted 5th percentile of all segments. i_s = min(e_s, P_idle dt_s), d_s = e_s - i_s.

Fit (per device kind, all nodes pooled, every reading interval j a design row; GPUs with busy-time pieces
too): D_j = e_j - P_idle dt_j ~= sum_c w_c X_jc, X_jc = the amount of the pieces of column c inside
interval j. w minimises sum_j (D_j - X_j w)^2 / dt_j + lambda |w - w_0|^2, w_0 = sum D / sum X, with
lambda = sigma^2 / (0.5 w_0)^2: sigma^2 = the residual variance of a nearly unregularised first solve (the
zones of one node count as one datum), so well-determined data are fitted exactly and a template with little
data stays near w_0. w is clipped to [0.25, 4] w_0. The relative residual
rho = sqrt((RSS - M) / sum_c w_c^2 G_cc) and each column's standard error feed the uncertainty;
M = sum_j var_j / dt_j is what a gauge's reading noise and unseen changes put in the residual (var_j below),
counted on their own.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from datasets import kernels
from datasets.attribution.constants import (
    EQUAL_SPLIT_RELATIVE_ERROR,
    FIT_BOUNDS,
    IDLE_FALLBACK_QUANTILE,
    IDLE_FALLBACK_RELATIVE_ERROR,
    MIN_IDLE_SECONDS,
    RIDGE_FLOOR,
    TEMPLATE_SPREAD,
)
from datasets.attribution.segments import _Cut, _emitted, _gauge_variance_parts


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
        for samples in (
            self.idle_watts,
            self.idle_seconds,
            self.all_watts,
            self.all_seconds,
            self.noise,
        ):
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
    cuts: list[_Cut],
    columns: int,
    stats: list[_SeriesStats],
    gram: np.ndarray,
    emit: tuple[int, int],
) -> None:
    """Add the reading intervals of cuts sharing one segment grid (zones of one kind read together) to the
    normal equations: rows D_j ~ sum_c w_c X_jc, weight 1 / dt_j, X built once for them all.

    A compiled sweep over the intervals (kernels.design_rows) keeps only the pieces running in each one, so a
    row costs the few columns present in it."""
    cut = cuts[0]
    design(
        [(one.series, one.times_s, one.interval_j) for one in cuts],
        _emitted(cut, cut.times_s[:-1], emit),
        (cut.grid_s[cut.main_lo], cut.grid_s[cut.main_hi], cut.main_lo),
        cut.pieces.main_rate,
        cut.pieces.column,
        columns,
        stats,
        gram,
    )


def design(
    zones: list[tuple],
    emitted: np.ndarray,
    pieces_s: tuple[np.ndarray, np.ndarray, np.ndarray],
    rate: np.ndarray,
    column: np.ndarray,
    columns: int,
    stats: list[_SeriesStats],
    gram: np.ndarray,
) -> None:
    """`_design` on arrays: zones (series, reading times in s, interval joules) read at the same times, the
    reading intervals that count, the main pieces' (start s, end s, sort key) on the zones' time axis,
    their rates and fit columns."""
    start_s, end_s, position = pieces_s
    fitted = (column >= 0) & (end_s > start_s)
    if not fitted.any():
        return
    order = np.flatnonzero(fitted)
    order = order[np.argsort(position[order], kind="stable")]
    moment_joules = np.zeros((len(zones), columns))
    moment_idle = np.zeros(columns)
    sums = np.zeros((len(zones), 7))
    gauge = [_gauge_variance_parts(series, times_s) for series, times_s, _ in zones]
    kernels.design_rows(
        zones[0][1],
        np.stack([interval_j for _, _, interval_j in zones]),
        np.stack([reading for reading, _ in gauge]),
        np.stack([unmeasured for _, unmeasured in gauge]),
        emitted,
        start_s[order],
        end_s[order],
        rate[order],
        column[order].astype(np.int64),
        columns,
        gram,
        moment_joules,
        moment_idle,
        sums,
    )
    for one, moment, (
        joules,
        seconds,
        squares,
        amount,
        rows,
        noise_unit,
        unmeasured,
    ) in zip(stats, moment_joules, sums, strict=True):
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
            np.ascontiguousarray(values, dtype=float),
            np.ascontiguousarray(weights, dtype=float),
            quantile,
        )
    )


def _idle_power(stats: _SeriesStats, configured: float | None) -> _Idle:
    """Idle power: configured, else the device's quiet time, else a low percentile of all its time."""
    if configured is not None:
        return _Idle(float(configured), "configured", 0.0)
    watts, seconds = (
        np.concatenate(stats.idle_watts),
        np.concatenate(stats.idle_seconds),
    )
    if seconds.sum() >= MIN_IDLE_SECONDS:
        median = _weighted_quantile(watts, seconds, 0.5)
        spread = _weighted_quantile(np.abs(watts - median), seconds, 0.5) * 1.4826
        readings = seconds.sum() / max(float(np.median(np.concatenate(stats.reading_seconds))), 1e-9)
        return _Idle(median, "median-idle-segments", spread / math.sqrt(max(readings, 1.0)))
    low = _weighted_quantile(
        np.concatenate(stats.all_watts),
        np.concatenate(stats.all_seconds),
        IDLE_FALLBACK_QUANTILE,
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
    gram: np.ndarray,
    parts: list[tuple[_SeriesStats, float, float]],
    columns: int,
    fitted: bool,
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
    weights = np.clip(
        np.linalg.solve(system, moment + ridge * common),
        *(common * b for b in FIT_BOUNDS),
    )
    relative = math.sqrt(deviations(weights) / max(weights**2 @ norms, 1e-300))
    standard_error = np.sqrt(variance * np.diag(np.linalg.inv(system)))
    per_column = np.sqrt(relative**2 + (standard_error / weights) ** 2)
    return _Model(weights, common, per_column, True), relative
