"""A scheduling problem in array form: a workflow's tasks on a platform's machines.

``runtime_seconds[i, m]`` is task i's time on machine m: the workflow's measured or predicted number for
that machine where it has one, else ``work_seconds / speed`` (numbers for machines not on the platform, such
as a trace's own hosts, are not used, and listed); ``energy_joules[i, m]`` is the energy the
task adds above the machine's idle power: the workflow's number where given, else the machine's power per
busy core times the runtime. A machine without the device a task needs gets ``inf`` in both. Tasks are
indexed in a topological order (Kahn's, the workflow's order kept among ready tasks), so parents always
have smaller indices than their children.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass

import numpy as np

from allocate.model import Workflow
from allocate.scheduling.platform import Platform


class ProblemError(ValueError):
    """A workflow that cannot be scheduled on a platform; the message names the task and field."""


@dataclass(frozen=True)
class Problem:
    name: str
    platform: Platform
    task_ids: tuple[str, ...]
    devices: tuple[str, ...]
    runtime_seconds: np.ndarray  # [tasks, machines], inf where the machine lacks the device
    energy_joules: np.ndarray  # [tasks, machines], above idle; inf where the machine lacks the device
    parents: tuple[tuple[int, ...], ...]
    parent_bytes: tuple[tuple[float, ...], ...]
    children: tuple[tuple[int, ...], ...]
    child_bytes: tuple[tuple[float, ...], ...]
    seconds_per_byte: np.ndarray  # [machines, machines], 0 on the diagonal
    machines_not_on_platform: tuple[str, ...] = ()  # the workflow has numbers for them; not used

    def __len__(self) -> int:
        return len(self.task_ids)

    @property
    def machines(self) -> int:
        return len(self.platform.machines)

    @property
    def feasible(self) -> np.ndarray:
        return np.isfinite(self.runtime_seconds)

    @property
    def idle_watts(self) -> np.ndarray:
        return np.array([m.idle_watts for m in self.platform.machines])

    @property
    def cost_per_second(self) -> np.ndarray:
        return np.array([m.cost_per_hour / 3600.0 for m in self.platform.machines])

    def mean_seconds_per_byte(self) -> float:
        """Mean transfer time per byte over ordered pairs of distinct machines (HEFT's mean c)."""
        m = self.machines
        if m < 2:
            return 0.0
        return float(self.seconds_per_byte.sum() / (m * (m - 1)))

    def edges(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(parent, child, data bytes) arrays of every edge."""
        src = [p for c, ps in enumerate(self.parents) for p in ps]
        dst = [c for c, ps in enumerate(self.parents) for _ in ps]
        data = [b for bs in self.parent_bytes for b in bs]
        return np.array(src, dtype=np.int64), np.array(dst, dtype=np.int64), np.array(data, dtype=float)


def _topological(workflow: Workflow) -> tuple[list[str], dict[tuple[str, str], float]]:
    ids = list(workflow.tasks)
    position = {t: i for i, t in enumerate(ids)}
    data: dict[tuple[str, str], float] = {}
    for e in workflow.edges:
        if e.source == e.target:
            raise ProblemError(f"edge {e.source} -> {e.target}: a task cannot depend on itself")
        data[(e.source, e.target)] = data.get((e.source, e.target), 0.0) + e.data_bytes
    children: dict[str, list[str]] = {t: [] for t in ids}
    indegree = dict.fromkeys(ids, 0)
    for u, v in data:
        children[u].append(v)
        indegree[v] += 1
    ready = [position[t] for t in ids if indegree[t] == 0]
    heapq.heapify(ready)
    order = []
    while ready:
        u = ids[heapq.heappop(ready)]
        order.append(u)
        for v in children[u]:
            indegree[v] -= 1
            if indegree[v] == 0:
                heapq.heappush(ready, position[v])
    if len(order) != len(ids):
        stuck = sorted((t for t in ids if indegree[t] > 0), key=position.get)
        raise ProblemError(f"edges: the tasks have a cycle (through {', '.join(stuck[:3])})")
    return order, data


def _matrices(
    workflow: Workflow, order: list[str], platform: Platform, elsewhere: set[str]
) -> tuple[np.ndarray, np.ndarray]:
    """Runtime and energy per (task, machine); machine ids of numbers for machines not on the platform (a
    trace's own hosts, when scheduling on another platform) are collected in ``elsewhere``."""
    machines = platform.machines
    known = set(platform.ids)
    runtime = np.full((len(order), len(machines)), np.inf)
    energy = np.full_like(runtime, np.inf)
    for i, task_id in enumerate(order):
        task = workflow.tasks[task_id]
        for name in ("runtime_seconds", "energy_joules"):
            elsewhere.update(set(getattr(task, name)) - known)
        able = [m for m, machine in enumerate(machines) if machine.has(task.device)]
        if not able:
            raise ProblemError(
                f"task {task_id}: needs a {task.device} and no machine of {platform.name} has one"
            )
        for m in able:
            machine = machines[m]
            seconds = task.runtime_seconds.get(machine.id)
            if seconds is None:
                if task.work_seconds is None:
                    raise ProblemError(
                        f"task {task_id}: no runtime_seconds for machine {machine.id} and no work_seconds"
                    )
                seconds = task.work_seconds / machine.speed
            runtime[i, m] = seconds
            joules = task.energy_joules.get(machine.id)
            energy[i, m] = seconds * machine.dynamic_watts_per_core if joules is None else joules
    return runtime, energy


def build_problem(workflow: Workflow, platform: Platform) -> Problem:
    """Arrays for the schedulers and the simulator; a ProblemError names what cannot be scheduled."""
    if workflow.controls:
        raise ProblemError(
            f"{workflow.name}: has OR-split/OR-join vertices; scheduling takes a DAG of compute tasks"
        )
    if not workflow.tasks:
        raise ProblemError(f"{workflow.name}: has no task")
    order, data = _topological(workflow)
    index = {t: i for i, t in enumerate(order)}
    parents: list[list[int]] = [[] for _ in order]
    parent_bytes: list[list[float]] = [[] for _ in order]
    children: list[list[int]] = [[] for _ in order]
    child_bytes: list[list[float]] = [[] for _ in order]
    for (u, v), size in sorted(data.items(), key=lambda kv: (index[kv[0][0]], index[kv[0][1]])):
        parents[index[v]].append(index[u])
        parent_bytes[index[v]].append(size)
        children[index[u]].append(index[v])
        child_bytes[index[u]].append(size)
    elsewhere: set[str] = set()
    runtime, energy = _matrices(workflow, order, platform, elsewhere)
    seconds_per_byte = 1.0 / platform.bandwidth_matrix()
    return Problem(
        name=workflow.name,
        platform=platform,
        task_ids=tuple(order),
        devices=tuple(workflow.tasks[t].device for t in order),
        runtime_seconds=runtime,
        energy_joules=energy,
        parents=tuple(map(tuple, parents)),
        parent_bytes=tuple(map(tuple, parent_bytes)),
        children=tuple(map(tuple, children)),
        child_bytes=tuple(map(tuple, child_bytes)),
        seconds_per_byte=seconds_per_byte,
        machines_not_on_platform=tuple(sorted(elsewhere)),
    )
