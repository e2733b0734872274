"""The clairvoyant makespan bound: no schedule of a run beats it, and it is exact where the answer is known."""

import numpy as np
import pytest

from allocate.model import Edge, Task, Workflow
from allocate.policy.baselines import ONLINE_BASELINES, baseline_chooser, noise_factors, replayed, run_online
from allocate.policy.evaluate import makespan_lower_bound
from allocate.policy.online import NoiseOptions
from allocate.scheduling.problem import build_problem
from allocate.scheduling.workloads import generated_workflow, reference_platform


@pytest.mark.parametrize("family, tasks", [("random", 40), ("fft", 15), ("strassen", 25)])
def test_no_online_scheduler_finishes_a_noisy_run_before_the_bound(family, tasks):
    problem = build_problem(generated_workflow(family, tasks, 11), reference_platform())
    for seed in range(2):
        factors = noise_factors(problem, NoiseOptions(0.3), seed)
        bound = makespan_lower_bound(problem, factors)
        assert bound > 0
        for name in ONLINE_BASELINES:
            run = run_online(problem, factors, baseline_chooser(problem, name, 1.0, seed))
            assert replayed(run, name).makespan_seconds >= bound * (1 - 1e-12), (name, seed)


def test_the_bound_is_the_chain_on_its_fastest_machine_or_the_work_over_all_cores():
    platform = reference_platform()  # fast machines run at speed 2.0; 9 machines, 36 cores
    chain = Workflow(
        "chain",
        {k: Task(k, 100.0) for k in "abc"},
        [Edge("a", "b"), Edge("b", "c")],
    )
    factors = np.array([1.0, 1.2, 0.8])
    assert makespan_lower_bound(build_problem(chain, platform), factors) == pytest.approx(300.0 / 2.0)
    # 72 independent 100 s tasks: the work (7,200 reference seconds) over the platform's speed x cores
    wide = Workflow("wide", {f"t{k}": Task(f"t{k}", 100.0) for k in range(72)}, [])
    capacity = sum(m.speed * m.cores for m in platform.machines)
    bound = makespan_lower_bound(build_problem(wide, platform), np.ones(72))
    assert bound == pytest.approx(7200.0 / capacity)
