"""Online runs and the online baselines: valid schedules under noise, HEFT's plan reproduced without it."""

import numpy as np
import pytest

from allocate.model import Edge, Task, Workflow
from allocate.policy.baselines import ONLINE_BASELINES, baseline_chooser, replayed, run_online
from allocate.policy.online import NoiseOptions, OnlineRun
from allocate.scheduling.problem import build_problem
from allocate.scheduling.schedulers import heft
from allocate.scheduling.workloads import generated_workflow, reference_platform


@pytest.fixture(scope="module")
def random_problem():
    return build_problem(generated_workflow("random", 60, 3), reference_platform())


def test_static_heft_without_noise_is_hefts_plan(random_problem):
    offline = heft(random_problem).simulation
    run = run_online(
        random_problem, np.ones(len(random_problem)), baseline_chooser(random_problem, "heft-static")
    )
    online = replayed(run, "heft-static")
    assert online.makespan_seconds == pytest.approx(offline.makespan_seconds, rel=1e-9)
    assert online.energy_joules == pytest.approx(offline.energy_joules, rel=1e-9)


@pytest.mark.parametrize("name", ONLINE_BASELINES)
def test_baselines_make_valid_schedules_under_noise(random_problem, name):
    factors = NoiseOptions(0.3).draw(len(random_problem), np.random.default_rng(7))
    assert factors.min() >= 0.7 and factors.max() <= 1.3 and factors.std() > 0.05
    run = run_online(random_problem, factors, baseline_chooser(random_problem, name, 0.5, seed=1))
    simulation = replayed(run, name)  # raises if the simulator finds a problem
    # the scheduler's running estimate is exact once every task has ended
    makespan, energy = run.estimate()
    assert makespan == pytest.approx(simulation.makespan_seconds)
    assert energy == pytest.approx(simulation.energy_joules)
    # actual runtimes were used: each task ran its expected time times its factor
    ran = run.end - run.start
    expected = random_problem.runtime_seconds[np.arange(len(random_problem)), run.machine]
    assert np.allclose(ran, expected * factors)


def test_energy_aware_rules_trade_makespan_for_energy(random_problem):
    factors = np.ones(len(random_problem))
    figures = {
        name: replayed(run_online(random_problem, factors, baseline_chooser(random_problem, name)), name)
        for name in ("heft-dynamic", "min-energy")
    }
    assert figures["min-energy"].energy_joules < 0.7 * figures["heft-dynamic"].energy_joules
    assert figures["min-energy"].makespan_seconds > figures["heft-dynamic"].makespan_seconds


def test_gpu_tasks_only_run_where_there_is_a_gpu():
    tasks = {
        "a": Task("a", 100.0),
        "g1": Task("g1", 100.0, device="gpu"),
        "g2": Task("g2", 100.0, device="gpu"),
    }
    workflow = Workflow("gpu", tasks, [Edge("a", "g1"), Edge("a", "g2")])
    problem = build_problem(workflow, reference_platform())
    run = run_online(problem, np.full(3, 1.2), baseline_chooser(problem, "random", seed=3))
    replayed(run, "random")
    gpu = problem.platform.ids.index("gpu-0")
    assert run.machine[1] == gpu and run.machine[2] == gpu
    # one GPU: the two GPU tasks do not overlap
    assert max(run.start[1], run.start[2]) >= min(run.end[1], run.end[2]) - 1e-9


def test_commit_refuses_a_task_that_is_not_ready(random_problem):
    run = OnlineRun(random_problem, np.ones(len(random_problem)))
    waiting = int(np.flatnonzero(run.status == 0)[0])
    with pytest.raises(ValueError, match="cannot be committed"):
        run.commit(waiting, 0)
