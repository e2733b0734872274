"""Replay a schedule: check that it can run, and measure makespan, energy and cost.

A schedule is valid when every task of the workflow is placed exactly once, on a known machine that has
the device the task needs, for exactly its runtime on that machine; when every task starts after each
parent has ended plus the transfer of the parent's data between their machines (nothing on one machine);
and when no machine runs more than ``cores`` tasks at once, nor more GPU (FPGA) tasks than it has GPUs
(FPGAs). Times are compared with a tolerance of 1e-9 of the schedule's span, so that schedules written to
JSON and read back stay valid.

Figures: ``makespan_seconds`` (the last end; the run starts at 0), ``busy_energy_joules`` (the tasks'
energy above idle on their machines), ``idle_energy_joules`` (each used machine's idle power from 0 until
it is released at its last task's end), ``energy_joules`` (their sum) and ``cost`` (each used machine's
price per hour over the same powered time).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from allocate.scheduling.problem import Problem
from allocate.scheduling.schedule import Schedule

RELATIVE_TOLERANCE = 1e-9


@dataclass
class Simulation:
    makespan_seconds: float
    busy_energy_joules: float
    idle_energy_joules: float
    cost: float
    machines_used: int
    problems: list[str] = field(default_factory=list)
    release_seconds: dict[str, float] = field(default_factory=dict)

    @property
    def energy_joules(self) -> float:
        return self.busy_energy_joules + self.idle_energy_joules

    @property
    def valid(self) -> bool:
        return not self.problems

    def figures(self) -> dict:
        return {
            "makespan_seconds": self.makespan_seconds,
            "energy_joules": self.energy_joules,
            "busy_energy_joules": self.busy_energy_joules,
            "idle_energy_joules": self.idle_energy_joules,
            "cost": self.cost,
            "machines_used": self.machines_used,
            "valid": self.valid,
        }


@dataclass(frozen=True)
class Placement:
    """A schedule as arrays over the problem's task indices."""

    machine: np.ndarray  # int, per task
    start: np.ndarray
    end: np.ndarray


def placement_of(problem: Problem, schedule: Schedule) -> tuple[Placement, list[str]]:
    """Index a schedule's assignments; unknown, repeated or missing tasks are problems, not exceptions."""
    task_index = {t: i for i, t in enumerate(problem.task_ids)}
    machine_index = {m: i for i, m in enumerate(problem.platform.ids)}
    n = len(problem)
    machine = np.full(n, -1, dtype=np.int64)
    start = np.full(n, np.nan)
    end = np.full(n, np.nan)
    problems: list[str] = []
    for k, a in enumerate(schedule.assignments):
        i = task_index.get(a.task_id)
        m = machine_index.get(a.machine_id)
        if i is None:
            problems.append(f"assignments[{k}]: task {a.task_id!r} is not in workflow {problem.name}")
        elif m is None:
            problems.append(
                f"assignments[{k}]: machine {a.machine_id!r} is not on platform {problem.platform.name}"
            )
        elif machine[i] >= 0:
            problems.append(f"assignments[{k}]: task {a.task_id} is placed twice")
        else:
            machine[i], start[i], end[i] = m, a.start_seconds, a.end_seconds
    missing = [problem.task_ids[i] for i in np.flatnonzero(machine < 0)]
    if missing:
        problems.append(f"{len(missing)} task(s) of {problem.name} are not placed, e.g. {missing[0]}")
    return Placement(machine, start, end), problems


def _tolerance(placement: Placement) -> float:
    span = float(np.nanmax(np.abs(placement.end))) if np.isfinite(placement.end).any() else 1.0
    return RELATIVE_TOLERANCE * max(span, 1.0)


def _check_tasks(problem: Problem, p: Placement, tol: float) -> list[str]:
    out = []
    runtime = problem.runtime_seconds[np.arange(len(problem)), p.machine]
    ids, machines = problem.task_ids, problem.platform.machines
    for i in np.flatnonzero(~np.isfinite(runtime)):
        out.append(f"task {ids[i]}: needs a {problem.devices[i]}, which {machines[p.machine[i]].id} lacks")
    for i in np.flatnonzero(p.start < -tol):
        out.append(f"task {ids[i]}: starts before the run, at {p.start[i]:g} s")
    ok = np.isfinite(runtime)
    wrong = ok & (np.abs((p.end - p.start) - runtime) > tol + RELATIVE_TOLERANCE * runtime)
    for i in np.flatnonzero(wrong)[:20]:
        out.append(
            f"task {ids[i]}: runs {p.end[i] - p.start[i]:g} s on {machines[p.machine[i]].id}, "
            f"its runtime there is {runtime[i]:g} s"
        )
    return out


def _check_precedence(problem: Problem, p: Placement, tol: float) -> list[str]:
    src, dst, data = problem.edges()
    if not len(src):
        return []
    transfer = data * problem.seconds_per_byte[p.machine[src], p.machine[dst]]
    early = p.start[dst] < p.end[src] + transfer - tol
    out = []
    for k in np.flatnonzero(early)[:20]:
        u, v = problem.task_ids[src[k]], problem.task_ids[dst[k]]
        out.append(
            f"task {v}: starts at {p.start[dst[k]]:g} s, before its parent {u} ends and its data arrives "
            f"({p.end[src[k]] + transfer[k]:g} s)"
        )
    return out


def _peak_overlap(starts: np.ndarray, ends: np.ndarray, tol: float) -> tuple[int, float]:
    """Most intervals open at once, and when; an interval ending at t frees its slot for one starting at t."""
    times = np.concatenate([ends - tol, starts])
    steps = np.concatenate([-np.ones(len(ends)), np.ones(len(starts))])
    order = np.lexsort((steps, times))  # at equal times, ends (-1) first
    running = np.cumsum(steps[order])
    k = int(np.argmax(running))
    return int(running[k]), float(times[order][k])


def _check_capacity(problem: Problem, p: Placement, tol: float) -> list[str]:
    out = []
    devices = np.array(problem.devices)
    for m, machine in enumerate(problem.platform.machines):
        on = p.machine == m
        for device in ("cpu", "gpu", "fpga"):
            mask = on if device == "cpu" else on & (devices == device)
            if not mask.any():
                continue
            peak, when = _peak_overlap(p.start[mask], p.end[mask], tol)
            limit = machine.slots(device)
            if peak > limit:
                what = "tasks" if device == "cpu" else f"{device} tasks"
                out.append(f"machine {machine.id}: {peak} {what} at once at {when:g} s, it has {limit}")
    return out


def simulate(problem: Problem, schedule: Schedule) -> Simulation:
    """Validity problems (empty when the schedule can run) and the figures of the schedule."""
    p, problems = placement_of(problem, schedule)
    placed = p.machine >= 0
    if placed.all():
        tol = _tolerance(p)
        problems += _check_tasks(problem, p, tol)
        problems += _check_precedence(problem, p, tol)
        problems += _check_capacity(problem, p, tol)
    idx = np.flatnonzero(placed)
    busy = problem.energy_joules[idx, p.machine[idx]]
    release = np.zeros(problem.machines)
    np.maximum.at(release, p.machine[idx], p.end[idx])
    used = np.zeros(problem.machines, dtype=bool)
    used[p.machine[idx]] = True
    release = np.where(used, np.maximum(release, 0.0), 0.0)
    return Simulation(
        makespan_seconds=float(p.end[idx].max()) if len(idx) else 0.0,
        busy_energy_joules=float(np.sum(busy[np.isfinite(busy)])),
        idle_energy_joules=float(np.dot(problem.idle_watts, release)),
        cost=float(np.dot(problem.cost_per_second, release)),
        machines_used=int(used.sum()),
        problems=problems,
        release_seconds={problem.platform.ids[m]: float(release[m]) for m in np.flatnonzero(used)},
    )
