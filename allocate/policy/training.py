"""Training the graph policy with sb3-contrib's MaskablePPO, and the training set it learns from.

The network (network.py) is plugged into MaskablePPO as its features extractor: it returns the logits of
every padded (task, machine) pair and the value, and the policy's action and value heads are identities.
Rollouts run in ``workers`` processes (Stable-Baselines3's SubprocVecEnv) on one machine, or, given a
Ray address, in ``workers`` Ray actors holding ``envs_per_worker`` environments each (distributed.py):
the same environments, seeds and PPO either way.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from functools import partial

import numpy as np
import torch
from gymnasium import spaces
from sb3_contrib import MaskablePPO
from sb3_contrib.common.maskable.policies import MaskableActorCriticPolicy
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.monitor import Monitor
from stable_baselines3.common.torch_layers import BaseFeaturesExtractor
from stable_baselines3.common.vec_env import DummyVecEnv, SubprocVecEnv
from torch import nn

from allocate.policy.env import SchedulingEnv
from allocate.policy.network import GraphPolicyNetwork
from allocate.policy.online import NoiseOptions
from allocate.scheduling.problem import Problem
from allocate.scheduling.workloads import WORKLOADS

TRAINING_WORKLOADS = ("fft", "strassen", "random", "montage", "epigenomics")


@dataclass(frozen=True)
class TrainingOptions:
    """One training run, shared by the API, `jouletrace train-policy` and the Dagster asset."""

    workloads: tuple[str, ...] = TRAINING_WORKLOADS
    workflows_per_workload: int = 6
    min_tasks: int = 20
    max_tasks: int = 100
    minutes: float = 10.0
    timesteps: int | None = None  # a step budget instead of minutes (tests, reproducible runs)
    workers: int = 1
    seed: int = 0
    noise_spread: float = 0.3
    traced_factors: tuple[float, ...] = ()  # the traced noise mode (traced.py) when given
    hidden: int = 64
    layers: int = 3
    rollout_steps: int = 256  # per worker, between updates
    batch_size: int = 64
    epochs: int = 4
    learning_rate: float = 1e-4
    entropy_coefficient: float = 0.003
    evaluate_every_seconds: float = 120.0
    ray_address: str | None = None  # rollouts in Ray actors on this cluster ("auto": the local node's)
    envs_per_worker: int = 1  # environments per Ray actor

    def __post_init__(self):
        if self.workers < 1:
            raise ValueError(f"--workers must be >= 1, not {self.workers}")
        if self.envs_per_worker < 1 or (self.envs_per_worker > 1 and not self.ray_address):
            raise ValueError("--envs-per-worker must be >= 1, and above 1 only with --ray-address")
        if not self.minutes > 0 and not self.timesteps:
            raise ValueError(f"--minutes must be > 0, not {self.minutes}")
        if not 2 <= self.min_tasks <= self.max_tasks:
            raise ValueError("tasks per training workflow: need 2 <= min <= max")
        if not self.workloads:
            raise ValueError("--workloads: give at least one workload (or a --dataset)")
        unknown = [w for w in self.workloads if w not in WORKLOADS]
        if unknown:
            raise ValueError(f"--workloads: unknown {unknown[0]!r}; choose from {', '.join(WORKLOADS)}")

    @property
    def noise(self) -> NoiseOptions:
        return NoiseOptions(self.noise_spread, self.traced_factors)

    def card(self) -> dict:
        card = asdict(self)
        card["traced_factors"] = len(self.traced_factors)  # how many, not the list
        return card


class GraphExtractor(BaseFeaturesExtractor):
    """Logits of every (task, machine) pair and the value, side by side."""

    def __init__(self, observation_space: spaces.Dict, hidden: int = 64, layers: int = 3):
        tasks = observation_space["tasks"].shape[0]
        machines = observation_space["machines"].shape[0]
        super().__init__(observation_space, features_dim=tasks * machines + 1)
        self.network = GraphPolicyNetwork(machines, hidden, layers)

    def forward(self, observations: dict[str, torch.Tensor]) -> torch.Tensor:
        logits, value = self.network(observations)
        return torch.cat([logits, value[:, None]], dim=1)


class _Split(nn.Module):
    def __init__(self, actions: int):
        super().__init__()
        self.latent_dim_pi, self.latent_dim_vf = actions, 1

    def forward(self, features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.forward_actor(features), self.forward_critic(features)

    def forward_actor(self, features: torch.Tensor) -> torch.Tensor:
        return features[:, : self.latent_dim_pi]

    def forward_critic(self, features: torch.Tensor) -> torch.Tensor:
        return features[:, self.latent_dim_pi :]


class GraphMaskablePolicy(MaskableActorCriticPolicy):
    """MaskablePPO's policy with the graph network as the whole actor and critic."""

    def __init__(self, *args, **kwargs):
        kwargs.update(ortho_init=False, normalize_images=False, features_extractor_class=GraphExtractor)
        super().__init__(*args, **kwargs)

    def _build_mlp_extractor(self) -> None:
        self.mlp_extractor = _Split(self.features_dim - 1)

    def _build(self, lr_schedule) -> None:
        super()._build(lr_schedule)
        self.action_net, self.value_net = nn.Identity(), nn.Identity()
        self.optimizer = self.optimizer_class(self.parameters(), lr=lr_schedule(1), **self.optimizer_kwargs)


def _make_env(problems: Sequence[Problem], max_tasks: int, max_edges: int, noise: NoiseOptions, seed: int):
    torch.set_num_threads(1)
    env = Monitor(SchedulingEnv(problems, max_tasks, max_edges, noise))
    env.reset(seed=seed)
    return env


class _Progress(BaseCallback):
    """Stops at the time or step budget; reports episodes, mean reward and the held-out ratio."""

    def __init__(self, options: TrainingOptions, evaluate: Callable[[], float] | None, report):
        super().__init__()
        self.options, self.evaluate, self.report = options, evaluate, report
        self.started = time.perf_counter()
        self.last_evaluation = self.started
        self.episodes = 0
        self.curve: list[dict] = []
        self.held_out_ratio = float("nan")
        self.minutes = 0.0  # of model.learn, set when it returns

    def _on_step(self) -> bool:
        for info in self.locals.get("infos", []):
            if "episode" in info:
                self.episodes += 1
                self.curve.append(
                    {
                        "timesteps": int(self.num_timesteps),
                        "minutes": (time.perf_counter() - self.started) / 60.0,
                        "reward": float(info["episode"]["r"]),
                        "weight": float(info.get("weight", float("nan"))),
                    }
                )
        now = time.perf_counter()
        if self.evaluate and now - self.last_evaluation >= self.options.evaluate_every_seconds:
            self.held_out_ratio = self.evaluate()
            self.curve.append({"timesteps": int(self.num_timesteps), "held_out_ratio": self.held_out_ratio})
            self.last_evaluation = time.perf_counter()
        recent = [c["reward"] for c in self.curve[-50:] if "reward" in c]
        self.report(
            seconds=now - self.started,
            timesteps=int(self.num_timesteps),
            episodes=self.episodes,
            reward=float(np.mean(recent)) if recent else float("nan"),
            held_out_ratio=self.held_out_ratio,
        )
        if self.options.timesteps:
            return self.num_timesteps < self.options.timesteps
        return now - self.started < self.options.minutes * 60.0


def train(
    problems: Sequence[Problem],
    options: TrainingOptions,
    evaluate: Callable[[GraphPolicyNetwork], float] | None = None,
    report=lambda **_: None,
) -> tuple[GraphPolicyNetwork, dict]:
    """Train on ``problems`` (one platform); the network and the training record (curve, steps, time)."""
    torch.set_num_threads(1)
    torch.manual_seed(options.seed)
    max_tasks = max(len(p) for p in problems)
    max_edges = max(max(len(p.edges()[0]) for p in problems), 1)
    environments = options.workers * options.envs_per_worker
    factories = [
        partial(_make_env, problems, max_tasks, max_edges, options.noise, options.seed + k)
        for k in range(environments)
    ]
    with contextlib.ExitStack() as stack:
        if options.ray_address:
            from allocate.policy.distributed import RayVecEnv, ray_session

            ray = stack.enter_context(ray_session(options.ray_address))
            vec = RayVecEnv(ray, factories, options.envs_per_worker)
        elif options.workers > 1:
            vec = SubprocVecEnv(factories, start_method="fork")
        else:
            vec = DummyVecEnv(factories)
        stack.callback(vec.close)
        model, progress = _learn(vec, options, evaluate, report)
    network = model.policy.features_extractor.network
    network.eval()
    record = {
        "timesteps": int(model.num_timesteps),
        "episodes": progress.episodes,
        "training_minutes": progress.minutes,
        "max_tasks_in_training": max_tasks,
        "curve": progress.curve,
    }
    return network, record


def _learn(vec, options: TrainingOptions, evaluate, report) -> tuple[MaskablePPO, _Progress]:
    model = MaskablePPO(
        GraphMaskablePolicy,
        vec,
        learning_rate=options.learning_rate,
        n_steps=options.rollout_steps,
        batch_size=options.batch_size,
        n_epochs=options.epochs,
        ent_coef=options.entropy_coefficient,
        gamma=1.0,
        policy_kwargs={"features_extractor_kwargs": {"hidden": options.hidden, "layers": options.layers}},
        seed=options.seed,
        device="cpu",
        verbose=0,
    )
    network = model.policy.features_extractor.network
    progress = _Progress(options, (lambda: evaluate(network)) if evaluate else None, report)
    started = time.perf_counter()
    model.learn(total_timesteps=options.timesteps or 10**12, callback=progress)
    progress.minutes = (time.perf_counter() - started) / 60.0
    return model, progress
