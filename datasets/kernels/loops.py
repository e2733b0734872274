"""The attribution engine's loops, written for numba: the steps numpy can only do in many full-array passes.

Each kernel is a plain loop over sorted arrays. They run as machine code compiled ahead of time
(`datasets/kernels/build.py`, with the types in `signatures.py`) when that has been built, else compiled by
numba's JIT at first use and cached next to this file (``cache=True``); callers reach them through
`datasets.kernels`, which chooses.
"""

from __future__ import annotations

import numpy as np
from numba import njit


@njit(cache=True, nogil=True)
def _add(total: float, carry: float, x: float) -> tuple[float, float]:
    """total + x with its rounding error kept in carry (Knuth's two-sum, no branch): sums of ~100 bits, so a
    small sum after large ones, or a difference of two prefix sums, loses nothing."""
    t = total + x
    back = t - total
    return t, carry + ((total - (t - back)) + (x - back))


@njit(cache=True, nogil=True)
def design_rows(
    times_s: np.ndarray,
    energy_j: np.ndarray,
    noise_unit: np.ndarray,
    unmeasured: np.ndarray,
    emitted: np.ndarray,
    start_s: np.ndarray,
    end_s: np.ndarray,
    rate: np.ndarray,
    column: np.ndarray,
    columns: int,
    gram: np.ndarray,
    moment_joules: np.ndarray,
    moment_idle: np.ndarray,
    sums: np.ndarray,
) -> None:
    """Add each reading interval j = [t_j, t_j+1] as a fit row to the normal equations, in place, for each of
    the zones whose energies are the rows of energy_j (zones read at the same times share their rows X).

    X_jc = sum over the pieces of column c of rate x their overlap with interval j (pieces sorted by start).
    A row counts when it is emitted and sum_c X_jc > 0: gram += zones x X_j X_j^T / dt_j, moment_joules[z] +=
    X_j e_zj / dt_j, moment_idle += X_j. Only the columns present in an interval are touched, so a row costs
    what runs in it, not the number of columns. sums[z] += (sum e_zj, sum dt_j, sum e_zj^2 / dt_j, sum X,
    rows, sum noise_unit_zj / dt_j, sum unmeasured_zj / dt_j): the last two, parts of var(e_zj), tell how
    much of the residual a gauge's readings make.
    """
    zones = energy_j.shape[0]
    pieces = start_s.size
    active = np.empty(pieces, np.int64)
    amount = np.zeros(columns)
    touched = np.empty(columns, np.int64)
    seen = np.zeros(columns, np.bool_)
    count = 0
    following = 0
    for j in range(times_s.size - 1):
        lo = times_s[j]
        hi = times_s[j + 1]
        while following < pieces and start_s[following] < hi:
            active[count] = following
            count += 1
            following += 1
        kept = 0
        used = 0
        for i in range(count):
            piece = active[i]
            if end_s[piece] <= lo:
                continue
            active[kept] = piece
            kept += 1
            overlap = min(end_s[piece], hi) - max(start_s[piece], lo)
            if overlap > 0.0:
                c = column[piece]
                if not seen[c]:
                    seen[c] = True
                    touched[used] = c
                    used += 1
                amount[c] += rate[piece] * overlap
        count = kept
        total = 0.0
        for u in range(used):
            total += amount[touched[u]]
        if total > 0.0 and emitted[j]:
            dt = hi - lo
            for u in range(used):
                a = touched[u]
                x = amount[a]
                moment_idle[a] += x
                for v in range(used):
                    b = touched[v]
                    gram[a, b] += zones * x * amount[b] / dt
            for z in range(zones):
                e = energy_j[z, j]
                for u in range(used):
                    a = touched[u]
                    moment_joules[z, a] += amount[a] * e / dt
                sums[z, 0] += e
                sums[z, 1] += dt
                sums[z, 2] += e * e / dt
                sums[z, 3] += total
                sums[z, 4] += 1.0
                sums[z, 5] += noise_unit[z, j] / dt
                sums[z, 6] += unmeasured[z, j] / dt
        for u in range(used):
            amount[touched[u]] = 0.0
            seen[touched[u]] = False


@njit(cache=True, nogil=True)
def unwrap_intervals(
    values: np.ndarray,
    seconds: np.ndarray,
    wrap_joules: float,
    max_power_watts: float,
    reset_power_factor: float,
) -> tuple[np.ndarray, np.ndarray]:
    """Energy and flag (0 ok, 1 wrapped, 2 reset) of each interval between counter readings.

    The rule of attribution.unwrap_counter: e_i = delta_i + k_i M with the wrap counts k_i the power bound
    allows; a choice among several, or a drop, consults the mean power of the nearest intervals before and
    after with exactly one allowed count; a drop nothing explains (or that needs reset_power_factor x the
    neighbours' power) is a reset, e_i = max(v_i+1, neighbours' energy)."""
    n = seconds.size
    delta = np.empty(n)
    fewest = np.zeros(n)
    most = np.zeros(n)
    unique = np.zeros(n, np.bool_)
    for i in range(n):
        d = values[i + 1] - values[i]
        delta[i] = d
        if wrap_joules > 0:
            fewest[i] = 1.0 if d < 0 else 0.0
            most[i] = np.floor((max_power_watts * seconds[i] - d) / wrap_joules)
        allowed = most[i] >= fewest[i] and (d >= 0 or fewest[i] > 0)
        unique[i] = allowed and most[i] == fewest[i]
    # The nearest reliable interval at or before each interval (-1: none); its rate is worked out only where
    # an interval needs its neighbours, which a counter rising as it should never does.
    before = np.empty(n, np.int64)
    last = -1
    for i in range(n):
        if unique[i]:
            last = i
        before[i] = last
    energy = np.empty(n)
    flags = np.zeros(n, np.int8)
    following = -1
    for i in range(n - 1, -1, -1):
        if unique[i]:
            following = i
        d = delta[i]
        allowed = most[i] >= fewest[i] and (d >= 0 or fewest[i] > 0)
        several = allowed and most[i] > fewest[i]
        neighbour = np.nan
        if d < 0 or several:
            found = 0
            total = 0.0
            for j in (before[i], following):
                if j >= 0:
                    total += (delta[j] + fewest[j] * wrap_joules) / seconds[j]
                    found += 1
            neighbour = total / found * seconds[i] if found > 0 else np.nan
        reset = d < 0 and not allowed
        wraps = fewest[i]
        if several and not np.isnan(neighbour):
            wraps = min(max(np.rint((neighbour - d) / wrap_joules), fewest[i]), most[i])
        wrapped = d + wraps * wrap_joules
        if d < 0 and not np.isnan(neighbour) and wrapped > reset_power_factor * max(neighbour, 1.0):
            reset = True
        if reset:
            energy[i] = values[i + 1] if np.isnan(neighbour) else max(values[i + 1], neighbour)
            flags[i] = 2
        else:
            energy[i] = wrapped
            flags[i] = 1 if wraps > 0 else 0
    return energy, flags


@njit(cache=True, nogil=True)
def cumulative(values: np.ndarray) -> np.ndarray:
    """Prefix sums with a leading 0."""
    result = np.empty(values.size + 1)
    total = 0.0
    result[0] = 0.0
    for i in range(values.size):
        total += values[i]
        result[i + 1] = total
    return result


@njit(cache=True, nogil=True)
def merge_grid(
    times_s: np.ndarray, bounds_s: np.ndarray, edges_s: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The sorted union of three sorted arrays (reading times, window bounds, edges; equal values once).

    Returns the grid, per grid point the reading interval it lies in (the last reading at or before it,
    at most the last interval), and per edge its position in the grid: one merge instead of sorting all
    of them and searching for each edge again."""
    n_times, n_bounds, n_edges = times_s.size, bounds_s.size, edges_s.size
    grid = np.empty(n_times + n_bounds + n_edges)
    reading = np.empty(n_times + n_bounds + n_edges, np.int64)
    position = np.empty(n_edges, np.int64)
    i = j = k = points = 0
    last = 0
    while i < n_times or j < n_bounds or k < n_edges:
        x = np.inf
        if i < n_times:
            x = times_s[i]
        if j < n_bounds and bounds_s[j] < x:
            x = bounds_s[j]
        if k < n_edges and edges_s[k] < x:
            x = edges_s[k]
        grid[points] = x
        while i < n_times and times_s[i] == x:
            last = i
            i += 1
        while j < n_bounds and bounds_s[j] == x:
            j += 1
        while k < n_edges and edges_s[k] == x:
            position[k] = points
            k += 1
        reading[points] = min(last, n_times - 2)
        points += 1
    return grid[:points], reading[:points], position


@njit(cache=True, nogil=True)
def interpolate(
    grid_s: np.ndarray, reading: np.ndarray, times_s: np.ndarray, values: np.ndarray
) -> np.ndarray:
    """values (given at the reading times) linearly interpolated at each grid point of reading interval
    reading[k]; exact at the readings themselves."""
    result = np.empty(grid_s.size)
    for k in range(grid_s.size):
        j = reading[k]
        x = grid_s[k]
        if x == times_s[j]:
            result[k] = values[j]
        elif x == times_s[j + 1]:
            result[k] = values[j + 1]
        else:
            slope = (values[j + 1] - values[j]) / (times_s[j + 1] - times_s[j])
            result[k] = slope * (x - times_s[j]) + values[j]
    return result


@njit(cache=True, nogil=True)
def running(lo: np.ndarray, hi: np.ndarray, weights: np.ndarray, points: int) -> np.ndarray:
    """Per segment i (between grid points i and i+1), the sum of the weights of the non-empty ranges
    [lo, hi) of grid points holding it. Every weight entering or leaving is added with compensation, so where
    a large range ends and a small one goes on the sum is the small one, not it plus the large one's crumbs.
    """
    change = np.zeros(points)
    crumbs = np.zeros(points)
    for p in range(lo.size):
        if hi[p] > lo[p]:
            change[lo[p]], crumbs[lo[p]] = _add(change[lo[p]], crumbs[lo[p]], weights[p])
            change[hi[p]], crumbs[hi[p]] = _add(change[hi[p]], crumbs[hi[p]], -weights[p])
    result = np.empty(max(points - 1, 0))
    total = 0.0
    carry = 0.0
    for i in range(points - 1):
        total, carry = _add(total, carry, change[i])
        total, carry = _add(total, carry, crumbs[i])
        result[i] = total + carry
    return result


@njit(cache=True, nogil=True)
def holding(lo: np.ndarray, hi: np.ndarray, points: int) -> np.ndarray:
    """Per segment, how many of the non-empty ranges [lo, hi) of grid points hold it."""
    change = np.zeros(points + 1, np.int64)
    for p in range(lo.size):
        if hi[p] > lo[p]:
            change[lo[p]] += 1
            change[hi[p]] -= 1
    result = np.empty(max(points - 1, 0), np.int64)
    count = 0
    for i in range(points - 1):
        count += change[i]
        result[i] = count
    return result


@njit(cache=True, nogil=True)
def range_max(values: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """max(values[lo:hi]) per range, NaN when the range is empty."""
    result = np.full(lo.size, np.nan)
    for p in range(lo.size):
        if hi[p] > lo[p]:
            best = values[lo[p]]
            for i in range(lo[p] + 1, hi[p]):
                if values[i] > best:
                    best = values[i]
            result[p] = best
    return result


@njit(cache=True, nogil=True)
def spread(
    interval: np.ndarray,
    interval_j: np.ndarray,
    segment_s: np.ndarray,
    model_watts: np.ndarray,
    uniform_j: np.ndarray,
) -> np.ndarray:
    """Each reading interval's energy over its segments in proportion to the modelled power (the uniform
    spread where an interval's model is 0)."""
    model_sum = np.zeros(interval_j.size)
    for k in range(segment_s.size):
        model_sum[interval[k]] += model_watts[k] * segment_s[k]
    result = np.empty(segment_s.size)
    for k in range(segment_s.size):
        j = interval[k]
        if model_sum[j] > 0:
            result[k] = interval_j[j] * (model_watts[k] * segment_s[k]) / model_sum[j]
        else:
            result[k] = uniform_j[k]
    return result


@njit(cache=True, nogil=True)
def mark_string_changes(offsets: np.ndarray, data: np.ndarray, changed: np.ndarray) -> None:
    """changed[i] |= (string i differs from string i - 1), strings given by Arrow offsets and bytes."""
    for i in range(1, offsets.size - 1):
        if changed[i]:
            continue
        a, b = offsets[i - 1], offsets[i]
        c, d = offsets[i], offsets[i + 1]
        if b - a != d - c:
            changed[i] = True
            continue
        for k in range(b - a):
            if data[a + k] != data[c + k]:
                changed[i] = True
                break


@njit(cache=True, nogil=True)
def mark_code_changes(codes: np.ndarray, changed: np.ndarray) -> None:
    """changed[i] |= (codes[i] != codes[i - 1])."""
    for i in range(1, codes.size):
        if codes[i] != codes[i - 1]:
            changed[i] = True


@njit(cache=True, nogil=True)
def prices(
    segment_j: np.ndarray,
    segment_s: np.ndarray,
    idle_watts: float,
    drawing: np.ndarray,
    main: np.ndarray,
    sharing: np.ndarray,
    shared: np.ndarray,
    idle_running: np.ndarray,
    idle_floor: float,
    kind_fraction: np.ndarray,
    kepler: bool,
    covered: np.ndarray,
    interval: np.ndarray,
    intervals: int,
):
    """Per segment: idle and dynamic energy, the price per unit of what the main pieces draw, of equal
    presence and of idle weight, with their compensated prefix sums; the prefix sums of the split's spread
    terms (d / W^2, dt / W and the same for equal shares) and of the prices in uncovered segments (gaps); the
    prices per second; and the dynamic energy of each reading interval. One pass over the segments."""
    n = segment_j.size
    idle_j = np.empty(n)
    dynamic_j = np.empty(n)
    price = np.zeros((n, 3))  # main, equal, idle
    per_second = np.empty((3, n))
    prefix = np.zeros((n + 1, 6))  # high and low of the main, equal and idle price sums
    spread = np.zeros((n + 1, 4))  # squares, equal squares, seconds, equal seconds
    gaps = np.zeros((n + 1, 3))  # main, equal and idle prices where the reading interval is a gap
    interval_dynamic = np.zeros(intervals)
    floor_watts = max(idle_watts, 0.0)
    # Running sums as scalars (numba keeps them in registers; small arrays would stay in memory): the
    # compensated price sums (high, low), the spread terms and the prices in gaps.
    main_high = main_low = equal_high = equal_low = idle_high = idle_low = 0.0
    squares = equal_squares = seconds = equal_seconds = 0.0
    gap_main = gap_equal = gap_idle = 0.0
    for k in range(n):
        idle = min(segment_j[k], floor_watts * segment_s[k])
        dynamic = segment_j[k] - idle
        idle_j[k] = idle
        dynamic_j[k] = dynamic
        interval_dynamic[interval[k]] += dynamic
        main_price = equal_price = idle_price = 0.0
        if main[k]:
            if kepler:
                main_price = min(kind_fraction[k] * segment_s[k] * drawing[k], segment_j[k]) / drawing[k]
            else:
                main_price = dynamic / drawing[k]
                squares += dynamic / (drawing[k] * drawing[k])
                seconds += segment_s[k] / drawing[k]
        elif shared[k]:
            equal_price = dynamic / sharing[k]
            equal_squares += dynamic / (sharing[k] * sharing[k])
            equal_seconds += segment_s[k] / sharing[k]
        if idle_running[k] > 0:
            idle_price = idle / max(idle_floor, idle_running[k])
        main_high, main_low = _add(main_high, main_low, main_price)
        equal_high, equal_low = _add(equal_high, equal_low, equal_price)
        idle_high, idle_low = _add(idle_high, idle_low, idle_price)
        if not covered[k]:
            gap_main += main_price
            gap_equal += equal_price
            gap_idle += idle_price
        price[k, 0], price[k, 1], price[k, 2] = main_price, equal_price, idle_price
        prefix[k + 1, 0], prefix[k + 1, 1], prefix[k + 1, 2] = main_high, main_low, equal_high
        prefix[k + 1, 3], prefix[k + 1, 4], prefix[k + 1, 5] = equal_low, idle_high, idle_low
        per_second[0, k] = main_price / segment_s[k]
        per_second[1, k] = equal_price / segment_s[k]
        per_second[2, k] = idle_price / segment_s[k]
        gaps[k + 1, 0], gaps[k + 1, 1], gaps[k + 1, 2] = gap_main, gap_equal, gap_idle
        spread[k + 1, 0], spread[k + 1, 1] = squares, equal_squares
        spread[k + 1, 2], spread[k + 1, 3] = seconds, equal_seconds
    return idle_j, dynamic_j, price, per_second, prefix, spread, gaps, interval_dynamic


@njit(cache=True, nogil=True)
def share_variance(
    owner: np.ndarray,
    lo: np.ndarray,
    hi: np.ndarray,
    weight: np.ndarray,
    price_column: np.ndarray,
    segment_price: np.ndarray,
    interval: np.ndarray,
    interval_dynamic: np.ndarray,
    interval_variance: np.ndarray,
    owners: int,
) -> np.ndarray:
    """Per owner k, sum_j (D_kj / d_j)^2 var_j: the variance of what k receives when each reading interval's
    dynamic energy d_j errs by var_j and the error is shared as the energy is (D_kj: k's part of d_j).

    Pieces [lo, hi) of grid segments with their weights; D_kj sums weight x segment_price[:, price_column]
    over the segments of interval j of every piece of k. Pieces are taken in order of owner, each owner's intervals summed in a
    buffer spanning them, so the cost is that of walking every piece's segments once."""
    order = np.argsort(owner, kind="mergesort")
    result = np.zeros(owners)
    buffer = np.zeros(interval_dynamic.size)
    i = 0
    n = order.size
    while i < n:
        k = owner[order[i]]
        first_j = interval_dynamic.size
        last_j = -1
        m = i
        while m < n and owner[order[m]] == k:
            piece = order[m]
            for s in range(lo[piece], hi[piece]):
                j = interval[s]
                buffer[j] += weight[piece] * segment_price[s, price_column[piece]]
                if j < first_j:
                    first_j = j
                if j > last_j:
                    last_j = j
            m += 1
        total = 0.0
        for j in range(first_j, last_j + 1):
            if interval_dynamic[j] > 0.0:
                share = min(buffer[j] / interval_dynamic[j], 1.0)
                total += share * share * interval_variance[j]
            buffer[j] = 0.0
        result[k] = total
        i = m
    return result


@njit(cache=True, nogil=True)
def weighted_quantile(values: np.ndarray, weights: np.ndarray, quantile: float) -> float:
    """The smallest value whose cumulative weight (values in ascending order) reaches quantile x the total:
    what sorting and a search of the cumulative weights give, found by three-way partitions in linear time."""
    v = values.copy()
    w = weights.copy()
    total = 0.0
    for i in range(w.size):
        total += w[i]
    target = quantile * total
    lo, hi = 0, v.size
    below = 0.0  # weight of the values already known to lie below [lo, hi)
    while hi - lo > 1:
        a, b, c = v[lo], v[(lo + hi) // 2], v[hi - 1]
        pivot = max(min(a, b), min(max(a, b), c))
        # [lo, less) < pivot, [less, more) == pivot, [more, hi) > pivot
        less, i, more = lo, lo, hi
        while i < more:
            if v[i] < pivot:
                v[less], v[i] = v[i], v[less]
                w[less], w[i] = w[i], w[less]
                less += 1
                i += 1
            elif v[i] > pivot:
                more -= 1
                v[more], v[i] = v[i], v[more]
                w[more], w[i] = w[i], w[more]
            else:
                i += 1
        weight_less = 0.0
        for k in range(lo, less):
            weight_less += w[k]
        weight_equal = 0.0
        for k in range(less, more):
            weight_equal += w[k]
        if less > lo and below + weight_less >= target:
            hi = less
        elif below + weight_less + weight_equal >= target or more == hi:
            return pivot
        else:
            below += weight_less + weight_equal
            lo = more
    return v[lo]


@njit(cache=True, nogil=True)
def window_sums(values: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """sum(values[edges[w]:edges[w + 1]]) per window w, each summed from its own start."""
    sums = np.zeros(edges.size - 1)
    for w in range(edges.size - 1):
        total = 0.0
        for k in range(edges[w], edges[w + 1]):
            total += values[k]
        sums[w] = total
    return sums


@njit(cache=True, nogil=True)
def group_fmax(target: np.ndarray, index: np.ndarray, values: np.ndarray) -> None:
    """target[index[i]] = fmax(target[index[i]], values[i]) in place: NaN only where every value is NaN."""
    for i in range(index.size):
        value = values[i]
        current = target[index[i]]
        if (np.isnan(current) or value > current) and not np.isnan(value):
            target[index[i]] = value


@njit(cache=True, nogil=True)
def range_shares(
    lo: np.ndarray,
    hi: np.ndarray,
    weight: np.ndarray,
    owner: np.ndarray,
    high: np.ndarray,
    low: np.ndarray,
    edges: np.ndarray,
    owners: int,
    attributed: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """Joules of each range [lo, hi) of segments at weight x the per-segment price whose compensated prefix
    sums are (high, low), cut at the balance windows' edges: per owner and per range, and added per window
    to `attributed` (in place), so task rows and the balance sum the same parts."""
    inner = edges[1:-1]
    per_owner = np.zeros(owners)
    per_range = np.zeros(lo.size)
    windows = np.zeros(edges.size - 1)
    for r in range(lo.size):
        if hi[r] <= lo[r]:
            continue
        first = np.searchsorted(inner, lo[r], side="right")
        last = np.searchsorted(inner, max(hi[r] - 1, lo[r]), side="right")
        for w in range(first, last + 1):
            a = max(lo[r], edges[w])
            b = min(hi[r], edges[w + 1])
            joules = weight[r] * ((high[b] - high[a]) + (low[b] - low[a]))
            windows[w] += joules
            per_owner[owner[r]] += joules
            per_range[r] += joules
    for w in range(windows.size):
        attributed[w] += windows[w]
    return per_owner, per_range
