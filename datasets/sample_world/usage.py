"""What each pod's `main` container uses (CPU time, busy time on its GPUs) and the counters the agent reads.

A container's usage rate (CPU-seconds, or SM-busy seconds of one GPU, per second) is piecewise constant, so
its cumulative use is exact at any instant. The agent reads cgroup v2 `cpu.stat` usage_usec at the node's
RAPL reading times and each GPU's busy seconds (from NVML's per-process utilisation) at that GPU's reading
times; the truth's CPU and DRAM dynamic power are proportional to the CPU rate, a GPU's to the busy rate.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from schemas.kinds import (
    AGENT_CGROUP_SOURCE,
    AGENT_GPU_BUSY_SOURCE,
    CPU_SECONDS_COUNTER,
    GPU_BUSY_SECONDS_COUNTER,
)
from schemas.tables import CONTAINER_SAMPLES, UTC_TIMESTAMP


@dataclass(frozen=True)
class Usage:
    """One attempt's use of its CPUs or of one GPU, constant on each segment [start_seconds, end_seconds)."""

    start_seconds: np.ndarray
    end_seconds: np.ndarray
    seconds_per_second: np.ndarray

    def seconds_at(self, t: np.ndarray) -> np.ndarray:
        """Seconds of use since the container started, at each time `t` (0 before, the total after)."""
        durations = self.end_seconds - self.start_seconds
        cumulative = np.concatenate([[0.0], np.cumsum(self.seconds_per_second * durations)])
        i = np.clip(np.searchsorted(self.start_seconds, t, side="right") - 1, 0, len(durations) - 1)
        inside = np.clip(t - self.start_seconds[i], 0.0, durations[i])
        return cumulative[i] + self.seconds_per_second[i] * inside


@dataclass(frozen=True)
class Readings:
    """When the agent reads a meter (seconds after world start), and whether it was up then."""

    seconds: np.ndarray
    up: np.ndarray


@dataclass(frozen=True)
class MainContainer:
    """Who a usage series belongs to, as the Pod object names it (container id without `containerd://`)."""

    namespace: str
    pod_name: str
    pod_uid: str
    container_id: str


def main_containers(pod_list: dict) -> dict[str, MainContainer]:
    """The `main` container of every Pod of a rendered `PodList`, by Argo node id."""
    containers = {}
    for pod in pod_list["items"]:
        meta = pod["metadata"]
        main = next(s for s in pod["status"]["containerStatuses"] if s["name"] == "main")
        containers[meta["annotations"]["workflows.argoproj.io/node-id"]] = MainContainer(
            meta["namespace"], meta["name"], meta["uid"], main["containerID"].removeprefix("containerd://")
        )
    return containers


def container_readings(
    host_node: str,
    series: list[tuple[MainContainer, str | None, Usage]],
    readings: dict[str | None, Readings],
    start_us: int,
) -> pa.Table:
    """The agent's counters of one node's containers, as `container_samples` rows.

    A series is a container's CPU time (GPU None, read at `readings[None]`, the RAPL reading times) or its
    busy time on one GPU (read at `readings[gpu]`). It runs from the last reading at or before the container
    starts (holding 0) to the first reading at or after it ends (holding the total), both included; readings
    while the agent is down are missing. Rows are sorted as the `container_samples` key orders them: by pod
    name, container id, the GPU series (by UUID) before the CPU series, then time.
    """
    parts = []
    for container, gpu, usage in sorted(
        series, key=lambda s: (s[0].pod_name, s[0].container_id, s[1] is None, s[1] or "")
    ):
        reading = readings[gpu]
        first = max(int(np.searchsorted(reading.seconds, usage.start_seconds[0], side="right")) - 1, 0)
        last = min(
            int(np.searchsorted(reading.seconds, usage.end_seconds[-1], side="left")),
            len(reading.seconds) - 1,
        )
        polls = np.arange(first, last + 1)
        polls = polls[reading.up[polls]]
        usec = np.round(usage.seconds_at(reading.seconds[polls]) * 1e6)
        parts.append((container, gpu, reading.seconds[polls], usec / 1e6))
    counts = [len(seconds) for _, _, seconds, _ in parts]
    n = sum(counts)

    def repeated(values: list[str | None]) -> pa.Array:
        return pa.array(np.repeat(np.array(values, object), counts), pa.string())

    gpus = [gpu for _, gpu, _, _ in parts]
    seconds = np.concatenate([s for _, _, s, _ in parts] or [np.empty(0)])
    return pa.table(
        {
            "host_node": pa.array(np.full(n, host_node), pa.string()),
            "namespace": repeated([c.namespace for c, _, _, _ in parts]),
            "pod_name": repeated([c.pod_name for c, _, _, _ in parts]),
            "pod_uid": repeated([c.pod_uid for c, _, _, _ in parts]),
            "container_id": repeated([c.container_id for c, _, _, _ in parts]),
            "device_kind": repeated([None if gpu is None else "gpu" for gpu in gpus]),
            "device_id": repeated(gpus),
            "timestamp": pa.array(start_us + np.round(seconds * 1e6).astype(np.int64), UTC_TIMESTAMP),
            "value": pa.array(np.concatenate([v for _, _, _, v in parts] or [np.empty(0)]), pa.float64()),
            "value_kind": repeated(
                [CPU_SECONDS_COUNTER if gpu is None else GPU_BUSY_SECONDS_COUNTER for gpu in gpus]
            ),
            "source": repeated(
                [AGENT_CGROUP_SOURCE if gpu is None else AGENT_GPU_BUSY_SOURCE for gpu in gpus]
            ),
            "provenance": pa.array(np.full(n, "synthetic"), pa.string()),
        },
        schema=CONTAINER_SAMPLES,
    )
