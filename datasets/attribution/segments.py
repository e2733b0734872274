"""Stage 3, segments and their energies: each series cut at readings, window boundaries and piece edges.

Segments. The grid is the union of the reading times, the window boundaries m * window_seconds and every
piece and idle-window edge, inside [t_0, t_n]. A segment s of interval j gets e_s = e_j * m_s dt_s /
sum_{s' in j} m_s' dt_s' with the modelled power m_s = P_idle + W_s (CPU zones and GPUs split by busy time;
W_s below) or P_idle + w_h * N_s (other GPU/FPGA, w_h the mean dynamic power per holder); without a model
e_s = e_j * dt_s / dt_j, or the trapezoid of a gauge's linear power.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from datasets import kernels
from datasets.attribution.common import _cumulative, _holding
from datasets.attribution.constants import (
    EVERYTHING,
    GAP_FACTOR,
    TRAILING_AVERAGE_SECONDS,
    US_PER_SECOND,
)
from datasets.attribution.pieces import _Pieces
from datasets.attribution.series import _Series, unwrap_counter


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
    equal_lo: np.ndarray
    equal_hi: np.ndarray
    quiet: np.ndarray  # the segment's reading interval meets no task's wide window
    bounds_us: np.ndarray
    bounds_s: np.ndarray

    @property
    def origin_us(self) -> int:
        return int(self.series.times_us[0])


def window_bounds_us(first_us: int, last_us: int, window_us: int) -> np.ndarray:
    """The balance windows' boundaries strictly inside a series' readings (multiples of the window, UTC)."""
    bounds_us = np.arange(-(-first_us // window_us) * window_us, last_us, window_us, dtype=np.int64)
    return bounds_us[bounds_us > first_us]


def covered_intervals(times_s: np.ndarray) -> tuple[np.ndarray, float]:
    """Which reading intervals are no gap (at most GAP_FACTOR times the median interval), and the median."""
    reading_s = np.diff(times_s)
    median_s = float(np.median(reading_s))
    return reading_s <= GAP_FACTOR * median_s, median_s


def _quiet(
    grid_s: np.ndarray,
    interval: np.ndarray,
    intervals: int,
    start_s: np.ndarray,
    end_s: np.ndarray,
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
    return (
        interval_j,
        flags,
        np.diff(kernels.interpolate(grid_s, reading, times_s, _cumulative(interval_j))),
    )


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

    bounds_us = window_bounds_us(first_us, last_us, window_us)
    bounds_s = (bounds_us - first_us) / US_PER_SECOND
    windows = pieces.windows
    idle_start_s = (windows.idle_start - first_us) / US_PER_SECOND
    idle_end_s = (windows.idle_end - first_us) / US_PER_SECOND
    distinct_us, where = pieces.edges
    grid_s, reading, position = kernels.merge_grid(times_s, bounds_s, seconds(distinct_us))
    segment_s = np.diff(grid_s)
    interval_j, flags, segment_j = _series_energy(series, times_s, grid_s, reading)
    interval = reading[:-1]
    idle_lo, idle_hi, main_lo, main_hi, equal_lo, equal_hi = (position[part] for part in where)
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
        covered=covered_intervals(times_s)[0],
        idle_start_s=idle_start_s,
        idle_end_s=idle_end_s,
        idle_lo=idle_lo,
        idle_hi=idle_hi,
        main_lo=main_lo,
        main_hi=main_hi,
        equal_lo=equal_lo,
        equal_hi=equal_hi,
        quiet=_quiet(
            grid_s,
            interval,
            times_s.size - 1,
            seconds(windows.wide_start),
            seconds(windows.wide_end),
        ),
        bounds_us=bounds_us,
        bounds_s=bounds_s,
    )


def _emitted(cut: _Cut, seconds: np.ndarray, emit: tuple[int, int]) -> np.ndarray:
    """Which instants (seconds after the series' first reading) fall in the half-open range `emit` (us)."""
    return _emitted_times(cut.origin_us, seconds, emit)


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


def _emitted_times(origin_us: int, seconds: np.ndarray, emit: tuple[int, int]) -> np.ndarray:
    if emit == EVERYTHING:
        return np.ones(seconds.size, bool)
    at_us = origin_us + seconds * US_PER_SECOND
    return (at_us >= emit[0]) & (at_us < emit[1])
