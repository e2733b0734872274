"""The estimators on awkward columns: always-empty columns and categories never seen in training."""

import numpy as np
import pandas as pd
import pytest

from models.estimators import TabularRegressor


def _table(rng: np.random.Generator, n: int) -> tuple[pd.DataFrame, np.ndarray]:
    """Power of tasks of four types on two device kinds; the watts depend on kind, type and cores."""
    kinds = rng.choice(["cpu_package", "dram", "gpu"], n)
    types = rng.choice(["a", "b", "c", "d"], n)
    cores = rng.integers(1, 9, n).astype(float)
    per_type = {"a": 1.0, "b": 1.5, "c": 2.0, "d": 3.0}
    base = np.select([kinds == "cpu_package", kinds == "dram"], [9.0, 1.2], 150.0)
    watts = base * cores * np.array([per_type[t] for t in types]) * rng.lognormal(0, 0.05, n)
    frame = pd.DataFrame(
        {
            "device_kind": kinds,
            "task_template": types,
            "task_device_type": [f"{t}/{k}" for t, k in zip(types, kinds, strict=True)],
            "cores": cores,
            "fpga_model": pd.Series([None] * n, dtype="object"),
            "read_bytes": np.full(n, np.nan),
        }
    )
    return frame, watts


@pytest.mark.parametrize("model", ["xgboost", "hgb", "rf", "linear"])
def test_always_empty_columns_train_and_predict(model):
    frame, watts = _table(np.random.default_rng(1), 400)
    regressor = TabularRegressor(
        model, ("cores", "read_bytes"), ("device_kind", "task_template", "fpga_model"), "log", 0
    )
    predicted = regressor.fit(frame, watts).predict(frame)
    assert np.isfinite(predicted).all()
    assert np.median(np.abs(predicted - watts) / watts) < 0.25


@pytest.mark.parametrize("model", ["xgboost", "hgb", "rf"])
def test_a_type_never_seen_is_predicted_from_its_device_kind_and_cores(model):
    frame, watts = _table(np.random.default_rng(2), 800)
    seen = (frame["task_template"] != "d").to_numpy()
    regressor = TabularRegressor(
        model, ("cores",), ("device_kind", "task_template", "task_device_type"), "log", 0
    )
    regressor.fit(frame[seen], watts[seen])
    unseen = frame[~seen]
    predicted = regressor.predict(unseen)
    # Type d draws 3x type a; never seen, it should land among the seen types of its kind and cores, not at
    # the overall mean of all kinds (which puts DRAM rows, ~1 W per core, tens of times too high).
    ratio = predicted / watts[~seen]
    for kind in ("cpu_package", "dram", "gpu"):
        rows = (unseen["device_kind"] == kind).to_numpy()
        assert 0.25 < np.median(ratio[rows]) < 1.5, kind
