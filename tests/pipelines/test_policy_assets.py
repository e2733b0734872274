"""The policy assets: train a tiny policy through Dagster, then evaluate it on the sample trace dataset."""

import dagster as dg

from pipelines.policy.assets import (
    LearnedPolicyConfig,
    PolicyEvaluationConfig,
    learned_policy,
    policy_evaluation,
)
from pipelines.traces.assets import TraceDatasetResource

PNG = "](data:image/png;base64,iVBORw0KGgo"


def test_load_the_shipped_policy_then_evaluate_it_on_the_trace_dataset(sample_dataset):
    # training through the asset is the same call as `jouletrace train-policy` (test_policy_cli.py)
    loaded = learned_policy(dg.build_asset_context(), config=LearnedPolicyConfig())
    curve = loaded.value.to_pandas()
    assert len(curve) == loaded.metadata["episodes"].value and (curve["reward"] < 0).all()
    assert PNG in loaded.metadata["learning_curve"].value
    assert loaded.metadata["library_versions"].value["sb3-contrib"]

    output = policy_evaluation(
        dg.build_asset_context(),
        config=PolicyEvaluationConfig(weights=[1.0]),
        dataset=TraceDatasetResource(root=str(sample_dataset)),
    )
    frame = output.value.to_pandas()
    assert output.metadata["workflows"].value >= 1
    assert {"policy", "heft-dynamic", "heft-static", "min-energy", "ecs", "weighted", "random"} == set(
        frame["scheduler"]
    )
    assert (
        frame.groupby("scheduler")["workflow"].nunique().nunique() == 1
    )  # every scheduler ran every workflow
    assert "policy" in output.metadata["summary"].value and PNG in output.metadata["tradeoffs"].value
    assert output.metadata["policy_makespan_vs_dynamic_heft"].value["1.0"] > 0
    # the sample world's FPGA workflows cannot run on the reference platform: left out, and said so
    assert "needs a fpga" in output.metadata["left_out"].value
