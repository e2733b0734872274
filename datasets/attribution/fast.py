"""The fast mode (`AttributionOptions(fast=True)`, `jouletrace attribute --fast`): the exact mode's task
energies without its uncertainty terms, peaks and per-segment arrays, in two compiled sweeps per series.

It keeps the exact mode's rules for energy: the readings (series.py), the task windows and pieces (tasks.py,
pieces.py: usage series, requests ramped at truncated edges, equal shares, GPU/FPGA holders), the idle power
and the fit of watts per unit (fit.py, from the same statistics and normal equations), and the split
(split.py: a segment's share of its reading interval's energy in proportion to the modelled power, idle
min(e_s, i dt_s) shared by the idle policy, dynamic energy by weighted rate). It differs where the exact mode
needs each segment: no array per segment is made; the sweep (sweep.py) walks the merged grid and keeps only
the prefix sums of the prices at the pieces' edges and each window's sums. What it does not give:
- uncertainty_joules is only Argo's truncation, r x the task's average power (the exact mode's first term
  at about its size; the variance terms are not computed); peak_power_watts is null; `method` ends in
  `mode=fast`;
- idle power from reading intervals instead of segments (the same for counters; a trapezoid gauge's quiet
  segments are weighted by their interval's mean power), and a GPU/FPGA split by holders without busy time
  spread uniformly within a reading interval (the exact mode models it with the mean power per holder);
- Kepler's share and clock skew: there the exact engine runs, and `diagnostics` says why (item `mode`).
How far the two modes' energies are apart, measured: docs/attribution.md "Fast mode".
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from datasets import kernels
from datasets.attribution.common import _diagnostic, _holding, _in_order, _range_max
from datasets.attribution.constants import (
    ACCELERATOR_IDS,
    MIN_RATE,
    US_PER_SECOND,
)
from datasets.attribution.fit import _SeriesStats, design
from datasets.attribution.pieces import _Pieces
from datasets.attribution.rows import _split_labels, balance_rows, method_texts
from datasets.attribution.segments import _interval_energy, _quiet, covered_intervals, window_bounds_us
from datasets.attribution.series import _Series
from datasets.attribution.split import idle_rule

FAST = "mode=fast"


def unsupported(engine, kepler: bool) -> str | None:
    """Why the fast mode cannot attribute this input (None: it can)."""
    if engine.settings.share == "kepler" or kepler:
        return "the fast mode splits by usage or requested cores, not by Kepler's joules"
    if engine.settings.skew_tolerance_seconds > 0:
        return "the fast mode does not estimate clock skew"
    return None


@dataclass(frozen=True)
class _Zone:
    """One series with its pieces, on the time axis of its first reading (seconds)."""

    series: _Series
    pieces: _Pieces
    times_s: np.ndarray
    median_s: float  # the median reading interval
    interval_j: np.ndarray
    flags: np.ndarray
    covered: np.ndarray
    edges_s: np.ndarray  # the pieces' distinct edges, clipped to the readings
    bounds_us: np.ndarray

    @property
    def accelerator(self) -> bool:
        return self.series.device_kind in ACCELERATOR_IDS


def attribute_fast(engine, chunks: list, workers: int):
    """The fast mode's Attribution: the fit's statistics, then the split, nodes side by side; rows without
    readings, the balance and the tables as the exact engine makes them."""
    engine.notes.append(_diagnostic("mode", None, "fast"))
    zones: dict[str, list[_Zone]] = {}

    def fit_pass(chunk):
        node_zones = _zones(engine, chunk)
        return node_zones, _gather(engine, chunk.node, node_zones), engine.node_idle(chunk.node)

    for chunk, (node_zones, grams, done) in zip(chunks, _in_order(fit_pass, chunks, workers), strict=True):
        engine.add_grams(grams)
        engine.finish_node(done)
        zones[chunk.node] = node_zones
    engine.finish_statistics()
    for split in _in_order(lambda chunk: _split_node(engine, chunk, zones.pop(chunk.node)), chunks, workers):
        engine.take(split)
    return engine.result()


def _zones(engine, chunk) -> list[_Zone]:
    """The node's series with the pieces the exact engine cuts them by (engine.series_pieces)."""
    zones, readings = [], {}
    for series, pieces in engine.series_pieces(chunk):
        # The zones an agent reads in one step share their reading times and what follows from them alone.
        key = series.times_us.tobytes()
        if key not in readings:
            readings[key] = _readings(series.times_us)
        zones.append(_zone(series, pieces, readings[key], engine.settings.window_us))
    return zones


def _readings(times_us: np.ndarray) -> tuple[np.ndarray, float, np.ndarray]:
    """Reading times in seconds after the first, the median reading interval and which intervals are not
    gaps."""
    times_s = (times_us - times_us[0]) / US_PER_SECOND
    covered, median_s = covered_intervals(times_s)
    return times_s, median_s, covered


def _zone(series: _Series, pieces: _Pieces, readings: tuple, window_us: int) -> _Zone:
    first_us, last_us = int(series.times_us[0]), int(series.times_us[-1])
    times_s, median_s, covered = readings
    interval_j, flags = _interval_energy(series, times_s)
    distinct_us, _ = pieces.edges
    return _Zone(
        series=series,
        pieces=pieces,
        times_s=times_s,
        median_s=median_s,
        interval_j=interval_j,
        flags=flags,
        covered=covered,
        edges_s=np.clip((distinct_us - first_us) / US_PER_SECOND, 0.0, times_s[-1]),
        bounds_us=window_bounds_us(first_us, last_us, window_us),
    )


def _gather(engine, node: str, zones: list[_Zone]) -> dict[str, np.ndarray]:
    """fit._gather and engine.gather on reading intervals: each series' idle candidates (the intervals no
    task's wide window reaches into), gauge noise and its part of its kind's normal equations."""
    columns, grams = engine.tasks.columns, {}
    together: dict[tuple, tuple[list[_Zone], list[_SeriesStats]]] = {}
    quiet_of: dict[tuple, tuple[np.ndarray, np.ndarray]] = {}  # zones of one grid and windows share these
    for zone in zones:
        stats = engine.stats.setdefault(node, {}).setdefault(zone.series.key, _SeriesStats())
        times_s = zone.times_s
        key = (id(times_s), id(zone.pieces.windows))
        if key not in quiet_of:
            quiet_of[key] = _quiet_readings(zone)
        dt, quiet = quiet_of[key]
        watts = np.divide(zone.interval_j, dt, out=np.zeros(dt.size), where=dt > 0)
        stats.idle_watts.append(watts[quiet])
        stats.idle_seconds.append(dt[quiet])
        stats.all_watts.append(watts)
        stats.all_seconds.append(dt)
        stats.reading_seconds.append(np.array([zone.median_s]))  # only their median is used
        if zone.series.rule != "counter" and times_s.size > 2:
            power = zone.series.values
            middle = power[1:-1]
            usable = middle > 1e-6
            stats.noise.append(np.abs(power[2:] - 2 * middle + power[:-2])[usable] / middle[usable])
        kind = zone.series.device_kind
        if zone.pieces.task.size > 0 if zone.accelerator else engine.settings.share != "kepler":
            group = together.setdefault((id(zone.pieces), kind, id(zone.times_s)), ([], []))
            group[0].append(zone)
            group[1].append(stats)
    for (_, kind, _), (group, group_stats) in together.items():
        first = group[0]
        _, where = first.pieces.edges
        design(
            [(one.series, one.times_s, one.interval_j) for one in group],
            np.ones(first.interval_j.size, bool),
            (first.edges_s[where[2]], first.edges_s[where[3]], where[2]),
            first.pieces.main_rate,
            first.pieces.column,
            columns,
            group_stats,
            grams.setdefault(kind, np.zeros((columns, columns))),
        )
    return grams


def _quiet_readings(zone: _Zone) -> tuple[np.ndarray, np.ndarray]:
    """The reading intervals' lengths and which of them no task's wide window reaches into: _quiet with the
    reading intervals as the segments."""
    times_s, windows = zone.times_s, zone.pieces.windows
    intervals = times_s.size - 1
    wide = [
        np.clip((us - int(zone.series.times_us[0])) / US_PER_SECOND, 0.0, times_s[-1])
        for us in (windows.wide_start, windows.wide_end)
    ]
    return np.diff(times_s), _quiet(times_s, np.arange(intervals), intervals, *wide)


def _split_node(engine, chunk, zones: list[_Zone]):
    from datasets.attribution.engine import _Split

    split = _Split()
    # Zones read in one agent step with the same pieces and kind share everything but their energies: the
    # weighted rates, idle rule, labels, steps and each task's frame are made once (_Shared).
    shared: dict[tuple, _Shared] = {}
    for zone in zones:
        key = (id(zone.pieces), zone.series.device_kind, id(zone.times_s))
        if key not in shared:
            shared[key] = _shared(engine, chunk.node, zone)
        common = shared[key]
        idle = engine.idle[zone.series.key]
        task_rows, balance = _series_rows(zone, common, idle.watts)
        tail = f";{common.idle_label};idle_power={idle.method};{FAST}"
        frame = common.frame
        task_rows["method"] = method_texts(
            zone.series.rule,
            zone.flags,
            (frame["first_interval"], frame["past_interval"]),
            (frame["coverage"], frame["outside"]),
            common.labels,
            tail,
        )
        task_rows["_task"] = zone.pieces.rows
        split.add(task_rows, balance, zone.series.device_kind)
    split.missing = engine._missing_rows(chunk)
    return split


@dataclass
class _Shared:
    """What the zones of one reading grid, pieces and kind share in the split: the pieces' weighted rates,
    the equal pieces' presence, the idle weights and floor, the edges' steps, the labels, whether the model
    spreads energy, and each task's frame (made by the first zone's sweep, the same for the others)."""

    rates: np.ndarray
    presence: np.ndarray
    idle_weight: np.ndarray
    idle_floor: float
    idle_label: str
    labels: tuple[list[str], np.ndarray]
    steps: np.ndarray
    holding: np.ndarray
    modelled: bool
    frame: dict | None = None


def _shared(engine, node: str, zone: _Zone) -> _Shared:
    """The split's parts that depend on the zone's pieces, kind and reading grid, not on its energies."""
    pieces, kind = zone.pieces, zone.series.device_kind
    model = engine.models.get(kind, (None, 0.0))[0]
    if zone.accelerator and pieces.task.size == 0:
        model = None
    idle_weight, floor, idle_label = _idle_rule(engine, node, pieces, zone.accelerator)
    weight = np.ones(pieces.column.size) if model is None else model.weights[pieces.column]
    rates = weight * pieces.main_rate
    rates = np.where(rates > MIN_RATE, rates, 0.0)  # rounding crumbs of counters draw nothing
    presence = pieces.equal_presence
    if pieces.weight is not None:  # holders of unmapped devices draw by their share of them
        presence = presence * pieces.weight[pieces.equal_task]
    _, where = pieces.edges
    steps, holding = _steps(zone.edges_s.size, where, (rates, presence, idle_weight))
    # split._model_watts: the model spreads an interval's energy where the fit has a value and a piece draws.
    drawn = (rates > 0) & (zone.edges_s[where[3]] > zone.edges_s[where[2]])
    return _Shared(
        rates=rates,
        presence=presence,
        idle_weight=idle_weight,
        idle_floor=floor,
        idle_label=idle_label,
        labels=_labels(pieces, engine.settings, zone.accelerator),
        steps=steps,
        holding=holding,
        modelled=model is not None and model.common_watts > 0 and bool(drawn.any()),
    )


def _idle_rule(engine, node: str, pieces, accelerator: bool) -> tuple[np.ndarray, float, str]:
    """Each task's idle weight, the floor under the weight running and the label: split.py's rule."""
    capacity = engine.capacities.get(node, (0.0, "peak-requests"))
    weight, label, floor = idle_rule(pieces, accelerator, engine.tasks, engine.settings, capacity, False)
    return np.asarray(weight, dtype=float), float(floor), label


def _labels(pieces, settings, accelerator: bool) -> tuple[list[str], np.ndarray]:
    """The split part of the rows' methods (rows._split_labels); for a GPU/FPGA, the most holders present
    at once in each task's window, counted on the pieces' edges (where the count changes)."""
    most = None
    if accelerator:
        distinct, where = pieces.edges
        whole = pieces.equal_presence >= 1
        held = _holding(where[4][whole], where[5][whole], distinct.size)
        most = _range_max(held.astype(float), where[4], where[5])
    return _split_labels(
        pieces.basis, settings, accelerator, most, pieces.equal_task, pieces.rows.size, pieces.pooled
    )


def _series_rows(zone: _Zone, common: _Shared, idle_watts: float) -> tuple[dict, dict]:
    """One series' task rows (without _task and the method) and balance rows; the first zone of its
    _Shared makes the tasks' frame."""
    pieces, series, times_s = zone.pieces, zone.series, zone.times_s
    windows, count, first_us = pieces.windows, pieces.rows.size, int(series.times_us[0])
    _, where = pieces.edges
    model_sum = (
        kernels.modelled_sums(times_s, zone.edges_s, common.steps, common.holding, float(idle_watts))
        if common.modelled
        else np.zeros(0)
    )
    prefix, covered_at, measured, attributed = kernels.sweep(
        times_s,
        np.ascontiguousarray(zone.interval_j, dtype=float),
        np.ascontiguousarray(series.values, dtype=float),
        series.rule == "trapezoid",
        model_sum,
        zone.covered,
        (zone.bounds_us - first_us) / US_PER_SECOND,
        zone.edges_s,
        common.steps,
        common.holding,
        float(idle_watts),
        common.idle_floor,
    )

    def between(r: int, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
        return (prefix[hi, 2 * r] - prefix[lo, 2 * r]) + (prefix[hi, 2 * r + 1] - prefix[lo, 2 * r + 1])

    dynamic_joules = np.bincount(
        pieces.task, common.rates * between(0, where[2], where[3]), count
    ) + np.bincount(pieces.equal_task, common.presence * between(1, where[4], where[5]), count)
    idle_joules = common.idle_weight * between(2, where[0], where[1])
    energy_joules = dynamic_joules + idle_joules
    start_s = (windows.idle_start - first_us) / US_PER_SECOND
    end_s = (windows.idle_end - first_us) / US_PER_SECOND
    duration_s = end_s - start_s
    if common.frame is None:
        common.frame = _frame(
            times_s, zone.covered, covered_at, zone.edges_s, start_s, end_s, where[0], where[1]
        )
    frame = common.frame
    average_w = np.divide(energy_joules, duration_s, out=np.zeros(count), where=duration_s > 0)
    task_rows = {
        "energy_joules": energy_joules,
        "dynamic_joules": dynamic_joules,
        "idle_joules": idle_joules,
        "avg_power_watts": np.where(duration_s > 0, average_w, np.nan),
        "peak_power_watts": np.full(count, np.nan),
        "coverage": np.where(frame["outside"], 0.0, frame["coverage"]),
        "samples": frame["samples"],
        # Argo's truncation only: each true edge lies within r of the one used, at about the task's
        # average power.
        "uncertainty_joules": windows.resolution / US_PER_SECOND * np.abs(average_w),
        "_unread_s": np.where(frame["outside"], np.maximum(duration_s, 0.0), 0.0),
        "device_kind": series.device_kind,
        "device_id": series.device_id,
        "provenance": series.provenance,
    }
    return task_rows, balance_rows(series, zone.bounds_us, measured, attributed)


def _steps(edges: int, where: list[np.ndarray], amounts: tuple[np.ndarray, ...]):
    """Per edge, what starts minus what ends of the main pieces' weighted rates, the equal pieces' presence
    and the idle weight, and the same in counts of pieces."""
    steps, holding = np.zeros((edges, 3)), np.zeros((edges, 3), np.int64)
    for r, (amount, start, end) in enumerate(
        zip(amounts, (where[2], where[4], where[0]), (where[3], where[5], where[1]), strict=True)
    ):
        steps[:, r] = np.bincount(start, amount, edges) - np.bincount(end, amount, edges)
        holding[:, r] = np.bincount(start, amount > 0, edges) - np.bincount(end, amount > 0, edges)
    return steps, holding


def _frame(times_s, covered, covered_at, edges_s, start_s, end_s, lo, hi) -> dict:
    """Coverage, readings inside and whether the window lies outside the readings (split._task_frame's
    rules)."""
    readings = times_s.size
    duration_s = end_s - start_s
    at_start = np.searchsorted(times_s, start_s, side="right") - 1
    start_interval = np.clip(at_start, 0, readings - 2)
    point_covered = (at_start >= 0) & (at_start < readings - 1) & covered[start_interval]
    past_reading = np.searchsorted(times_s, end_s, side="left")
    inside_s = edges_s[hi] - edges_s[lo]
    coverage = np.divide(
        covered_at[hi] - covered_at[lo], duration_s, out=point_covered * 1.0, where=duration_s > 0
    )
    first_interval = np.clip(at_start, 0, readings - 1)
    return {
        "coverage": np.minimum(coverage, 1.0),
        "samples": np.maximum(past_reading - (at_start + 1), 0).astype(np.int64),
        "outside": (inside_s <= 0)
        & ((duration_s > 0) | ~point_covered)
        & ((end_s <= 0) | (start_s >= times_s[-1])),
        "first_interval": first_interval,
        "past_interval": np.maximum(np.clip(past_reading, 0, readings - 1), first_interval),
    }
