"""Every scheduler's schedules pass the simulator; the energy-aware ones trade makespan for energy as
they say; budgets are met or refused with the least reachable value."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from allocate.model import Edge, Task, Workflow
from allocate.scheduling import schedulers as S
from allocate.scheduling.platform import Machine, Platform
from allocate.scheduling.problem import ProblemError, build_problem
from allocate.scheduling.workloads import generated_workflow, reference_platform

FAMILIES = ("fft", "strassen", "random")


@pytest.fixture(scope="module", params=FAMILIES)
def generated(request):
    return build_problem(generated_workflow(request.param, 60, seed=3), reference_platform())


def everything(problem):
    results = S.pareto_sweep(problem)
    heft, least = results[0].simulation, results[1].simulation
    results.append(S.energy_budget(problem, (heft.energy_joules + least.energy_joules) / 2))
    results.append(S.budget_heft(problem, heft.cost))
    return results


def test_every_schedule_is_valid_and_complete(generated):
    for r in everything(generated):
        assert r.simulation.valid, (r.schedule.algorithm, r.simulation.problems[:2])
        assert len(r.schedule.assignments) == len(generated)


def test_energy_aware_policies_save_energy_against_heft(generated):
    heft = S.heft(generated).simulation
    least = S.min_energy(generated).simulation
    assert least.energy_joules < heft.energy_joules
    assert least.makespan_seconds > heft.makespan_seconds
    for bounded in (S.merge(generated, slack=0.05), S.deadline(generated, slack=0.05)):
        assert bounded.simulation.energy_joules <= heft.energy_joules
        assert bounded.simulation.makespan_seconds <= 1.05 * heft.makespan_seconds * (1 + 1e-12)


def test_weight_one_is_heft_and_weight_zero_is_min_energy(generated):
    def placement(result):
        return [(a.task_id, a.machine_id, a.start_seconds) for a in result.schedule.assignments]

    assert placement(S.weighted(generated, 1.0)) == placement(S.heft(generated))
    assert placement(S.weighted(generated, 0.0)) == placement(S.min_energy(generated))


def test_energy_budget_is_met_or_refused_with_the_least_energy(generated):
    heft = S.heft(generated).simulation.energy_joules
    least = S.min_energy(generated).simulation.energy_joules
    for budget in np.linspace(least, heft, 4):
        assert S.energy_budget(generated, budget).simulation.energy_joules <= budget * (1 + 1e-9)
    roomy = S.energy_budget(generated, 10 * heft).simulation
    assert roomy.makespan_seconds == pytest.approx(S.heft(generated).simulation.makespan_seconds)
    with pytest.raises(S.BudgetError) as refused:
        S.energy_budget(generated, 0.9 * least)
    assert refused.value.smallest == pytest.approx(least)
    assert f"{least:,.6g} J" in str(refused.value)


def test_money_budget_is_met_or_refused(generated):
    heft = S.heft(generated).simulation.cost
    cheapest = S.min_cost(generated).simulation.cost
    assert S.budget_heft(generated, heft).simulation.cost <= heft * (1 + 1e-9)
    assert S.budget_heft(generated, 1e9).simulation.makespan_seconds == pytest.approx(
        S.heft(generated).simulation.makespan_seconds
    )
    with pytest.raises(S.BudgetError) as refused:
        S.budget_heft(generated, cheapest / 2)
    assert refused.value.smallest == pytest.approx(cheapest)


def test_pareto_front_is_non_dominated(generated):
    results = everything(generated)
    front = S.pareto_front(results)
    points = [(r.simulation.makespan_seconds, r.simulation.energy_joules) for r in results]
    for r in front:
        m, e = r.simulation.makespan_seconds, r.simulation.energy_joules
        assert not any(pm <= m and pe < e for pm, pe in points if (pm, pe) != (m, e))
    makespans = [r.simulation.makespan_seconds for r in front]
    assert makespans == sorted(makespans)


def test_gpu_tasks_go_to_gpu_machines(mixed_platform, fork_join):
    problem = build_problem(fork_join, mixed_platform)
    for r in everything(problem):
        on = {a.task_id: a.machine_id for a in r.schedule.assignments}
        assert on["g1"] == on["g2"] == "gpu", r.schedule.algorithm


def test_a_device_no_machine_has_is_refused(fork_join):
    cpu_only = Platform("cpus", (Machine("m"),), 1e9)
    with pytest.raises(ProblemError, match="task g1: needs a gpu and no machine of cpus has one"):
        build_problem(fork_join, cpu_only)


def test_a_cycle_is_refused():
    tasks = {t: Task(t, 1.0) for t in "abc"}
    cyclic = Workflow("loop", tasks, [Edge("a", "b"), Edge("b", "c"), Edge("c", "a")])
    with pytest.raises(ProblemError, match="cycle"):
        build_problem(cyclic, Platform("one", (Machine("m"),), 1e9))


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"algorithm": "energy-budget", "energy_budget_joules": -1.0}, "energy_budget must be >= 0"),
        ({"algorithm": "energy-budget"}, "needs --energy-budget"),
        ({"algorithm": "budget-heft", "budget": -2.0}, "budget must be >= 0"),
        ({"algorithm": "weighted", "weight": 1.5}, "weight must be in"),
        ({"algorithm": "fastest"}, "algorithm must be one of"),
    ],
)
def test_bad_options_are_named(options, message):
    with pytest.raises(ValueError, match=message):
        S.SchedulingOptions(**options)


@st.composite
def instances(draw):
    n = draw(st.integers(2, 14))
    machines = tuple(
        Machine(
            f"m{k}",
            speed=draw(st.floats(0.25, 4)),
            cores=draw(st.integers(1, 3)),
            idle_watts=draw(st.floats(0, 100)),
            busy_watts=draw(st.floats(100, 400)),
            cost_per_hour=draw(st.floats(0, 5)),
            gpus=draw(st.integers(0, 1)) if k else 1,
        )
        for k in range(draw(st.integers(1, 4)))
    )
    tasks = {
        f"t{i}": Task(f"t{i}", draw(st.floats(0, 100)), device=draw(st.sampled_from(["cpu", "cpu", "gpu"])))
        for i in range(n)
    }
    edges = [
        Edge(f"t{i}", f"t{j}", draw(st.floats(0, 1e9)))
        for j in range(n)
        for i in range(j)
        if draw(st.integers(0, 3)) == 0
    ]
    return build_problem(
        Workflow("drawn", tasks, edges), Platform("drawn", machines, draw(st.floats(1e6, 1e10)))
    )


@settings(max_examples=30, deadline=None)
@given(instances())
def test_every_scheduler_is_valid_on_drawn_instances(problem):
    for r in everything(problem):
        assert r.simulation.valid, (r.schedule.algorithm, r.simulation.problems[:2])


def test_reclaim_moves_tasks_into_slack_without_passing_the_limit():
    from allocate.scheduling.engine import (
        earliest_finish,
        list_schedule,
        priority_order,
        to_schedule,
        upward_rank,
    )
    from allocate.scheduling.reclaim import reclaim
    from allocate.scheduling.simulator import simulate

    problem = build_problem(generated_workflow("random", 120, seed=5), reference_platform())
    placed = list_schedule(problem, priority_order(upward_rank(problem)), earliest_finish)
    before = simulate(problem, to_schedule(problem, placed, "heft", {}, 0.0))
    limit = before.makespan_seconds
    moves = reclaim(problem, placed, limit)
    after = simulate(problem, to_schedule(problem, placed, "heft+reclaim", {}, 0.0))
    assert moves > 0 and after.valid, after.problems[:2]
    assert after.makespan_seconds <= limit * (1 + 1e-12)
    assert after.energy_joules < 0.95 * before.energy_joules
