"""Online baselines on the same runs, noise and decisions as the learned policy, so comparisons are fair.

Each is a *chooser*: given the run's state (online.py) it returns the ready task to commit and its
machine. Ready tasks are taken by HEFT's priority (decreasing upward rank on expected runtimes) except
by ``random``.

- ``heft-static``: HEFT's plan made once with the expected runtimes (schedulers.heft), executed as
  planned: each task goes to its planned machine, in priority order, whatever happens.
- ``heft-dynamic``: HEFT re-planned at each task end: the tasks not yet committed are placed again by
  earliest expected finish (non-insertion) from the machines' expected state, ended tasks at their actual
  ends, running and queued ones at their expected ends.
- ``min-energy``, ``ecs``, ``weighted``: the energy-aware rules of the scheduling schedulers run online,
  on the expected start, finish and added energy of the current task on each machine.
- ``random``: a uniformly random (ready task, machine) pair.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from allocate.policy.online import NoiseOptions, OnlineRun
from allocate.scheduling.engine import priority_order, upward_rank
from allocate.scheduling.problem import Problem
from allocate.scheduling.schedulers import InvalidScheduleError, heft
from allocate.scheduling.simulator import Simulation

ONLINE_BASELINES = ("heft-static", "heft-dynamic", "min-energy", "ecs", "weighted", "random")
_TINY = 1e-12

Chooser = Callable[[OnlineRun], tuple[int, int]]


def _position(problem: Problem) -> np.ndarray:
    """Each task's place in HEFT's priority order (smaller first)."""
    position = np.empty(len(problem), dtype=np.int64)
    position[priority_order(upward_rank(problem))] = np.arange(len(problem))
    return position


def _first_ready(run: OnlineRun, position: np.ndarray) -> int:
    ready = run.ready_tasks()
    return int(ready[np.argmin(position[ready])])


def heft_static(problem: Problem) -> Chooser:
    ids = {m: i for i, m in enumerate(problem.platform.ids)}
    index = {t: i for i, t in enumerate(problem.task_ids)}
    planned = np.empty(len(problem), dtype=np.int64)
    for a in heft(problem).schedule.assignments:
        planned[index[a.task_id]] = ids[a.machine_id]
    position = _position(problem)

    def choose(run: OnlineRun) -> tuple[int, int]:
        task = _first_ready(run, position)
        return task, int(planned[task])

    return choose


def replan(run: OnlineRun, order: np.ndarray) -> np.ndarray:
    """HEFT's machine for every task not yet committed, from the run's expected state (earliest expected
    finish in priority ``order``, non-insertion: a queue only grows at its end)."""
    problem, view = run.problem, run.expected()
    finish, machine = view.end.copy(), run.machine.copy()
    core_free, device_free = view.core_free.copy(), view.device_free.copy()
    rows = np.arange(problem.machines)
    for v in order[machine[order] < 0].tolist():
        ready = np.full(problem.machines, run.now)
        for p, size in zip(problem.parents[v], problem.parent_bytes[v], strict=True):
            np.maximum(ready, finish[p] + size * problem.seconds_per_byte[machine[p]], out=ready)
        slot = core_free.argmin(axis=1)
        start = np.maximum(ready, core_free[rows, slot])
        if run.is_device_task[v]:
            device_slot = device_free.argmin(axis=1)
            start = np.maximum(start, device_free[rows, device_slot])
        end = start + problem.runtime_seconds[v]
        m = int(np.argmin(end))
        core_free[m, slot[m]] = end[m]
        if run.is_device_task[v]:
            device_free[m, device_slot[m]] = end[m]
        finish[v], machine[v] = end[m], m
    return machine


def heft_dynamic(problem: Problem) -> Chooser:
    position = _position(problem)
    order = np.argsort(position)
    plan = {"completions": -1, "machine": None}

    def choose(run: OnlineRun) -> tuple[int, int]:
        if plan["completions"] != run.completions:
            plan["machine"], plan["completions"] = replan(run, order), run.completions
        task = _first_ready(run, position)
        return task, int(plan["machine"][task])

    return choose


def _least(values: np.ndarray, finish: np.ndarray) -> int:
    """The smallest value; ties by earliest finish, then the machine listed first."""
    return int(np.lexsort((np.arange(len(values)), finish, values))[0])


def min_energy_rule(c: dict[str, np.ndarray], _: float) -> int:
    return _least(c["energy_joules"], c["finish"])


def weighted_rule(c: dict[str, np.ndarray], weight: float) -> int:
    finish, energy = c["finish"], c["energy_joules"]
    with np.errstate(invalid="ignore"):  # 0 * inf on machines that cannot run the task; masked below
        score = weight * finish / max(float(finish.min()), _TINY)
        score = score + (1.0 - weight) * energy / max(float(energy.min()), _TINY)
    return _least(np.where(np.isfinite(finish), score, np.inf), finish)


def ecs_rule(c: dict[str, np.ndarray], _: float) -> int:
    """Relative superiority of ECS (Lee and Zomaya), as schedulers.ecs applies it offline."""
    able = np.flatnonzero(np.isfinite(c["finish"]))
    best = int(able[0])
    energy, finish, start = c["energy_joules"], c["finish"], c["start"]
    for k in able[1:].tolist():
        energy_gain = (energy[best] - energy[k]) / max(energy[best], _TINY)
        time_gain = (finish[best] - finish[k]) / max(finish[k] - start[k], _TINY)
        if energy_gain + time_gain > 0:
            best = k
    return best


RULES = {"min-energy": min_energy_rule, "ecs": ecs_rule, "weighted": weighted_rule}


def rule_chooser(problem: Problem, name: str, weight: float) -> Chooser:
    rule, position = RULES[name], _position(problem)

    def choose(run: OnlineRun) -> tuple[int, int]:
        task = _first_ready(run, position)
        return task, rule(run.candidates(task), weight)

    return choose


def random_chooser(seed: int) -> Chooser:
    rng = np.random.default_rng(seed)

    def choose(run: OnlineRun) -> tuple[int, int]:
        pairs = np.argwhere(run.action_mask())
        task, machine = pairs[rng.integers(len(pairs))]
        return int(task), int(machine)

    return choose


def baseline_chooser(problem: Problem, name: str, weight: float = 0.5, seed: int = 0) -> Chooser:
    if name == "heft-static":
        return heft_static(problem)
    if name == "heft-dynamic":
        return heft_dynamic(problem)
    if name == "random":
        return random_chooser(seed)
    if name in RULES:
        return rule_chooser(problem, name, weight)
    raise ValueError(f"online baseline must be one of {', '.join(ONLINE_BASELINES)}, not {name!r}")


def run_online(problem: Problem, factors: np.ndarray, choose: Chooser) -> OnlineRun:
    """Commit tasks as ``choose`` says until every task has ended."""
    run = OnlineRun(problem, factors)
    while not run.done:
        run.commit(*choose(run))
    return run


def replayed(run: OnlineRun, algorithm: str, parameters: dict | None = None) -> Simulation:
    """The simulator's figures of a finished run; an invalid schedule is a bug and stops here."""
    simulation = run.replay(algorithm, parameters)
    if not simulation.valid:
        raise InvalidScheduleError(f"{algorithm} made an invalid schedule: {simulation.problems[0]}")
    return simulation


def noise_factors(problem: Problem, noise: NoiseOptions, seed: int) -> np.ndarray:
    return noise.draw(len(problem), np.random.default_rng(seed))
