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
from allocate.policy.features import decision_features, observation, static_features
from allocate.policy.network import GraphPolicyNetwork
from allocate.policy.online import OnlineRun
from allocate.scheduling.problem import Problem
from allocate.scheduling.schedulers import InvalidScheduleError, Result
from allocate.scheduling.simulator import simulate


def policy_chooser(network: GraphPolicyNetwork, problem: Problem, weight: float) -> Chooser:
    torch.set_num_threads(1)
    static = static_features(problem, reference(problem))
    graph: list[torch.Tensor] = []  # the graph embeddings, computed at the first decision

    def choose(run: OnlineRun) -> tuple[int, int]:
        with torch.inference_mode():
            if not graph:
                obs = observation(run, static, weight, len(problem), max(static.edges.shape[1], 1))
                tensors = {k: torch.as_tensor(v)[None] for k, v in obs.items()}
                graph.append(network.embed(tensors["tasks"], tensors["edges"]))
            ready = run.ready_tasks()
            part = {
                k: torch.as_tensor(v)[None] for k, v in decision_features(run, static, weight, ready).items()
            }
            logits, _, _ = network.score(
                graph[0][:, ready], part["tasks"], part["pairs"], part["machines"], part["global"]
            )
        scores = np.where(run.feasible[ready], logits[0].numpy(), -np.inf)
        k, machine = np.unravel_index(int(np.argmax(scores)), scores.shape)
        return int(ready[k]), int(machine)

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
