"""The models group on a small sample world: the training set, one model folder per target, the evaluation
summary and the check against the TDP x runtime estimate."""

import json

import dagster as dg
import pandas as pd
import pyarrow.parquet as pq
import pytest

from models.features import build_training_table
from models.tables import read_trace_dataset
from pipelines.build import TRACE_GROUPS, build_definitions
from pipelines.collect.partitions import range_tags
from pipelines.models.assets import TARGET_OF_ASSET
from pipelines.run import recorded_days, run_config
from pipelines.settings import Settings

METRIC_KEYS = {"mae", "mape", "r2", "model", "n_train", "n_test", "interval_coverage", "baselines"}
MODEL_FILES = ("model.joblib", "model_card.json", "metrics.json", "report.md", "predicted_vs_measured.png")
KEYS = ["workflow_uid", "task_id", "device_kind"]
PNG_DATA_URL = "data:image/png;base64,iVBORw0KGgo"  # base64 of the PNG signature


@pytest.fixture(scope="module")
def models_run(tmp_path_factory):
    """The trace assets and the models group materialized in one run (not the exports nor allocation)."""
    settings = Settings.under(tmp_path_factory.mktemp("models"), seed=3, workflows=6)
    defs = build_definitions(settings)
    selection = list(
        dg.AssetSelection.groups("collect", "traces", "models").resolve(defs.resolve_asset_graph())
    )
    result = defs.resolve_implicit_global_asset_job_def().execute_in_process(
        instance=dg.DagsterInstance.ephemeral(),
        run_config=run_config(log_level="WARNING"),
        asset_selection=selection,
        raise_on_error=False,
        tags=range_tags(recorded_days(settings)),
    )
    return settings, result


def _metadata(result, asset: str) -> dict:
    (event,) = result.asset_materializations_for_node(asset)
    return {key: value.value for key, value in event.metadata.items()}


def _metrics(settings: Settings, target: str) -> dict:
    return json.loads((settings.models_dir / target / "metrics.json").read_text())


def test_collect_leaves_the_models_group_out():
    defs = build_definitions(Settings.under("unused"))
    graph = defs.resolve_asset_graph()
    collected = {k.to_user_string() for k in dg.AssetSelection.groups(*TRACE_GROUPS).resolve(graph)}
    models = {k.to_user_string() for k in dg.AssetSelection.groups("models").resolve(graph)}
    assert models == {"training_set", *TARGET_OF_ASSET, "model_evaluation"}
    assert not collected & models


def test_every_regressor_writes_its_model_folder(models_run):
    settings, result = models_run
    assert result.success, [e.event_specific_data.error.message for e in result.get_step_failure_events()]
    assert settings.models_dir == settings.asset_dir.parent / "models"
    for asset, target in TARGET_OF_ASSET.items():
        folder = settings.models_dir / target
        for name in MODEL_FILES:
            assert (folder / name).is_file(), f"{asset}: no {name} in {folder}"
        assert (folder / "predicted_vs_measured.png").read_bytes()[:4] == b"\x89PNG"
        metrics = _metrics(settings, target)
        assert set(metrics) >= METRIC_KEYS, f"{target}: {METRIC_KEYS - set(metrics)} missing"
        assert metrics["target"] == target and metrics["split"] == "group:workflow_uid"
        assert metrics["n_train"] > 0 and metrics["n_test"] > 0
        assert ("tdp_x_runtime" in metrics["baselines"]) == (target != "runtime_seconds")
        metadata = _metadata(result, asset)
        assert metadata["mae"] == pytest.approx(metrics["mae"])
        assert metadata["model"] == metrics["model"]
        assert metadata["model_dir"] == str(folder.resolve())
    # Only the energy regressor runs the honest splits and the cross-machine test by default.
    assert {"evaluation", "cross_machine"} <= set(_metrics(settings, "energy_joules"))
    assert "evaluation" not in _metrics(settings, "avg_power_watts")
    assert "evaluation" not in _metrics(settings, "runtime_seconds")


def test_training_set_is_the_before_run_energy_table_of_the_dataset(models_run):
    settings, result = models_run
    stored = pq.read_table(settings.asset_dir / "training_set.parquet").to_pandas()
    expected = build_training_table(read_trace_dataset(settings.dataset_dir), "energy_joules", "before-run")
    assert len(stored) == len(expected.frame) > 0
    assert list(stored.columns) == list(expected.frame.columns)
    pd.testing.assert_frame_equal(
        stored.sort_values(KEYS).reset_index(drop=True),
        expected.frame.sort_values(KEYS).reset_index(drop=True),
        check_dtype=False,
    )
    metadata = _metadata(result, "training_set")
    assert metadata["dagster/row_count"] == len(stored)
    assert metadata["rows_by_device_kind"] == stored["device_kind"].value_counts().to_dict()
    assert metadata["rows_left_out"] == expected.dropped
    assert metadata["features"] == expected.features


def test_beats_tdp_check_compares_the_held_out_maes(models_run):
    settings, result = models_run
    (evaluation,) = [
        e
        for e in result.get_asset_check_evaluations()
        if e.asset_key == dg.AssetKey("energy_regressor") and e.check_name == "beats_tdp_baseline"
    ]
    metrics = _metrics(settings, "energy_joules")
    tdp_mae = metrics["baselines"]["tdp_x_runtime"]["mae"]
    assert evaluation.passed == (metrics["mae"] < tdp_mae)
    assert evaluation.metadata["model_mae_joules"].value == pytest.approx(metrics["mae"])
    assert evaluation.metadata["tdp_x_runtime_mae_joules"].value == pytest.approx(tdp_mae)


def test_metadata_shows_the_plots_and_the_summary(models_run):
    settings, result = models_run
    energy = _metadata(result, "energy_regressor")
    images = [name for name, value in energy.items() if isinstance(value, str) and PNG_DATA_URL in value]
    assert {"predicted_vs_measured", "feature_importance"} <= set(images)
    evaluation = _metadata(result, "model_evaluation")
    assert PNG_DATA_URL in evaluation["energy_predicted_vs_measured"]
    rows = [line for line in evaluation["summary"].splitlines() if line.startswith("| ")][1:]
    assert [row.split("|")[1].strip() for row in rows] == list(TARGET_OF_ASSET.values())
    for row, target in zip(rows, TARGET_OF_ASSET.values(), strict=True):
        metrics = _metrics(settings, target)
        assert f"| {metrics['model']} |" in row
        assert row.rstrip(" |").endswith("yes" if metrics["beats_every_baseline"] else "no")
