"""Slack reclamation by re-placement: move tasks that have slack to machines where they cost less energy.

Energy-aware post-passes in the literature (EES, DEWTS, ECS's MCER) use a schedule's slack, the time a
non-critical task can be late without delaying anything, to lower CPU frequency. Our platforms have no
frequency levels, but they have machines that do the same work for less energy, more slowly. So a task
with slack is moved, whole, to the machine where it adds the least energy among those where it still fits:
after its parents' data arrives there, in a free gap of a core (and device), and ending early enough for
every child's data to arrive by the child's planned start; an exit task may end as late as ``limit``.
Parents and children keep their places, so every move keeps the schedule valid and the makespan within
``limit``. Tasks are visited latest start first (their children are then final), in passes until no move
saves energy.
"""

from __future__ import annotations

import numpy as np

from allocate.scheduling.engine import MachineTimeline, PlacedTasks
from allocate.scheduling.problem import Problem

MAX_PASSES = 4


def _timelines(problem: Problem, placed: PlacedTasks) -> list[MachineTimeline]:
    timelines = [MachineTimeline(m.cores, m.gpus, m.fpgas) for m in problem.platform.machines]
    for v in np.lexsort((placed.finish, placed.start)):
        timelines[placed.machine[v]].add(float(placed.start[v]), float(placed.finish[v]), problem.devices[v])
    return timelines


def _window(problem: Problem, placed: PlacedTasks, v: int, limit: float) -> tuple[np.ndarray, np.ndarray]:
    """Per machine: when v's inputs are there, and by when it must end for its children (and the limit)."""
    per_byte = problem.seconds_per_byte
    ready = np.zeros(problem.machines)
    for p, size in zip(problem.parents[v], problem.parent_bytes[v], strict=True):
        np.maximum(ready, placed.finish[p] + size * per_byte[placed.machine[p], :], out=ready)
    latest = np.full(problem.machines, limit)
    for c, size in zip(problem.children[v], problem.child_bytes[v], strict=True):
        np.minimum(latest, placed.start[c] - size * per_byte[:, placed.machine[c]], out=latest)
    return ready, latest


def reclaim(problem: Problem, placed: PlacedTasks, limit: float) -> int:
    """Move tasks in ``placed`` (in place) to where they add less energy; returns how many moves were made."""
    timelines = _timelines(problem, placed)
    idle = problem.idle_watts
    release = np.zeros(problem.machines)
    np.maximum.at(release, placed.machine, placed.finish)
    tolerance = 1e-12 * max(limit, 1.0)
    moves = 0
    for _ in range(MAX_PASSES):
        moved = 0
        for v in np.lexsort((-placed.finish, -placed.start)):
            old, device = int(placed.machine[v]), problem.devices[v]
            start, finish = float(placed.start[v]), float(placed.finish[v])
            ready, latest = _window(problem, placed, v, limit)
            on_old = placed.machine == old
            on_old[v] = False
            old_release = float(placed.finish[on_old].max()) if on_old.any() else 0.0
            leaving = idle[old] * (release[old] - max(old_release, 0.0))  # idle saved if v was last there
            best, best_gain = None, 1e-9 * max(float(problem.energy_joules[v, old]), 1.0)
            for m in np.flatnonzero(np.isfinite(problem.runtime_seconds[v])):
                if m == old:
                    continue
                seconds = float(problem.runtime_seconds[v, m])
                if ready[m] + seconds > latest[m] + tolerance:
                    continue
                at = timelines[m].earliest(float(ready[m]), seconds, device)
                if at + seconds > latest[m] + tolerance:
                    continue
                added = problem.energy_joules[v, m] + idle[m] * max(at + seconds - release[m], 0.0)
                gain = problem.energy_joules[v, old] + leaving - added
                if gain > best_gain:
                    best, best_gain = (int(m), at, at + seconds), gain
            if best is None:
                continue
            m, at, end = best
            timelines[old].remove(start, finish, device)
            timelines[m].add(at, end, device)
            placed.machine[v], placed.start[v], placed.finish[v] = m, at, end
            release[old] = max(old_release, 0.0) if on_old.any() else 0.0
            release[m] = max(release[m], end)
            moved += 1
        moves += moved
        if not moved:
            break
    return moves
