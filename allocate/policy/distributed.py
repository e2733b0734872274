"""Training rollouts and evaluation sweeps on Ray, when a cluster address is given (docs/policy.md).

One machine needs none of this: training steps its environments in processes of its own
(SubprocVecEnv) and the evaluation runs in the calling process. With an address, an existing engine does
the distribution rather than a scheduler of our own:

- ``RayVecEnv`` is Stable-Baselines3's VecEnv interface over Ray actors, each holding
  ``envs_per_worker`` environments that it steps in sequence; MaskablePPO uses it unchanged and reads
  the action masks through ``env_method("action_masks")`` as from any VecEnv. Each step returns the
  masks of the new observations too, so a decision costs one round trip to the actors, not two.
- ``run_tasks`` runs a module-level function as plain Ray tasks, one per job, sharing the large
  arguments through Ray's object store (each distinct object is put once), and returns the results in
  the jobs' order, so the caller's results do not depend on where or when each task ran.

``ray`` is imported here only when one of these runs; ``ray_session`` connects to the address (or uses a
Ray already initialised in this process, as the tests do) and disconnects only what it connected.
"""

from __future__ import annotations

import contextlib
import socket
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np
from stable_baselines3.common.vec_env.base_vec_env import VecEnv

MISSING_RAY = "--ray-address needs Ray: pip install 'jouletrace[policy]' (ray>=2.60)"


@contextlib.contextmanager
def ray_session(address: str) -> Iterator[Any]:
    """The ``ray`` module connected to ``address`` ("auto": the cluster this node belongs to); a Ray
    already initialised in this process is used as it is and left running."""
    try:
        import ray
    except ImportError:
        raise ValueError(MISSING_RAY) from None
    if ray.is_initialized():
        yield ray
        return
    _check_reachable(address)
    try:
        ray.init(address=address, log_to_driver=False)
    except ConnectionError as exc:
        raise ValueError(
            f"--ray-address {address}: cannot connect to a Ray cluster ({_reason(exc)})"
        ) from exc
    try:
        yield ray
    finally:
        ray.shutdown()


def _reason(exc: BaseException) -> str:
    """Ray's "Failed to connect" with the reason its chain of causes hides (e.g. the cluster's token
    authentication), the last line of the deepest cause up to its first sentence's end."""
    deepest = exc
    while deepest.__cause__ is not None:
        deepest = deepest.__cause__
    if deepest is exc:
        return str(exc)
    lines = str(deepest).strip().splitlines() or [type(deepest).__name__]
    return f"{exc}: {lines[-1].split('. ')[0]}"


def _check_reachable(address: str) -> None:
    """A ``host:port`` nothing answers at is refused at once: Ray itself would retry for minutes."""
    host, _, port = address.removeprefix("ray://").rpartition(":")
    if address == "auto" or not host or not port.isdigit():
        return  # "auto", or a form Ray resolves itself
    try:
        socket.create_connection((host, int(port)), timeout=5).close()
    except OSError as exc:
        raise ValueError(
            f"--ray-address {address}: nothing answers at {host}:{port} ({exc.strerror or exc}); "
            "start the cluster (ray start --head) or give its head's address"
        ) from None


class EnvGroup:
    """A Ray actor's environments, stepped in sequence with the VecEnv conventions (auto-reset on done,
    the final observation in ``info``). Plain Python: ``ray.remote`` wraps it when a session starts."""

    def __init__(self, factories: Sequence[Callable[[], Any]]):
        self.envs = [factory() for factory in factories]

    def spaces(self) -> tuple:
        return self.envs[0].observation_space, self.envs[0].action_space

    def _masks(self) -> np.ndarray | None:
        if not hasattr(self.envs[0].unwrapped, "action_masks"):
            return None
        return np.stack([env.get_wrapper_attr("action_masks")() for env in self.envs])

    def reset(self, seeds: Sequence[int | None], options: Sequence[dict]) -> tuple:
        observations, infos = [], []
        for env, seed, option in zip(self.envs, seeds, options, strict=True):
            observation, info = env.reset(seed=seed, **({"options": option} if option else {}))
            observations.append(observation)
            infos.append(info)
        return observations, infos, self._masks()

    def step(self, actions: np.ndarray) -> tuple:
        results = []
        for env, action in zip(self.envs, actions, strict=True):
            observation, reward, terminated, truncated, info = env.step(action)
            done = terminated or truncated
            info["TimeLimit.truncated"] = truncated and not terminated
            reset_info = {}
            if done:
                info["terminal_observation"] = observation
                observation, reset_info = env.reset()
            results.append((observation, reward, done, info, reset_info))
        return results, self._masks()

    def call(self, local: Sequence[int], method: str, args: tuple, kwargs: dict) -> list:
        return [self.envs[i].get_wrapper_attr(method)(*args, **kwargs) for i in local]

    def get(self, local: Sequence[int], name: str) -> list:
        return [self.envs[i].get_wrapper_attr(name) for i in local]

    def set(self, local: Sequence[int], name: str, value: Any) -> None:
        for i in local:
            setattr(self.envs[i], name, value)

    def has(self, name: str) -> bool:
        try:
            self.envs[0].get_wrapper_attr(name)
            return True
        except AttributeError:
            return False

    def wrapped(self, local: Sequence[int], wrapper_class: type) -> list[bool]:
        from stable_baselines3.common.env_util import is_wrapped

        return [is_wrapped(self.envs[i], wrapper_class) for i in local]


class RayVecEnv(VecEnv):
    """Environment ``i`` lives in actor ``i // envs_per_worker``; ``factories`` build them there. Needs a
    connected Ray (``ray_session``)."""

    def __init__(self, ray, factories: Sequence[Callable[[], Any]], envs_per_worker: int = 1):
        self.ray = ray
        self.per = envs_per_worker
        groups = [factories[k : k + self.per] for k in range(0, len(factories), self.per)]
        actor = ray.remote(num_cpus=1)(EnvGroup)
        self.actors = [actor.remote(list(group)) for group in groups]
        self.sizes = [len(group) for group in groups]
        self.masks: np.ndarray | None = None  # of the current observations; None once env state may change
        observation_space, action_space = ray.get(self.actors[0].spaces.remote())
        super().__init__(len(factories), observation_space, action_space)

    def _stack(self, observations: list) -> Any:
        if isinstance(observations[0], dict):
            return {key: np.stack([o[key] for o in observations]) for key in observations[0]}
        return np.stack(observations)

    def _by_actor(self, indices) -> dict[int, list[int]]:
        chosen: dict[int, list[int]] = {}
        for i in self._get_indices(indices):
            chosen.setdefault(i // self.per, []).append(i % self.per)
        return chosen

    def reset(self):
        calls, start = [], 0
        for actor, size in zip(self.actors, self.sizes, strict=True):
            seeds = self._seeds[start : start + size]
            calls.append(actor.reset.remote(seeds, self._options[start : start + size]))
            start += size
        observations, infos, masks = [], [], []
        for group_observations, group_infos, group_masks in self.ray.get(calls):
            observations += group_observations
            infos += group_infos
            masks.append(group_masks)
        self.reset_infos = infos
        self.masks = None if masks[0] is None else np.concatenate(masks)
        self._reset_seeds()
        self._reset_options()
        return self._stack(observations)

    def step_async(self, actions: np.ndarray) -> None:
        self.masks = None
        self.pending = [
            actor.step.remote(actions[k * self.per : k * self.per + size])
            for k, (actor, size) in enumerate(zip(self.actors, self.sizes, strict=True))
        ]

    def step_wait(self):
        results, masks = [], []
        for group_results, group_masks in self.ray.get(self.pending):
            results += group_results
            masks.append(group_masks)
        self.masks = None if masks[0] is None else np.concatenate(masks)
        observations, rewards, dones, infos, self.reset_infos = zip(*results, strict=True)
        return self._stack(list(observations)), np.array(rewards), np.array(dones), list(infos)

    def env_method(self, method_name: str, *method_args, indices=None, **method_kwargs) -> list:
        if method_name == "action_masks" and self.masks is not None and not method_args and not method_kwargs:
            return list(self.masks[list(self._get_indices(indices))])
        self.masks = None  # the call may change an environment
        chosen = self._by_actor(indices)
        calls = [
            self.actors[k].call.remote(local, method_name, method_args, method_kwargs)
            for k, local in chosen.items()
        ]
        return [value for values in self.ray.get(calls) for value in values]

    def get_attr(self, attr_name: str, indices=None) -> list:
        calls = [self.actors[k].get.remote(local, attr_name) for k, local in self._by_actor(indices).items()]
        return [value for values in self.ray.get(calls) for value in values]

    def set_attr(self, attr_name: str, value: Any, indices=None) -> None:
        self.masks = None
        self.ray.get(
            [
                self.actors[k].set.remote(local, attr_name, value)
                for k, local in self._by_actor(indices).items()
            ]
        )

    def has_attr(self, attr_name: str) -> bool:
        return self.ray.get(self.actors[0].has.remote(attr_name))

    def env_is_wrapped(self, wrapper_class: type, indices=None) -> list[bool]:
        calls = [
            self.actors[k].wrapped.remote(local, wrapper_class)
            for k, local in self._by_actor(indices).items()
        ]
        return [value for values in self.ray.get(calls) for value in values]

    def close(self) -> None:
        for actor in self.actors:
            self.ray.kill(actor)
        self.actors = []


def run_tasks(
    ray, function: Callable, jobs: Sequence[tuple], progress: Callable[[], None] = lambda: None
) -> list:
    """``[function(*job) for job in jobs]`` as Ray tasks (one CPU each); each distinct non-scalar argument
    goes to the object store once; ``progress`` is called as each task finishes."""
    remote = ray.remote(num_cpus=1)(function)
    stored: dict[int, Any] = {}

    def ref(value):
        if value is None or isinstance(value, (bool, int, float, str)):
            return value
        if id(value) not in stored:
            stored[id(value)] = ray.put(value)
        return stored[id(value)]

    pending = [remote.remote(*(ref(v) for v in job)) for job in jobs]
    order = {r: k for k, r in enumerate(pending)}
    results: list = [None] * len(pending)
    waiting = list(pending)
    while waiting:
        done, waiting = ray.wait(waiting, num_returns=1)
        results[order[done[0]]] = ray.get(done[0])
        progress()
    return results
