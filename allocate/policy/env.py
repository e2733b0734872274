"""The Gymnasium environment: one online run (online.py) of a workflow per episode, one commitment per step.

An episode draws a workflow from the training set, a weight ``w`` (fixed, or uniform over ``WEIGHTS``)
and actual runtimes (``NoiseOptions``). At each step the agent picks a (ready task, machine) pair:
action ``task * machines + machine`` in a padded ``Discrete(max_tasks * machines)`` space whose
``action_masks()`` (sb3-contrib's MaskablePPO reads it) allows only ready tasks on machines with their
device (an action outside the mask, which only an agent ignoring the mask sends, commits the task, if
ready, else the first ready task, where it is expected to finish first, and says so in ``info``). Why a padded, masked space rather than a list of candidates: every pair is scored by the same
network from its task's and machine's embeddings (network.py), so the padding costs memory only, and
MaskablePPO works on it unchanged.

Reward: the episode's rewards sum to ``-(w * makespan / makespan_ref + (1 - w) * energy / energy_ref)``,
the objective the evaluation reports, with HEFT's planned makespan and energy on expected runtimes as the
references. Each step is paid the change of that objective evaluated on the expected completion of what
is committed so far (potential shaping: the sum telescopes to the final, actual objective).
"""

from __future__ import annotations

from collections.abc import Sequence

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from allocate.policy.features import (
    GLOBAL_FEATURES,
    MACHINE_FEATURES,
    PAIR_FEATURES,
    StaticFeatures,
    observation,
    static_features,
    task_feature_count,
)
from allocate.policy.online import NoiseOptions, OnlineRun
from allocate.scheduling.problem import Problem
from allocate.scheduling.schedulers import heft

WEIGHTS = (0.0, 0.25, 0.5, 0.75, 1.0)


def objective(weight: float, makespan: float, energy: float, reference: tuple[float, float]) -> float:
    """``w * makespan / makespan_ref + (1 - w) * energy / energy_ref``."""
    return weight * makespan / reference[0] + (1.0 - weight) * energy / reference[1]


def reference(problem: Problem) -> tuple[float, float]:
    """HEFT's planned makespan and energy on the expected runtimes."""
    simulation = heft(problem).simulation
    return max(simulation.makespan_seconds, 1e-9), max(simulation.energy_joules, 1e-9)


def observation_space(max_tasks: int, max_edges: int, machines: int) -> spaces.Dict:
    big = np.float32(1e6)
    return spaces.Dict(
        {
            "tasks": spaces.Box(-big, big, (max_tasks, task_feature_count(machines)), np.float32),
            "edges": spaces.Box(-1, max_tasks - 1, (2, max_edges), np.int64),
            "machines": spaces.Box(-big, big, (machines, len(MACHINE_FEATURES)), np.float32),
            "pairs": spaces.Box(-big, big, (max_tasks, machines, len(PAIR_FEATURES)), np.float32),
            "global": spaces.Box(-big, big, (len(GLOBAL_FEATURES),), np.float32),
        }
    )


class SchedulingEnv(gym.Env):
    """Online scheduling of ``problems`` (all on one platform) under runtime noise."""

    metadata = {"render_modes": []}

    def __init__(
        self,
        problems: Sequence[Problem],
        max_tasks: int | None = None,
        max_edges: int | None = None,
        noise: NoiseOptions | None = None,
        weight: float | None = None,
    ):
        if not problems:
            raise ValueError("the environment needs at least one workflow")
        platform = problems[0].platform
        for p in problems:
            if p.platform.ids != platform.ids:
                raise ValueError(f"{p.name}: every workflow of an environment must be on one platform")
        self.problems = list(problems)
        self.max_tasks = max_tasks or max(len(p) for p in problems)
        self.max_edges = max_edges or max(max(len(p.edges()[0]) for p in problems), 1)
        for p in problems:
            if len(p) > self.max_tasks or len(p.edges()[0]) > self.max_edges:
                raise ValueError(
                    f"{p.name}: {len(p)} tasks and {len(p.edges()[0])} edges, more than the environment's "
                    f"{self.max_tasks} tasks / {self.max_edges} edges"
                )
        self.machines = len(platform.machines)
        self.noise, self.weight = noise or NoiseOptions(), weight
        self.observation_space = observation_space(self.max_tasks, self.max_edges, self.machines)
        self.action_space = spaces.Discrete(self.max_tasks * self.machines)
        self._cache: dict[int, tuple[tuple[float, float], StaticFeatures]] = {}
        self.run: OnlineRun | None = None

    def _prepared(self, k: int) -> tuple[tuple[float, float], StaticFeatures]:
        if k not in self._cache:
            ref = reference(self.problems[k])
            self._cache[k] = (ref, static_features(self.problems[k], ref))
        return self._cache[k]

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        options = options or {}
        k = int(options.get("workflow", self.np_random.integers(len(self.problems))))
        self.problem = self.problems[k]
        self.ref, self.static = self._prepared(k)
        if "weight" in options:
            self.current_weight = float(options["weight"])
        elif self.weight is not None:
            self.current_weight = self.weight
        else:
            self.current_weight = float(self.np_random.choice(WEIGHTS))
        factors = options.get("factors")
        if factors is None:
            factors = self.noise.draw(len(self.problem), self.np_random)
        self.run = OnlineRun(self.problem, factors)
        self.potential = 0.0
        return self._observation(), {"workflow": self.problem.name, "weight": self.current_weight}

    def _observation(self) -> dict[str, np.ndarray]:
        return observation(self.run, self.static, self.current_weight, self.max_tasks, self.max_edges)

    def action_masks(self) -> np.ndarray:
        mask = np.zeros((self.max_tasks, self.machines), dtype=bool)
        mask[: len(self.problem)] = self.run.action_mask()
        return mask.reshape(-1)

    def _fallback(self, task: int) -> tuple[int, int]:
        """For a masked action: the task if it is ready, else the first ready one, on the machine where it
        is expected to finish first."""
        ready = self.run.ready_tasks()
        task = task if task in ready else int(ready[0])
        return task, int(np.argmin(self.run.candidates(task)["finish"]))

    def step(self, action):
        task, machine = divmod(int(action), self.machines)
        masked = task >= len(self.problem) or not self.run.action_mask()[task, machine]
        if masked:  # only agents that ignore action_masks() get here (Gymnasium's check_env does)
            task, machine = self._fallback(task)
        self.run.commit(task, machine)
        makespan, energy = self.run.estimate()
        potential = objective(self.current_weight, makespan, energy, self.ref)
        reward = self.potential - potential
        self.potential = potential
        info = {"masked_action": masked}
        if self.run.done:
            info |= {
                "makespan_ratio": makespan / self.ref[0],
                "energy_ratio": energy / self.ref[1],
                "objective": potential,
                "weight": self.current_weight,
            }
        return self._observation(), float(reward), self.run.done, False, info
