"""Clock skew: each node's clock offset against Argo's, estimated from the changes of its package power
and of its running requested cores (docs/attribution.md, Clock skew).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from datasets.attribution.constants import (
    MICROCORES_PER_CORE,
    SKEW_STEPS_PER_SECOND,
    US_PER_SECOND,
)
from datasets.attribution.segments import _emitted_times, _interval_energy
from datasets.attribution.series import _Series
from datasets.attribution.tasks import _Tasks, _windows


@dataclass(frozen=True)
class _Skew:
    seconds: float
    applied: bool
    step_seconds: float

    def label(self) -> str:
        return f";skew={self.seconds:+.2f}s({'corrected' if self.applied else 'estimated'})"


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
    series: _Series,
    tasks: _Tasks,
    rows: np.ndarray,
    stats: _SkewStats,
    emit: tuple[int, int],
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
        stats.sums[:, index] += (
            a.size,
            a.sum(),
            b.sum(),
            (a * a).sum(),
            (b * b).sum(),
            (a * b).sum(),
        )


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
