"""``refine``: Deferred widened, then the leftover budget spent on the schedule's critical chain.

1. Candidates: Deferred itself; the same guarded mapping over a wider set of kept allocations (prices
   from T_A^over's down to a quarter of T_A^under's, plus the saturated allocation) taking the largest
   affordable count; that wider set taking the earliest finish over every kept count; and Eager, which
   is only a candidate when its mapped cost turns out to be within budget. The guarded ones cost <= B'
   whenever B' >= ``minimum_budget``. The fastest within budget is kept, so refine is never slower than
   Deferred, nor than Eager when Eager keeps the budget; when none is within budget (B' below the
   minimum) the cheapest is kept.
2. Leftover spending, as the "refined" budget-aware list schedulers do: after mapping, B' - cost is often
   large (hourly rounding, the reserve that was never needed). Walking back from the last task through
   whatever set each start (a parent's data, or the CPUs it waited for) gives the critical chain; for its
   tasks, from the end, refine tries more CPUs on the same VM, another rented VM, or a new VM of each type
   (all CPUs), re-times the whole plan with the mapping's own rules (``replay``) and keeps the first move
   that shortens the makespan at a cost <= B'. It repeats until no move helps or ``max_replays`` re-timings
   have been spent. Each kept move is checked on the re-timed schedule, so the budget holds.
"""

from __future__ import annotations

from allocate.cpa import budget_allocation_levels, price_levels
from allocate.eager import eager
from allocate.mapping import Schedule, map_guarded, replay
from allocate.model import Catalog, Dag

TIME_TOLERANCE_SECONDS = 1e-9


def refine(
    dag: Dag,
    catalog: Catalog,
    budget: float,
    levels: int = 8,
    hours: str = "hourly",
    max_replays: int = 150,
) -> Schedule:
    deferred_levels = budget_allocation_levels(dag, catalog, budget, price_levels(catalog, levels), hours)
    wide_levels = budget_allocation_levels(
        dag, catalog, budget, [*price_levels(catalog, levels, beyond_under=4.0), 0.0], hours
    )
    candidates = [
        eager(dag, catalog, budget, "under", hours),
        map_guarded(dag, catalog, budget, deferred_levels, "largest"),
        map_guarded(dag, catalog, budget, wide_levels, "largest"),
        map_guarded(dag, catalog, budget, wide_levels, "fastest"),
    ]
    within = [s for s in candidates if s.cost <= budget]
    if not within:
        return min(candidates, key=lambda s: (s.cost, s.makespan_seconds))
    best = min(within, key=lambda s: (s.makespan_seconds, s.cost))
    return spend_leftover(best, budget, max_replays)


def critical_chain(schedule: Schedule) -> list[int]:
    """Tasks from the last to finish back to one that started at its earliest, each set by the next."""
    dag, bandwidth = schedule.dag, schedule.catalog.bandwidth_bytes_per_second
    placed = {p.task: p for p in schedule.placements}
    on_instance: dict[int, list[int]] = {}
    for p in schedule.placements:
        on_instance.setdefault(p.instance, []).append(p.task)
    if not placed:
        return []
    task = max(placed, key=lambda t: placed[t].finish)
    chain = [task]
    while True:
        here = placed[task]
        blocker = None
        for parent, size in dag.predecessors[task]:
            arrival = placed[parent].finish + (
                0.0 if placed[parent].instance == here.instance else size / bandwidth
            )
            if arrival >= here.start - TIME_TOLERANCE_SECONDS:
                blocker = parent
                break
        if blocker is None:
            blocker = next(
                (
                    t
                    for t in on_instance[here.instance]
                    if t != task and abs(placed[t].finish - here.start) <= TIME_TOLERANCE_SECONDS
                ),
                None,
            )
        if blocker is None or blocker in chain:
            return chain
        chain.append(blocker)
        task = blocker


def _moves(schedule: Schedule, task: int):
    """(instance types, plan) variants moving ``task`` to more CPUs or another / a new VM."""
    catalog, types = schedule.catalog, schedule.instance_types
    plan = schedule.plan()
    at = next(i for i, step in enumerate(plan) if step[0] == task)
    _, instance, cpus = plan[at]

    def moved(j: int, p: int, new_types: list[int]):
        variant = list(plan)
        variant[at] = (task, j, p)
        return new_types, variant

    ncpu = catalog.vm_types[types[instance]].ncpu
    for p in range(cpus + 1, ncpu + 1):
        yield moved(instance, p, types)
    for j, k in enumerate(types):
        if j != instance:
            yield moved(j, catalog.vm_types[k].ncpu, types)
    for k, vm in enumerate(catalog.vm_types):
        yield moved(len(types), vm.ncpu, [*types, k])


def spend_leftover(schedule: Schedule, budget: float, max_replays: int) -> Schedule:
    best, replays = schedule, 0
    improved = True
    while improved and replays < max_replays:
        improved = False
        for task in critical_chain(best):
            for types, plan in _moves(best, task):
                if replays >= max_replays:
                    return best
                replays += 1
                trial = replay(best.dag, best.catalog, types, plan)
                if (
                    trial.cost <= budget
                    and trial.makespan_seconds < best.makespan_seconds - TIME_TOLERANCE_SECONDS
                ):
                    best, improved = trial, True
                    break
            if improved:
                break
    return best
