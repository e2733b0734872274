"""The attribution engine's compiled loops on cases where plain float arithmetic goes wrong."""

import numpy as np

from datasets import kernels


def test_running_sum_after_a_large_range_ends_is_the_small_one_alone():
    # A range of 1000.1 W over segments 0-1 and one of 1 uW over 1-2: segment 2 holds the small one only.
    lo, hi = np.array([0, 1]), np.array([2, 3])
    weights = np.array([1000.1, 1e-6])
    naive = np.cumsum(np.bincount(lo, weights, 4) - np.bincount(hi, weights, 4))[:3]
    assert abs(naive[2] - 1e-6) > 1e-16  # the crumbs a plain running sum leaves
    running = kernels.running(lo, hi, weights, 4)
    assert running[0] == 1000.1 and running[2] == 1e-6
    assert abs(running[1] - (1000.1 + 1e-6)) <= 1e-12


def test_running_sum_ignores_empty_ranges_and_holding_counts_them_out():
    lo, hi = np.array([0, 2, 1]), np.array([3, 2, 1])
    assert kernels.running(lo, hi, np.array([2.0, 5.0, 7.0]), 4).tolist() == [2.0, 2.0, 2.0]
    assert kernels.holding(lo, hi, 4).tolist() == [1, 1, 1]


def test_merge_grid_gives_each_edge_its_position_and_each_point_its_reading_interval():
    times = np.array([0.0, 1.0, 2.0, 4.0])
    grid, reading, position = kernels.merge_grid(times, np.array([3.0]), np.array([0.0, 0.5, 1.0, 4.0]))
    assert grid.tolist() == [0.0, 0.5, 1.0, 2.0, 3.0, 4.0]
    assert position.tolist() == [0, 1, 2, 5]
    assert reading.tolist() == [0, 0, 1, 2, 2, 2]  # the last point belongs to the last interval


def test_range_max_of_empty_ranges_is_nan():
    values = np.array([1.0, 5.0, 2.0, 4.0])
    result = kernels.range_max(values, np.array([0, 2, 3]), np.array([2, 4, 3]))
    assert result[:2].tolist() == [5.0, 4.0] and np.isnan(result[2])


def test_run_starts_of_strings_match_arrow_run_end_encoding():
    """Series boundaries come from a block-wise scan of Arrow's string buffers: on random runs of strings of
    several lengths (empty ones too), in several chunks and a sliced one, the same as Arrow's own encoding."""
    import pyarrow as pa
    import pyarrow.compute as pc

    from datasets.attribution.constants import SCAN_BLOCK_ROWS
    from datasets.attribution.series import _run_starts

    rng = np.random.default_rng(3)
    values = rng.choice(
        ["node-1", "node-2", "n3", "", "node-10"], size=40_000, p=[0.96, 0.01, 0.01, 0.01, 0.01]
    )
    values = np.repeat(values, rng.integers(1, 9, values.size))
    assert values.size > 2 * SCAN_BLOCK_ROWS
    cut = [0, 1000, 70_001, values.size]
    chunks = [pa.array(values[a:b].tolist()) for a, b in zip(cut, cut[1:], strict=False)]
    chunks[1] = pa.array(["x", *values[cut[1] : cut[2]].tolist()]).slice(1)  # a chunk with an offset
    column = pa.chunked_array(chunks)
    expected = pc.run_end_encode(column.combine_chunks(), run_end_type=pa.int64()).run_ends.to_numpy()
    assert _run_starts(column).tolist() == [0, *expected.tolist()]


def test_share_variance_squares_each_owners_share_of_each_interval():
    """Against a dense (owner x interval) computation: pieces of one owner in one interval add up before the
    square, main and equal pieces each use their own price, and a share never exceeds the interval."""
    rng = np.random.default_rng(5)
    segments, intervals, owners = 60, 12, 5
    interval = np.sort(rng.integers(0, intervals, segments))
    prices = rng.uniform(0.0, 2.0, (segments, 3))
    lo = rng.integers(0, segments, 40)
    hi = np.minimum(lo + rng.integers(0, 15, 40), segments)
    owner = rng.integers(0, owners, 40)
    weight = rng.uniform(0.0, 1.0, 40)
    column = rng.integers(0, 2, 40)
    received = np.zeros((owners, intervals))
    for k, a, b, w, c in zip(owner, lo, hi, weight, column, strict=True):
        np.add.at(received[k], interval[a:b], w * prices[a:b, c])
    dynamic = received.sum(axis=0) * rng.uniform(0.5, 1.5, intervals)  # < the sum somewhere: shares cap at 1
    dynamic[3] = 0.0  # an interval without dynamic energy adds nothing
    variance = rng.uniform(0.0, 4.0, intervals)
    shares = np.minimum(np.divide(received, dynamic, out=np.zeros_like(received), where=dynamic > 0), 1.0)
    expected = (shares**2 * variance).sum(axis=1)
    got = kernels.share_variance(owner, lo, hi, weight, column, prices, interval, dynamic, variance, owners)
    np.testing.assert_allclose(got, expected, rtol=1e-12)


def test_weighted_quantile_is_the_sorted_cumulative_weights_answer():
    """Ties, zero weights and quantiles 0 to 0.95, against sorting and searching the cumulative weights."""
    rng = np.random.default_rng(11)
    for trial in range(500):
        n = int(rng.integers(1, 50))
        values = rng.integers(0, 6, n).astype(float) if trial % 2 else rng.normal(size=n)
        weights = np.where(rng.random(n) < 0.2, 0.0, rng.uniform(0.0, 2.0, n))
        weights[0] += 0.5
        order = np.argsort(values, kind="stable")
        cumulative = np.cumsum(weights[order])
        for quantile in (0.0, 0.05, 0.5, 0.95):
            expected = values[order][np.searchsorted(cumulative, quantile * cumulative[-1])]
            assert kernels.weighted_quantile(values, weights, quantile) == expected


def test_window_sums_and_group_fmax_match_numpy():
    rng = np.random.default_rng(3)
    values = rng.normal(size=50)
    edges = np.array([0, 0, 7, 30, 30, 50])
    expected = [values[a:b].sum() for a, b in zip(edges[:-1], edges[1:], strict=True)]
    np.testing.assert_allclose(kernels.window_sums(values, edges), expected, rtol=1e-15, atol=0)
    index = rng.integers(0, 6, 40)
    maxima = np.where(rng.random(40) < 0.3, np.nan, rng.normal(size=40))
    target, expected_max = np.full(7, np.nan), np.full(7, np.nan)
    kernels.group_fmax(target, index, maxima)
    np.fmax.at(expected_max, index, maxima)
    np.testing.assert_array_equal(target, expected_max)  # NaN where a group is empty or all NaN
