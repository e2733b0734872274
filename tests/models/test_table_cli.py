"""`jouletrace train --table` and `jouletrace predict --table` on a CSV of power readings made from the sample
world's recorded RAPL counters and container CPU-second counters."""

import json

import numpy as np
import pandas as pd
import pytest

from models.options import SplitSpec
from models.splits import holdout, time_values
from models.store import data_hash
from models.training import clean_target
from pipelines.cli import main

SCORES = {"mae", "mape", "r2"}
PNG = b"\x89PNG\r\n\x1a\n"


def test_training_writes_metrics_with_the_baselines(csv_model, power_csv):
    assert csv_model.code == 0
    metrics = json.loads((csv_model.out / "metrics.json").read_text())
    assert {"mae", "mape", "r2", "model", "n_train", "n_test", "interval_coverage", "baselines"} <= set(
        metrics
    )
    assert metrics["target"] == "power_watts" and metrics["split"] == "random"
    rows = len(pd.read_csv(power_csv))
    assert metrics["n_train"] + metrics["n_test"] == rows
    assert metrics["n_test"] == round(0.2 * rows)
    assert "median" in metrics["baselines"] and "linear" in metrics["baselines"]
    for name, values in metrics["baselines"].items():
        assert set(values) >= SCORES, name
    assert 0.0 <= metrics["interval_coverage"] <= 1.0
    assert metrics["model"] in set(metrics["selection"]["cv_mae"])


def test_the_model_beats_the_median(csv_model):
    metrics = json.loads((csv_model.out / "metrics.json").read_text())
    # busy cores explain a node's power: the model must do far better than one number
    assert metrics["mae"] < 0.5 * metrics["baselines"]["median"]["mae"]
    assert metrics["r2"] > 0.8


def test_model_card_lists_the_features_and_hashes_the_data(csv_model, power_csv):
    card = json.loads((csv_model.out / "model_card.json").read_text())
    metrics = json.loads((csv_model.out / "metrics.json").read_text())
    names = [f["name"] for f in card["features"]]
    assert names == metrics["features"]
    assert "busy_cores" in names and "power_watts" not in names
    assert {f["name"]: f["kind"] for f in card["features"]}["busy_cores"] == "numeric"
    training = card["training"]
    assert training["kind"] == "table" and training["source"] == str(power_csv)
    frame = pd.read_csv(power_csv)
    assert training["data_sha256"] == data_hash(frame, [*names, "power_watts"])
    changed = frame.assign(power_watts=frame["power_watts"].where(frame.index != 3, 1.0))
    assert data_hash(changed, [*names, "power_watts"]) != training["data_sha256"]


def test_automatic_features_leave_out_the_timestamp(csv_model):
    """A time read from a CSV is text; it is a time, not a category to learn from."""
    card = json.loads((csv_model.out / "model_card.json").read_text())
    assert "timestamp" not in [f["name"] for f in card["features"]]


def test_table_report_has_its_plots(csv_model):
    """The table has text columns with few levels (host_node, cpu_model): the report shows error by group."""
    for name in ("predicted_vs_measured", "error_by_group", "feature_importance"):
        assert (csv_model.out / f"{name}.png").read_bytes().startswith(PNG), name
    assert (csv_model.out / "report.md").read_text().startswith("# ")


def test_predict_writes_the_interval_columns(csv_model, power_csv, tmp_path, capsys):
    out = tmp_path / "preds.csv"
    assert main(["predict", "--model", str(csv_model.out), "--table", str(power_csv), "--out", str(out)]) == 0
    assert str(out) in capsys.readouterr().out
    predictions = pd.read_csv(out)
    table = pd.read_csv(power_csv)
    assert len(predictions) == len(table)
    assert (predictions["timestamp"] == table["timestamp"]).all()
    estimate = predictions["power_watts_predicted"]
    lower, upper = predictions["power_watts_lower"], predictions["power_watts_upper"]
    assert np.isfinite(estimate).all()
    assert (lower <= estimate).all() and (estimate <= upper).all() and (lower < upper).all()
    assert (predictions["prediction_provenance"] == "estimated").all()
    # on the whole table (mostly rows it learned from) the predictions follow the measured power
    assert np.corrcoef(estimate, table["power_watts"])[0, 1] > 0.95


@pytest.fixture(scope="module")
def time_model(power_csv, tmp_path_factory):
    out = tmp_path_factory.mktemp("time-model") / "model"
    argv = ["train", "--table", str(power_csv), "--target", "power_watts", "--out", str(out)]
    code = main([*argv, "--split", "time:timestamp", "--model", "linear", "--test-fraction", "0.25"])
    return code, out


def test_time_split_tests_on_the_latest_readings(time_model, power_csv):
    code, out = time_model
    assert code == 0
    metrics = json.loads((out / "metrics.json").read_text())
    card = json.loads((out / "model_card.json").read_text())
    assert metrics["split"] == "time:timestamp" and card["training"]["split"] == "time:timestamp"
    frame = clean_target(pd.read_csv(power_csv), "power_watts", str(power_csv))
    train, test = holdout(frame, SplitSpec("time", "timestamp"), 0.25, 0, str(power_csv))
    assert metrics["n_test"] == card["training"]["n_test"] == len(test)
    assert metrics["n_train"] == len(train)
    times = time_values(frame, "timestamp", "x")
    assert times[train].max() < times[test].min()
    # the last quarter in time, give or take the readings that share the cut instant (five nodes)
    assert 0.25 * len(frame) <= len(test) <= 0.25 * len(frame) + 5
    assert "timestamp" not in [f["name"] for f in card["features"]]
