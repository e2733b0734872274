"""A small discrete-event simulation of Argo and the Kubernetes scheduler running the planned pods.

A pod is ready when its parents succeeded; it is bound to the node the default scheduler's
LeastAllocated score prefers (accelerator nodes take CPU-only pods when the CPU nodes are busy), and its
container starts 0.5-3 s after binding. FPGAs are held exclusively; a GPU is time-sliced among up to its
node's `gpu_replicas` pods (cluster.py). A pod asking for k GPUs gets replicas of k distinct GPUs, those with
the fewest replicas in use first, as the device plugin's preferred (distributed) allocation does; we make
that preference a rule, so a pod never holds two replicas of one GPU.

An attempt runs for its pod's planned runtime (a Gold 6346 core's, plan.py) stretched for the node it is bound
to (`runtime_on`: planned x (f / throughput + 1 - f), f the type's CPU-bound fraction, throughput the node's
per-core speed relative to the 6346, cluster.py); a failed attempt stops after a random part of that planned
runtime, stretched the same way. Placement does not look at CPU speed, as the default scheduler does not.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from datasets.sample_world.cluster import NodeSpec
from datasets.sample_world.plan import PodTask, WorkflowPlan

_GIB = 1024**3
# A CPU-only pod scores accelerator nodes at this fraction, so it lands there only when CPU nodes are busy.
_ACCELERATOR_NODE_PENALTY = 0.5
_FINISH, _READY = 0, 1


@dataclass(frozen=True)
class Attempt:
    """One pod attempt that ran: where, when (true times, seconds after world start) and on which devices."""

    pod: int
    number: int
    host_node: str
    scheduled_seconds: float
    start_seconds: float
    end_seconds: float
    succeeded: bool
    gpu_ids: tuple[str, ...]
    fpga_ids: tuple[str, ...]

    @property
    def runtime_seconds(self) -> float:
        return self.end_seconds - self.start_seconds


@dataclass
class Outcome:
    """What happened to one planned pod: its attempts, or when Argo omitted it."""

    attempts: list[Attempt] = field(default_factory=list)
    omitted_seconds: float | None = None


@dataclass
class _NodeState:
    spec: NodeSpec
    free_cpu_cores: float
    free_memory_bytes: int
    free_gpu_replicas: dict[str, int]
    free_fpgas: list[str]

    def score(self, pod: PodTask) -> float | None:
        """LeastAllocated score after placing `pod`, or None when it does not fit."""
        t = pod.task_type
        cpu_left = self.free_cpu_cores - t.cpu_request_cores
        memory_left = self.free_memory_bytes - t.memory_request_gib * _GIB
        if (
            cpu_left < 0
            or memory_left < 0
            or len(self.gpus_with_replicas()) < t.gpus
            or len(self.free_fpgas) < t.fpgas
        ):
            return None
        score = (cpu_left / self.spec.cpu_cores + memory_left / self.spec.allocatable_memory_bytes) / 2
        cpu_only = t.gpus == 0 and t.fpgas == 0
        return score * _ACCELERATOR_NODE_PENALTY if cpu_only and self.spec.has_accelerators else score

    def gpus_with_replicas(self) -> list[str]:
        """GPUs with a replica left, those with the fewest in use (most left) first, then in node order."""
        free = self.free_gpu_replicas
        return sorted((gpu for gpu in free if free[gpu] > 0), key=lambda gpu: -free[gpu])


def simulate(
    rng: np.random.Generator, plans: list[WorkflowPlan], pods: list[PodTask], cluster: tuple[NodeSpec, ...]
) -> list[Outcome]:
    """Run every planned pod to completion (or omission); outcomes are indexed like `pods`."""
    nodes = [
        _NodeState(
            spec,
            float(spec.cpu_cores),
            spec.allocatable_memory_bytes,
            dict.fromkeys(spec.gpu_ids, spec.gpu_replicas),
            list(spec.fpga_ids),
        )
        for spec in cluster
    ]
    children: list[list[int]] = [[] for _ in pods]
    for i, pod in enumerate(pods):
        for parent in pod.parents:
            children[parent].append(i)
    waiting_on = [len(pod.parents) for pod in pods]
    outcomes = [Outcome() for _ in pods]
    events: list[tuple[float, int, int, tuple]] = []
    sequence = 0

    def push(time: float, kind: int, payload: tuple) -> None:
        nonlocal sequence
        heapq.heappush(events, (time, kind, sequence, payload))
        sequence += 1

    for i, pod in enumerate(pods):
        if not pod.parents:
            push(plans[pod.workflow].submitted_seconds + rng.uniform(0.2, 1.0), _READY, (i, 0))
    pending: list[tuple[int, int]] = []
    while events:
        now, kind, _, payload = heapq.heappop(events)
        if kind == _READY:
            pending.append(payload)
        else:
            attempt, state = payload
            _release(state, pods[attempt.pod], attempt)
            outcomes[attempt.pod].attempts.append(attempt)
            pod = pods[attempt.pod]
            if attempt.succeeded:
                for child in children[attempt.pod]:
                    waiting_on[child] -= 1
                    if waiting_on[child] == 0 and outcomes[child].omitted_seconds is None:
                        push(now, _READY, (child, 0))
            elif attempt.number < pod.retry_limit:
                push(now + rng.uniform(1.0, 5.0), _READY, (attempt.pod, attempt.number + 1))
            else:
                _omit_descendants(attempt.pod, children, outcomes, now + rng.uniform(0.5, 2.0))
        if events and events[0][0] == now:
            continue
        pending = [item for item in pending if not _try_start(rng, now, item, pods, nodes, push)]
    return outcomes


def _try_start(
    rng: np.random.Generator,
    now: float,
    item: tuple[int, int],
    pods: list[PodTask],
    nodes: list[_NodeState],
    push: Callable[[float, int, tuple], None],
) -> bool:
    """Bind a pending attempt to the best node that fits and start its container; False if none fits."""
    index, number = item
    pod = pods[index]
    scored = [(score, i) for i, state in enumerate(nodes) if (score := state.score(pod)) is not None]
    if not scored:
        return False
    state = nodes[max(scored, key=lambda s: (s[0], -s[1]))[1]]
    t = pod.task_type
    state.free_cpu_cores -= t.cpu_request_cores
    state.free_memory_bytes -= int(t.memory_request_gib * _GIB)
    gpus = tuple(sorted(state.gpus_with_replicas()[: t.gpus], key=state.spec.gpu_ids.index))
    for gpu in gpus:
        state.free_gpu_replicas[gpu] -= 1
    fpgas, state.free_fpgas = tuple(state.free_fpgas[: t.fpgas]), state.free_fpgas[t.fpgas :]
    succeeded = number >= pod.failed_attempts
    planned = pod.runtime_seconds if succeeded else max(1.5, pod.runtime_seconds * rng.uniform(0.1, 0.9))
    runtime = runtime_on(state.spec, pod, planned)
    start = now + rng.uniform(0.5, 3.0)
    attempt = Attempt(index, number, state.spec.name, now, start, start + runtime, succeeded, gpus, fpgas)
    push(attempt.end_seconds, _FINISH, (attempt, state))
    return True


def runtime_on(node: NodeSpec, pod: PodTask, planned_seconds: float) -> float:
    """How long an attempt of `pod` planned to take `planned_seconds` on a Gold 6346 core runs on `node`."""
    return planned_seconds * pod.task_type.slowdown(node.cpu.relative_throughput)


def _release(state: _NodeState, pod: PodTask, attempt: Attempt) -> None:
    state.free_cpu_cores += pod.task_type.cpu_request_cores
    state.free_memory_bytes += int(pod.task_type.memory_request_gib * _GIB)
    for gpu in attempt.gpu_ids:
        state.free_gpu_replicas[gpu] += 1
    state.free_fpgas = sorted(state.free_fpgas + list(attempt.fpga_ids), key=state.spec.fpga_ids.index)


def _omit_descendants(failed: int, children: list[list[int]], outcomes: list[Outcome], at: float) -> None:
    stack = list(children[failed])
    while stack:
        child = stack.pop()
        if outcomes[child].omitted_seconds is None:
            outcomes[child].omitted_seconds = at
            stack.extend(children[child])
