"""The reference list scheduler (bi-CPA's ``map_allocations``) adapted to renting VM instances by the hour.

Tasks are taken by non-increasing bottom level (ties by topological rank, so parents always come first).
A task of ``p`` CPUs may go on any rented instance with ``ncpu >= p`` or on a newly rented instance of any
type with ``ncpu >= p``. On an instance it takes CPUs as the reference takes hosts: those free at the
task's data-ready time, latest-freed first (tightest fit), then the earliest-freed of the busy ones; it
starts when its data has arrived (``bytes / bandwidth`` from another instance, nothing from the same one)
and its CPUs are free. Placement is append-only, so a CPU never runs two tasks at once.

The running cost is the hours billed so far (see ``allocate.model``). Two budget tests are offered:

- unguarded (Eager): an option is affordable if the running cost after it is <= B; when none is, the
  cheapest option is taken anyway, which is how the budget can be exceeded.
- guarded (Deferred, refine): an option is affordable if the running cost after it plus a reserve for
  the tasks not yet placed is <= B. The reserve bounds the cost of the fallback: every remaining task, in
  list order, alone on one fallback instance F (the type with the cheapest one-VM sequential schedule)
  using all its CPUs. With L the latest data-ready time any placed task not on F can impose, R the
  remaining tasks' times on F and t the time F's CPUs are all free (or, before F is rented, the next
  task's data-ready time s0), F ends by max(t, L) + R. The first VM of the fallback type to be rented
  becomes F. Taking the fallback never raises that bound, so a mapping that starts with bound <= B
  stays <= B: the budget holds whenever B >= ``minimum_budget``.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Sequence
from dataclasses import dataclass

from allocate.model import Catalog, Dag, billed_hours, cost_of_hours


class Instance:
    """One rented VM: the time each CPU becomes free (sorted) and the span it is billed for."""

    __slots__ = ("type_index", "ncpu", "speed", "free_at", "start", "end", "hours")

    def __init__(self, type_index: int, ncpu: int, speed: float):
        self.type_index, self.ncpu, self.speed = type_index, ncpu, speed
        self.free_at = [0.0] * ncpu
        self.start, self.end, self.hours = math.inf, -math.inf, 0

    def occupy(self, ready: float, cpus: int, start: float, finish: float) -> None:
        free = bisect.bisect_right(self.free_at, ready)
        first = free - cpus if free >= cpus else 0
        self.free_at[first : first + cpus] = [finish] * cpus
        self.free_at.sort()
        self.start, self.end = min(self.start, start), max(self.end, finish)
        self.hours = billed_hours(self.end - self.start)


@dataclass(frozen=True)
class Option:
    """Where a task could go: ``instance`` >= 0 is a rented one, -1 - k a new instance of type k."""

    task: int
    cpus: int
    instance: int
    type_index: int
    ready: float
    start: float
    finish: float
    extra_hours: int


@dataclass(frozen=True)
class Placement:
    task: int
    instance: int
    cpus: int
    start: float
    finish: float


@dataclass
class Schedule:
    """A mapped sub-workflow: one placement per task, instance j is ``vm<j>`` of ``instance_types[j]``."""

    dag: Dag
    catalog: Catalog
    instance_types: list[int]
    placements: list[Placement]
    hours_by_type: list[int]

    @property
    def cost(self) -> float:
        return cost_of_hours(self.hours_by_type, self.catalog.prices)

    @property
    def makespan_seconds(self) -> float:
        return max((p.finish for p in self.placements), default=0.0)

    def plan(self) -> list[tuple[int, int, int]]:
        """(task, instance, cpus) in placement order: replaying it gives this schedule back."""
        return [(p.task, p.instance, p.cpus) for p in self.placements]


def list_order(dag: Dag, cpus: Sequence[int], speed: float) -> list[int]:
    """Non-increasing bottom level with the given allocation, ties by topological rank."""
    levels = dag.bottom_levels([dag.seconds(i, cpus[i], speed) for i in range(len(dag))])
    return sorted(range(len(dag)), key=lambda i: (-levels[i], i))


def sequential_seconds(dag: Dag, catalog: Catalog, type_index: int) -> float:
    vm = catalog.vm_types[type_index]
    return sum(dag.seconds(i, vm.ncpu, vm.speed) for i in range(len(dag)))


def fallback_type(dag: Dag, catalog: Catalog) -> int:
    """The type whose one-VM sequential schedule (all CPUs per task) is cheapest, then fastest."""

    def key(k: int) -> tuple[float, float]:
        seconds = sequential_seconds(dag, catalog, k)
        return billed_hours(seconds) * catalog.vm_types[k].cost_per_hour, seconds

    return min(range(len(catalog.vm_types)), key=key)


def minimum_budget(dag: Dag, catalog: Catalog) -> float:
    """Cost of the cheapest one-VM sequential schedule: from this budget up, guarded mapping keeps B."""
    if not len(dag):
        return 0.0
    k = fallback_type(dag, catalog)
    return billed_hours(sequential_seconds(dag, catalog, k)) * catalog.vm_types[k].cost_per_hour


class Mapper:
    """State of one list-scheduling pass; the algorithms choose among ``options`` and call ``place``."""

    def __init__(self, dag: Dag, catalog: Catalog, order: Sequence[int]):
        self.dag, self.catalog, self.order = dag, catalog, list(order)
        self.prices = catalog.prices
        self.bandwidth = catalog.bandwidth_bytes_per_second
        n = len(dag)
        self.instances: list[Instance] = []
        self.hours_by_type = [0] * len(catalog.vm_types)
        self.finish = [0.0] * n
        self.where = [-1] * n
        self.placements: list[Placement] = []
        self.out_transfer = [
            max((b / self.bandwidth for _, b in dag.successors[i]), default=0.0) for i in range(n)
        ]
        # the fallback's reserve
        self.fallback = fallback_type(dag, catalog)
        f = catalog.vm_types[self.fallback]
        self.fallback_ncpu, self.fallback_speed = f.ncpu, f.speed
        self.fallback_instance = -1
        self.latest_ready = 0.0
        remaining = [0.0] * (n + 1)
        for pos in range(n - 1, -1, -1):
            remaining[pos] = remaining[pos + 1] + dag.seconds(self.order[pos], f.ncpu, f.speed)
        self.remaining_after = remaining[1:]  # fallback seconds of the tasks after position pos
        self.position = 0

    def ready_times(self, task: int) -> tuple[float, dict[int, float]]:
        """Data-ready time on an instance holding none of the task's parents, and on those holding some."""
        parents = self.dag.predecessors[task]
        remote = max((self.finish[u] + size / self.bandwidth for u, size in parents), default=0.0)
        local = {}
        for j in {self.where[u] for u, _ in parents}:
            local[j] = max(
                self.finish[u] if self.where[u] == j else self.finish[u] + size / self.bandwidth
                for u, size in parents
            )
        return remote, local

    def options(self, task: int, cpus: int, remote: float, local: dict[int, float]) -> list[Option]:
        found = []
        dag = self.dag
        for j, inst in enumerate(self.instances):
            if inst.ncpu < cpus:
                continue
            ready = local.get(j, remote)
            start = max(ready, inst.free_at[cpus - 1])
            finish = start + dag.seconds(task, cpus, inst.speed)
            hours = billed_hours(max(inst.end, finish) - min(inst.start, start))
            found.append(Option(task, cpus, j, inst.type_index, ready, start, finish, hours - inst.hours))
        for k, vm in enumerate(self.catalog.vm_types):
            if vm.ncpu < cpus:
                continue
            seconds = dag.seconds(task, cpus, vm.speed)
            found.append(
                Option(task, cpus, -1 - k, k, remote, remote, remote + seconds, billed_hours(seconds))
            )
        return found

    def running_cost(self, option: Option) -> float:
        hours = list(self.hours_by_type)
        hours[option.type_index] += option.extra_hours
        return cost_of_hours(hours, self.prices)

    def guarded_cost(self, option: Option) -> float:
        """Running cost after ``option`` plus the reserve bound for the tasks after it."""
        hours = list(self.hours_by_type)
        hours[option.type_index] += option.extra_hours
        pos = self.position
        if pos + 1 == len(self.order):
            return cost_of_hours(hours, self.prices)
        remaining = self.remaining_after[pos]
        f = self.instances[self.fallback_instance] if self.fallback_instance >= 0 else None
        if option.instance >= 0 and option.instance == self.fallback_instance:
            all_free, start, end = (
                max(f.free_at[-1], option.finish),
                min(f.start, option.start),
                max(f.end, option.finish),
            )
            latest = self.latest_ready
        elif f is None and option.instance < 0 and option.type_index == self.fallback:
            all_free, start, end = option.finish, option.start, option.finish  # this new VM becomes F
            latest = self.latest_ready
        else:
            latest = max(self.latest_ready, option.finish + self.out_transfer[option.task])
            if f is None:
                s0 = self._next_ready(option)
                hours[self.fallback] += billed_hours(max(latest - s0, 0.0) + remaining)
                return cost_of_hours(hours, self.prices)
            all_free, start, end = f.free_at[-1], f.start, f.end
        bound = billed_hours(max(max(all_free, latest) + remaining, end) - start)
        hours[self.fallback] += bound - billed_hours(end - start)
        return cost_of_hours(hours, self.prices)

    def _next_ready(self, option: Option) -> float:
        """Data-ready time, on a fresh instance, of the task after ``option.task`` in list order."""
        nxt = self.order[self.position + 1]
        ready = 0.0
        for parent, size in self.dag.predecessors[nxt]:
            done = option.finish if parent == option.task else self.finish[parent]
            ready = max(ready, done + size / self.bandwidth)
        return ready

    def fallback_option(self, task: int, remote: float, local: dict[int, float]) -> Option:
        cpus, speed = self.fallback_ncpu, self.fallback_speed
        seconds = self.dag.seconds(task, cpus, speed)
        if self.fallback_instance < 0:
            return Option(
                task,
                cpus,
                -1 - self.fallback,
                self.fallback,
                remote,
                remote,
                remote + seconds,
                billed_hours(seconds),
            )
        f = self.instances[self.fallback_instance]
        ready = local.get(self.fallback_instance, remote)
        start = max(ready, f.free_at[-1])
        hours = billed_hours(max(f.end, start + seconds) - min(f.start, start))
        return Option(
            task, cpus, self.fallback_instance, self.fallback, ready, start, start + seconds, hours - f.hours
        )

    def place(self, option: Option) -> None:
        j = option.instance
        if j < 0:
            vm = self.catalog.vm_types[option.type_index]
            self.instances.append(Instance(option.type_index, vm.ncpu, vm.speed))
            j = len(self.instances) - 1
            if self.fallback_instance < 0 and option.type_index == self.fallback:
                self.fallback_instance = j  # the first VM of the fallback type is F
        inst = self.instances[j]
        before = inst.hours
        inst.occupy(option.ready, option.cpus, option.start, option.finish)
        self.hours_by_type[inst.type_index] += inst.hours - before
        self.finish[option.task], self.where[option.task] = option.finish, j
        self.placements.append(Placement(option.task, j, option.cpus, option.start, option.finish))
        if j != self.fallback_instance:
            self.latest_ready = max(self.latest_ready, option.finish + self.out_transfer[option.task])
        self.position += 1

    def schedule(self) -> Schedule:
        return Schedule(
            self.dag,
            self.catalog,
            [inst.type_index for inst in self.instances],
            self.placements,
            list(self.hours_by_type),
        )


def map_unguarded(dag: Dag, catalog: Catalog, budget: float, cpus: Sequence[int]) -> Schedule:
    """Eager's mapping: one allocation per task, earliest finish among the affordable options, else the
    cheapest option (this is where the budget can be exceeded)."""
    mapper = Mapper(dag, catalog, list_order(dag, cpus, catalog.mean_speed))
    for task in mapper.order:
        remote, local = mapper.ready_times(task)
        priced = [(o, mapper.running_cost(o)) for o in mapper.options(task, cpus[task], remote, local)]
        affordable = [(o, c) for o, c in priced if c <= budget]
        if affordable:
            mapper.place(min(affordable, key=lambda oc: (oc[0].finish, oc[1], oc[0].instance < 0))[0])
        else:
            mapper.place(min(priced, key=lambda oc: (oc[1], oc[0].finish))[0])
    return mapper.schedule()


def map_guarded(
    dag: Dag, catalog: Catalog, budget: float, kept: Sequence[Sequence[int]], rule: str = "largest"
) -> Schedule:
    """Deferred's mapping over several kept allocations per task (``kept[level][task]``).

    ``rule="largest"`` (Deferred): the largest kept CPU count with an affordable option, at its earliest
    finish. ``rule="fastest"``: the earliest finish over every kept count. Both fall back to F."""
    if rule not in ("largest", "fastest"):
        raise ValueError(f"rule must be largest or fastest, not {rule!r}")
    counts = [sorted({level[i] for level in kept}, reverse=True) for i in range(len(dag))]
    mapper = Mapper(dag, catalog, list_order(dag, kept[-1], catalog.mean_speed))
    for task in mapper.order:
        remote, local = mapper.ready_times(task)
        chosen = None
        pool: list[tuple[Option, float]] = []
        for cpus in counts[task]:
            for option in mapper.options(task, cpus, remote, local):
                cost = mapper.guarded_cost(option)
                if cost <= budget:
                    pool.append((option, cost))
            if pool and rule == "largest":
                break
        if pool:
            chosen = min(pool, key=lambda oc: (oc[0].finish, oc[1], oc[0].instance < 0))[0]
            mapper.place(chosen)
        else:
            mapper.place(mapper.fallback_option(task, remote, local))
    return mapper.schedule()


def replay(
    dag: Dag, catalog: Catalog, instance_types: Sequence[int], plan: Sequence[tuple[int, int, int]]
) -> Schedule:
    """Re-time a plan of (task, instance, cpus) with the mapping's CPU and data rules; instances left
    without a task are dropped (never rented) and the others renumbered in order."""
    instances = [Instance(k, catalog.vm_types[k].ncpu, catalog.vm_types[k].speed) for k in instance_types]
    bandwidth = catalog.bandwidth_bytes_per_second
    finish = [0.0] * len(dag)
    where = [-1] * len(dag)
    steps = []
    for task, j, cpus in plan:
        inst = instances[j]
        ready = 0.0
        for parent, size in dag.predecessors[task]:
            ready = max(ready, finish[parent] if where[parent] == j else finish[parent] + size / bandwidth)
        start = max(ready, inst.free_at[cpus - 1])
        end = start + dag.seconds(task, cpus, inst.speed)
        inst.occupy(ready, cpus, start, end)
        finish[task], where[task] = end, j
        steps.append((task, j, cpus, start, end))
    used = sorted({j for _, j, _ in plan})
    number = {j: i for i, j in enumerate(used)}
    hours = [0] * len(catalog.vm_types)
    for j in used:
        hours[instances[j].type_index] += instances[j].hours
    placements = [Placement(t, number[j], p, s, e) for t, j, p, s, e in steps]
    return Schedule(dag, catalog, [instance_types[j] for j in used], placements, hours)
