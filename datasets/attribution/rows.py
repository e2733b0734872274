"""Stage 7a, one series' rows: its split (split.py) and uncertainty (uncertainty.py) as task_energy rows with
their method labels, and its node_energy_balance windows (measured = attributed + unattributed); and the
output tables made from every series' rows (sorted by integer ranks, ids taken from Arrow)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from datasets import kernels
from datasets.attribution.common import _cumulative, _Settings
from datasets.attribution.constants import (
    ACCELERATOR_IDS,
    BASIS_EQUAL,
    BASIS_KEPLER,
    BASIS_NONE,
    BASIS_REQUESTS,
    BASIS_USAGE,
    EVERYTHING,
    FLAG_RESET,
    FLAG_WRAP,
)
from datasets.attribution.fit import _Idle, _Model
from datasets.attribution.segments import _Cut
from datasets.attribution.series import _Series
from datasets.attribution.skew import _Skew
from datasets.attribution.split import _GridShares, _SeriesSplit, peak_watts, split_series
from datasets.attribution.tasks import _Tasks
from datasets.attribution.uncertainty import uncertainty_joules
from schemas.tables import UTC_TIMESTAMP
from schemas.validation import conform, empty


@dataclass(frozen=True)
class _Texts:
    """A text column as its distinct texts and each row's position among them. A few method labels over many
    rows are spelt once, and they reach Arrow as a dictionary: pyarrow took 0.15-0.3 s to make 400k Python
    strings into a column."""

    names: list[str]
    index: np.ndarray

    def __getitem__(self, rows) -> _Texts:
        return _Texts(self.names, self.index[rows])

    @staticmethod
    def repeated(text: str, count: int) -> _Texts:
        return _Texts([text], np.zeros(count, np.int64))


READING_RULES = {
    "counter": "counter-interpolated",
    "trailing": "gauge-trailing-average-1s",
    "trapezoid": "gauge-trapezoid",
}


@dataclass(frozen=True)
class _SeriesInputs:
    """What one series is attributed with besides its cut and the tasks: the kind's fitted model and its
    relative spread, the series' idle power and gauge noise, the node's capacity, clock skew and MIG, the
    Kepler fraction of the kind's energy (share "kepler"), and the emit range."""

    model: _Model | None
    spread_error: float
    idle: _Idle
    capacity: tuple[float, str]
    settings: _Settings
    kind_fraction: np.ndarray | None
    noise: float
    skew: _Skew | None
    mig: bool
    emit: tuple[int, int]


def _attribute_cut(cut: _Cut, tasks: _Tasks, grid: _GridShares, given: _SeriesInputs) -> tuple[dict, dict]:
    """Task rows and balance rows of one series (formulas in the modules' docs); `grid`: what the zones
    sharing its segments share (split.grid_shares)."""
    series, frame, count = cut.series, grid.frame, cut.pieces.rows.size
    split = split_series(cut, grid, given.model, given.idle, given.kind_fraction)
    uncertainty = uncertainty_joules(
        split, given.model, given.spread_error, given.idle, given.noise, given.skew
    )
    average_w = np.divide(
        split.energy_joules, frame.duration_s, out=np.zeros(count), where=frame.duration_s > 0
    )
    emit = given.emit
    emitted = (tasks.start_us[cut.pieces.rows] >= emit[0]) & (tasks.start_us[cut.pieces.rows] < emit[1])
    task_rows = {
        "_task": cut.pieces.rows,
        "energy_joules": split.energy_joules,
        "dynamic_joules": split.dynamic_joules,
        "idle_joules": split.idle_joules,
        "avg_power_watts": np.where(frame.duration_s > 0, average_w, np.nan),
        "peak_power_watts": peak_watts(split),
        "coverage": np.where(frame.outside, 0.0, frame.coverage),
        "samples": frame.samples.astype(np.int64),
        "method": _methods(split, given),
        "uncertainty_joules": uncertainty,
        # Seconds of which nothing was read: their bound comes from other rows of the kind (Engine.result).
        "_unread_s": np.where(frame.outside, np.maximum(frame.duration_s, 0.0), 0.0),
    }
    task_rows = {name: values[emitted] for name, values in task_rows.items()} | {
        "device_kind": series.device_kind,
        "device_id": series.device_id,
        "provenance": series.provenance,
    }
    return task_rows, _balance_rows(split, emit)


def _balance_rows(split: _SeriesSplit, emit: tuple[int, int]) -> dict:
    # Summed per window, not as differences of one running sum: a window stays exact beside large ones.
    measured_joules = kernels.window_sums(
        np.ascontiguousarray(split.segment_j, dtype=float), split.grid.window_edges
    )
    return balance_rows(split.cut.series, split.cut.bounds_us, measured_joules, split.attributed_joules, emit)


def balance_rows(
    series: _Series,
    bounds_us: np.ndarray,
    measured_joules: np.ndarray,
    attributed_joules: np.ndarray,
    emit: tuple[int, int] = EVERYTHING,
) -> dict:
    """The series' balance windows (cut at `bounds_us`, clipped to its readings) that start within `emit`."""
    windows = measured_joules.size
    first_us, last_us = int(series.times_us[0]), int(series.times_us[-1])
    window_start = np.concatenate([[first_us], bounds_us])
    balance_rows = {
        "host_node": np.full(windows, series.host_node, dtype=object),
        "device_kind": np.full(windows, series.device_kind, dtype=object),
        "device_id": np.full(windows, series.device_id, dtype=object),
        "window_start": window_start,
        "window_end": np.concatenate([bounds_us, [last_us]]),
        "measured_joules": measured_joules,
        "attributed_joules": attributed_joules,
        "unattributed_joules": measured_joules - attributed_joules,
        "provenance": np.full(windows, series.provenance, dtype=object),
    }
    kept = (window_start >= emit[0]) & (window_start < emit[1])
    return {name: values[kept] for name, values in balance_rows.items()}


def _methods(split: _SeriesSplit, given: _SeriesInputs) -> _Texts:
    """Each row's method: reading rule, flags, split, idle rule, idle power, skew, MIG."""
    cut, frame, count, pieces = split.cut, split.grid.frame, split.count, split.cut.pieces
    series = cut.series
    accelerator = series.device_kind in ACCELERATOR_IDS
    tail = f";{split.grid.idle.label};idle_power={given.idle.method}"
    tail += given.skew.label() if given.skew is not None else ""
    tail += ";mig" if given.mig and series.device_kind == "gpu" else ""
    labels = _split_labels(
        pieces.basis, given.settings, accelerator, split.grid.holders, pieces.equal_task, count, pieces.pooled
    )
    spans = (frame.first_interval, frame.past_interval)
    return method_texts(series.rule, cut.flags, spans, (frame.coverage, frame.outside), labels, tail)


def method_texts(
    rule: str,
    flags: np.ndarray,
    spans: tuple[np.ndarray, np.ndarray],
    frame: tuple[np.ndarray, np.ndarray],
    labels: tuple[list[str], np.ndarray],
    tail: str,
) -> _Texts:
    """Each row's method from the series' reading rule and counter flags, the rows' first and past reading
    intervals, coverage and whether they lie outside the readings, their split labels and the `tail` all
    rows share. Each distinct combination of the flags and the split label is spelt once, not once per row."""
    (first_interval, past_interval), (coverage, outside) = spans, frame
    label_names, label_of = labels
    flagged, count = flags.any(), label_of.size
    wraps, resets = (_cumulative(flags == flag) if flagged else None for flag in (FLAG_WRAP, FLAG_RESET))
    wrapped = wraps[past_interval] != wraps[first_interval] if flagged else np.zeros(count, bool)
    was_reset = resets[past_interval] != resets[first_interval] if flagged else np.zeros(count, bool)
    gap = (coverage < 1.0) & ~outside
    spelt, which = np.unique(
        label_of * 16 + outside * 8 + wrapped * 4 + was_reset * 2 + gap, return_inverse=True
    )
    texts = [
        ("no-readings: outside readings;" if combination & 8 else "")
        + READING_RULES[rule]
        + (";wraps-corrected" if combination & 4 else "")
        + (";reset-estimated" if combination & 2 else "")
        + (";gap" if combination & 1 else "")
        + f";split={label_names[combination // 16]}"
        + tail
        for combination in spelt.tolist()
    ]
    return _Texts(texts, which)


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


def _task_energy_table(parts: list[dict], tasks: _Tasks) -> pa.Table:
    """task_energy from the parts (task row indices, per-part device and provenance, per-row values), sorted
    by workflow, task and device: ids are taken from Arrow and sorted as integer ranks, not as strings, and
    each column is put in that order as it is made (no second copy of the whole table)."""
    parts = [part for part in parts if part["_task"].size]
    if not parts:
        return empty("task_energy")
    task = np.concatenate([part["_task"] for part in parts])
    counts = [part["_task"].size for part in parts]
    codes, names = {}, {}
    for name in ("device_kind", "device_id", "provenance"):
        names[name] = sorted({part[name] for part in parts})
        codes[name] = np.repeat([names[name].index(part[name]) for part in parts], counts)
    order = np.lexsort((codes["device_id"], codes["device_kind"], tasks.rank[task]))
    rows = pa.array(task[order])
    columns: dict = {
        "workflow_uid": tasks.ids["workflow_uid"].take(rows),
        "task_id": tasks.ids["task_id"].take(rows),
    }
    for name, code in codes.items():
        columns[name] = pa.array(names[name], pa.string()).take(pa.array(code[order]))
    for column in parts[0]:
        if column.startswith("_") or column in codes:
            continue
        if column == "method":
            columns[column] = _text_column([part[column] for part in parts], order)
            continue
        values = np.concatenate([part[column] for part in parts])[order]
        columns[column] = pa.array(values, mask=np.isnan(values)) if values.dtype.kind == "f" else values
    return conform("task_energy", columns)


def _text_column(parts: list[_Texts], order: np.ndarray) -> pa.Array:
    """The parts' texts, one after another and taken in `order`, as an Arrow string column."""
    offsets = np.cumsum([0] + [len(part.names) for part in parts[:-1]])
    index = np.concatenate([part.index + offset for part, offset in zip(parts, offsets, strict=True)])
    names = pa.array([name for part in parts for name in part.names], pa.string())
    return pa.DictionaryArray.from_arrays(pa.array(index[order].astype(np.int32)), names).cast(pa.string())


def _table(name: str, parts: list[dict], sort_keys: list[str]) -> pa.Table:
    parts = [part for part in parts if len(next(iter(part.values())))]
    if not parts:
        return empty(name)
    columns = {}
    for column in parts[0]:
        values = np.concatenate([part[column] for part in parts])
        if column in ("window_start", "window_end"):
            values = pa.array(values.astype(np.int64)).cast(UTC_TIMESTAMP)
        elif values.dtype.kind == "f":
            values = pa.array(values, mask=np.isnan(values))
        columns[column] = values
    return conform(name, columns).sort_by([(key, "ascending") for key in sort_keys])
