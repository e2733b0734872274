"""The Ray path on a local Ray instance started here: training rollouts in Ray actors behind the VecEnv
interface learn exactly what SubprocVecEnv's processes learn, and the evaluation sweep as Ray tasks gives
the same rows as in one process."""

import json

import pandas as pd
import pytest
import torch

from allocate.policy.evaluate import EvaluationCase, PolicyEvaluationOptions, evaluate
from allocate.policy.store import save_policy
from allocate.policy.training import TrainingOptions, train
from allocate.scheduling.problem import build_problem
from allocate.scheduling.workloads import generated_workflow, reference_platform
from pipelines.cli import main

TINY = dict(timesteps=192, rollout_steps=32, batch_size=32, epochs=1, hidden=16, layers=2)


@pytest.fixture(scope="module")
def problems():
    platform = reference_platform()
    return [build_problem(generated_workflow(f, n, 0), platform) for f, n in (("fft", 8), ("random", 20))]


@pytest.fixture(scope="module")
def local_training(problems):
    """Four SubprocVecEnv processes, run before Ray starts in this process (they fork it)."""
    return train(problems, TrainingOptions(workers=4, **TINY))


@pytest.fixture(scope="module")
def ray(local_training):
    ray = pytest.importorskip("ray")
    # "local": a new instance of its own even where a cluster of "ray start" runs on this machine
    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield ray
    ray.shutdown()


def test_rollouts_in_ray_actors_learn_what_subprocesses_learn(problems, local_training, ray):
    # 2 actors x 2 environments: the same 4 environments, seeds and PPO updates as 4 processes.
    options = TrainingOptions(workers=2, envs_per_worker=2, ray_address="auto", **TINY)
    network, record = train(problems, options)
    local_network, local_record = local_training
    rewards = [c["reward"] for c in record["curve"] if "reward" in c]
    assert record["episodes"] >= 6 and len(rewards) == record["episodes"]
    assert rewards == [c["reward"] for c in local_record["curve"] if "reward" in c]
    assert record["timesteps"] == local_record["timesteps"]
    local_weights = local_network.state_dict()
    assert all(torch.equal(v, local_weights[k]) for k, v in network.state_dict().items())


def test_the_evaluation_sweep_as_ray_tasks_gives_the_same_rows(problems, local_training, ray):
    network = local_training[0]
    cases = [EvaluationCase("small", p.name.split("-")[0], p) for p in problems]
    options = PolicyEvaluationOptions(weights=(0.5, 1.0), seeds=2)
    seen = []
    on_ray = evaluate(
        network,
        cases,
        PolicyEvaluationOptions(weights=(0.5, 1.0), seeds=2, ray_address="auto"),
        lambda done, total: seen.append((done, total)),
    )
    here = evaluate(network, cases, options)
    pd.testing.assert_frame_equal(on_ray, here)
    # 2 workflows x 2 draws x (baselines, w = 0.5, w = 1): each part reported once.
    assert seen == [(k, 12) for k in range(1, 13)]
    assert set(here["scheduler"]) == {
        "policy",
        "heft-static",
        "heft-dynamic",
        "min-energy",
        "ecs",
        "weighted",
        "random",
    }


def test_evaluate_policy_command_with_a_ray_address(tmp_path, problems, local_training, ray):
    policy = save_policy(local_training[0], problems[0].platform, local_training[1], tmp_path / "policy")
    out = tmp_path / "evaluation"
    small = ["--workloads", "strassen", "--repetitions", "1", "--seeds", "2", "--weights", "1"]
    command = ["evaluate-policy", *small, "--policy", str(policy), "--ray-address", "auto"]
    assert main([*command, "--out", str(out)]) == 0
    rows = json.loads((out / "policy_summary.json").read_text())
    assert {r["scheduler"] for r in rows} >= {"policy", "heft-dynamic"} and len(rows) == 7
