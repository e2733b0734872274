"""The Gymnasium environment: Gymnasium's and Stable-Baselines3's own checks, masks, and the reward."""

import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env
from stable_baselines3.common.env_checker import check_env as sb3_check_env

from allocate.policy.env import SchedulingEnv, objective
from allocate.scheduling.platform import Machine, Platform
from allocate.scheduling.problem import build_problem
from allocate.scheduling.workloads import generated_workflow, reference_platform


@pytest.fixture(scope="module")
def problems():
    platform = reference_platform()
    return [build_problem(generated_workflow(f, n, 1), platform) for f, n in (("random", 30), ("fft", 16))]


def test_environment_passes_the_checkers(problems):
    env = SchedulingEnv(problems, max_tasks=48, max_edges=160)
    check_env(env, skip_render_check=True)
    sb3_check_env(SchedulingEnv(problems), warn=False)


def test_rewards_sum_to_the_replayed_objective(problems):
    env = SchedulingEnv(problems, max_tasks=48, max_edges=160)
    rng = np.random.default_rng(0)
    for weight in (0.0, 0.7, 1.0):
        obs, info = env.reset(seed=3, options={"weight": weight, "workflow": 0})
        assert obs["global"][0] == pytest.approx(weight)
        total, done = 0.0, False
        while not done:
            mask = env.action_masks()
            assert mask.shape == (48 * 9,) and mask.any()
            assert not mask.reshape(48, 9)[len(problems[0]) :].any()  # padding is never allowed
            obs, reward, done, _, info = env.step(int(rng.choice(np.flatnonzero(mask))))
            assert not info["masked_action"]
            total += reward
        simulation = env.run.replay()
        assert simulation.valid
        want = objective(weight, simulation.makespan_seconds, simulation.energy_joules, env.ref)
        assert -total == pytest.approx(want)
        assert info["objective"] == pytest.approx(want)


def test_a_masked_action_is_replaced_and_reported(problems):
    env = SchedulingEnv(problems[:1])
    env.reset(seed=0)
    masked = int(np.flatnonzero(~env.action_masks())[0])
    _, _, _, _, info = env.step(masked)
    assert info["masked_action"]
    assert (env.run.status >= 2).sum() == 1  # one task committed all the same


def test_workflows_larger_than_the_padding_or_on_two_platforms_are_refused(problems):
    with pytest.raises(ValueError, match="more than the environment's"):
        SchedulingEnv(problems, max_tasks=20)
    other = Platform("one", (Machine("solo", cores=2),), bandwidth_bytes_per_second=1e9)
    mixed = [problems[0], build_problem(generated_workflow("fft", 4, 0), other)]
    with pytest.raises(ValueError, match="one platform"):
        SchedulingEnv(mixed)
