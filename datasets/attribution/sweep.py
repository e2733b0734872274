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
def _step(running: float, carry: float, count: int, step: float, holding: int) -> tuple[float, float, int]:
    """One running sum past an edge: the change added with compensation, exactly 0 where no piece holds (no
    crumbs of ended pieces priced as if they drew). Scalars, so the sweeps keep their sums in registers."""
    count += holding
    running, carry = _add(running, carry, step)
    if count <= 0:
        return 0.0, 0.0, count
    return running, carry, count


@njit(cache=True, nogil=True)
def modelled_sums(
    times_s: np.ndarray, edges_s: np.ndarray, steps: np.ndarray, holding: np.ndarray, idle_watts: float
) -> np.ndarray:
    """Per reading interval, the integral of the modelled power (idle + the weighted rates drawing) over it:
    split.py's model, to which a segment's share of its interval's energy is proportional."""
    n_times, n_edges = times_s.size, edges_s.size
    model_sum = np.zeros(n_times - 1)
    running, carry, count = 0.0, 0.0, 0
    previous = times_s[0]
    last = i = k = 0
    while i < n_times or k < n_edges:
        x = times_s[i] if i < n_times else np.inf
        if k < n_edges and edges_s[k] < x:
            x = edges_s[k]
        if x > previous:
            model_sum[min(last, n_times - 2)] += (idle_watts + running + carry) * (x - previous)
            previous = x
        while i < n_times and times_s[i] == x:
            last = i
            i += 1
        while k < n_edges and edges_s[k] == x:
            running, carry, count = _step(running, carry, count, steps[k, 0], holding[k, 0])
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
    # The three prices' compensated sums (high, low) and the running sums of (weighted rate, presence, idle
    # weight), as scalars.
    sum_rate = low_rate = sum_share = low_share = sum_idle = low_idle = 0.0
    rate = rate_low = presence = presence_low = weight = weight_low = 0.0
    rate_count = presence_count = weight_count = 0
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
            drawing = rate + rate_low
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
            sharing = presence + presence_low
            weighing = weight + weight_low
            price_rate = dynamic / drawing if drawing > 0 else 0.0
            price_share = dynamic / sharing if drawing <= 0 and sharing > 0 else 0.0
            price_idle = idle / max(idle_floor, weighing) if weighing > 0 else 0.0
            measured[window] += energy
            attributed[window] += price_rate * drawing + price_share * sharing + price_idle * weighing
            sum_rate, low_rate = _add(sum_rate, low_rate, price_rate)
            sum_share, low_share = _add(sum_share, low_share, price_share)
            sum_idle, low_idle = _add(sum_idle, low_idle, price_idle)
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
            prefix[k, 0], prefix[k, 1], prefix[k, 2] = sum_rate, low_rate, sum_share
            prefix[k, 3], prefix[k, 4], prefix[k, 5] = low_share, sum_idle, low_idle
            covered_at[k] = covered_s
            rate, rate_low, rate_count = _step(rate, rate_low, rate_count, steps[k, 0], holding[k, 0])
            presence, presence_low, presence_count = _step(
                presence, presence_low, presence_count, steps[k, 1], holding[k, 1]
            )
            weight, weight_low, weight_count = _step(
                weight, weight_low, weight_count, steps[k, 2], holding[k, 2]
            )
            k += 1
    return prefix, covered_at, measured, attributed
