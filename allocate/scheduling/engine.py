"""The list-scheduling engine every scheduler here shares: priorities, insertion, and one choice per task.

Tasks are taken in a priority order (HEFT's upward rank unless a scheduler says otherwise). For each task,
every machine that has the device it needs is a candidate: the task is ready there when each parent has
ended and its data has arrived (nothing to move on the same machine), and it starts at the earliest time
from then on when one of the machine's cores (and, for a GPU or FPGA task, one of its GPUs or FPGAs) is
free for the whole runtime, gaps between already placed tasks included (insertion-based, as HEFT). A
scheduler's rule then picks one candidate from their start and finish times and the energy and cost the
placement would add: the task's energy above idle, plus idle power and price over the time the machine's
powered span grows by (a machine is powered from 0 to its last task's end, see simulator.py).
"""

from __future__ import annotations

import time
from bisect import bisect_left, bisect_right
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from allocate.scheduling.problem import Problem
from allocate.scheduling.schedule import Assignment, Schedule


class _Slot:
    """One core (or GPU, FPGA) of a machine: the sorted, disjoint intervals it is busy."""

    __slots__ = ("ends", "starts")

    def __init__(self):
        self.starts: list[float] = []
        self.ends: list[float] = []

    def earliest(self, ready: float, duration: float) -> float:
        ends = self.ends
        if not ends or ready >= ends[-1]:
            return ready
        starts, t = self.starts, ready
        for j in range(bisect_right(ends, ready), len(ends)):
            if starts[j] - t >= duration:
                return t
            t = max(t, ends[j])
        return t

    def add(self, start: float, end: float) -> None:
        """Insert keeping (start, end) order, so that ends stay sorted with zero-length tasks too."""
        k = bisect_left(self.starts, start)
        while k < len(self.starts) and self.starts[k] == start and self.ends[k] <= end:
            k += 1
        self.starts.insert(k, start)
        self.ends.insert(k, end)

    def remove(self, start: float, end: float) -> bool:
        k = bisect_left(self.starts, start)
        while k < len(self.starts) and self.starts[k] == start:
            if self.ends[k] == end:
                del self.starts[k], self.ends[k]
                return True
            k += 1
        return False


def _release(slots: list[_Slot], start: float, end: float) -> None:
    if not any(slot.remove(start, end) for slot in slots):
        raise AssertionError("removing an interval the timeline does not hold")


def _earliest(slots: list[_Slot], ready: float, duration: float) -> float:
    best = np.inf
    for slot in slots:
        t = slot.earliest(ready, duration)
        if t <= ready:
            return ready
        best = min(best, t)
    return best


def _take(slots: list[_Slot], start: float, end: float) -> None:
    for slot in slots:
        if slot.earliest(start, end - start) <= start:
            slot.add(start, end)
            return
    raise AssertionError("no free slot at a start time the timeline computed")


class MachineTimeline:
    """Busy intervals of one machine's cores and devices."""

    def __init__(self, cores: int, gpus: int, fpgas: int):
        self.cores = [_Slot() for _ in range(cores)]
        self.devices = {"gpu": [_Slot() for _ in range(gpus)], "fpga": [_Slot() for _ in range(fpgas)]}

    def earliest(self, ready: float, duration: float, device: str) -> float:
        t = _earliest(self.cores, ready, duration)
        if device == "cpu":
            return t
        slots = self.devices[device]
        while True:  # both a core and a device free over [t, t + duration]; t only grows
            on_device = _earliest(slots, t, duration)
            if on_device <= t:
                return t
            t = _earliest(self.cores, on_device, duration)
            if t <= on_device:
                return on_device

    def add(self, start: float, end: float, device: str) -> None:
        _take(self.cores, start, end)
        if device != "cpu":
            _take(self.devices[device], start, end)

    def remove(self, start: float, end: float, device: str) -> None:
        _release(self.cores, start, end)
        if device != "cpu":
            _release(self.devices[device], start, end)


@dataclass(frozen=True)
class Candidates:
    """The machines a task can go to now, with what each placement gives and adds."""

    machine: np.ndarray  # machine indices
    start: np.ndarray
    finish: np.ndarray
    energy_joules: np.ndarray  # the task's energy above idle + idle power over the powered span it adds
    cost: np.ndarray  # price over the powered span it adds


Rule = Callable[[int, Candidates], int]  # (task, candidates) -> position in candidates


def mean_runtime(problem: Problem) -> np.ndarray:
    """Each task's mean runtime over the machines that can run it (HEFT's w-bar)."""
    runtime = problem.runtime_seconds
    feasible = np.isfinite(runtime)
    return np.where(feasible, runtime, 0.0).sum(axis=1) / feasible.sum(axis=1)


def upward_rank(problem: Problem, weights: np.ndarray | None = None) -> np.ndarray:
    """rank_u(v) = w(v) + max over children s of (c-bar(v, s) + rank_u(s)), w = mean runtime by default."""
    w = mean_runtime(problem) if weights is None else weights
    per_byte = problem.mean_seconds_per_byte()
    rank = np.zeros(len(problem))
    for v in range(len(problem) - 1, -1, -1):
        tail = 0.0
        for s, size in zip(problem.children[v], problem.child_bytes[v], strict=True):
            tail = max(tail, size * per_byte + rank[s])
        rank[v] = w[v] + tail
    return rank


def priority_order(rank: np.ndarray) -> list[int]:
    """Tasks by decreasing rank; equal ranks (to 1e-9 of the largest, so that sums of means in another
    order still tie) by topological index, so a parent always comes first."""
    scale = float(np.abs(rank).max()) if len(rank) else 1.0
    steps = np.round(rank / (scale * 1e-9)) if scale > 0 else np.zeros(len(rank))
    return np.lexsort((np.arange(len(rank)), -steps)).tolist()


@dataclass
class PlacedTasks:
    machine: np.ndarray
    start: np.ndarray
    finish: np.ndarray


def list_schedule(problem: Problem, order: Sequence[int], rule: Rule) -> PlacedTasks:
    """Place tasks in ``order`` (parents before children), each where ``rule`` picks among the candidates."""
    n, machines = len(problem), problem.platform.machines
    timelines = [MachineTimeline(m.cores, m.gpus, m.fpgas) for m in machines]
    idle, price = problem.idle_watts, problem.cost_per_second
    release = np.zeros(len(machines))
    placed = PlacedTasks(np.full(n, -1, dtype=np.int64), np.zeros(n), np.zeros(n))
    runtime, energy, per_byte = problem.runtime_seconds, problem.energy_joules, problem.seconds_per_byte
    feasible = [np.flatnonzero(np.isfinite(row)) for row in runtime]
    for v in order:
        able = feasible[v]
        ready = np.zeros(len(able))
        for p, size in zip(problem.parents[v], problem.parent_bytes[v], strict=True):
            if placed.machine[p] < 0:
                raise ValueError(
                    f"task {problem.task_ids[v]} is placed before its parent {problem.task_ids[p]}"
                )
            np.maximum(ready, placed.finish[p] + size * per_byte[placed.machine[p], able], out=ready)
        seconds = runtime[v, able]
        start = np.array(
            [
                timelines[m].earliest(r, d, problem.devices[v])
                for m, r, d in zip(able.tolist(), ready.tolist(), seconds.tolist(), strict=True)
            ]
        )
        finish = start + seconds
        grown = np.maximum(finish - release[able], 0.0)
        candidates = Candidates(
            able, start, finish, energy[v, able] + idle[able] * grown, price[able] * grown
        )
        k = rule(v, candidates)
        m = int(able[k])
        timelines[m].add(float(start[k]), float(finish[k]), problem.devices[v])
        placed.machine[v], placed.start[v], placed.finish[v] = m, start[k], finish[k]
        release[m] = max(release[m], finish[k])
    return placed


def to_schedule(
    problem: Problem, placed: PlacedTasks, algorithm: str, parameters: dict, started: float
) -> Schedule:
    ids = problem.platform.ids
    return Schedule(
        algorithm=algorithm,
        assignments=[
            Assignment(
                problem.task_ids[v], ids[placed.machine[v]], float(placed.start[v]), float(placed.finish[v])
            )
            for v in range(len(problem))
        ],
        parameters=parameters,
        seconds_to_schedule=time.perf_counter() - started,
        workflow=problem.name,
        platform=problem.platform.name,
    )


def earliest_finish(_: int, c: Candidates) -> int:
    """HEFT's choice: the earliest finish; equal finishes go to the machine listed first in P.json."""
    return int(np.argmin(c.finish))


def fixed(assignment: np.ndarray) -> Rule:
    """Replay a given machine per task (with the engine's start times), for post-passes and tests."""

    def rule(v: int, c: Candidates) -> int:
        hits = np.flatnonzero(c.machine == assignment[v])
        if not len(hits):
            raise ValueError(f"task {v}: machine {assignment[v]} cannot run it")
        return int(hits[0])

    return rule
