"""Workflows of moldable tasks with OR-split/OR-join control, VM catalogs, and hourly billing.

A task's work is seconds on one reference vCPU (speed 1.0); on ``cpus`` vCPUs of a VM type of speed ``s``
it runs for Amdahl's ``(alpha + (1 - alpha) / cpus) * work / s`` seconds. A task runs on one VM instance
(``cpus`` <= the type's ``ncpu``); an instance runs several tasks at once as long as their CPUs fit.

A rented VM is billed from the start of its first task to the end of its last, by the started hour
(at least one hour): ``max(1, ceil(span / 3600)) * cost_per_hour``. Costs are summed as integer hours
per type times the type's price (``math.fsum``), so every module computing a cost gets the same float.
A sub-workflow's mapping compares that float with its budget exactly; a whole workflow's cost (a sum over
sub-workflows of executions x cost) is within budget up to one part in 10^9, the rounding of such sums.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

SECONDS_PER_HOUR = 3600.0
BUDGET_RELATIVE_TOLERANCE = 1e-9
COMPUTE, OR_SPLIT, OR_JOIN = "compute", "or_split", "or_join"


def execution_seconds(work_seconds: float, alpha: float, cpus: int, speed: float) -> float:
    """Amdahl's law on ``cpus`` vCPUs of relative speed ``speed``."""
    return (alpha + (1.0 - alpha) / cpus) * work_seconds / speed


def within_budget(cost: float, budget: float) -> bool:
    """cost <= budget, up to one part in 10^9 for the rounding of sums over sub-workflows."""
    return cost <= budget * (1.0 + BUDGET_RELATIVE_TOLERANCE)


def billed_hours(span_seconds: float) -> int:
    """Hours billed for a VM busy over ``span_seconds``: every started hour, at least one."""
    return max(1, math.ceil(span_seconds / SECONDS_PER_HOUR))


def cost_of_hours(hours_by_type: Sequence[int], prices: Sequence[float]) -> float:
    """Exact-order cost of integer billed hours per VM type."""
    return math.fsum(h * c for h, c in zip(hours_by_type, prices, strict=True))


@dataclass(frozen=True)
class VmType:
    name: str
    ncpu: int
    cost_per_hour: float
    speed: float = 1.0  # one vCPU's speed relative to the reference vCPU the work is measured on

    def __post_init__(self):
        if self.ncpu < 1 or self.cost_per_hour <= 0 or self.speed <= 0:
            raise ValueError(f"VM type {self.name}: ncpu >= 1, cost_per_hour > 0 and speed > 0 are required")

    @property
    def cost_per_work_hour(self) -> float:
        """Price of one hour of reference-vCPU work: what the T_A budget tests compare types by."""
        return self.cost_per_hour / (self.ncpu * self.speed)


@dataclass(frozen=True)
class Catalog:
    name: str
    vm_types: tuple[VmType, ...]
    bandwidth_bytes_per_second: float = 125e6  # between two VM instances; zero-cost on the same instance
    note: str = ""

    def __post_init__(self):
        if not self.vm_types:
            raise ValueError(f"catalog {self.name} has no VM type")
        if len({t.name for t in self.vm_types}) != len(self.vm_types):
            raise ValueError(f"catalog {self.name} repeats a VM type name")
        if self.bandwidth_bytes_per_second <= 0:
            raise ValueError("bandwidth_bytes_per_second must be > 0")

    @property
    def max_cpus(self) -> int:
        return max(t.ncpu for t in self.vm_types)

    @property
    def prices(self) -> tuple[float, ...]:
        return tuple(t.cost_per_hour for t in self.vm_types)

    @property
    def mean_speed(self) -> float:
        """The nominal speed CPA times are computed at (the catalog average, as Share_Budget averages)."""
        return sum(t.speed for t in self.vm_types) / len(self.vm_types)


DEVICES = ("cpu", "gpu", "fpga")  # what a task needs of a machine (scheduling); "cpu" = any machine


@dataclass(frozen=True)
class Task:
    """A compute task. Allocation reads ``work_seconds`` and ``alpha``; scheduling also reads the measured
    or predicted ``runtime_seconds`` and ``energy_joules`` per machine id (energy above the machine's
    idle power), the ``device`` the task needs, and ``sources``: for each of those two fields, where each
    machine's number came from (measured, predicted, imported, ...). ``work_seconds`` may be None when
    every machine's runtime is given."""

    id: str
    work_seconds: float | None
    alpha: float = 0.0
    runtime_seconds: Mapping[str, float] = field(default_factory=dict, hash=False)
    energy_joules: Mapping[str, float] = field(default_factory=dict, hash=False)
    device: str = "cpu"
    sources: Mapping[str, Mapping[str, str]] = field(default_factory=dict, hash=False)

    def __post_init__(self):
        if (self.work_seconds is not None and not self.work_seconds >= 0) or not 0.0 <= self.alpha <= 1.0:
            raise ValueError(f"task {self.id}: work_seconds >= 0 and 0 <= alpha <= 1 are required")
        if self.work_seconds is None and not self.runtime_seconds:
            raise ValueError(f"task {self.id}: needs work_seconds or runtime_seconds per machine")
        if self.device not in DEVICES:
            raise ValueError(
                f"task {self.id}: device must be one of {', '.join(DEVICES)}, not {self.device!r}"
            )
        for name, values in (
            ("runtime_seconds", self.runtime_seconds),
            ("energy_joules", self.energy_joules),
        ):
            for machine, value in values.items():
                if not value >= 0:
                    raise ValueError(f"task {self.id}: {name}[{machine}] must be a number >= 0, not {value}")


@dataclass(frozen=True)
class Control:
    """An OR-split (one outgoing edge taken per arrival) or an OR-join (passes every arrival on).

    A split whose ``iterations`` is set closes a counted loop: its outgoing edge with ``loop=True`` goes
    back to the loop head, its other edge leaves; the loop body runs ``n`` times with probability
    ``iterations[n]`` per entry. Other splits choose an outgoing edge by the edges' ``probability``.
    """

    id: str
    kind: str
    iterations: dict[int, float] | None = None


@dataclass(frozen=True)
class Edge:
    source: str
    target: str
    data_bytes: float = 0.0
    probability: float | None = None  # on edges leaving a probabilistic OR-split
    loop: bool = False  # on the back edge of a counted-loop OR-split


@dataclass
class Workflow:
    name: str
    tasks: dict[str, Task]
    edges: list[Edge]
    controls: dict[str, Control] = field(default_factory=dict)

    def __post_init__(self):
        clash = self.tasks.keys() & self.controls.keys()
        if clash:
            raise ValueError(f"ids used by both a task and a control vertex: {sorted(clash)[:5]}")
        for edge in self.edges:
            for end in (edge.source, edge.target):
                if end not in self.tasks and end not in self.controls:
                    raise ValueError(f"edge {edge.source} -> {edge.target}: unknown vertex {end}")
        for control in self.controls.values():
            if control.kind not in (OR_SPLIT, OR_JOIN):
                raise ValueError(f"control {control.id}: kind must be {OR_SPLIT} or {OR_JOIN}")
            if control.kind == OR_SPLIT:
                self._check_split(control)

    def _check_split(self, split: Control) -> None:
        out = [e for e in self.edges if e.source == split.id]
        if split.iterations is not None:
            total = sum(split.iterations.values())
            if any(n < 1 for n in split.iterations) or not math.isclose(total, 1.0, rel_tol=1e-6):
                raise ValueError(
                    f"loop split {split.id}: iterations must be counts >= 1 with probabilities summing to 1"
                )
            if len(out) != 2 or sum(e.loop for e in out) != 1:
                raise ValueError(
                    f"loop split {split.id}: needs exactly one back edge (loop) and one exit edge"
                )
            return
        probabilities = [e.probability for e in out]
        if not out or any(p is None or p < 0 for p in probabilities):
            raise ValueError(f"split {split.id}: every outgoing edge needs a probability >= 0")
        if not math.isclose(sum(probabilities), 1.0, rel_tol=1e-6):
            raise ValueError(f"split {split.id}: outgoing probabilities sum to {sum(probabilities)}, not 1")

    @property
    def deterministic(self) -> bool:
        return not self.controls


@dataclass(frozen=True)
class Dag:
    """A DAG of compute tasks in array form; index = rank in a topological order (Kahn, input order kept)."""

    name: str
    task_ids: tuple[str, ...]
    work_seconds: tuple[float, ...]
    alpha: tuple[float, ...]
    successors: tuple[tuple[tuple[int, float], ...], ...]  # (child index, data bytes)
    predecessors: tuple[tuple[tuple[int, float], ...], ...]  # (parent index, data bytes)

    @classmethod
    def build(cls, name: str, tasks: Iterable[Task], edges: Iterable[Edge]) -> Dag:
        tasks = list(tasks)
        missing = [t.id for t in tasks if t.work_seconds is None]
        if missing:
            raise ValueError(f"{name}: tasks without work_seconds cannot be allocated: {missing[:5]}")
        position = {t.id: i for i, t in enumerate(tasks)}
        if len(position) != len(tasks):
            raise ValueError(f"{name}: repeated task id")
        data: dict[tuple[int, int], float] = {}
        for e in edges:
            if e.source == e.target:
                raise ValueError(f"{name}: self edge on {e.source}")
            key = (position[e.source], position[e.target])
            data[key] = data.get(key, 0.0) + e.data_bytes
        children: list[list[int]] = [[] for _ in tasks]
        indegree = [0] * len(tasks)
        for u, v in data:
            children[u].append(v)
            indegree[v] += 1
        ready = [i for i, d in enumerate(indegree) if d == 0]
        heapq.heapify(ready)
        order = []
        while ready:
            u = heapq.heappop(ready)
            order.append(u)
            for v in children[u]:
                indegree[v] -= 1
                if indegree[v] == 0:
                    heapq.heappush(ready, v)
        if len(order) != len(tasks):
            raise ValueError(f"{name}: the compute tasks have a cycle (loops must go through an OR-split)")
        rank = {old: new for new, old in enumerate(order)}
        succ: list[list[tuple[int, float]]] = [[] for _ in tasks]
        pred: list[list[tuple[int, float]]] = [[] for _ in tasks]
        for (u, v), size in sorted(data.items(), key=lambda kv: (rank[kv[0][0]], rank[kv[0][1]])):
            succ[rank[u]].append((rank[v], size))
            pred[rank[v]].append((rank[u], size))
        ordered = [tasks[i] for i in order]
        return cls(
            name=name,
            task_ids=tuple(t.id for t in ordered),
            work_seconds=tuple(t.work_seconds for t in ordered),
            alpha=tuple(t.alpha for t in ordered),
            successors=tuple(tuple(s) for s in succ),
            predecessors=tuple(tuple(p) for p in pred),
        )

    def __len__(self) -> int:
        return len(self.task_ids)

    def seconds(self, task: int, cpus: int, speed: float) -> float:
        return execution_seconds(self.work_seconds[task], self.alpha[task], cpus, speed)

    def bottom_levels(self, times: Sequence[float]) -> list[float]:
        """Longest path from each task to an exit, task times only (no communication), as CPA uses."""
        levels = [0.0] * len(self)
        for u in range(len(self) - 1, -1, -1):
            levels[u] = times[u] + max((levels[v] for v, _ in self.successors[u]), default=0.0)
        return levels
