"""The baselines every model is scored against, fitted on the training part only.

- ``median``: one number, the training median.
- ``linear``: ordinary least squares on the raw target, same features (one-hot categories).
- ``task_type_median`` (trace datasets) / ``median_by_<column>`` (plain tables): the training median of the
  row's group, falling back to coarser groups, then to the overall median, for groups never seen.
- ``tdp_x_runtime`` (trace datasets, energy and power targets): CodeCarbon's fallback, the listed TDP x 0.5 x
  the task's share of the device (requested cores of the machine's cores, GPUs and FPGAs held; DRAM 3 W per
  8 GiB requested) x runtime. Before the run the runtime is the task type's training median; after the run,
  the measured one.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from models import hardware
from models.estimators import TabularRegressor

GIB = 1024.0**3


class MedianBaseline:
    name = "median"

    def fit(self, frame: pd.DataFrame, y: np.ndarray) -> MedianBaseline:
        self.value = float(np.median(y))
        return self

    def predict(self, frame: pd.DataFrame) -> np.ndarray:
        return np.full(len(frame), self.value)


class GroupMedianBaseline:
    """Median of the row's group by ``columns``; unseen groups fall back to shorter keys, then the median."""

    def __init__(self, name: str, columns: list[str]):
        self.name = name
        self.columns = columns

    def fit(self, frame: pd.DataFrame, y: np.ndarray) -> GroupMedianBaseline:
        data = frame[self.columns].astype("object").fillna("(none)").astype(str).assign(_y=np.asarray(y))
        self.medians = [
            data.groupby(self.columns[:depth])["_y"].median() for depth in range(len(self.columns), 0, -1)
        ]
        self.overall = float(np.median(y))
        return self

    def predict(self, frame: pd.DataFrame) -> np.ndarray:
        keys = frame[self.columns].astype("object").fillna("(none)").astype(str)
        result = np.full(len(frame), np.nan)
        for depth, medians in zip(range(len(self.columns), 0, -1), self.medians, strict=True):
            index = (
                pd.MultiIndex.from_frame(keys[self.columns[:depth]]) if depth > 1 else keys[self.columns[0]]
            )
            found = medians.reindex(index).to_numpy(dtype="float64")
            result = np.where(np.isnan(result), found, result)
        return np.where(np.isnan(result), self.overall, result)


class LinearBaseline:
    """Ordinary least squares on the raw target, as a linear-regression baseline is usually reported."""

    name = "linear"

    def __init__(self, numeric: list[str], categorical: list[str]):
        self.model = TabularRegressor("ols", tuple(numeric), tuple(categorical), transform="none")

    def fit(self, frame: pd.DataFrame, y: np.ndarray) -> LinearBaseline:
        self.model.fit(frame, y)
        return self

    def predict(self, frame: pd.DataFrame) -> np.ndarray:
        return self.model.predict(frame)


def _column(frame: pd.DataFrame, name: str, default: float = np.nan) -> np.ndarray:
    if name not in frame:
        return np.full(len(frame), default)
    return pd.to_numeric(frame[name], errors="coerce").to_numpy(dtype="float64", na_value=np.nan)


def tdp_share_watts(frame: pd.DataFrame) -> np.ndarray:
    """Per row, listed TDP x 0.5 x the task's share of the device kind (parts not in the TDP table use the
    defaults of models.hardware)."""
    kinds = frame["device_kind"].astype(str).to_numpy()
    watts = np.full(len(frame), np.nan)
    models = {
        name: frame[name].to_numpy(dtype=object) if name in frame else np.full(len(frame), None)
        for name in ("cpu_model", "gpu_model", "fpga_model")
    }
    sockets, cores = _column(frame, "machine_sockets", 1.0), _column(frame, "machine_cores", 1.0)
    requested = np.nan_to_num(_column(frame, "cpu_request_cores", 1.0), nan=1.0)
    memory_gib = np.nan_to_num(_column(frame, "memory_request_bytes", 0.0)) / GIB
    held = {"gpu": _column(frame, "gpu_count", 1.0), "fpga": _column(frame, "fpga_count", 1.0)}
    for i, kind in enumerate(kinds):
        if kind in ("cpu_package", "cpu_core", "psys"):
            tdp = hardware.cpu_package_watts(
                models["cpu_model"][i], np.nan_to_num(sockets[i], nan=1.0), np.nan_to_num(cores[i], nan=1.0)
            )
            share = requested[i] / max(np.nan_to_num(cores[i], nan=requested[i]), requested[i], 1e-9)
        elif kind == "dram":
            # CodeCarbon's RAM rule is already a draw, not a TDP: undo the load fraction applied below.
            tdp, share = hardware.DRAM_WATTS_PER_GIB / hardware.TDP_LOAD_FRACTION * memory_gib[i], 1.0
        elif kind == "gpu":
            tdp = hardware.gpu_watts(models["gpu_model"][i])
            share = max(np.nan_to_num(held["gpu"][i], nan=1.0), 1.0)
        elif kind == "fpga":
            tdp = hardware.fpga_watts(models["fpga_model"][i])
            share = max(np.nan_to_num(held["fpga"][i], nan=1.0), 1.0)
        else:
            continue
        watts[i] = tdp * hardware.TDP_LOAD_FRACTION * share
    return watts


class TdpBaseline:
    """CodeCarbon's fallback per task: TDP x 0.5 x share, times the runtime (power targets: the watts)."""

    name = "tdp_x_runtime"

    def __init__(self, target: str, mode: str):
        self.target = target
        self.mode = mode

    def fit(self, frame: pd.DataFrame, y: np.ndarray) -> TdpBaseline:
        runtime = _column(frame, "runtime_seconds")
        self.runtime = GroupMedianBaseline("runtime", ["task_template"]).fit(frame, runtime)
        return self

    def predict(self, frame: pd.DataFrame) -> np.ndarray:
        watts = tdp_share_watts(frame)
        if self.target == "avg_power_watts":
            return watts
        runtime = (
            _column(frame, "runtime_seconds") if self.mode == "after-run" else self.runtime.predict(frame)
        )
        return watts * runtime


def baselines_for(kind: str, target: str, mode: str, numeric: list[str], categorical: list[str]) -> list:
    """The baselines of a trace dataset (``dataset``) or of any table (``table``)."""
    chosen: list = [MedianBaseline(), LinearBaseline(numeric, categorical)]
    if kind == "dataset":
        by_type = ["device_kind", "task_template"] if target != "runtime_seconds" else ["task_template"]
        chosen.append(GroupMedianBaseline("task_type_median", by_type))
        if target in ("energy_joules", "avg_power_watts"):
            chosen.append(TdpBaseline(target, mode))
        return chosen
    for column in categorical[:3]:
        chosen.append(GroupMedianBaseline(f"median_by_{column}", [column]))
    return chosen
