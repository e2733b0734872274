"""models.api.train_dataset on the sample world's trace dataset (energy_joules, before-run, evaluated): the
honest splits, the cross-machine table, the held-out workflows, the intervals and the report."""

import json

import numpy as np
import pandas as pd
import pytest

from models.evaluation import HONEST_SPLITS, hardware_signature
from models.features import build_training_table, machine_features
from models.options import SplitSpec
from models.splits import holdout
from models.training import clean_target
from pipelines.cli import main

PNG = b"\x89PNG\r\n\x1a\n"
KEYS = ["workflow_uid", "task_id", "device_kind"]


@pytest.fixture(scope="module")
def trained(dataset_model, world):
    options, run = dataset_model
    metrics = json.loads((run.out_dir / "metrics.json").read_text())
    card = json.loads((run.out_dir / "model_card.json").read_text())
    frame = build_training_table(world.tables, options.target, options.mode).frame
    frame = clean_target(frame, options.target, str(world.dataset))
    return options, run, metrics, card, frame


@pytest.fixture(scope="module")
def held_out(trained, world):
    options, _, _, _, frame = trained
    split = SplitSpec("group", "workflow_uid")
    return holdout(frame, split, options.test_fraction, options.seed, str(world.dataset))


def test_metrics_hold_every_honest_split(trained):
    _, _, metrics, card, frame = trained
    evaluation = dict(metrics["evaluation"])
    assert card["evaluation"] == evaluation
    # the three splits apply here (many workflows, many task types, start times), and the K-fold over all
    # workflows scores every row once
    assert set(evaluation) == {*HONEST_SPLITS, "every workflow held out once"}
    workflows = evaluation["held-out workflows"]
    assert "skipped" not in workflows
    folded = evaluation.pop("every workflow held out once")
    assert folded["n_test"] == len(frame) and folded["n_train"] is None
    assert set(folded["baselines"]) == set(workflows["baselines"])
    for name, result in evaluation.items():
        if "skipped" in result:
            assert result["skipped"]
            continue
        assert result["split"] == HONEST_SPLITS[name]
        assert result["n_train"] + result["n_test"] == len(frame)
        assert {"mae", "mape", "r2", "interval_coverage", "baselines"} <= set(result)
        assert {"median", "linear", "task_type_median", "tdp_x_runtime"} <= set(result["baselines"])
    # the model's own split is the held-out workflows one
    assert metrics["split"] == "group:workflow_uid"
    assert workflows["n_test"] == metrics["n_test"] and workflows["mae"] == pytest.approx(metrics["mae"])


def test_cross_machine_rows_name_the_hardware_and_cpu_speeds(trained, world):
    _, _, metrics, card, frame = trained
    rows = metrics["cross_machine"]
    assert rows and card["cross_machine"] == rows
    machines = machine_features(world.tables["machines"])
    signatures = hardware_signature(machines)
    speeds = set(machines["cpu_speed_mhz"])
    assert len({r["hardware"] for r in rows}) == len(rows)
    for row in rows:
        assert row["hardware"] in set(signatures)
        on_it = machines[(signatures == row["hardware"]).to_numpy()]
        assert row["nodes"] == sorted(on_it["host_node"])
        assert 0 < row["rows"] <= (frame["host_node"].isin(on_it["host_node"])).sum()
        assert sorted(row["test_cpu_speed_mhz"]) == sorted(set(on_it["cpu_speed_mhz"]))
        low, high = row["train_cpu_speed_mhz"]
        assert low <= high and low in speeds and high in speeds
        # trained without this hardware: the training speeds come from the other machines
        others = set(machines.loc[(signatures != row["hardware"]).to_numpy(), "cpu_speed_mhz"])
        assert low in others and high in others
        assert {"mae", "mape", "r2"} <= set(row["model"]) and {"mae", "mape", "r2"} <= set(
            row["task_type_median"]
        )
    # the card says in words how far each held-out hardware was from training
    sentences = card["cross_machine_tested"]
    assert len(sentences) == len(rows)
    for row, sentence in zip(rows, sentences, strict=True):
        low, high = row["train_cpu_speed_mhz"]
        inside = all(low <= s <= high for s in row["test_cpu_speed_mhz"])
        assert sentence.startswith(row["hardware"]) and ("inside" if inside else "outside") in sentence


def test_test_workflows_are_not_training_workflows(trained, held_out):
    _, _, metrics, _, frame = trained
    train, test = held_out
    assert len(train) == metrics["n_train"] and len(test) == metrics["n_test"]
    train_workflows = set(frame["workflow_uid"].iloc[train])
    test_workflows = set(frame["workflow_uid"].iloc[test])
    assert test_workflows and not train_workflows & test_workflows
    assert train_workflows | test_workflows == set(frame["workflow_uid"])


def test_interval_coverage_is_the_share_of_test_rows_inside(trained, held_out, world, tmp_path):
    _, run, metrics, _, frame = trained
    coverage = metrics["interval_coverage"]
    assert 0.0 <= coverage <= 1.0
    out = tmp_path / "preds.parquet"
    code = main(["predict", "--model", str(run.out_dir), "--dataset", str(world.dataset), "--out", str(out)])
    assert code == 0
    predictions = pd.read_parquet(out)
    assert len(predictions) == len(frame) and not predictions.duplicated(KEYS).any()
    test_rows = frame.iloc[held_out[1]][KEYS]
    joined = test_rows.merge(predictions, on=KEYS, how="left", validate="one_to_one")
    assert joined["energy_joules_predicted"].notna().all()
    y = joined["energy_joules"]
    inside = (joined["energy_joules_lower"] <= y) & (y <= joined["energy_joules_upper"])
    assert inside.mean() == pytest.approx(coverage, abs=1e-12)
    assert (joined["energy_joules_lower"] <= joined["energy_joules_predicted"]).all()
    assert (joined["energy_joules_predicted"] <= joined["energy_joules_upper"]).all()


def test_card_says_what_the_model_was_trained_on(trained, world):
    options, _, metrics, card, frame = trained
    training = card["training"]
    assert training["kind"] == "dataset" and training["mode"] == "before-run"
    assert training["split"] == "group:workflow_uid" and training["seed"] == options.seed
    assert training["rows"] == len(frame)
    names = [f["name"] for f in card["features"]]
    assert names == metrics["features"]
    # before the run: no runtime or usage, no identifiers
    for column in ("runtime_seconds", "cpu_seconds", "workflow_uid", "task_id", "host_node", "energy_joules"):
        assert column not in names


def test_report_and_plots_are_written(trained):
    _, run, _, _, _ = trained
    report = (run.out_dir / "report.md").read_text()
    assert report.startswith("# ") and "## Honest splits" in report and "## Cross-machine" in report
    for name in ("predicted_vs_measured", "error_by_group", "feature_importance"):
        png = run.out_dir / f"{name}.png"
        assert png.read_bytes().startswith(PNG), name
        assert f"({name}.png)" in report
    assert np.isfinite(
        list(json.loads((run.out_dir / "metrics.json").read_text())["feature_importance"].values())
    ).all()
