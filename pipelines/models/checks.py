"""Asset checks of the regressors: the energy model must beat the TDP x runtime estimate on held-out work."""

import dagster as dg

from pipelines.models.assets import TARGET_OF_ASSET, ModelStoreResource

TDP_BASELINE = "tdp_x_runtime"


def beats_baseline(metrics: dict, baseline: str = TDP_BASELINE) -> tuple[bool, float, float]:
    """Whether the chosen model's MAE on the held-out rows is below `baseline`'s, and both MAEs."""
    model_mae = float(metrics["mae"])
    baseline_mae = float(metrics["baselines"][baseline]["mae"])
    return model_mae < baseline_mae, model_mae, baseline_mae


@dg.asset_check(
    asset="energy_regressor",
    blocking=False,
    description="the model's MAE on held-out workflows is below the TDP x 0.5 x share x runtime estimate's",
)
def beats_tdp_baseline(model_store: ModelStoreResource) -> dg.AssetCheckResult:
    metrics = model_store.metrics(TARGET_OF_ASSET["energy_regressor"])
    passed, model_mae, baseline_mae = beats_baseline(metrics)
    return dg.AssetCheckResult(
        passed=passed,
        metadata={
            "model": metrics["model"],
            "split": metrics["split"],
            "model_mae_joules": model_mae,
            "tdp_x_runtime_mae_joules": baseline_mae,
            "n_test": metrics["n_test"],
        },
    )


model_checks = [beats_tdp_baseline]
