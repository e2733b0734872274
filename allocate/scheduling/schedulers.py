"""The schedulers: HEFT, energy-aware list schedulers, budgeted ones, processor merging and the weighted sweep.

All of them are rules on the engine (engine.py): same priorities, same insertion, a different choice per
task; every result is replayed by the simulator before it is returned. Energy and cost choices look at
what a placement *adds*: the task's energy above idle, and idle power and price over the time it extends
its machine's powered span (a machine not yet used is powered from 0 to the task's end).

- ``heft``: Topcuoglu, Hariri and Wu 2002. Upward rank with the mean runtime over the machines that can
  run a task and the mean transfer time over distinct machine pairs; tasks by decreasing rank, equal ranks
  by topological index; each on the machine with the earliest finish (insertion-based), equal finishes on
  the machine listed first.
- ``min-energy``: same order, the machine adding the least energy (equal energies: earliest finish).
- ``energy-budget`` (MSLECC family, Xiao, Xie et al.): before placing a task, every task not yet placed is
  pre-assigned its least energy on any machine; the task may use what the budget leaves,
  ``budget - placed energy - sum of the others' least energy``, and takes the earliest finish among the
  machines within it (the least energy when none is).
- ``ecs`` (after Lee and Zomaya's energy-conscious scheduling, without DVFS): machines are compared
  with the relative superiority ``(E_best - E_k) / E_best + (F_best - F_k) / (F_k - S_k)`` and a machine
  with positive RS replaces the current best.
- ``budget-heft`` (BHEFT's spare budget, Zheng and Sakellariou): a money budget; each unplaced task is
  pre-assigned its cheapest run's cost and a task may spend its own share plus its part of the spare
  budget; earliest finish within that, the cheapest machine otherwise.
- ``merge`` (after DEWTS's processor merging): HEFT, then turn machines off one at a time, least used
  first, rescheduling with HEFT on the rest, while the energy falls and the makespan stays within
  ``(1 + slack)`` times HEFT's.
- ``deadline``: each task gets a sub-deadline, its HEFT finish time stretched by ``(1 + slack)``, and goes
  to the machine adding the least energy among those finishing by it (earliest finish when none does);
  then slack reclamation. HEFT's own schedule, reclaimed, is the fallback: the result is whichever of the
  two uses less energy within ``(1 + slack)`` times HEFT's makespan, so it never does worse than HEFT.
- ``weighted``: the machine minimising ``w * F / F_min + (1 - w) * E / E_min`` over the candidates;
  ``pareto_sweep`` runs it over a range of weights with the others and keeps the non-dominated schedules.

A budget that cannot be met raises BudgetError with the least value the scheduler reaches (the energy of
the min-energy schedule, the cost of the cheapest one), never an over-budget schedule.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np

from allocate.scheduling import ALGORITHMS
from allocate.scheduling.engine import (
    Candidates,
    PlacedTasks,
    Rule,
    earliest_finish,
    list_schedule,
    priority_order,
    to_schedule,
    upward_rank,
)
from allocate.scheduling.problem import Problem
from allocate.scheduling.reclaim import reclaim
from allocate.scheduling.schedule import Schedule
from allocate.scheduling.simulator import Simulation, simulate

_TINY = 1e-12


class BudgetError(ValueError):
    """A budget no schedule of this scheduler meets; ``smallest`` is the least value it reaches."""

    def __init__(self, message: str, smallest: float):
        super().__init__(message)
        self.smallest = smallest


class InvalidScheduleError(RuntimeError):
    """A scheduler produced a schedule the simulator rejects (a bug, never bad input)."""


@dataclass(frozen=True)
class SchedulingOptions:
    """One choice of scheduler and its parameters, shared by the API, the CLI and the evaluation."""

    algorithm: str = "heft"
    energy_budget_joules: float | None = None
    budget: float | None = None
    weight: float = 0.5
    slack: float = 0.0

    def __post_init__(self):
        if self.algorithm not in ALGORITHMS:
            raise ValueError(f"algorithm must be one of {', '.join(ALGORITHMS)}, not {self.algorithm!r}")
        if self.algorithm == "energy-budget" and self.energy_budget_joules is None:
            raise ValueError("energy-budget needs --energy-budget JOULES")
        if self.algorithm == "budget-heft" and self.budget is None:
            raise ValueError("budget-heft needs --budget (money for one run)")
        for name in ("energy_budget_joules", "budget"):
            value = getattr(self, name)
            if value is not None and not value >= 0:
                raise ValueError(f"{name.replace('_joules', '')} must be >= 0, not {value}")
        if not 0.0 <= self.weight <= 1.0:
            raise ValueError(f"weight must be in [0, 1], not {self.weight}")
        if not self.slack >= 0:
            raise ValueError(f"slack must be >= 0, not {self.slack}")

    def parameters(self) -> dict:
        if self.algorithm == "energy-budget":
            return {"energy_budget_joules": self.energy_budget_joules}
        if self.algorithm == "budget-heft":
            return {"budget": self.budget}
        if self.algorithm == "weighted":
            return {"weight": self.weight}
        if self.algorithm in ("merge", "deadline"):
            return {"slack": self.slack}
        return {}


@dataclass
class Result:
    schedule: Schedule
    simulation: Simulation
    notes: list[str] = field(default_factory=list)


def _finish(
    problem: Problem, placed: PlacedTasks, algorithm: str, parameters: dict, started: float
) -> Result:
    schedule = to_schedule(problem, placed, algorithm, parameters, started)
    simulation = simulate(problem, schedule)
    if not simulation.valid:
        raise InvalidScheduleError(f"{algorithm} made an invalid schedule: {simulation.problems[0]}")
    return Result(schedule, simulation)


def _run(problem: Problem, rule: Rule, algorithm: str, parameters: dict, order=None) -> Result:
    return _run_placed(problem, rule, algorithm, parameters, order)[0]


def _run_placed(problem: Problem, rule: Rule, algorithm: str, parameters: dict, order=None):
    started = time.perf_counter()
    order = priority_order(upward_rank(problem)) if order is None else order
    placed = list_schedule(problem, order, rule)
    return _finish(problem, placed, algorithm, parameters, started), placed


def heft(problem: Problem) -> Result:
    return _run(problem, earliest_finish, "heft", {})


def least(values: np.ndarray, c: Candidates) -> int:
    """The smallest value; equal values go to the earliest finish, then to the machine listed first."""
    return int(np.lexsort((c.machine, c.finish, values))[0])


def min_energy(problem: Problem) -> Result:
    return _run(problem, lambda _, c: least(c.energy_joules, c), "min-energy", {})


def min_cost(problem: Problem) -> Result:
    return _run(problem, lambda _, c: least(c.cost, c), "min-cost", {})


def weighted(problem: Problem, weight: float) -> Result:
    def rule(_: int, c: Candidates) -> int:
        time_term = c.finish / max(float(c.finish.min()), _TINY)
        energy_term = c.energy_joules / max(float(c.energy_joules.min()), _TINY)
        return least(weight * time_term + (1.0 - weight) * energy_term, c)

    return _run(problem, rule, "weighted", {"weight": weight})


def ecs(problem: Problem) -> Result:
    def rule(_: int, c: Candidates) -> int:
        best = 0
        for k in range(1, len(c.machine)):
            energy_gain = (c.energy_joules[best] - c.energy_joules[k]) / max(c.energy_joules[best], _TINY)
            time_gain = (c.finish[best] - c.finish[k]) / max(c.finish[k] - c.start[k], _TINY)
            if energy_gain + time_gain > 0:
                best = k
        return best

    return _run(problem, rule, "ecs", {})


def _budgeted(problem: Problem, budget: float, quantity: str, pre: np.ndarray, share: bool) -> Rule:
    """A rule spending ``budget`` of ``quantity`` (energy_joules or cost) with pre-assigned ``pre``."""
    state = {"spent": 0.0, "unplaced": float(pre.sum())}

    def rule(v: int, c: Candidates) -> int:
        values = getattr(c, quantity)
        spare = budget - state["spent"] - state["unplaced"]
        if share:  # BHEFT: own share plus a part of the spare budget in proportion to it
            allowed = pre[v] + max(spare, 0.0) * (
                pre[v] / state["unplaced"] if state["unplaced"] > 0 else 1.0
            )
        else:  # MSLECC: all that the others' least values leave
            allowed = pre[v] + spare
        fits = np.flatnonzero(values <= allowed * (1 + 1e-12) + _TINY)
        k = int(fits[np.lexsort((c.machine[fits], c.finish[fits]))[0]]) if len(fits) else least(values, c)
        state["spent"] += float(values[k])
        state["unplaced"] -= pre[v]
        return k

    return rule


def _within(problem: Problem, result: Result, budget: float, figure: str, fallbacks, unit: str) -> Result:
    """The result if within budget, else the one of ``fallbacks`` (schedulers) with the least ``figure``
    if that is within budget, else BudgetError naming that least value."""
    value = getattr(result.simulation, figure)
    if value <= budget * (1 + 1e-9) + _TINY:
        return result
    least_result = min((f(problem) for f in fallbacks), key=lambda r: getattr(r.simulation, figure))
    smallest = getattr(least_result.simulation, figure)
    if smallest > budget * (1 + 1e-9) + _TINY:
        raise BudgetError(
            f"{result.schedule.algorithm}: a budget of {budget:,.6g}{unit} cannot be met; the least this "
            f"scheduler reaches on {problem.name} is {smallest:,.6g}{unit} ({least_result.schedule.algorithm})",
            smallest,
        )
    least_name = least_result.schedule.algorithm
    least_result.schedule.algorithm = result.schedule.algorithm
    least_result.schedule.parameters = dict(result.schedule.parameters, fallback=least_name)
    least_result.notes.append(
        f"the budgeted pass spent {value:,.6g}{unit}; the {least_name} schedule ({smallest:,.6g}{unit}) "
        "is within the budget and returned"
    )
    return least_result


def energy_budget(problem: Problem, budget_joules: float) -> Result:
    pre = np.nanmin(np.where(problem.feasible, problem.energy_joules, np.nan), axis=1)
    rule = _budgeted(problem, budget_joules, "energy_joules", pre, share=False)
    result = _run(problem, rule, "energy-budget", {"energy_budget_joules": budget_joules})
    return _within(problem, result, budget_joules, "energy_joules", (min_energy, heft), " J")


def budget_heft(problem: Problem, budget: float) -> Result:
    cheapest = np.where(problem.feasible, problem.runtime_seconds, np.nan) * problem.cost_per_second
    rule = _budgeted(problem, budget, "cost", np.nanmin(cheapest, axis=1), share=True)
    result = _run(problem, rule, "budget-heft", {"budget": budget})
    return _within(problem, result, budget, "cost", (min_cost, heft, min_energy), "")


def _restricted(allowed: np.ndarray) -> Rule:
    def rule(_: int, c: Candidates) -> int:
        ok = np.flatnonzero(allowed[c.machine])
        return int(ok[np.argmin(c.finish[ok])])

    return rule


def _can_run_on(problem: Problem, allowed: np.ndarray) -> bool:
    return bool((problem.feasible & allowed).any(axis=1).all())


def merge(problem: Problem, slack: float = 0.0, patience: int = 3) -> Result:
    """HEFT, then machines turned off one at a time while energy falls within (1 + slack) x HEFT's makespan,
    then tasks with slack moved to where they add less energy (reclaim.py)."""
    started = time.perf_counter()
    order = priority_order(upward_rank(problem))
    best, placed = _run_placed(problem, earliest_finish, "merge", {"slack": slack}, order)
    limit = best.simulation.makespan_seconds * (1 + slack) * (1 + 1e-12)
    allowed = np.ones(problem.machines, dtype=bool)
    improved = True
    while improved:
        improved = False
        busy = _busy_share(problem, best)
        for m in sorted(np.flatnonzero(allowed & (busy > 0)), key=lambda m: busy[m])[:patience]:
            trial_allowed = allowed.copy()
            trial_allowed[m] = False
            if not _can_run_on(problem, trial_allowed):
                continue
            trial, trial_placed = _run_placed(
                problem, _restricted(trial_allowed), "merge", {"slack": slack}, order
            )
            if (
                trial.simulation.makespan_seconds <= limit
                and trial.simulation.energy_joules < best.simulation.energy_joules
            ):
                best, placed, allowed, improved = trial, trial_placed, trial_allowed, True
                break
    moves = reclaim(problem, placed, limit)
    best = _finish(problem, placed, "merge", {"slack": slack}, started)
    best.notes.append(
        f"machines off: {int((~allowed).sum())} of {problem.machines}; tasks moved into slack: {moves}"
    )
    return best


def deadline(problem: Problem, slack: float = 0.0) -> Result:
    """Least energy within sub-deadlines: each task's HEFT finish time stretched by (1 + slack), then slack
    reclamation; HEFT's schedule reclaimed when that uses less energy or the list pass misses the limit."""
    started = time.perf_counter()
    order = priority_order(upward_rank(problem))
    heft_result, heft_placed = _run_placed(problem, earliest_finish, "deadline", {"slack": slack}, order)
    limit = heft_result.simulation.makespan_seconds * (1 + slack) * (1 + 1e-12)
    sub_deadline = heft_placed.finish * (1 + slack) * (1 + 1e-12)

    def rule(v: int, c: Candidates) -> int:
        fits = np.flatnonzero(c.finish <= sub_deadline[v])
        if not len(fits):
            return int(np.argmin(c.finish))
        return int(fits[np.lexsort((c.machine[fits], c.finish[fits], c.energy_joules[fits]))[0]])

    placed = list_schedule(problem, order, rule)
    moves = reclaim(problem, heft_placed, limit)
    best = _finish(problem, heft_placed, "deadline", {"slack": slack}, started)
    note = f"HEFT's schedule with {moves} task(s) moved into slack"
    if placed.finish.max() <= limit:
        moves = reclaim(problem, placed, limit)
        within = _finish(problem, placed, "deadline", {"slack": slack}, started)
        if within.simulation.energy_joules < best.simulation.energy_joules:
            best, note = within, f"sub-deadlines met, {moves} task(s) moved into slack"
    best.schedule.seconds_to_schedule = time.perf_counter() - started
    best.notes.append(note)
    return best


def _busy_share(problem: Problem, result: Result) -> np.ndarray:
    """Busy core-seconds per machine over its cores times its powered span (0 for unused machines)."""
    ids = {m: i for i, m in enumerate(problem.platform.ids)}
    busy = np.zeros(problem.machines)
    for a in result.schedule.assignments:
        busy[ids[a.machine_id]] += a.end_seconds - a.start_seconds
    span = np.array([result.simulation.release_seconds.get(m, 0.0) for m in problem.platform.ids])
    cores = np.array([m.cores for m in problem.platform.machines])
    return np.divide(busy, cores * span, out=np.zeros_like(busy), where=span > 0)


def run(problem: Problem, options: SchedulingOptions) -> Result:
    """The scheduler ``options`` names, with its parameters; the result has passed the simulator."""
    if options.algorithm == "heft":
        return heft(problem)
    if options.algorithm == "min-energy":
        return min_energy(problem)
    if options.algorithm == "energy-budget":
        return energy_budget(problem, options.energy_budget_joules)
    if options.algorithm == "ecs":
        return ecs(problem)
    if options.algorithm == "budget-heft":
        return budget_heft(problem, options.budget)
    if options.algorithm == "merge":
        return merge(problem, options.slack)
    if options.algorithm == "deadline":
        return deadline(problem, options.slack)
    return weighted(problem, options.weight)


DEFAULT_WEIGHTS = tuple(np.round(np.linspace(0.0, 1.0, 11), 2))
DEFAULT_SLACKS = (0.0, 0.05, 0.1)


def pareto_sweep(
    problem: Problem, weights: Iterable[float] = DEFAULT_WEIGHTS, slacks: Iterable[float] = DEFAULT_SLACKS
) -> list[Result]:
    """Every policy's schedule (weighted at each weight, merge at each slack, and the fixed policies)."""
    results = [heft(problem), min_energy(problem), ecs(problem)]
    results += [weighted(problem, float(w)) for w in weights]
    results += [merge(problem, float(s)) for s in slacks]
    results += [deadline(problem, float(s)) for s in slacks]
    return results


def pareto_front(results: list[Result]) -> list[Result]:
    """The schedules no other beats on both makespan and energy, by increasing makespan."""
    ordered = sorted(results, key=lambda r: (r.simulation.makespan_seconds, r.simulation.energy_joules))
    front: list[Result] = []
    for r in ordered:
        if not front or r.simulation.energy_joules < front[-1].simulation.energy_joules:
            front.append(r)
    return front
