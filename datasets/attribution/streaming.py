"""Streaming a trace dataset node by node and day by day (`attribute_dataset`), with bounded memory."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from datasets.attribution.common import Attribution, _diagnostic, _in_order, _Settings
from datasets.attribution.constants import (
    COUNTER,
    CPU_SECONDS,
    DAY_US,
    GPU_BUSY_SECONDS,
    GPU_BUSY_SOURCES,
    KEPLER_SOURCE,
    STREAM_MARGIN_SECONDS,
    US_PER_SECOND,
    USAGE_SOURCES,
)
from datasets.attribution.engine import _Chunk, _Engine, _NodeIdle, _settings, _Split
from datasets.attribution.options import AttributionOptions
from datasets.attribution.series import _device_series
from datasets.attribution.tasks import _container_readings, _ran_tasks, _Tasks
from schemas.tables import UTC_TIMESTAMP
from schemas.validation import conform, schema_of

if TYPE_CHECKING:  # streaming reads datasets with pyarrow.dataset, imported only then (start-up time)
    import pyarrow.dataset as ds


def _day_chunks(
    node: str,
    tasks: _Tasks,
    power: ds.Dataset,
    containers: ds.Dataset | None,
    settings: _Settings,
    margin_us: int,
) -> Iterator[_Chunk]:
    """The node's readings day by day: each day's readings plus a margin and the whole of every task
    starting that day, emitting only that day's results."""
    from datasets.store import PARTITION_COLUMN

    at_node = pc.field("host_node") == node
    bounds = power.to_table(columns=["timestamp"], filter=at_node)["timestamp"]
    rows = tasks.by_node.get(node, np.zeros(0, dtype=np.int64))
    instants = [tasks.start_us[rows], tasks.end_us[rows]]
    if len(bounds):
        extremes = pc.min_max(bounds)
        instants.append(np.array([extremes["min"].value, extremes["max"].value], dtype=np.int64))
    everything = np.concatenate(instants)
    if everything.size == 0:
        return
    first_day, last_day = (
        int(everything.min()) // DAY_US,
        int(everything.max()) // DAY_US,
    )
    for day in range(first_day, last_day + 1):
        emit = (day * DAY_US, (day + 1) * DAY_US)
        starting = rows[(tasks.start_us[rows] >= emit[0]) & (tasks.start_us[rows] < emit[1])]
        latest = int((tasks.end_us[starting] + tasks.resolution_us[starting]).max()) if starting.size else 0
        load = (emit[0] - margin_us, max(emit[1], latest) + margin_us)
        dates = [
            datetime.fromtimestamp(d * 86_400, UTC).strftime("%Y-%m-%d")
            for d in range(load[0] // DAY_US, (load[1] - 1) // DAY_US + 1)
        ]
        in_time = (
            pc.field(PARTITION_COLUMN).isin(dates)
            & (pc.field("timestamp") >= pa.scalar(load[0], UTC_TIMESTAMP))
            & (pc.field("timestamp") < pa.scalar(load[1], UTC_TIMESTAMP))
        )
        samples = power.to_table(filter=at_node & in_time)
        series, _ = _device_series(_without_partition(samples, "power_samples"), emit)
        usage = kepler = gpu_busy = None
        if containers is not None:
            reaching = rows[
                (tasks.end_us[rows] + tasks.resolution_us[rows] >= load[0])
                & (tasks.start_us[rows] <= load[1])
            ]
            uids = [uid for uid in tasks.pod_uid[reaching] if uid is not None]
            mine = at_node | pc.field("pod_uid").isin(uids)
            table = _without_partition(containers.to_table(filter=mine & in_time), "container_samples")
            if settings.share == "usage":
                usage, _ = _container_readings(table, tasks, CPU_SECONDS, USAGE_SOURCES, emit)
            elif settings.share == "kepler":
                kepler, _ = _container_readings(table, tasks, COUNTER, (KEPLER_SOURCE,), emit)
            gpu_busy, _ = _container_readings(table, tasks, GPU_BUSY_SECONDS, GPU_BUSY_SOURCES, emit)
        if series or starting.size:
            yield _Chunk(node, series, usage, kepler, emit, gpu_busy)


def _node_datasets(dataset: ds.Dataset, folder: Path):
    """node -> the part of `dataset` that may hold the node's rows: the files whose row-group statistics say
    they hold that node only (a file per node and day, as agents spool them), plus every file holding more
    than one. A node's reads then open its own files, not every file of every day."""
    import pyarrow.dataset as ds

    own: dict[str, list[str]] = {}
    shared: list[str] = []
    for fragment in dataset.get_fragments():
        fragment.ensure_complete_metadata()
        nodes = set()
        for group in fragment.row_groups:
            statistics = (group.statistics or {}).get("host_node") or {}
            nodes.add(statistics.get("min") if statistics.get("min") == statistics.get("max") else None)
        if len(nodes) == 1 and None not in nodes:
            own.setdefault(nodes.pop(), []).append(fragment.path)
        else:
            shared.append(fragment.path)
    if not own:
        return lambda node: dataset

    def of(node: str) -> ds.Dataset:
        return ds.dataset(
            own.get(node, []) + shared,
            schema=dataset.schema,
            format=dataset.format,
            partitioning="hive",
            partition_base_dir=str(folder),
        )

    return of


def _without_partition(table: pa.Table, name: str) -> pa.Table:
    from datasets.store import PARTITION_COLUMN

    if PARTITION_COLUMN in table.column_names:
        table = table.drop_columns([PARTITION_COLUMN])
    return conform(name, table, keep_dictionaries=True)


def attribute_dataset(
    root: str | Path,
    out_root: str | Path | None = None,
    options: AttributionOptions | None = None,
    *,
    margin_seconds: float = STREAM_MARGIN_SECONDS,
    **changes,
) -> Attribution:
    """`attribute` over a hive-partitioned trace dataset (datasets/store.py), holding one node-day at a time.

    Pass 1 reads each node day by day (with `margin_seconds` of readings either side, and the whole of every
    task that starts that day) and keeps only the idle-power samples of that node and the small normal
    equations of the fit; pass 2 reads the same chunks again and attributes them with the pooled fit. The
    result equals the in-memory `attribute` on the same tables up to float rounding (the clock-skew pass,
    when asked, reads them once more). Balance windows must divide a day. With `out_root`, task_energy and
    node_energy_balance are also written there. options and `changes` as for `attribute`.
    """
    import pyarrow.dataset as ds

    from datasets.store import read_table, write_dataset

    root = Path(root)
    options = replace(options or AttributionOptions(), **changes)
    workers = options.worker_threads
    settings = _settings(options)
    if DAY_US % settings.window_us:
        raise ValueError(
            f"window_seconds {options.window_seconds} does not divide a day: streaming cuts at midnight"
        )
    machines = read_table(root, "machines") if (root / "machines").exists() else None
    ran = _ran_tasks(read_table(root, "tasks"), machines)
    # String columns stay dictionary-encoded as Parquet stores them: decoding every row costs more than
    # attributing it, and the engine reads them by runs.
    encoded = ds.ParquetFileFormat(
        read_options=ds.ParquetReadOptions(
            dictionary_columns={
                field.name for field in schema_of("power_samples") if pa.types.is_string(field.type)
            }
        )
    )
    power = ds.dataset(
        root / "power_samples",
        format=encoded,
        partitioning="hive",
        exclude_invalid_files=True,
    )
    containers = None
    if (root / "container_samples").exists():
        containers = ds.dataset(
            root / "container_samples",
            format="parquet",
            partitioning="hive",
            exclude_invalid_files=True,
        )
    if not settings.share:
        has_usage = containers is not None and containers.count_rows(
            filter=(pc.field("value_kind") == CPU_SECONDS) & pc.field("source").isin(list(USAGE_SOURCES))
        )
        settings = _Settings(**{**settings.__dict__, "share": "usage" if has_usage else "requests"})
    engine = _Engine(ran, machines, settings)
    engine.notes.append(_diagnostic("share", None, settings.share))
    if options.fast:  # the fast mode needs a series' whole readings at once; days are streamed exactly
        engine.notes.append(_diagnostic("mode", None, "exact: a streamed dataset is attributed exactly"))
    nodes = sorted(
        set(pc.unique(power.to_table(columns=["host_node"])["host_node"]).to_pylist()) | set(ran.by_node)
    )
    margin_us = round(margin_seconds * US_PER_SECOND)

    power_of = _node_datasets(power, root / "power_samples")

    def chunks(node: str) -> Iterator[_Chunk]:
        return _day_chunks(node, ran, power_of(node), containers, settings, margin_us)

    if settings.skew_tolerance_seconds > 0:
        for node in nodes:
            for chunk in chunks(node):
                engine.gather_skew(chunk)
        engine.finish_skew()

    def fit_pass(node: str) -> tuple[list[dict[str, np.ndarray]], _NodeIdle]:
        parts = [engine.gather(chunk, engine.cuts(chunk)) for chunk in chunks(node)]
        return parts, engine.node_idle(node)

    for parts, done in _in_order(fit_pass, nodes, workers):
        for grams in parts:
            engine.add_grams(grams)
        engine.finish_node(done)
    engine.finish_statistics()

    def split_pass(node: str) -> list[_Split]:
        return [engine.attribute(chunk, engine.cuts(chunk)) for chunk in chunks(node)]

    for splits in _in_order(split_pass, nodes, workers):
        for split in splits:
            engine.take(split)
    result = engine.result()
    if out_root is not None:
        write_dataset(
            out_root,
            {
                "task_energy": result.task_energy,
                "node_energy_balance": result.node_energy_balance,
            },
        )
    return result
