"""Stage 7, the engine: the stages run per node (nodes side by side on threads) in two passes, the fit's
statistics then the split, and the output tables; `attribute` is the in-memory entry point.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

import numpy as np
import pyarrow as pa

from datasets.attribution.common import (
    DIAGNOSTICS,
    Attribution,
    _cumulative,
    _diagnostic,
    _in_order,
    _Settings,
)
from datasets.attribution.constants import (
    ACCELERATOR_IDS,
    BASIS_USAGE,
    COUNTER,
    CPU_SECONDS,
    EVERYTHING,
    FIT_BASES,
    GPU_BUSY_SECONDS,
    GPU_BUSY_SOURCES,
    KEPLER_SOURCE,
    KEPT_CUT_POINTS,
    SKEW_STEPS_PER_SECOND,
    UNMAPPED_DEVICE,
    US_PER_SECOND,
    USAGE_SOURCES,
)
from datasets.attribution.fast import attribute_fast, unsupported
from datasets.attribution.fit import (
    _design,
    _gather,
    _gauge_noise,
    _Idle,
    _idle_power,
    _Model,
    _SeriesStats,
    _solve,
)
from datasets.attribution.options import AttributionOptions
from datasets.attribution.pieces import _cpu_pieces, _holder_pieces, _Pieces, _usage_edges
from datasets.attribution.rows import _attribute_cut, _SeriesInputs, _table, _task_energy_table, _Texts
from datasets.attribution.segments import _Cut, _cut
from datasets.attribution.series import _device_series, _Series
from datasets.attribution.skew import (
    _Skew,
    _skew_candidates,
    _skew_estimate,
    _skew_gather,
    _SkewStats,
)
from datasets.attribution.split import _GridShares, grid_shares
from datasets.attribution.tasks import (
    _capacities,
    _container_readings,
    _machine_devices,
    _ran_tasks,
    _Readings,
    _Tasks,
    _windows,
)


@dataclass(frozen=True)
class _Chunk:
    """A node's readings and container counters for one stretch of time, and which results it emits."""

    node: str
    series: list[_Series]
    usage: _Readings | None
    kepler: _Readings | None
    emit: tuple[int, int] = EVERYTHING
    gpu_busy: _Readings | None = None


@dataclass(frozen=True)
class _NodeIdle:
    idle: dict[tuple[str, str, str], _Idle]
    noise: dict[tuple[str, str, str], float]
    notes: list[dict]


@dataclass
class _Split:
    """What attributing one chunk gives: task and balance rows, rows of devices without readings, and the
    highest average power seen per kind (the bound of unread seconds)."""

    task_parts: list[dict] = field(default_factory=list)
    balance_parts: list[dict] = field(default_factory=list)
    missing: list[dict] = field(default_factory=list)
    reference_w: dict[str, float] = field(default_factory=dict)

    def add(self, task_rows: dict, balance_rows: dict, kind: str) -> None:
        """One series' rows, and the highest average power its covered rows show."""
        self.task_parts.append(task_rows)
        self.balance_parts.append(balance_rows)
        seen = task_rows["avg_power_watts"][task_rows["coverage"] > 0]
        seen = seen[np.isfinite(seen)]
        if seen.size:
            self.reference_w[kind] = max(self.reference_w.get(kind, 0.0), float(seen.max()))


class _Engine:
    def __init__(self, ran: _Tasks, machines: pa.Table | None, settings: _Settings):
        self.tasks = ran
        self.settings = settings
        self.capacities = _capacities(ran, machines)
        self.machine_devices = _machine_devices(machines)
        # Per node, then per series: a node's worker writes only its own node's entry.
        self.stats: dict[str, dict[tuple[str, str, str], _SeriesStats]] = {}
        self.grams: dict[str, np.ndarray] = {}
        self.skew_stats: dict[str, _SkewStats] = {}
        self.skews: dict[str, _Skew] = {}
        self.idle: dict[tuple[str, str, str], _Idle] = {}
        self.noise: dict[tuple[str, str, str], float] = {}
        self.models: dict[str, tuple[_Model, float]] = {}
        self.notes: list[dict] = []
        self.task_parts: list[dict] = []
        self.balance_parts: list[dict] = []
        self.missing: list[dict] = []
        self.reference_w: dict[str, float] = {}

    def rows_of(self, node: str, chunk: _Chunk) -> np.ndarray:
        """The node's tasks whose window reaches into the chunk's readings (all of them in memory)."""
        rows = self.tasks.by_node.get(node, np.zeros(0, dtype=np.int64))
        if chunk.emit == EVERYTHING or not chunk.series:
            return rows
        first = min(int(s.times_us[0]) for s in chunk.series)
        last = max(int(s.times_us[-1]) for s in chunk.series)
        reach = (self.tasks.end_us[rows] + self.tasks.resolution_us[rows] >= first) & (
            self.tasks.start_us[rows] <= last
        )
        return rows[reach]

    # pass 0: clock skew
    def gather_skew(self, chunk: _Chunk) -> None:
        if self.settings.skew_tolerance_seconds <= 0:
            return
        cpu = sorted(
            (s for s in chunk.series if s.device_kind not in ACCELERATOR_IDS),
            key=lambda s: (s.device_kind != "cpu_package", s.device_id),
        )
        if not cpu:
            return
        shifts = _skew_candidates(self.settings.skew_tolerance_seconds)
        stats = self.skew_stats.setdefault(chunk.node, _SkewStats(shifts, np.zeros((6, shifts.size))))
        _skew_gather(cpu[0], self.tasks, self.rows_of(chunk.node, chunk), stats, chunk.emit)

    def finish_skew(self) -> None:
        step = 1.0 / SKEW_STEPS_PER_SECOND
        for node, stats in self.skew_stats.items():
            seconds, correlation = _skew_estimate(stats)
            self.skews[node] = _Skew(seconds, self.settings.correct_skew, step)
            self.notes.append(
                _diagnostic(
                    "skew_seconds",
                    seconds,
                    f"correlation {correlation:.3f}",
                    (node, None, None),
                )
            )

    # pass 1: cut, gather idle/noise/fit statistics
    def series_pieces(self, chunk: _Chunk) -> list[tuple[_Series, _Pieces]]:
        """Each series of the node with the pieces it is split among (the fast mode reads them too)."""
        node = chunk.node
        rows = self.rows_of(node, chunk)
        skew = self.skews.get(node)
        skew_us = round(skew.seconds * US_PER_SECOND) if skew is not None and skew.applied else 0
        windows = _windows(self.tasks, rows, skew_us)
        share = self.settings.share
        # Where a counter starts and stops rising refines the edges: GPU busy time, then CPU time where
        # a task has both (a container uses its CPU before its GPU).
        if chunk.gpu_busy is not None:
            windows = _usage_edges(chunk.gpu_busy, rows, windows)
        if share == "usage" and chunk.usage is not None:
            windows = _usage_edges(chunk.usage, rows, windows)
        cpu = _cpu_pieces(self.tasks, rows, windows, chunk.usage if share == "usage" else None, None)
        result: list[tuple[_Series, _Pieces]] = []
        devices = {kind: sum(s.device_kind == kind for s in chunk.series) for kind in ACCELERATOR_IDS}
        for series in chunk.series:
            kind = series.device_kind
            if kind in ACCELERATOR_IDS:
                none = np.zeros(0, dtype=np.int64)
                holders = self.tasks.holders.get(series.key, none)
                pooled = self.tasks.holders.get((node, kind, UNMAPPED_DEVICE), none)
                unmapped = (self.tasks.unmapped[kind], devices[kind]) if pooled.size else None
                pieces = _holder_pieces(
                    self.tasks,
                    rows,
                    windows,
                    holders,
                    chunk.gpu_busy,
                    series.device_id,
                    pooled,
                    unmapped,
                )
            elif share == "kepler":
                pieces = _cpu_pieces(self.tasks, rows, windows, chunk.kepler, kind)
            else:
                pieces = cpu
            result.append((series, pieces))
        return result

    def cuts(self, chunk: _Chunk) -> list[_Cut]:
        result: list[_Cut] = []
        for series, pieces in self.series_pieces(chunk):
            like = next(
                (
                    cut
                    for cut in result
                    if cut.pieces is pieces and np.array_equal(cut.series.times_us, series.times_us)
                ),
                None,
            )
            result.append(_cut(series, pieces, self.settings.window_us, like))
        return result

    def gather(self, chunk: _Chunk, cuts: list[_Cut]) -> dict[str, np.ndarray]:
        """Add the cuts' idle, noise and fit statistics to their series' and return the chunk's part of
        each kind's normal equations (summed by `add_grams` in chunk order: the same sums on any thread)."""
        columns = self.tasks.columns
        grams: dict[str, np.ndarray] = {}
        together: dict[tuple[int, str], tuple[list[_Cut], list[_SeriesStats]]] = {}
        for cut in cuts:
            stats = self.stats.setdefault(chunk.node, {}).setdefault(cut.series.key, _SeriesStats())
            _gather(cut, stats, chunk.emit)
            kind = cut.series.device_kind
            # GPUs split by busy time fit their watts per busy-second; CPU zones unless Kepler splits them.
            fits = cut.pieces.task.size > 0 if kind in ACCELERATOR_IDS else self.settings.share != "kepler"
            if fits:
                group = together.setdefault((id(cut.grid_s), kind), ([], []))
                group[0].append(cut)
                group[1].append(stats)
        for (_, kind), (group_cuts, group_stats) in together.items():
            gram = grams.setdefault(kind, np.zeros((columns, columns)))
            _design(group_cuts, columns, group_stats, gram, chunk.emit)
        return grams

    def add_grams(self, grams: dict[str, np.ndarray]) -> None:
        for kind, gram in grams.items():
            if kind in self.grams:
                self.grams[kind] += gram
            else:
                self.grams[kind] = gram

    def node_idle(self, node: str) -> _NodeIdle:
        """Idle power and gauge noise of the node's series once its fit pass is done; their per-segment
        samples are let go. Applied by `finish_node` (in node order: the notes keep their order)."""
        configured = self.settings.idle_power_watts
        done = _NodeIdle({}, {}, [])
        for key, stats in self.stats.get(node, {}).items():
            idle = done.idle[key] = _idle_power(stats, configured.get((key[0], key[1])))
            noise = done.noise[key] = _gauge_noise(stats)
            stats.release()
            done.notes.append(_diagnostic("idle_power_watts", idle.watts, idle.method, key))
            if noise > 0:
                done.notes.append(_diagnostic("gauge_noise_relative", noise, None, key))
        return done

    def finish_node(self, done: _NodeIdle) -> None:
        self.idle.update(done.idle)
        self.noise.update(done.noise)
        self.notes += done.notes

    def finish_statistics(self) -> None:
        for kind, gram in self.grams.items():
            series = {key: stats for node in sorted(self.stats) for key, stats in self.stats[node].items()}
            keys = [key for key in series if key[1] == kind]
            # Sockets of one node see the same tasks: their rows are one datum for the residual's degrees
            # of freedom, so splitting a meter into zones does not change the fit.
            zones = {node: sum(key[0] == node for key in keys) for node, _, _ in keys}
            if kind in ACCELERATOR_IDS:  # separate devices, each with its own tasks
                zones = dict.fromkeys(zones, 1)
            parts = [
                (
                    series[key],
                    self.idle[key].watts,
                    1.0 / zones[key[0]],
                    self.noise[key],
                )
                for key in keys
            ]
            model, relative = _solve(gram, parts, self.tasks.columns, self.settings.fitted)
            self.models[kind] = (model, relative)
            self.notes.append(
                _diagnostic(
                    "fit_relative_residual",
                    relative,
                    "fitted" if model.fitted else "plain",
                    (None, kind, None),
                )
            )
            used = np.flatnonzero(np.diag(gram) > 0)
            for column in used:
                template = self.tasks.template_names[column // FIT_BASES]
                basis = "usage" if column % FIT_BASES == BASIS_USAGE else "requests"
                self.notes.append(
                    _diagnostic(
                        "fit_watts_per_unit",
                        float(model.weights[column]),
                        f"{template}/{basis}",
                        (None, kind, None),
                    )
                )

    # pass 2: attribute
    def attribute(self, chunk: _Chunk, cuts: list[_Cut]) -> _Split:
        """Task and balance rows of the chunk's series; `take` adds them to the result (in chunk order)."""
        split = _Split()
        node = chunk.node
        mig = self.machine_devices.get(node, ([], False))[1]
        capacity = self.capacities.get(node, (0.0, "peak-requests"))
        kind_energy = self._kind_energy(cuts) if self.settings.share == "kepler" else {}
        # What the zones read in one agent step share (their segments and pieces), made once per grid and kind.
        grids: dict[tuple[int, str], _GridShares] = {}
        for cut in cuts:
            kind = cut.series.device_kind
            model, relative = self.models.get(kind, (None, 1.0 / math.sqrt(3.0)))
            if kind in ACCELERATOR_IDS and cut.pieces.task.size == 0:
                model, relative = None, 1.0 / math.sqrt(3.0)
            fraction = None
            if kind in kind_energy:
                absolute = cut.origin_us + cut.grid_s * US_PER_SECOND
                node_kind_j = np.diff(kind_energy[kind](absolute))
                own_j = np.diff(np.interp(cut.grid_s, cut.times_s, _cumulative(cut.interval_j)))
                fraction = np.divide(own_j, node_kind_j, out=np.ones(own_j.size), where=node_kind_j > 0)
            key = (id(cut.grid_s), kind)
            if key not in grids:
                grids[key] = grid_shares(
                    cut, self.tasks, model, self.settings, capacity, fraction is not None
                )
            given = _SeriesInputs(
                model=model,
                spread_error=relative,
                idle=self.idle[cut.series.key],
                capacity=capacity,
                settings=self.settings,
                kind_fraction=fraction,
                noise=self.noise[cut.series.key],
                skew=self.skews.get(node),
                mig=mig,
                emit=chunk.emit,
            )
            task_rows, balance_rows = _attribute_cut(cut, self.tasks, grids[key], given)
            split.add(task_rows, balance_rows, kind)
        split.missing = self._missing_rows(chunk)
        return split

    def take(self, split: _Split) -> None:
        self.task_parts += split.task_parts
        self.balance_parts += split.balance_parts
        self.missing += split.missing
        for kind, watts in split.reference_w.items():
            self.reference_w[kind] = max(self.reference_w.get(kind, 0.0), watts)

    def _kind_energy(self, cuts: list[_Cut]):
        """Per CPU-zone kind, the node's cumulative energy of that kind as a function of absolute us."""
        functions = {}
        for kind in {cut.series.device_kind for cut in cuts} - set(ACCELERATOR_IDS):
            parts = [
                (cut.series.times_us.astype(float), _cumulative(cut.interval_j))
                for cut in cuts
                if cut.series.device_kind == kind
            ]
            functions[kind] = lambda at, parts=parts: sum(
                np.interp(at, times, energy) for times, energy in parts
            )
        return functions

    def _missing_rows(self, chunk: _Chunk) -> list[dict]:
        """Rows with coverage 0 and a reason for the devices a task should draw on that have no series."""
        node, tasks = chunk.node, self.tasks
        rows = self.rows_of(node, chunk)
        rows = rows[(tasks.start_us[rows] >= chunk.emit[0]) & (tasks.start_us[rows] < chunk.emit[1])]
        if rows.size == 0:
            return []
        present = {(s.device_kind, s.device_id) for s in chunk.series}
        zones = {(s.device_kind, s.device_id) for s in chunk.series if s.device_kind not in ACCELERATOR_IDS}
        # The sockets of `machines` name the zones of a kind only when no series of that kind exists: one
        # series may meter all sockets (Kepler's "package").
        metered = {kind for kind, _ in zones}
        implied = {(kind, device) for kind, device in self.machine_devices.get(node, ([], False))[0]}
        expected = {(kind, device) for kind, device in implied if kind not in metered} | zones
        wanted: list[tuple[np.ndarray, str, str, str]] = []
        if not expected:
            wanted.append((rows, "cpu_package", "unknown", "no-readings: node has no series"))
        for kind, device_id in sorted(expected - present):
            wanted.append(
                (
                    rows,
                    kind,
                    device_id,
                    f"no-readings: node has no {kind} series for {device_id}",
                )
            )
        for kind, ids in tasks.held.get(node, {}).items():
            for device_id in sorted(ids):
                if (kind, device_id) in present:
                    continue
                reason = f"no-readings: node has no {kind} series for {device_id}"
                if device_id == UNMAPPED_DEVICE:
                    # Holders of unmapped devices draw on every series of the kind the node has.
                    if any(have == kind for have, _ in present):
                        continue
                    reason = f"no-readings: node has no {kind} series (device ids unmapped)"
                holders = rows[np.isin(rows, tasks.holders[(node, kind, device_id)])]
                wanted.append((holders, kind, device_id, reason))
        return [
            {
                "rows": holders,
                "device_kind": kind,
                "device_id": device_id,
                "method": reason,
            }
            for holders, kind, device_id, reason in wanted
            if holders.size
        ]

    def result(self) -> Attribution:
        tasks = self.tasks
        for part in self.missing:
            rows = part["rows"]
            count = rows.size
            duration_s = (tasks.end_us[rows] - tasks.start_us[rows]) / US_PER_SECOND
            self.task_parts.append(
                {
                    "_task": rows,
                    "device_kind": part["device_kind"],
                    "device_id": part["device_id"],
                    "energy_joules": np.zeros(count),
                    "dynamic_joules": np.zeros(count),
                    "idle_joules": np.zeros(count),
                    "avg_power_watts": np.where(duration_s > 0, 0.0, np.nan),
                    "peak_power_watts": np.full(count, np.nan),
                    "coverage": np.zeros(count),
                    "samples": np.zeros(count, dtype=np.int64),
                    "method": _Texts.repeated(part["method"], count),
                    "uncertainty_joules": np.zeros(count),
                    "provenance": "estimated",
                    "_unread_s": np.maximum(duration_s, 0.0),
                }
            )
        self.missing = []
        for part in self.task_parts:
            part["uncertainty_joules"] = np.hypot(
                part["uncertainty_joules"],
                part.pop("_unread_s") * self.reference_w.get(part["device_kind"], 0.0),
            )
        return Attribution(
            task_energy=_task_energy_table(self.task_parts, tasks),
            node_energy_balance=_table(
                "node_energy_balance",
                self.balance_parts,
                ["host_node", "device_kind", "device_id", "window_start"],
            ),
            diagnostics=pa.Table.from_pylist(self.notes, schema=DIAGNOSTICS),
        )


def _tasks_and_series(tasks: pa.Table, machines: pa.Table | None, samples: pa.Table, workers: int):
    """_ran_tasks and _device_series side by side on `workers` > 1 (both are mostly Arrow and numpy work,
    outside Python's lock). Their results come in that order, so when both fail the tasks' error is raised,
    as when they ran one after the other."""
    steps = [lambda: _ran_tasks(tasks, machines), lambda: _device_series(samples, threads=workers)]
    ran, (series, notes) = _in_order(lambda step: step(), steps, workers)
    return ran, series, notes


def _settings(options: AttributionOptions) -> _Settings:
    """The engine's settings from the user's options (checked when the options were made)."""
    share = "requests" if options.split == "requests" else options.share
    return _Settings(
        idle_policy=options.idle_policy,
        window_us=options.window_us,
        fitted=options.split == "fitted",
        share=share or "",
        idle_power_watts=dict(options.idle_power_watts),
        skew_tolerance_seconds=float(options.skew_tolerance_seconds),
        correct_skew=options.correct_skew,
    )


def _resolve_share(settings: _Settings, usage: _Readings | None) -> _Settings:
    """The default share: measured usage when any task has a usage series, else requested cores."""
    if settings.share:
        return settings
    return _Settings(**{**settings.__dict__, "share": "usage" if usage is not None else "requests"})


def attribute(
    tasks: pa.Table,
    samples: pa.Table,
    machines: pa.Table | None = None,
    options: AttributionOptions | None = None,
    *,
    containers: pa.Table | None = None,
    **changes,
) -> Attribution:
    """Per-task, per-device energy, a per-window balance of every device series, and diagnostics.

    Task rows: one per (task, device) for every CPU-zone series on the task's node (and every zone its
    `machines` row implies) and every held gpu/fpga; a device without readings gives a row with energy 0,
    coverage 0 and the reason in `method`, as does a task outside a series' readings. Tasks without
    host_node or either time are skipped.
    - energy_joules = dynamic_joules + idle_joules; avg_power_watts = energy / duration (null at 0 s);
      peak_power_watts = the highest attributed power over a segment;
    - coverage = the part of the task window inside reading intervals no longer than 3x the median one;
    - samples = readings strictly inside the window; uncertainty_joules: the module doc;
    - method: reading rule; wraps-corrected / reset-estimated / gap; split=...; idle=...; idle_power=...
      (+ skew, mig); provenance: the readings' when they agree, else "estimated".
    options: AttributionOptions (split, share, idle_policy, idle power, skew, window, threads; defaults
    there); keyword `changes` replace single fields of it (`attribute(t, s, split="plain")`). `containers`:
    CPU-seconds counters (share "usage"), Kepler's per-pod joules (share "kepler"), GPU busy-seconds.
    Balance rows: per device and window [m * window_seconds, (m + 1) * window_seconds) clipped to the series'
    first and last reading; measured = sum e_s, attributed = sum given to tasks, unattributed = the rest.
    """
    options = replace(options or AttributionOptions(), **changes)
    settings = _settings(options)
    workers = options.worker_threads
    ran, series, notes = _tasks_and_series(tasks, machines, samples, workers)
    usage, usage_notes = _container_readings(containers, ran, CPU_SECONDS, USAGE_SOURCES)
    settings = _resolve_share(settings, usage)
    kepler, kepler_notes = (None, [])
    if settings.share == "kepler":
        kepler, kepler_notes = _container_readings(containers, ran, COUNTER, (KEPLER_SOURCE,))
    gpu_busy, gpu_notes = _container_readings(containers, ran, GPU_BUSY_SECONDS, GPU_BUSY_SOURCES)
    engine = _Engine(ran, machines, settings)
    engine.notes += notes + usage_notes + kepler_notes + gpu_notes
    engine.notes.append(_diagnostic("share", None, settings.share))
    by_node: dict[str, list[_Series]] = {}
    for one in series:
        by_node.setdefault(one.host_node, []).append(one)
    chunks = [
        _Chunk(node, by_node.get(node, []), usage, kepler, EVERYTHING, gpu_busy)
        for node in sorted(set(by_node) | set(ran.by_node))
    ]
    if options.fast:
        reason = unsupported(engine, kepler is not None)
        if reason is None:
            return attribute_fast(engine, chunks, workers)
        engine.notes.append(_diagnostic("mode", None, f"exact: {reason}"))
    for chunk in chunks:
        engine.gather_skew(chunk)
    engine.finish_skew()
    # The fit pass's cuts are kept for the split pass while their segments total at most KEPT_CUT_POINTS;
    # the other nodes' cuts are made again, so memory stays bounded on large inputs.
    kept: dict[str, list[_Cut]] = {}
    points = 0

    def fit_pass(chunk: _Chunk) -> tuple[list[_Cut], dict[str, np.ndarray], _NodeIdle]:
        cuts = engine.cuts(chunk)
        grams = engine.gather(chunk, cuts)
        return cuts, grams, engine.node_idle(chunk.node)

    for chunk, (cuts, grams, done) in zip(chunks, _in_order(fit_pass, chunks, workers), strict=True):
        engine.add_grams(grams)
        engine.finish_node(done)
        size = sum(cut.grid_s.size for cut in cuts)
        if points + size <= KEPT_CUT_POINTS:
            kept[chunk.node] = cuts
            points += size
    engine.finish_statistics()

    def split_pass(chunk: _Chunk) -> _Split:
        cuts = kept.pop(chunk.node, None)
        return engine.attribute(chunk, engine.cuts(chunk) if cuts is None else cuts)

    for split in _in_order(split_pass, chunks, workers):
        engine.take(split)
    return engine.result()
