"""A few hundred PPO steps: the loop runs, the policy saves, loads, and schedules workflows of any size
validly; policy directories for another platform shape or feature set are refused."""

import json

import numpy as np
import pytest

from allocate.policy.baselines import replayed, run_online
from allocate.policy.online import NoiseOptions
from allocate.policy.scheduler import policy_chooser, schedule_with_policy
from allocate.policy.store import PolicyError, load_policy, save_policy
from allocate.policy.training import TrainingOptions, train
from allocate.scheduling.platform import Machine, Platform
from allocate.scheduling.problem import build_problem
from allocate.scheduling.workloads import generated_workflow, reference_platform

TINY = TrainingOptions(timesteps=192, rollout_steps=64, batch_size=32, epochs=1, hidden=16, layers=2)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    platform = reference_platform()
    problems = [build_problem(generated_workflow(f, n, 0), platform) for f, n in (("fft", 8), ("random", 20))]
    network, record = train(problems, TINY)
    folder = save_policy(network, platform, {"seed": 0, **record}, tmp_path_factory.mktemp("policy"))
    return platform, folder, record


def test_training_runs_episodes_and_records_its_curve(trained):
    _, folder, record = trained
    assert record["timesteps"] >= 192
    assert record["episodes"] >= 3  # episodes of 20-39 steps
    rewards = [c["reward"] for c in record["curve"] if "reward" in c]
    assert len(rewards) == record["episodes"] and all(r < 0 for r in rewards)
    card = json.loads((folder / "model_card.json").read_text())
    assert card["timesteps"] == record["timesteps"]


def test_loaded_policy_schedules_larger_unseen_workflows_validly(trained):
    platform, folder, _ = trained
    network = load_policy(folder, platform)
    problem = build_problem(generated_workflow("random", 120, 5), platform)  # 6x the largest trained on
    result = schedule_with_policy(network, problem, weight=1.0)
    assert result.simulation.valid and len(result.schedule.assignments) == 120
    factors = NoiseOptions(0.3).draw(len(problem), np.random.default_rng(0))
    for weight in (0.0, 1.0):
        run = run_online(problem, factors, policy_chooser(network, problem, weight))
        assert replayed(run, "policy").makespan_seconds > 0


def test_policy_for_another_platform_shape_is_refused(trained):
    _, folder, _ = trained
    other = Platform("two", (Machine("a", cores=2), Machine("b", cores=2)), bandwidth_bytes_per_second=1e9)
    with pytest.raises(PolicyError, match="trained for platform 'reference-9'"):
        load_policy(folder, other)


def test_policy_for_another_feature_set_is_refused(trained, tmp_path):
    platform, folder, _ = trained
    for name in ("policy.json", "policy.pt", "model_card.json"):
        (tmp_path / name).write_bytes((folder / name).read_bytes())
    config = json.loads((tmp_path / "policy.json").read_text())
    config["feature_set"] = "jouletrace.policy.features/0"
    (tmp_path / "policy.json").write_text(json.dumps(config))
    with pytest.raises(PolicyError, match="feature set"):
        load_policy(tmp_path, platform)
    with pytest.raises(PolicyError, match="not a policy directory"):
        load_policy(tmp_path / "missing", platform)
