"""The energy-trace dataset on disk: hive-partitioned Parquet, one folder per table.

Layout: ``<root>/<table>/date=YYYY-MM-DD/part-0.parquet`` (``machines`` is not partitioned).
Rows are partitioned by the UTC date of the workflow they belong to (tasks, task energy),
of their own time (power samples, balance windows) or of the workflow start (workflows),
so one workflow's rows stay together. Writing a partition replaces it whole, through a
temporary folder and a rename: re-collection overwrites and never duplicates, and a crash
leaves either the old or the new partition. DuckDB reads it with
``read_parquet('<root>/tasks/*/*.parquet', hive_partitioning=true)``.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

import schemas

if TYPE_CHECKING:  # pyarrow.dataset loads pandas: imported where a dataset is read (start-up time)
    import pyarrow.dataset as ds

PARTITION_COLUMN = "date"
UNKNOWN_DATE = "unknown"
UNPARTITIONED = frozenset({"machines"})


def _write_atomic(path: Path, write) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def write_parquet_atomic(table: pa.Table, path: Path) -> Path:
    """Write one Parquet file through a temporary sibling and a rename."""
    return _write_atomic(path, lambda tmp: pq.write_table(table, tmp))


def write_bytes_atomic(data: bytes, path: Path) -> Path:
    """Write a file (a plot, a JSON report) through a temporary sibling and a rename."""
    return _write_atomic(path, lambda tmp: tmp.write_bytes(data))


def _dates(times: pa.ChunkedArray | pa.Array) -> pa.Array:
    text = pc.strftime(times, format="%Y-%m-%d")
    return pc.fill_null(text, UNKNOWN_DATE)


def workflow_dates(workflows: pa.Table) -> dict[str, str]:
    """workflow_uid -> UTC date of its start (the partition its rows go to)."""
    return dict(
        zip(
            workflows["workflow_uid"].to_pylist(),
            _dates(workflows["started_at"]).to_pylist(),
            strict=True,
        )
    )


def partition_dates(name: str, table: pa.Table, dates_of_workflows: dict[str, str]) -> pa.Array:
    """The partition date of every row of `table`."""
    if name == "workflows":
        return _dates(table["started_at"])
    if name in ("tasks", "task_energy"):
        return pa.array(
            [dates_of_workflows.get(uid, UNKNOWN_DATE) for uid in table["workflow_uid"].to_pylist()],
            pa.string(),
        )
    if name in ("power_samples", "container_samples"):
        return _dates(table["timestamp"])
    if name == "node_energy_balance":
        return _dates(table["window_start"])
    raise ValueError(f"table {name!r} is not partitioned by date")


def write_dataset(root: str | Path, tables: dict[str, pa.Table]) -> dict[str, list[Path]]:
    """Validate and write `tables` under `root`, replacing the partitions they cover.

    `tables` may hold any of the model's tables; tasks and task energy need `workflows`
    (given here or already on disk) to find their partition.
    """
    root = Path(root)
    for name, table in tables.items():
        schemas.validate(name, table, source=f"{root / name} (about to be written)")
    workflows = tables.get("workflows")
    if workflows is None and (root / "workflows").exists():
        workflows = read_table(root, "workflows")
    dates_of_workflows = workflow_dates(workflows) if workflows is not None else {}
    written: dict[str, list[Path]] = {}
    for name, table in tables.items():
        if name in UNPARTITIONED:
            written[name] = [write_parquet_atomic(table, root / name / "part-0.parquet")]
            continue
        dates = partition_dates(name, table, dates_of_workflows)
        written[name] = []
        for date in sorted(set(dates.to_pylist())):
            part = table.filter(pc.equal(dates, date))
            written[name].append(_replace_partition(root / name, f"{PARTITION_COLUMN}={date}", part))
    return written


def replace_folder(target: Path, fill: Callable[[Path], None]) -> None:
    """Fill a staging sibling of `target`, then swap it in: readers see the old folder or the new one,
    never a mix, and a failure leaves the old one in place."""
    target.parent.mkdir(parents=True, exist_ok=True)
    token = uuid.uuid4().hex
    staging = target.with_name(f".{target.name}.{token}.new")
    retired = target.with_name(f".{target.name}.{token}.old")
    staging.mkdir()
    try:
        fill(staging)
        if target.exists():
            os.replace(target, retired)
        os.replace(staging, target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
        shutil.rmtree(retired, ignore_errors=True)


def _replace_partition(table_dir: Path, partition: str, part: pa.Table) -> Path:
    replace_folder(table_dir / partition, lambda staging: pq.write_table(part, staging / "part-0.parquet"))
    return table_dir / partition / "part-0.parquet"


def read_table(root: str | Path, name: str, filter_expression: ds.Expression | None = None) -> pa.Table:
    """Read one table of the dataset back in the model's schema (partition column dropped)."""
    import pyarrow.dataset as ds

    folder = Path(root) / name
    if not folder.exists():
        raise FileNotFoundError(f"{folder}: table {name!r} is not in this dataset")
    if name in UNPARTITIONED:
        dataset = ds.dataset(folder, format="parquet")
    else:
        dataset = ds.dataset(folder, format="parquet", partitioning="hive", exclude_invalid_files=True)
    table = dataset.to_table(filter=filter_expression)
    if PARTITION_COLUMN in table.column_names:
        table = table.drop_columns([PARTITION_COLUMN])
    return schemas.conform(name, table)
