"""The one line `jouletrace collect` prints about what it could not read.

Each collection asset records what it missed in its `missing` metadata (pods not read, requests taken from
Argo's templates, GPU ids unmapped, machines unknown); the task energy rows whose device had no readings
(`method` "no-readings: ...") are counted from the run's own asset value.
"""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import pyarrow.compute as pc
import pyarrow.parquet as pq

MISSING_ASSETS = ("task_runs", "machines")


def missing_line(instance: dg.DagsterInstance, asset_dir: Path) -> str | None:
    """What this run's collection assets could not read, joined in one line; None when nothing."""
    parts = []
    for name in MISSING_ASSETS:
        event = instance.get_latest_materialization_event(dg.AssetKey(name))
        materialization = event.asset_materialization if event is not None else None
        entry = materialization.metadata.get("missing") if materialization is not None else None
        if entry is not None and entry.value:
            parts.append(str(entry.value))
    energy = Path(asset_dir) / "task_energy.parquet"
    if energy.exists():
        method = pq.read_table(energy, columns=["method"])["method"]
        unread = pc.sum(pc.starts_with(method, "no-readings")).as_py() or 0
        if unread:
            parts.append(f"{unread} task energy rows without readings (method no-readings)")
    return "; ".join(parts) or None
