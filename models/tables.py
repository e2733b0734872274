"""Reading what models learn from: any CSV or Parquet table, or the tables of a trace dataset (the I/O edge)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from models.errors import ModelInputError

DATASET_TABLES = ("workflows", "tasks", "machines", "task_energy", "container_samples")
REQUIRED_TABLES = ("workflows", "tasks")


def read_table_file(path: str | Path) -> pd.DataFrame:
    """A CSV file (``.csv``, ``.csv.gz``), a Parquet file or a folder of Parquet files."""
    file = Path(path)
    if not file.exists():
        raise ModelInputError(f"{file}: no such file")
    name = file.name.lower()
    try:
        if file.is_dir():
            frame = pd.read_parquet(file)
        elif name.endswith((".csv", ".csv.gz", ".tsv")):
            frame = pd.read_csv(file, sep="\t" if name.endswith(".tsv") else ",")
        elif name.endswith((".parquet", ".pq")):
            frame = pd.read_parquet(file)
        else:
            raise ModelInputError(f"{file}: not a .csv, .tsv, .parquet file or a folder of Parquet files")
    except (ValueError, OSError) as exc:
        if isinstance(exc, ModelInputError):
            raise
        raise ModelInputError(f"{file}: cannot be read as a table ({str(exc).splitlines()[0]})") from None
    if frame.empty:
        raise ModelInputError(f"{file}: the table has no rows")
    return frame


def read_trace_dataset(root: str | Path) -> dict[str, pd.DataFrame]:
    """The tables of a trace dataset that features are built from (absent optional tables are left out)."""
    from datasets.store import read_table, storage_path

    root = storage_path(root)
    if not root.is_dir():
        raise ModelInputError(f"{root}: no such trace dataset folder")
    tables = {}
    for name in DATASET_TABLES:
        try:
            tables[name] = read_table(root, name).to_pandas()
        except FileNotFoundError:
            if name in REQUIRED_TABLES:
                raise ModelInputError(f"{root}: not a trace dataset (no {name}/ table)") from None
    if tables["tasks"].empty:
        raise ModelInputError(f"{root}: the dataset's tasks table has no rows")
    return tables
