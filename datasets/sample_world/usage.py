"""The CPU time of each pod's `main` container, and the cgroup counters the node agent reads from it.

A container's usage rate (CPU-seconds per second) is constant on each of its ~10 s segments, so its
cumulative CPU time is exact at any instant; the agent reads cgroup v2 `cpu.stat` usage_usec at the node's
RAPL reading times, and the truth's CPU and DRAM dynamic power are proportional to the same rate.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from schemas.tables import CONTAINER_SAMPLES, UTC_TIMESTAMP


@dataclass(frozen=True)
class Usage:
    """One attempt's CPU use, constant on each segment [start_seconds, end_seconds) after world start."""

    start_seconds: np.ndarray
    end_seconds: np.ndarray
    cpu_seconds_per_second: np.ndarray

    def cpu_seconds_at(self, t: np.ndarray) -> np.ndarray:
        """CPU-seconds used since the container started, at each time `t` (0 before, the total after)."""
        durations = self.end_seconds - self.start_seconds
        cumulative = np.concatenate([[0.0], np.cumsum(self.cpu_seconds_per_second * durations)])
        i = np.clip(np.searchsorted(self.start_seconds, t, side="right") - 1, 0, len(durations) - 1)
        inside = np.clip(t - self.start_seconds[i], 0.0, durations[i])
        return cumulative[i] + self.cpu_seconds_per_second[i] * inside


@dataclass(frozen=True)
class MainContainer:
    """Who a CPU-time series belongs to, as the Pod object names it (container id without `containerd://`)."""

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
    containers: list[tuple[MainContainer, Usage]],
    reading_seconds: np.ndarray,
    agent_up: np.ndarray,
    start_us: int,
) -> pa.Table:
    """The agent's cgroup CPU-time counters of one node, as `container_samples` rows.

    A series runs from the last reading at or before the container starts (holding 0) to the first reading
    at or after it ends (holding the total), both included; readings while the agent is down are missing.
    Rows are sorted by pod name, container id, then time, as the `container_samples` key orders them.
    """
    parts = []
    for container, usage in sorted(containers, key=lambda item: (item[0].pod_name, item[0].container_id)):
        first = max(int(np.searchsorted(reading_seconds, usage.start_seconds[0], side="right")) - 1, 0)
        last = min(
            int(np.searchsorted(reading_seconds, usage.end_seconds[-1], side="left")),
            len(reading_seconds) - 1,
        )
        polls = np.arange(first, last + 1)
        polls = polls[agent_up[polls]]
        usage_usec = np.round(usage.cpu_seconds_at(reading_seconds[polls]) * 1e6)
        parts.append((container, reading_seconds[polls], usage_usec / 1e6))
    counts = [len(seconds) for _, seconds, _ in parts]
    n = sum(counts)

    def repeated(name: str) -> pa.Array:
        return pa.array(
            np.repeat(np.array([getattr(c, name) for c, _, _ in parts], object), counts), pa.string()
        )

    seconds = np.concatenate([s for _, s, _ in parts] or [np.empty(0)])
    return pa.table(
        {
            "host_node": pa.array(np.full(n, host_node), pa.string()),
            "namespace": repeated("namespace"),
            "pod_name": repeated("pod_name"),
            "pod_uid": repeated("pod_uid"),
            "container_id": repeated("container_id"),
            "device_kind": pa.nulls(n, pa.string()),
            "device_id": pa.nulls(n, pa.string()),
            "timestamp": pa.array(start_us + np.round(seconds * 1e6).astype(np.int64), UTC_TIMESTAMP),
            "value": pa.array(np.concatenate([v for _, _, v in parts] or [np.empty(0)]), pa.float64()),
            "value_kind": pa.array(np.full(n, "cpu_seconds_counter"), pa.string()),
            "source": pa.array(np.full(n, "agent-cgroup"), pa.string()),
            "provenance": pa.array(np.full(n, "synthetic"), pa.string()),
        },
        schema=CONTAINER_SAMPLES,
    )
