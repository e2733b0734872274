"""Stages 5 and 6, the split and its uncertainty: each segment's energy among the tasks running in it,
and the uncertainty terms of every task row.

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
the highest average power of any row of that device kind (the best-known bound).
"""

from __future__ import annotations

import math

import numpy as np

from datasets import kernels
from datasets.attribution.common import (
    _cumulative,
    _holding,
    _Prefix,
    _range_max,
    _running,
    _Settings,
)
from datasets.attribution.constants import (
    ACCELERATOR_IDS,
    BASIS_EQUAL,
    BASIS_KEPLER,
    BASIS_NONE,
    BASIS_REQUESTS,
    BASIS_USAGE,
    EQUAL_SPLIT_RELATIVE_ERROR,
    FLAG_RESET,
    FLAG_WRAP,
    MIN_RATE,
    SPLIT_CALIBRATION,
    TRAILING_AVERAGE_SECONDS,
    UNCERTAINTY_COVERAGE_FACTOR,
    US_PER_SECOND,
)
from datasets.attribution.fit import _Idle, _Model
from datasets.attribution.segments import _Cut, _gauge_variance, _spread
from datasets.attribution.skew import _Skew
from datasets.attribution.tasks import _Tasks


def _attribute_cut(
    cut: _Cut,
    tasks: _Tasks,
    model: _Model | None,
    spread_error: float,
    idle: _Idle,
    capacity: tuple[float, str],
    settings: _Settings,
    kind_fraction: np.ndarray | None,
    noise: float,
    skew: _Skew | None,
    mig: bool,
    emit: tuple[int, int],
    memo: dict | None = None,
) -> tuple[dict, dict]:
    """Task rows and balance rows of one series (formulas in the module doc).

    memo: what depends only on the segments, the pieces and the kind, shared by the zones of a node that
    share their segments (kept by the caller per segment grid and kind)."""
    series, pieces = cut.series, cut.pieces
    memo = {} if memo is None else memo

    def once(name: str, compute):
        if name not in memo:
            memo[name] = compute()
        return memo[name]

    rows, count = pieces.rows, pieces.rows.size
    accelerator = series.device_kind in ACCELERATOR_IDS
    kepler = kind_fraction is not None
    segment_s, points = cut.segment_s, cut.grid_s.size

    def draws() -> tuple[np.ndarray, ...]:
        weight = np.ones(pieces.column.size) if model is None or kepler else model.weights[pieces.column]
        weighted_rate = weight * cut.main_rate
        # Rates below a nano-unit per second (rounding crumbs of counters) draw nothing: dividing by them
        # overflows.
        weighted_rate = np.where(weighted_rate > MIN_RATE, weighted_rate, 0.0)
        drawing = _running(cut.main_lo, cut.main_hi, weighted_rate, points)
        # Whether anyone draws is counted in integers: a float running sum leaves crumbs where nobody does.
        drawn = weighted_rate > 0
        main = _holding(cut.main_lo[drawn], cut.main_hi[drawn], points) > 0
        presence = pieces.equal_presence
        if pieces.weight is not None:  # holders of unmapped devices draw by their share of them
            presence = presence * pieces.weight[pieces.equal_task]
        sharing = _running(cut.equal_lo, cut.equal_hi, presence, points)
        present = presence > 0
        shared = _holding(cut.equal_lo[present], cut.equal_hi[present], points) > 0
        return (
            weighted_rate,
            np.where(main, drawing, 0.0),
            main,
            presence,
            np.where(shared, sharing, 0.0),
            shared,
        )

    weighted_rate, drawing, main, presence, sharing, shared = once("draws", draws)
    # Within a reading interval the energy follows the modelled power: idle plus what the pieces draw at
    # the fitted watts per unit, or (GPU/FPGA without busy-time counters) the device's mean dynamic power
    # per holder.
    model_w, holder_w = None, 0.0
    by_holders = accelerator and pieces.task.size == 0
    if by_holders and shared.any():
        uniform_dynamic = cut.segment_j - np.minimum(cut.segment_j, max(idle.watts, 0.0) * segment_s)
        holder_w = uniform_dynamic[shared].sum() / (sharing * segment_s).sum()
        model_w = idle.watts + holder_w * sharing if holder_w > 0 else None
    elif model is not None and not kepler and model.common_watts > 0 and main.any():
        model_w = idle.watts + drawing
    modelled = model_w is not None
    segment_j = _spread(cut, model_w) if modelled else cut.segment_j

    def idles() -> tuple:
        idle_floor = -np.inf
        if settings.idle_policy == "none" or kepler:
            idle_weight, idle_label = np.zeros(count), "idle=none"
        elif accelerator and pieces.weight is not None:
            # Holders of unmapped devices pay the device's idle by their share of the node's devices; under
            # "requests" the idle of devices nobody holds stays unattributed (one device's worth at most).
            idle_weight, idle_label = pieces.weight, "idle=holders"
            if settings.idle_policy == "requests":
                idle_label, idle_floor = "idle=holders-by-request", 1.0
        elif accelerator or settings.idle_policy == "time":
            idle_weight, idle_label = (
                np.ones(count),
                "idle=holders" if accelerator else "idle=time",
            )
        else:
            idle_weight, idle_label = (
                tasks.request_microcores[rows],
                f"idle=requests/capacity={capacity[1]}",
            )
            # Under "requests" the idle power of cores nobody reserved stays unattributed.
            idle_floor = capacity[0]
        idle_running = _running(cut.idle_lo, cut.idle_hi, idle_weight, points)
        return idle_weight, idle_label, idle_running, idle_floor

    idle_weight, idle_label, idle_running, idle_floor = once("idles", idles)
    covered = once("covered", lambda: cut.covered[cut.interval])
    idle_j, dynamic_j, prices, per_second, prefix, spread_c, gaps, interval_dynamic = kernels.prices(
        np.ascontiguousarray(segment_j, dtype=float),
        segment_s,
        float(idle.watts),
        drawing,
        main,
        sharing,
        shared,
        idle_running,
        float(idle_floor),
        kind_fraction if kepler else np.zeros(0),
        kepler,
        covered,
        cut.interval,
        cut.interval_j.size,
    )
    price, equal_price, idle_price = prices.T

    def received(sums: tuple[np.ndarray, ...]) -> np.ndarray:
        """Joules each task got, from the prefix sums of the main, equal and idle prices over some segments."""
        main_c, equal_c, idle_c = sums
        return (
            np.bincount(
                pieces.task,
                weighted_rate * (main_c[cut.main_hi] - main_c[cut.main_lo]),
                count,
            )
            + np.bincount(
                pieces.equal_task,
                presence * (equal_c[cut.equal_hi] - equal_c[cut.equal_lo]),
                count,
            )
            + idle_weight * (idle_c[cut.idle_hi] - idle_c[cut.idle_lo])
        )

    main_c, equal_c, idle_c = (_Prefix(prefix[:, 2 * i], prefix[:, 2 * i + 1]) for i in range(3))
    # Every share is summed per balance window, so the task rows add up to what the balance attributes.
    window_edges = once(
        "window_edges",
        lambda: np.concatenate([[0], np.searchsorted(cut.grid_s, cut.bounds_s), [points - 1]]),
    )
    windows = window_edges.size - 1
    attributed_joules = np.zeros(windows)

    def shares(
        owner: np.ndarray,
        lo: np.ndarray,
        hi: np.ndarray,
        weight: np.ndarray,
        total: _Prefix,
    ):
        """Joules of each range [lo, hi) at `weight` x the per-segment price summed in `total`: per owner and
        per range, and added to each balance window's attributed joules."""
        return kernels.range_shares(
            lo,
            hi,
            np.ascontiguousarray(weight, dtype=float),
            owner,
            total.high,
            total.low,
            window_edges,
            count,
            attributed_joules,
        )

    main_joules, piece_j = shares(pieces.task, cut.main_lo, cut.main_hi, weighted_rate, main_c)
    equal_joules, _ = shares(pieces.equal_task, cut.equal_lo, cut.equal_hi, presence, equal_c)
    idle_joules, _ = shares(np.arange(count), cut.idle_lo, cut.idle_hi, idle_weight, idle_c)
    dynamic_joules = main_joules + equal_joules
    energy_joules = dynamic_joules + idle_joules
    times_s, readings = cut.times_s, cut.times_s.size
    segments = segment_s.size

    def frame() -> dict[str, np.ndarray]:
        """Where each task's window lies among the segments and readings, and what it covers."""
        duration_s = cut.idle_end_s - cut.idle_start_s
        covered_c = _cumulative(segment_s * covered)
        at_start = np.searchsorted(times_s, cut.idle_start_s, side="right") - 1
        start_interval = np.clip(at_start, 0, readings - 2)
        point_covered = (at_start >= 0) & (at_start < readings - 1) & cut.covered[start_interval]
        past_reading = np.searchsorted(times_s, cut.idle_end_s, side="left")
        inside_s = cut.grid_s[cut.idle_hi] - cut.grid_s[cut.idle_lo]
        first_seg = np.clip(cut.idle_lo, 0, segments - 1)
        last_seg = np.clip(cut.idle_hi - 1, 0, segments - 1)
        resolution_s = tasks.resolution_us[rows] / US_PER_SECOND
        edge_segs = []
        for edge_s, side in (
            (cut.idle_start_s + resolution_s / 2, "right"),
            (cut.idle_end_s - resolution_s / 2, "left"),
        ):
            at = np.searchsorted(cut.grid_s, np.clip(edge_s, 0.0, times_s[-1]), side=side) - (side == "right")
            edge_segs.append(np.clip(at, first_seg, last_seg))
        first_interval = np.clip(at_start, 0, readings - 1)
        return {
            "duration_s": duration_s,
            "inside_s": inside_s,
            "coverage": np.minimum(
                np.divide(
                    covered_c[cut.idle_hi] - covered_c[cut.idle_lo],
                    duration_s,
                    out=point_covered * 1.0,
                    where=duration_s > 0,
                ),
                1.0,
            ),
            "samples": np.maximum(past_reading - (at_start + 1), 0),
            "outside": (
                (inside_s <= 0)
                & ((duration_s > 0) | ~point_covered)
                & ((cut.idle_end_s <= 0) | (cut.idle_start_s >= times_s[-1]))
            ),
            "first_seg": first_seg,
            "last_seg": last_seg,
            "has_window": cut.idle_hi > cut.idle_lo,
            "resolution_s": resolution_s,
            "follows_window": np.isin(pieces.basis, (BASIS_REQUESTS, BASIS_EQUAL)),
            "start_edge_seg": edge_segs[0],
            "end_edge_seg": edge_segs[1],
            "first_interval": first_interval,
            "past_interval": np.maximum(np.clip(past_reading, 0, readings - 1), first_interval),
        }

    where = once("frame", frame)
    duration_s, inside_s, coverage = (where[name] for name in ("duration_s", "inside_s", "coverage"))
    samples, outside = where["samples"], where["outside"]
    average_w = np.divide(energy_joules, duration_s, out=np.zeros(count), where=duration_s > 0)

    dynamic_peak = np.full(count, np.nan)
    kernels.group_fmax(
        dynamic_peak,
        pieces.task,
        weighted_rate * _range_max(per_second[0], cut.main_lo, cut.main_hi),
    )
    kernels.group_fmax(
        dynamic_peak,
        pieces.equal_task,
        presence * _range_max(per_second[1], cut.equal_lo, cut.equal_hi),
    )
    idle_peak = idle_weight * _range_max(per_second[2], cut.idle_lo, cut.idle_hi)
    peak_w = np.where(
        np.isnan(dynamic_peak) & np.isnan(idle_peak),
        np.nan,
        np.nan_to_num(dynamic_peak) + np.nan_to_num(idle_peak),
    )

    # Uncertainty components (module doc), each a standard deviation in joules.
    first_seg, last_seg, has_window = (
        where["first_seg"],
        where["last_seg"],
        where["has_window"],
    )

    def hits(name: str) -> tuple[np.ndarray, ...]:
        """The main and equal pieces holding each task's segment `name`, with those segments."""
        seg = where[name]
        main_seg, equal_seg = seg[pieces.task], seg[pieces.equal_task]
        main_hit = (cut.main_lo <= main_seg) & (cut.main_hi > main_seg)
        equal_hit = (cut.equal_lo <= equal_seg) & (cut.equal_hi > equal_seg)
        return (
            main_hit,
            main_seg[main_hit],
            pieces.task[main_hit],
            equal_hit,
            equal_seg[equal_hit],
            pieces.equal_task[equal_hit],
        )

    def dynamic_in(name: str) -> np.ndarray:
        """Joules of dynamic energy each task got in its segment `name`."""
        main_hit, main_seg, main_task, equal_hit, equal_seg, equal_task = once(name, lambda: hits(name))
        return np.bincount(main_task, weighted_rate[main_hit] * price[main_seg], count) + np.bincount(
            equal_task, presence[equal_hit] * equal_price[equal_seg], count
        )

    def modelled_in(name: str) -> np.ndarray:
        """Watts the model gives each task in its segment `name`."""
        main_hit, _, main_task, equal_hit, _, equal_task = once(name, lambda: hits(name))
        main_w = weighted_rate if modelled else np.zeros(weighted_rate.size)
        return np.bincount(main_task, main_w[main_hit], count) + np.bincount(
            equal_task, holder_w * presence[equal_hit], count
        )

    dynamic_edge = [dynamic_in(name) * has_window for name in ("first_seg", "last_seg")]
    # Argo's truncation bounds each true edge within +-r/2 of the estimate: a bound, not a deviation. A
    # task whose share follows its window draws its full power just inside the ramps at its edges.
    resolution_s, follows_window = where["resolution_s"], where["follows_window"]
    edge_power = np.zeros(count)
    for name in ("start_edge_seg", "end_edge_seg"):
        seg = where[name]
        own = np.where(follows_window, dynamic_in(name), 0.0) + idle_weight * idle_price[seg]
        edge_power += own / segment_s[seg] * has_window
    timing_bound = resolution_s / 2 * edge_power
    if skew is not None:
        timing_bound += (skew.step_seconds / 2 if skew.applied else abs(skew.seconds)) * edge_power
    variance = np.zeros(count)
    if idle_label in ("idle=time", "idle=holders"):
        variance += _neighbour_edges(where, idle_weight, idle_running, idle_price, segment_s)
    interval_s = np.diff(times_s)
    if modelled or series.rule != "trapezoid":
        beta = (EQUAL_SPLIT_RELATIVE_ERROR if by_holders else spread_error) if modelled else 1 / math.sqrt(3)
        for seg, dynamic_seg in zip((first_seg, last_seg), dynamic_edge, strict=True):
            j = cut.interval[seg]
            lo = np.maximum(cut.idle_start_s, times_s[j])
            hi = np.minimum(cut.idle_end_s, times_s[j + 1])
            phi = np.clip((hi - lo) / interval_s[j], 0.0, 1.0)
            fraction = np.divide(
                dynamic_seg,
                dynamic_j[seg],
                out=np.zeros(count),
                where=dynamic_j[seg] > 0,
            )
            variance += (beta * (1.0 - phi) * fraction * interval_dynamic[j]) ** 2
    if series.rule != "counter":
        # Reading noise and unmeasured changes land in each interval's dynamic energy (idle is one estimate)
        # and are shared as it is: a task alone in an interval takes all of that interval's error.
        variance += kernels.share_variance(
            np.concatenate([pieces.task, pieces.equal_task]),
            np.concatenate([cut.main_lo, cut.equal_lo]),
            np.concatenate([cut.main_hi, cut.equal_hi]),
            np.concatenate([weighted_rate, presence]),
            np.concatenate(
                [
                    np.zeros(pieces.task.size, np.int64),
                    np.ones(pieces.equal_task.size, np.int64),
                ]
            ),
            prices,
            cut.interval,
            interval_dynamic,
            _gauge_variance(cut, noise),
            count,
        )
        # A gauge does not see between readings: at an edge, a reading that caught the task doubles its
        # modelled power over the unmeasured part of the interval, one that missed it loses all of it.
        window_s = TRAILING_AVERAGE_SECONDS["nvml"] if series.rule == "trailing" else 0.0
        for name in ("first_seg", "last_seg"):
            j = cut.interval[where[name]]
            overlap = np.minimum(cut.idle_end_s, times_s[j + 1]) - np.maximum(cut.idle_start_s, times_s[j])
            unmeasured = np.maximum(interval_s[j] - window_s, 0.0) / interval_s[j]
            variance += (modelled_in(name) * np.maximum(overlap, 0.0) * unmeasured) ** 2 * has_window
    gap_scale = 1.0 if series.rule == "trapezoid" else 1.0 / math.sqrt(3.0)
    variance += (gap_scale * received(gaps.T)) ** 2
    if modelled and not cut.covered.all():
        # In a gap the model alone places the energy: how far the price strays from it is a bias too.
        model_c, gap_c = (
            once("gap_seconds", lambda: _cumulative(segment_s * ~covered)),
            gaps[:, 0],
        )
        gap_model_j = weighted_rate * (model_c[cut.main_hi] - model_c[cut.main_lo])
        gap_given_j = weighted_rate * (gap_c[cut.main_hi] - gap_c[cut.main_lo])
        variance += np.bincount(pieces.task, gap_given_j - gap_model_j, count) ** 2
    if (cut.flags == FLAG_RESET).any():
        estimated = cut.flags[cut.interval] == FLAG_RESET
        variance += received(tuple(_cumulative(p * estimated) for p in (price, equal_price, idle_price))) ** 2
    if not kepler:
        squares_c, equal_squares_c, seconds_c, equal_seconds_c = spread_c.T
        main_spread = np.maximum(
            piece_j - weighted_rate**2 * (squares_c[cut.main_hi] - squares_c[cut.main_lo]),
            0.0,
        )
        relative = (
            model.relative_error[pieces.column]
            if model is not None
            else np.full(pieces.column.size, EQUAL_SPLIT_RELATIVE_ERROR)
        )
        equal_spread = np.maximum(
            presence * equal_c.between(cut.equal_lo, cut.equal_hi)
            - presence**2 * (equal_squares_c[cut.equal_hi] - equal_squares_c[cut.equal_lo]),
            0.0,
        )
        split = np.bincount(
            pieces.task, relative * main_spread, count
        ) + EQUAL_SPLIT_RELATIVE_ERROR * np.bincount(pieces.equal_task, equal_spread, count)
        variance += 2.0 * (SPLIT_CALIBRATION * split) ** 2
        dynamic_seconds = np.bincount(
            pieces.task,
            weighted_rate * (seconds_c[cut.main_hi] - seconds_c[cut.main_lo]),
            count,
        ) + np.bincount(
            pieces.equal_task,
            presence * (equal_seconds_c[cut.equal_hi] - equal_seconds_c[cut.equal_lo]),
            count,
        )
        idle_seconds = np.divide(idle_joules, idle.watts, out=np.zeros(count), where=idle.watts > 0)
        variance += (idle.standard_error_watts * (idle_seconds - dynamic_seconds)) ** 2
    outside_s = np.maximum(duration_s - inside_s, 0.0)
    variance += (outside_s * np.divide(energy_joules, inside_s, out=np.zeros(count), where=inside_s > 0)) ** 2
    tail_j = np.bincount(pieces.task[pieces.tail], piece_j[pieces.tail], count)
    variance += tail_j**2 / 3.0
    uncertainty_joules = np.hypot(timing_bound, UNCERTAINTY_COVERAGE_FACTOR * np.sqrt(variance))

    first_interval, past_interval = where["first_interval"], where["past_interval"]
    flagged = cut.flags.any()
    wraps, resets = (_cumulative(cut.flags == flag) if flagged else None for flag in (FLAG_WRAP, FLAG_RESET))

    def labels() -> tuple[list[str], np.ndarray]:
        whole = pieces.equal_presence >= 1
        holders = _range_max(
            _holding(cut.equal_lo[whole], cut.equal_hi[whole], points),
            cut.equal_lo,
            cut.equal_hi,
        )
        return _split_labels(
            pieces.basis,
            settings,
            accelerator,
            holders,
            pieces.equal_task,
            count,
            pieces.pooled,
        )

    tail = f";{idle_label};idle_power={idle.method}" + (skew.label() if skew is not None else "")
    tail += ";mig" if mig and series.device_kind == "gpu" else ""
    reading = {
        "counter": "counter-interpolated",
        "trailing": "gauge-trailing-average-1s",
        "trapezoid": "gauge-trapezoid",
    }[series.rule]
    # Each distinct combination of the flags and the split label is spelt once, not once per row.
    label_names, label_of = once("labels", labels)
    wrapped = wraps[past_interval] != wraps[first_interval] if flagged else np.zeros(count, bool)
    was_reset = resets[past_interval] != resets[first_interval] if flagged else np.zeros(count, bool)
    gap = (coverage < 1.0) & ~outside
    spelt, which = np.unique(
        label_of * 16 + outside * 8 + wrapped * 4 + was_reset * 2 + gap,
        return_inverse=True,
    )
    texts = [
        ("no-readings: outside readings;" if combination & 8 else "")
        + reading
        + (";wraps-corrected" if combination & 4 else "")
        + (";reset-estimated" if combination & 2 else "")
        + (";gap" if combination & 1 else "")
        + f";split={label_names[combination // 16]}"
        + tail
        for combination in spelt.tolist()
    ]
    methods = np.asarray(texts, dtype=object)[which]
    emitted = (tasks.start_us[rows] >= emit[0]) & (tasks.start_us[rows] < emit[1])
    task_rows = {
        "_task": rows,
        "energy_joules": energy_joules,
        "dynamic_joules": dynamic_joules,
        "idle_joules": idle_joules,
        "avg_power_watts": np.where(duration_s > 0, average_w, np.nan),
        "peak_power_watts": peak_w,
        "coverage": np.where(outside, 0.0, coverage),
        "samples": samples.astype(np.int64),
        "method": methods,
        "uncertainty_joules": uncertainty_joules,
        # Seconds of which nothing was read: their bound comes from other rows of the kind (Engine.result).
        "_unread_s": np.where(outside, np.maximum(duration_s, 0.0), 0.0),
    }
    task_rows = {name: values[emitted] for name, values in task_rows.items()} | {
        "device_kind": series.device_kind,
        "device_id": series.device_id,
        "provenance": series.provenance,
    }

    first_us, last_us = cut.origin_us, int(series.times_us[-1])
    window_start = np.concatenate([[first_us], cut.bounds_us])
    # Summed per window, not as differences of one running sum: a window stays exact beside large ones.
    measured_joules = kernels.window_sums(np.ascontiguousarray(segment_j, dtype=float), window_edges)
    balance_rows = {
        "host_node": np.full(windows, series.host_node, dtype=object),
        "device_kind": np.full(windows, series.device_kind, dtype=object),
        "device_id": np.full(windows, series.device_id, dtype=object),
        "window_start": window_start,
        "window_end": np.concatenate([cut.bounds_us, [last_us]]),
        "measured_joules": measured_joules,
        "attributed_joules": attributed_joules,
        "unattributed_joules": measured_joules - attributed_joules,
        "provenance": np.full(windows, series.provenance, dtype=object),
    }
    kept = (window_start >= emit[0]) & (window_start < emit[1])
    return task_rows, {name: values[kept] for name, values in balance_rows.items()}


def _neighbour_edges(
    where: dict[str, np.ndarray],
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
        seg = where[name]
        others = running[seg] - weight
        moved = np.divide(
            where["resolution_s"] / 2 * unit_w[seg] * weight,
            others,
            out=np.zeros(weight.size),
            where=(others > 1e-9 * np.maximum(running[seg], 1e-300)) & where["has_window"],
        )
        total += np.bincount(seg, moved**2, segment_s.size)
        own += moved**2
    summed = _cumulative(total)
    seg_lo = where["first_seg"]
    seg_hi = np.where(where["has_window"], where["last_seg"] + 1, seg_lo)
    return weight**2 * np.maximum(summed[seg_hi] - summed[seg_lo] - own, 0.0)


def _split_labels(
    basis: np.ndarray,
    settings: _Settings,
    accelerator: bool,
    shared: np.ndarray | None,
    equal_task: np.ndarray,
    count: int,
    pooled: np.ndarray | None = None,
) -> tuple[list[str], np.ndarray]:
    """The split part of each row's method, what its share was computed from: the names, and each row's
    position among them. Holders of unmapped devices: `unmapped-sole-holder` where no other task held a
    device of the kind on the node meanwhile (exact), else `unmapped-by-request`."""
    if accelerator:
        most = np.zeros(count)
        kernels.group_fmax(most, equal_task, np.nan_to_num(shared))
        sliced = np.where(basis == BASIS_USAGE, 1, 2)
        names = ["exclusive", "time-sliced-usage", "time-sliced-equal"]
        index = np.where(most > 1, sliced, 0)
        if pooled is not None:
            names += ["unmapped-sole-holder", "unmapped-by-request"]
            index = np.where(pooled & (basis != BASIS_USAGE), np.where(most > 1, 4, 3), index)
        return names, index
    fitted = "-fitted" if settings.fitted else ""
    fallback = "(no-usage-series)" if settings.share == "usage" else ""
    names = {
        BASIS_USAGE: f"usage{fitted}",
        BASIS_REQUESTS: f"requests{fitted}{fallback}",
        BASIS_EQUAL: f"equal{fallback}",
        BASIS_KEPLER: "kepler",
        BASIS_NONE: "kepler(no-series)",
    }
    return [names[b] for b in range(len(names))], basis
