"""Compare attributed task energy with a ground truth (the sample world's power model)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from schemas import ADDITIVE_DEVICE_KINDS

TASK_KEY = ["workflow_uid", "task_id"]


@dataclass(frozen=True)
class ErrorSummary:
    tasks: int
    median_relative_error: float
    p95_relative_error: float
    max_relative_error: float
    total_attributed_joules: float
    total_truth_joules: float


def per_task_errors(task_energy: pa.Table, truth: pa.Table, column: str = "energy_joules") -> pd.DataFrame:
    """One row per task present in the truth: attributed and true joules summed over devices.

    A task the attribution missed counts as 0 J attributed (relative error 1), so misses show. Only meters
    that do not overlap are summed (schemas.ADDITIVE_DEVICE_KINDS).
    """
    task_energy, truth = (
        table.filter(pc.is_in(table["device_kind"], pa.array(ADDITIVE_DEVICE_KINDS)))
        for table in (task_energy, truth)
    )
    attributed = task_energy.select([*TASK_KEY, column]).to_pandas().groupby(TASK_KEY)[column].sum()
    true = truth.select([*TASK_KEY, column]).to_pandas().groupby(TASK_KEY)[column].sum()
    frame = pd.DataFrame({"truth_joules": true}).join(attributed.rename("attributed_joules"), how="left")
    frame["attributed_joules"] = frame["attributed_joules"].fillna(0.0)
    frame = frame[frame["truth_joules"] > 0]
    frame["relative_error"] = (frame["attributed_joules"] - frame["truth_joules"]).abs() / frame[
        "truth_joules"
    ]
    return frame.reset_index()


def summarize(errors: pd.DataFrame) -> ErrorSummary:
    rel = errors["relative_error"].to_numpy()
    if rel.size == 0:
        raise ValueError("no task is both in the attribution and in the truth")
    return ErrorSummary(
        tasks=int(rel.size),
        median_relative_error=float(np.median(rel)),
        p95_relative_error=float(np.percentile(rel, 95)),
        max_relative_error=float(rel.max()),
        total_attributed_joules=float(errors["attributed_joules"].sum()),
        total_truth_joules=float(errors["truth_joules"].sum()),
    )
