"""Scheduling with a trained policy: online under noise (evaluation) or on expected runtimes (S.json).

At each decision the network scores every (ready task, machine) pair of the unpadded workflow and the
best allowed pair is committed (greedy, deterministic). ``schedule_with_policy`` runs without noise, so
the run's schedule is a plan on the expected runtimes that the simulator replays on the workflow itself,
like every other scheduler's S.json.
"""

from __future__ import annotations

import time

import numpy as np
import torch

from allocate.policy.baselines import Chooser, run_online
from allocate.policy.env import reference
from allocate.policy.features import observation, static_features
from allocate.policy.network import GraphPolicyNetwork
from allocate.policy.online import OnlineRun
from allocate.scheduling.problem import Problem
from allocate.scheduling.schedulers import InvalidScheduleError, Result
from allocate.scheduling.simulator import simulate


def policy_chooser(network: GraphPolicyNetwork, problem: Problem, weight: float) -> Chooser:
    torch.set_num_threads(1)
    static = static_features(problem, reference(problem)[0])
    edges = max(static.edges.shape[1], 1)

    def choose(run: OnlineRun) -> tuple[int, int]:
        obs = observation(run, static, weight, len(problem), edges)
        with torch.no_grad():
            logits, _ = network({k: torch.as_tensor(v)[None] for k, v in obs.items()})
        scores = logits[0].numpy().reshape(len(problem), problem.machines)
        scores = np.where(run.action_mask(), scores, -np.inf)
        task, machine = np.unravel_index(int(np.argmax(scores)), scores.shape)
        return int(task), int(machine)

    return choose


def schedule_with_policy(network: GraphPolicyNetwork, problem: Problem, weight: float) -> Result:
    """The policy's plan on expected runtimes, replayed by the simulator."""
    started = time.perf_counter()
    run = run_online(problem, np.ones(len(problem)), policy_chooser(network, problem, weight))
    schedule = run.schedule("policy", {"weight": weight}, time.perf_counter() - started)
    simulation = simulate(problem, schedule)
    if not simulation.valid:
        raise InvalidScheduleError(f"policy made an invalid schedule: {simulation.problems[0]}")
    return Result(schedule, simulation)
