"""The fast mode's compiled passes (fast.py): one series' readings, balance windows and piece edges merged in
a sweep that splits each segment's energy as it goes, keeping only what the task rows and the balance need:
the prices' prefix sums at the piece edges, the covered seconds there, and each window's measured and
attributed joules. No per-segment array is made.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from datasets.kernels.loops import _add


@njit(cache=True, nogil=True)
def _step(
    running: np.ndarray, carry: np.ndarray, count: np.ndarray, steps: np.ndarray, holding: np.ndarray, k: int
):
    """Apply edge k's changes: sums with compensation, exactly 0 where no piece holds (no crumbs of ended
    pieces priced as if they drew)."""
    for r in range(running.size):
        count[r] += holding[k, r]
        running[r], carry[r] = _add(running[r], carry[r], steps[k, r])
        if count[r] <= 0:
            running[r] = carry[r] = 0.0


@njit(cache=True, nogil=True)
def modelled_sums(
    times_s: np.ndarray, edges_s: np.ndarray, steps: np.ndarray, holding: np.ndarray, idle_watts: float
) -> np.ndarray:
    """Per reading interval, the integral of the modelled power (idle + the weighted rates drawing) over it:
    split.py's model, to which a segment's share of its interval's energy is proportional."""
    n_times, n_edges = times_s.size, edges_s.size
    model_sum = np.zeros(n_times - 1)
    running, carry, count = np.zeros(1), np.zeros(1), np.zeros(1, np.int64)
    previous = times_s[0]
    last = i = k = 0
    while i < n_times or k < n_edges:
        x = times_s[i] if i < n_times else np.inf
        if k < n_edges and edges_s[k] < x:
            x = edges_s[k]
        if x > previous:
            model_sum[min(last, n_times - 2)] += (idle_watts + running[0] + carry[0]) * (x - previous)
            previous = x
        while i < n_times and times_s[i] == x:
            last = i
            i += 1
        while k < n_edges and edges_s[k] == x:
            _step(running, carry, count, steps[:, :1], holding[:, :1], k)
            k += 1
    return model_sum


@njit(cache=True, nogil=True)
def sweep(
    times_s: np.ndarray,
    interval_j: np.ndarray,
    watts: np.ndarray,
    trapezoid: bool,
    model_sum: np.ndarray,
    covered: np.ndarray,
    bounds_s: np.ndarray,
    edges_s: np.ndarray,
    steps: np.ndarray,
    holding: np.ndarray,
    idle_watts: float,
    idle_floor: float,
):
    """Segments between the sorted reading times, window bounds and piece edges (inside [t_0, t_n]). A
    segment gets its interval's energy in proportion to the modelled power x dt where `model_sum` (from
    `modelled_sums`, empty: no model) is positive, else e_j dt_s / dt_j (a trapezoid gauge: its own linear
    power); idle min(e_s, i dt_s), dynamic the rest, priced per unit of the main pieces' weighted rate
    drawing (else per unit of the equal pieces' presence) and idle per unit of idle weight (at least
    `idle_floor`). `steps[e]`: what starts minus what ends at edge e of (weighted rate, presence, idle
    weight); `holding[e]`: the same in counts of pieces.

    Returns (prefix, covered_at, measured, attributed): per edge the compensated prefix sums (high, low) of
    the three prices and the covered seconds before it; per window the measured and attributed joules."""
    n_times, n_bounds, n_edges = times_s.size, bounds_s.size, edges_s.size
    prefix = np.zeros((n_edges, 6))
    covered_at = np.zeros(n_edges)
    measured = np.zeros(n_bounds + 1)
    attributed = np.zeros(n_bounds + 1)
    sums = np.zeros(6)
    price = np.zeros(3)
    running, carry, count = np.zeros(3), np.zeros(3), np.zeros(3, np.int64)
    floor_watts = max(idle_watts, 0.0)
    modelled = model_sum.size > 0
    covered_s = 0.0
    previous = times_s[0]
    window = last = i = j = k = 0
    while i < n_times or j < n_bounds or k < n_edges:
        x = times_s[i] if i < n_times else np.inf
        if j < n_bounds and bounds_s[j] < x:
            x = bounds_s[j]
        if k < n_edges and edges_s[k] < x:
            x = edges_s[k]
        dt = x - previous
        if dt > 0:
            reading = min(last, n_times - 2)
            span = times_s[reading + 1] - times_s[reading]
            drawing = running[0] + carry[0]
            if modelled and model_sum[reading] > 0:
                energy = interval_j[reading] * ((idle_watts + drawing) * dt) / model_sum[reading]
            elif trapezoid:
                a = (previous - times_s[reading]) / span
                b = (x - times_s[reading]) / span
                step = watts[reading + 1] - watts[reading]
                energy = 0.5 * ((watts[reading] + a * step) + (watts[reading] + b * step)) * dt
            else:
                energy = interval_j[reading] * dt / span
            idle = min(energy, floor_watts * dt)
            dynamic = energy - idle
            sharing = running[1] + carry[1]
            weight = running[2] + carry[2]
            price[0] = dynamic / drawing if drawing > 0 else 0.0
            price[1] = dynamic / sharing if drawing <= 0 and sharing > 0 else 0.0
            price[2] = idle / max(idle_floor, weight) if weight > 0 else 0.0
            measured[window] += energy
            attributed[window] += price[0] * drawing + price[1] * sharing + price[2] * weight
            for r in range(3):
                sums[2 * r], sums[2 * r + 1] = _add(sums[2 * r], sums[2 * r + 1], price[r])
            if covered[reading]:
                covered_s += dt
            previous = x
        while i < n_times and times_s[i] == x:
            last = i
            i += 1
        while j < n_bounds and bounds_s[j] == x:
            window += 1
            j += 1
        while k < n_edges and edges_s[k] == x:
            for r in range(6):
                prefix[k, r] = sums[r]
            covered_at[k] = covered_s
            _step(running, carry, count, steps, holding, k)
            k += 1
    return prefix, covered_at, measured, attributed
