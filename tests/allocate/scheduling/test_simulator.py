"""The simulator: figures of a schedule by hand, and every kind of invalid schedule caught."""

import pytest

from allocate.model import Edge, Task, Workflow
from allocate.scheduling.platform import Machine, Platform
from allocate.scheduling.problem import build_problem
from allocate.scheduling.schedule import Assignment, Schedule
from allocate.scheduling.schedulers import heft
from allocate.scheduling.simulator import simulate


@pytest.fixture
def pair():
    """x -> y with 100 bytes at 10 B/s; machine A idles at 10 W, 20 W busy on its one core; B at 5/45 W."""
    platform = Platform(
        "ab",
        (
            Machine("A", idle_watts=10, busy_watts=20, cost_per_hour=3600.0),
            Machine("B", speed=2.0, cores=2, idle_watts=5, busy_watts=45, cost_per_hour=7200.0),
        ),
        bandwidth_bytes_per_second=10.0,
    )
    tasks = {"x": Task("x", 10.0), "y": Task("y", 20.0, energy_joules={"B": 7.0})}
    return build_problem(Workflow("pair", tasks, [Edge("x", "y", 100.0)]), platform)


def schedule(*rows):
    return Schedule("hand", [Assignment(*row) for row in rows])


def test_figures_by_hand(pair):
    # x on A 0-10 (10 W above idle for 10 s), data moves 10 s, y on B 20-30 (given: 7 J above idle).
    result = simulate(pair, schedule(("x", "A", 0, 10), ("y", "B", 20, 30)))
    assert result.valid, result.problems
    assert result.makespan_seconds == 30
    assert result.busy_energy_joules == pytest.approx(100 + 7)
    assert result.idle_energy_joules == pytest.approx(10 * 10 + 5 * 30)  # powered from 0 to release
    assert result.energy_joules == pytest.approx(107 + 250)
    assert result.cost == pytest.approx(1.0 * 10 + 2.0 * 30)  # per second: 1 and 2
    assert result.release_seconds == {"A": 10, "B": 30}


def test_same_machine_needs_no_transfer(pair):
    result = simulate(pair, schedule(("x", "A", 0, 10), ("y", "A", 10, 30)))
    assert result.valid, result.problems
    assert result.machines_used == 1 and result.idle_energy_joules == pytest.approx(300)


@pytest.mark.parametrize(
    ("rows", "message"),
    [
        ([("x", "A", 0, 10), ("y", "B", 15, 25)], "before its parent x ends and its data arrives"),
        ([("x", "A", 0, 10), ("y", "B", 20, 29)], "its runtime there is 10"),
        ([("x", "A", 0, 10)], "not placed"),
        ([("x", "A", 0, 10), ("y", "B", 20, 30), ("x", "B", 0, 5)], "placed twice"),
        ([("x", "A", 0, 10), ("y", "C", 20, 30)], "machine 'C' is not on platform"),
        ([("x", "A", 0, 10), ("y", "B", 20, 30), ("w", "B", 0, 1)], "task 'w' is not in workflow"),
        ([("x", "A", -5, 5), ("y", "A", 5, 25)], "starts before the run"),
    ],
)
def test_invalid_schedules_are_named(pair, rows, message):
    result = simulate(pair, schedule(*rows))
    assert not result.valid
    assert any(message in p for p in result.problems), result.problems


def test_cores_and_gpus_bound_concurrency(mixed_platform, fork_join):
    problem = build_problem(fork_join, mixed_platform)
    good = heft(problem)
    assert good.simulation.valid
    # Three tasks at once on the two-core fast machine.
    runtime = {t: problem.runtime_seconds[i, 0] for i, t in enumerate(problem.task_ids)}
    crowded = [("a", "fast", 0, runtime["a"])]
    crowded += [(b, "fast", 100, 100 + runtime[b]) for b in ("b1", "b2", "b3")]
    crowded += [("b4", "slow", 100, 100 + problem.runtime_seconds[problem.task_ids.index("b4"), 1])]
    crowded += [("g1", "gpu", 100, 130), ("g2", "gpu", 100, 130), ("z", "fast", 400, 400 + runtime["z"])]
    problems = simulate(problem, schedule(*crowded)).problems
    assert any("3 tasks at once" in p and "fast" in p for p in problems), problems
    assert any("2 gpu tasks at once" in p and "it has 1" in p for p in problems), problems


def test_gpu_task_on_a_machine_without_gpu(mixed_platform, fork_join):
    problem = build_problem(fork_join, mixed_platform)
    rows = [
        (a.task_id, "fast" if a.task_id == "g1" else a.machine_id, a.start_seconds, a.end_seconds)
        for a in heft(problem).schedule.assignments
    ]
    assert any("needs a gpu, which fast lacks" in p for p in simulate(problem, schedule(*rows)).problems)


def test_a_schedule_read_back_from_json_stays_valid(mixed_platform, fork_join):
    """Times written to S.json and read back (float text) still pass the checks, tolerance included."""
    import json

    from allocate.scheduling.schedule import schedule_from_json, schedule_to_json

    problem = build_problem(fork_join, mixed_platform)
    result = heft(problem)
    text = json.dumps(schedule_to_json(result.schedule, result.simulation.figures()))
    again = simulate(problem, schedule_from_json(json.loads(text)))
    assert again.valid and again.energy_joules == pytest.approx(result.simulation.energy_joules)
