"""What the policy sees: the workflow graph with per-task features, the machines' state and, for every
ready task, what each machine would give it.

Times are divided by the reference makespan (HEFT's planned makespan on expected runtimes) and energies
by the mean over tasks of their mean energy above idle, so the numbers are of order one on workflows of
any size and length. Arrays are padded to ``max_tasks`` rows and ``max_edges`` edges (padding: zero
rows, edge index -1), so Stable-Baselines3 sees fixed shapes; the network (network.py) drops the padding
and reads graphs of any size.

Task features (``TASK_FEATURES`` then, per machine, runtime and energy over the task's mean, 0 where the
machine lacks its device); machine features (``MACHINE_FEATURES``); pair features for ready tasks on
machines that have their device (``PAIR_FEATURES``); global features (``GLOBAL_FEATURES``; ``weight`` is
the objective's w, so one policy serves every trade-off).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from allocate.policy.online import COMMITTED, ENDED, READY, OnlineRun
from allocate.scheduling.engine import mean_runtime, upward_rank
from allocate.scheduling.problem import Problem

TASK_FEATURES = (
    "waiting",
    "ready",
    "committed",
    "ended",
    "mean_runtime",
    "min_runtime",
    "upward_rank",
    "work_below_share",
    "input_transfer",
    "output_transfer",
    "min_energy",
    "needs_accelerator",
    "expected_end_from_now",
)
MACHINE_FEATURES = (
    "speed",
    "cores",
    "idle_watts",
    "busy_watts",
    "watts_per_core",
    "first_core_free_from_now",
    "mean_core_free_from_now",
    "release_from_now",
    "powered",
    "queued_per_core",
)
PAIR_FEATURES = (
    "start_from_now",
    "finish_from_now",
    "finish_over_best",
    "energy_over_best",
    "delay_in_task_shares",
    "extra_energy_in_task_shares",
    "objective_prior",
    "able",
)
PRIOR_COLUMN = PAIR_FEATURES.index("objective_prior")
CRITICALITY_POWER = 4
# A delay never counts for less than a tenth. In wide fork-joins (Seismology, Blast: ~100 tasks ready at
# once, each with a short upward rank) criticality alone falls to ~1e-4, the prior goes flat across
# machines, and any small learned bias piles the tasks on one machine (the feature set /2 policy: 1.73x
# dynamic HEFT's makespan on Seismology). With the floor the same weights run it at 0.93x, and the w = 1
# out-of-distribution loss against in-distribution shapes went from 11.4 points to none (docs/policy.md).
CRITICALITY_FLOOR = 0.1
GLOBAL_FEATURES = ("weight", "now", "ended_share", "committed_share", "log_tasks")
FEATURE_SET = "jouletrace.policy.features/3"


@dataclass(frozen=True)
class StaticFeatures:
    """The parts of the observation that do not change during a run."""

    tasks: np.ndarray  # [n, static task features]
    edges: np.ndarray  # [2, edges]
    machines: np.ndarray  # [machines, 5]
    rank: np.ndarray  # upward rank, seconds
    time_scale_seconds: float  # the reference makespan
    energy_scale_joules: float  # mean over tasks of their mean energy above idle
    reference_energy_joules: float


def task_feature_count(machines: int) -> int:
    return len(TASK_FEATURES) + 2 * machines


def work_below(problem: Problem, work: np.ndarray) -> np.ndarray:
    """Each task's work plus that of all its descendants (reachability over a boolean matrix)."""
    n = len(problem)
    below = np.zeros((n, n), dtype=bool)
    for v in range(n - 1, -1, -1):  # children have larger indices
        below[v, v] = True
        for s in problem.children[v]:
            below[v] |= below[s]
    return below.astype(float) @ work


def static_features(problem: Problem, reference: tuple[float, float]) -> StaticFeatures:
    """``reference``: HEFT's planned makespan (seconds) and energy (joules)."""
    reference_makespan_seconds = reference[0]
    feasible = problem.feasible
    runtime = np.where(feasible, problem.runtime_seconds, np.nan)
    energy = np.where(feasible, problem.energy_joules, np.nan)
    mean_rt = mean_runtime(problem)
    mean_energy = np.nanmean(energy, axis=1)
    t_scale = max(reference_makespan_seconds, 1e-9)
    e_scale = max(float(mean_energy.mean()), 1e-9)
    per_byte = problem.mean_seconds_per_byte()
    src, dst, data = problem.edges()
    n_in = np.zeros(len(problem))
    n_out = np.zeros(len(problem))
    np.add.at(n_in, dst, data * per_byte)
    np.add.at(n_out, src, data * per_byte)
    rank = upward_rank(problem)
    below = work_below(problem, mean_rt)
    columns = [
        mean_rt / t_scale,
        np.nanmin(runtime, axis=1) / t_scale,
        rank / t_scale,
        below / max(float(mean_rt.sum()), 1e-9),
        n_in / t_scale,
        n_out / t_scale,
        np.nanmin(energy, axis=1) / e_scale,
        np.array([d != "cpu" for d in problem.devices], dtype=float),
    ]
    relative_runtime = np.nan_to_num(runtime / np.maximum(mean_rt, 1e-12)[:, None])
    relative_energy = np.nan_to_num(energy / np.maximum(mean_energy, 1e-12)[:, None])
    tasks = np.column_stack([*columns, relative_runtime, relative_energy])
    ms = problem.platform.machines
    busy_max = max(max(m.busy_watts for m in ms), 1e-9)
    machines = np.array(
        [
            [
                m.speed / max(x.speed for x in ms),
                m.cores / max(x.cores for x in ms),
                m.idle_watts / busy_max,
                m.busy_watts / busy_max,
                m.dynamic_watts_per_core / max(max(x.dynamic_watts_per_core for x in ms), 1e-9),
            ]
            for m in ms
        ]
    )
    return StaticFeatures(
        tasks, np.vstack([src, dst]), machines, rank, t_scale, e_scale, max(reference[1], 1e-9)
    )


def observation(
    run: OnlineRun, static: StaticFeatures, weight: float, max_tasks: int, max_edges: int
) -> dict[str, np.ndarray]:
    """The observation dict of the run's current decision, padded to the given sizes."""
    n = len(run.problem)
    part = decision_features(run, static, weight, np.arange(n))
    tasks = np.zeros((max_tasks, part["tasks"].shape[1]), dtype=np.float32)
    tasks[:n] = part["tasks"]
    pairs = np.zeros((max_tasks, *part["pairs"].shape[1:]), dtype=np.float32)
    pairs[:n] = part["pairs"]
    edges = np.full((2, max_edges), -1, dtype=np.int64)
    edges[:, : static.edges.shape[1]] = static.edges
    return {
        "tasks": tasks,
        "edges": edges,
        "machines": part["machines"],
        "pairs": pairs,
        "global": part["global"],
    }


def decision_features(
    run: OnlineRun, static: StaticFeatures, weight: float, rows: np.ndarray
) -> dict[str, np.ndarray]:
    """Task and pair features of the tasks ``rows`` (unpadded), machine and global features."""
    problem, view = run.problem, run.expected()
    n, m = len(problem), problem.machines
    t, now = static.time_scale_seconds, run.now
    status = run.status[rows]
    tasks = np.zeros((len(rows), task_feature_count(m)), dtype=np.float32)
    tasks[:, :4] = np.eye(4)[status]  # columns in the order WAITING, READY, COMMITTED, ENDED
    tasks[:, 4:12] = static.tasks[rows, :8]
    tasks[:, 12] = np.nan_to_num((view.end[rows] - now) / t) * (status == COMMITTED)
    tasks[:, 13:] = static.tasks[rows, 8:]
    core_free = np.where(np.isfinite(view.core_free), view.core_free - now, np.nan) / t
    queued = np.bincount(run.machine[run.status == COMMITTED], minlength=m) / run.cores
    machines = np.column_stack(
        [
            static.machines,
            np.nanmin(core_free, axis=1),
            np.nanmean(core_free, axis=1),
            np.maximum(view.release - now, 0.0) / t,
            (view.release > 0).astype(float),
            queued,
        ]
    ).astype(np.float32)
    pairs = np.zeros((len(rows), m, len(PAIR_FEATURES)), dtype=np.float32)
    for k in np.flatnonzero(status == READY).tolist():
        pairs[k] = _pair_features(run, static, weight, int(rows[k]))
    ended = float((run.status == ENDED).mean())
    committed = float((run.status >= COMMITTED).mean())
    glob = np.array([weight, now / t, ended, committed, np.log(n) / 5.0], dtype=np.float32)
    return {"tasks": tasks, "machines": machines, "pairs": pairs, "global": glob}


def _pair_features(run: OnlineRun, static: StaticFeatures, weight: float, task: int) -> np.ndarray:
    """One ready task on every machine. The objective prior is the objective's myopic change, in shares of
    one task: ``-(w * delay * n * criticality + (1 - w) * extra energy * n / energy_ref)``, the delay being
    the finish past the earliest one over the reference makespan, discounted for tasks far from the
    critical path (``criticality = max(0.1, min(1, (now + upward rank) / makespan_ref) ** 4)``)."""
    c, now, t, n = run.candidates(task), run.now, static.time_scale_seconds, len(run.problem)
    able = np.isfinite(c["finish"])
    out = np.zeros((len(able), len(PAIR_FEATURES)), dtype=np.float32)
    finish, energy = c["finish"][able], c["energy_joules"][able]
    best_finish, least_energy = float(finish.min()), float(energy.min())
    delay = (finish - best_finish) / t * n
    extra = (energy - least_energy) / static.reference_energy_joules * n
    criticality = max(CRITICALITY_FLOOR, min(1.0, (now + static.rank[task]) / t) ** CRITICALITY_POWER)
    out[able, 0] = (c["start"][able] - now) / t
    out[able, 1] = (finish - now) / t
    out[able, 2] = (finish - now) / max(best_finish - now, 1e-9) - 1.0
    out[able, 3] = energy / max(least_energy, 1e-9) - 1.0
    out[able, 4] = delay
    out[able, 5] = extra
    out[able, 6] = -(weight * delay * criticality + (1.0 - weight) * extra)
    out[able, 7] = 1.0
    return out
