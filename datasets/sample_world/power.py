"""The ground-truth power model and what the node agents read from it.

Every device's power is piecewise constant: its idle power plus the dynamic power of the tasks running
on it, each task varying in ~10 s segments. A task's CPU package and DRAM dynamic power are its task type's
joules per CPU-second times its main container's CPU usage rate (datasets/sample_world/usage.py), split
evenly over the sockets. Cumulative energy is therefore exact at any instant, so counters are the exact
energy at the reading time, and the truth is the exact integral per task.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa

import schemas
from datasets.sample_world.cluster import RAPL_COUNTER_MAX_JOULES, NodeSpec
from datasets.sample_world.plan import PodTask
from datasets.sample_world.scheduler import Attempt
from datasets.sample_world.usage import Usage

GAUGE_NOISE_SD = 0.02
READING_JITTER_SECONDS = 0.02
AGENT_GAP_SECONDS = (85.0, 95.0)
_TIMESTAMP = pa.timestamp("us", tz="UTC")


@dataclass(frozen=True)
class Device:
    host_node: str
    device_kind: str
    device_id: str
    idle_watts: float


@dataclass(frozen=True)
class AgentGap:
    """A window in which a node's agent read nothing (seconds after world start)."""

    host_node: str
    start_seconds: float
    end_seconds: float

    def down(self, host_node: str, seconds: np.ndarray) -> np.ndarray:
        """Which of `host_node`'s reading times fall in the gap (those readings are missing)."""
        return (self.host_node == host_node) & (seconds >= self.start_seconds) & (seconds <= self.end_seconds)


@dataclass(frozen=True)
class CounterReset:
    """The moment a GPU's NVML energy counter restarted from zero (driver reload)."""

    host_node: str
    device_id: str
    at_seconds: float


@dataclass(frozen=True)
class _Load:
    """A task's own dynamic power on one device, constant on each segment [start_seconds, end_seconds)."""

    device: Device
    start_seconds: np.ndarray
    end_seconds: np.ndarray
    watts: np.ndarray
    idle_share: float


class PowerTrace:
    """Exact power and cumulative energy of one device, from its idle power and the loads on it."""

    def __init__(self, idle_watts: float, loads: list[_Load], end_seconds: float):
        starts = np.concatenate([load.start_seconds for load in loads] or [np.empty(0)])
        ends = np.concatenate([load.end_seconds for load in loads] or [np.empty(0)])
        watts = np.concatenate([load.watts for load in loads] or [np.empty(0)])
        self.breaks = np.unique(np.concatenate([[0.0, end_seconds], starts, ends]))
        step = np.zeros(len(self.breaks))
        np.add.at(step, np.searchsorted(self.breaks, starts), watts)
        np.add.at(step, np.searchsorted(self.breaks, ends), -watts)
        self.watts = idle_watts + np.cumsum(step)[:-1]
        self.energy_joules = np.concatenate([[0.0], np.cumsum(self.watts * np.diff(self.breaks))])

    def _segment(self, t: np.ndarray) -> np.ndarray:
        return np.clip(np.searchsorted(self.breaks, t, side="right") - 1, 0, len(self.watts) - 1)

    def power_at(self, t: np.ndarray) -> np.ndarray:
        return self.watts[self._segment(t)]

    def energy_at(self, t: np.ndarray) -> np.ndarray:
        """Joules consumed since world start, at each time `t` (seconds after world start)."""
        i = self._segment(t)
        return self.energy_joules[i] + self.watts[i] * (t - self.breaks[i])


def node_devices(node: NodeSpec) -> list[Device]:
    idle = node.idle_power_watts()
    kinds = {f"package-{p}": "cpu_package" for p in range(node.sockets)}
    kinds |= {f"dram-{p}": "dram" for p in range(node.sockets)}
    kinds |= {gpu: "gpu" for gpu in node.gpu_ids} | {fpga: "fpga" for fpga in node.fpga_ids}
    return [Device(node.name, kinds[device_id], device_id, idle[device_id]) for device_id in kinds]


def attempt_loads(
    rng: np.random.Generator, attempt: Attempt, pod: PodTask, node: NodeSpec
) -> tuple[Usage, list[_Load]]:
    """The CPU use of one attempt's main container and the dynamic power it draws on every device."""
    t = pod.task_type
    starts, ends = _segments(rng, attempt.start_seconds, attempt.end_seconds)
    busy_cores = t.cpu_request_cores * rng.uniform(0.85, 1.0)  # requested cores x utilisation
    usage = Usage(starts, ends, busy_cores * rng.uniform(0.9, 1.1, len(starts)))
    cpu_watts = t.cpu_joules_per_cpu_second * usage.cpu_seconds_per_second / node.sockets
    dram_watts = t.dram_joules_per_cpu_second * usage.cpu_seconds_per_second / node.sockets
    share = t.cpu_request_cores / node.cpu_cores
    devices = {d.device_id: d for d in node_devices(node)}
    loads = []
    for p in range(node.sockets):
        loads.append(_Load(devices[f"package-{p}"], starts, ends, cpu_watts, share))
        loads.append(_Load(devices[f"dram-{p}"], starts, ends, dram_watts, share))
    for device_id in attempt.gpu_ids + attempt.fpga_ids:
        level = rng.uniform(*t.device_dynamic_watts)
        loads.append(_Load(devices[device_id], starts, ends, level * rng.uniform(0.9, 1.1, len(starts)), 1.0))
    return usage, loads


def _segments(rng: np.random.Generator, start: float, end: float) -> tuple[np.ndarray, np.ndarray]:
    lengths = rng.uniform(8.0, 12.0, int((end - start) / 8.0) + 1)
    inner = start + np.cumsum(lengths)
    bounds = np.concatenate([[start], inner[inner < end], [end]])
    return bounds[:-1], bounds[1:]


def truth_row(load: _Load, runtime_seconds: float) -> dict:
    """The exact energy of one task on one device, as a `task_energy` row (ids added by the caller)."""
    dynamic = float(np.sum(load.watts * (load.end_seconds - load.start_seconds)))
    idle_watts = load.device.idle_watts * load.idle_share
    energy = dynamic + idle_watts * runtime_seconds
    return {
        "device_kind": load.device.device_kind,
        "device_id": load.device.device_id,
        "energy_joules": energy,
        "dynamic_joules": dynamic,
        "idle_joules": idle_watts * runtime_seconds,
        "avg_power_watts": energy / runtime_seconds,
        "peak_power_watts": float(load.watts.max()) + idle_watts,
        "coverage": 1.0,
        "samples": 0,
        "method": "ground_truth",
        "uncertainty_joules": 0.0,
        "provenance": "synthetic",
    }


def device_traces(node: NodeSpec, loads: list[_Load], end_seconds: float) -> list[tuple[Device, PowerTrace]]:
    return [
        (
            device,
            PowerTrace(device.idle_watts, [load for load in loads if load.device == device], end_seconds),
        )
        for device in node_devices(node)
    ]


def choose_gap(rng: np.random.Generator, cluster: tuple[NodeSpec, ...], end_seconds: float) -> AgentGap:
    host = cluster[int(rng.integers(len(cluster)))].name
    start = rng.uniform(0.35, 0.65) * end_seconds
    return AgentGap(host, start, start + rng.uniform(*AGENT_GAP_SECONDS))


def choose_reset(
    rng: np.random.Generator, node: NodeSpec, attempts: list[Attempt], gap: AgentGap, end_seconds: float
) -> CounterReset:
    """A driver reload happens mid-run while the GPU is idle (5 s away from any task) and its agent is up."""
    gpu = node.gpu_ids[int(rng.integers(len(node.gpu_ids)))]
    busy = [(a.start_seconds, a.end_seconds) for a in attempts if gpu in a.gpu_ids]
    if gap.host_node == node.name:
        busy.append((gap.start_seconds, gap.end_seconds))
    candidates = np.linspace(0.25 * end_seconds, 0.75 * end_seconds, 1001)
    free = candidates[[not any(s - 5.0 <= c <= e + 5.0 for s, e in busy) for c in candidates]]
    at = float(rng.choice(free)) if len(free) else 0.5 * end_seconds
    return CounterReset(node.name, gpu, at)


def poll_seconds(rng: np.random.Generator, interval: float, end_seconds: float) -> np.ndarray:
    """Reading times: a regular schedule with small jitter, rounded to the microsecond."""
    phase = rng.uniform(1.0, 1.0 + interval)
    nominal = np.arange(phase, end_seconds - READING_JITTER_SECONDS, interval)
    jitter = rng.uniform(-READING_JITTER_SECONDS, READING_JITTER_SECONDS, len(nominal))
    return np.round((nominal + jitter) * 1e6) / 1e6


def node_readings(
    rng: np.random.Generator,
    node: NodeSpec,
    traces: list[tuple[Device, PowerTrace]],
    rapl_polls: np.ndarray,
    end_seconds: float,
    gap: AgentGap,
    reset: CounterReset,
    start_us: int,
) -> pa.Table:
    """Everything the node's agent spooled, as a `power_samples` table sorted by device, then time.

    RAPL is read at `rapl_polls` (the node's reading times); GPUs and FPGAs are polled every second.
    """
    columns: dict[str, list] = {
        "device_id": [],
        "device_kind": [],
        "timestamp": [],
        "value": [],
        "value_kind": [],
        "counter_max_joules": [],
        "source": [],
    }

    def emit(device: Device, polls: np.ndarray, values: np.ndarray, value_kind: str, source: str) -> None:
        down = gap.down(node.name, polls)
        n = int(np.count_nonzero(~down))
        columns["device_id"].append(np.full(n, device.device_id))
        columns["device_kind"].append(np.full(n, device.device_kind))
        columns["timestamp"].append(start_us + np.round(polls[~down] * 1e6).astype(np.int64))
        columns["value"].append(values[~down])
        columns["value_kind"].append(np.full(n, value_kind))
        columns["counter_max_joules"].append(
            np.full(n, RAPL_COUNTER_MAX_JOULES if source == "rapl" else np.nan)
        )
        columns["source"].append(np.full(n, source))

    for device, trace in traces:
        if device.device_kind in ("cpu_package", "dram"):
            emit(device, rapl_polls, _rapl_counter(rng, trace, rapl_polls), "energy_counter_joules", "rapl")
        elif device.device_kind == "gpu":
            polls = poll_seconds(rng, 1.0, end_seconds)
            energy = trace.energy_at(polls)
            emit(
                device,
                polls,
                _nvml_counter(rng, trace, energy, polls, device, reset),
                "energy_counter_joules",
                "nvml",
            )
            watts = (energy - trace.energy_at(polls - 1.0)) * (
                1.0 + rng.normal(0.0, GAUGE_NOISE_SD, len(polls))
            )
            emit(device, polls, np.round(np.maximum(watts, 0.0), 3), "power_watts", "nvml")
        else:
            polls = poll_seconds(rng, 1.0, end_seconds)
            watts = trace.power_at(polls) * (1.0 + rng.normal(0.0, GAUGE_NOISE_SD, len(polls)))
            emit(device, polls, np.round(np.maximum(watts, 0.0), 6), "power_watts", "hwmon")
    data = {name: np.concatenate(parts) for name, parts in columns.items()}
    kind_rank = np.array([schemas.DEVICE_KINDS.index(k) for k in data["device_kind"]])
    order = np.lexsort((data["value_kind"], data["timestamp"], data["device_id"], kind_rank))
    n = len(order)
    counter_max = data["counter_max_joules"][order]
    return schemas.conform(
        "power_samples",
        {
            "host_node": pa.array(np.full(n, node.name), pa.string()),
            "device_kind": pa.array(data["device_kind"][order], pa.string()),
            "device_id": pa.array(data["device_id"][order], pa.string()),
            "timestamp": pa.array(data["timestamp"][order], _TIMESTAMP),
            "value": pa.array(data["value"][order], pa.float64()),
            "value_kind": pa.array(data["value_kind"][order], pa.string()),
            "counter_max_joules": pa.array(counter_max, pa.float64(), mask=np.isnan(counter_max)),
            "source": pa.array(data["source"][order], pa.string()),
            "provenance": pa.array(np.full(n, "synthetic"), pa.string()),
        },
    )


def _rapl_counter(rng: np.random.Generator, trace: PowerTrace, polls: np.ndarray) -> np.ndarray:
    """powercap energy_uj: microjoules from a random origin, wrapping at max_energy_range_uj."""
    max_uj = round(RAPL_COUNTER_MAX_JOULES * 1e6)
    origin_uj = rng.integers(0, max_uj)
    uj = np.round(trace.energy_at(polls) * 1e6).astype(np.int64) + origin_uj
    return (uj % max_uj) / 1e6


def _nvml_counter(
    rng: np.random.Generator,
    trace: PowerTrace,
    energy: np.ndarray,
    polls: np.ndarray,
    device: Device,
    reset: CounterReset,
) -> np.ndarray:
    """nvmlDeviceGetTotalEnergyConsumption: millijoules since the driver loaded, restarting at a reload."""
    since_load = energy + rng.uniform(2e5, 8e6)
    if device.device_id == reset.device_id:
        after = polls >= reset.at_seconds
        since_load[after] = energy[after] - trace.energy_at(np.array([reset.at_seconds]))[0]
    return np.floor(since_load * 1e3) / 1e3
