"""The ground-truth power model and what the node agents read from it.

Every device's power is piecewise constant: its idle power plus the dynamic power of the tasks running
on it, each task varying in ~10 s segments. A task's CPU package dynamic power is its task type's joules per
CPU-second times its node's CPU dynamic-power factor (per busy core, relative to the Gold 6346: cluster.py)
times its main container's CPU usage rate (datasets/sample_world/usage.py), its DRAM dynamic power the type's
DRAM joules per CPU-second times that rate (not scaled by CPU model), both split evenly over the sockets.
A GPU's is, per holder, the task type's watts per busy-second times the busy rate the holder gets on the
time-sliced GPU (`time_slice`). Cumulative energy is therefore exact at any instant, so counters are the exact
energy at the reading time, and the truth is the exact integral per task.

Idle power in the truth: a CPU zone's goes to every task in proportion to its requested cores over the
node's cores, an FPGA's to its holder, and a GPU's to the tasks holding it that are running, split equally
at each instant; what nobody is given (a device with no task) is in no task's truth.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa

import schemas
from datasets.sample_world.cluster import RAPL_COUNTER_MAX_JOULES, NodeSpec
from datasets.sample_world.plan import PodTask
from datasets.sample_world.scheduler import Attempt
from datasets.sample_world.usage import Readings, Usage
from schemas.kinds import ENERGY_COUNTER, POWER_GAUGE

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
    """A task's own dynamic power on one device and the device's idle power it is given, both constant on
    each segment [start_seconds, end_seconds)."""

    device: Device
    start_seconds: np.ndarray
    end_seconds: np.ndarray
    watts: np.ndarray
    idle_watts: np.ndarray


@dataclass(frozen=True)
class GpuDemand:
    """The busy fraction a task would keep one GPU at if it had the GPU to itself, on each of its segments."""

    device: Device
    start_seconds: np.ndarray
    end_seconds: np.ndarray
    busy_fraction: np.ndarray
    watts_per_busy_second: float


class PowerTrace:
    """Exact power and cumulative energy of one device, from its idle power and the loads on it."""

    def __init__(
        self, idle_watts: float, starts: np.ndarray, ends: np.ndarray, watts: np.ndarray, end_seconds: float
    ):
        """Idle power plus `watts[i]` on [starts[i], ends[i]), from 0 to `end_seconds`."""
        self.breaks = np.unique(np.concatenate([[0.0, end_seconds], starts, ends]))
        step = np.zeros(len(self.breaks))
        np.add.at(step, np.searchsorted(self.breaks, starts), watts)
        np.add.at(step, np.searchsorted(self.breaks, ends), -watts)
        self.watts = idle_watts + np.cumsum(step)[:-1]
        self.energy_joules = np.concatenate([[0.0], np.cumsum(self.watts * np.diff(self.breaks))])

    @classmethod
    def of_loads(cls, idle_watts: float, loads: list[_Load], end_seconds: float) -> PowerTrace:
        starts = np.concatenate([load.start_seconds for load in loads] or [np.empty(0)])
        ends = np.concatenate([load.end_seconds for load in loads] or [np.empty(0)])
        watts = np.concatenate([load.watts for load in loads] or [np.empty(0)])
        return cls(idle_watts, starts, ends, watts, end_seconds)

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
) -> tuple[Usage, list[_Load], list[GpuDemand]]:
    """The CPU use of one attempt's main container, the power it draws on its CPU zones and FPGAs, and what
    it asks of each of its GPUs (their power depends on the other holders: `time_slice`)."""
    t = pod.task_type
    starts, ends = _segments(rng, attempt.start_seconds, attempt.end_seconds)
    busy_cores = t.cpu_request_cores * rng.uniform(0.85, 1.0)  # requested cores x utilisation
    usage = Usage(starts, ends, busy_cores * rng.uniform(0.9, 1.1, len(starts)))
    cpu_joules_per_cpu_second = t.cpu_joules_per_cpu_second * node.cpu.dynamic_power_factor
    cpu_watts = cpu_joules_per_cpu_second * usage.seconds_per_second / node.sockets
    dram_watts = t.dram_joules_per_cpu_second * usage.seconds_per_second / node.sockets
    share = t.cpu_request_cores / node.cpu_cores
    devices = {d.device_id: d for d in node_devices(node)}
    loads = []
    for p in range(node.sockets):
        for device, watts in ((devices[f"package-{p}"], cpu_watts), (devices[f"dram-{p}"], dram_watts)):
            loads.append(_Load(device, starts, ends, watts, np.full(len(starts), device.idle_watts * share)))
    demands = []
    for device_id in attempt.gpu_ids:
        level = rng.uniform(*t.gpu_busy_fraction)
        busy = level * rng.uniform(0.9, 1.1, len(starts))
        demands.append(GpuDemand(devices[device_id], starts, ends, busy, t.gpu_watts_per_busy_second))
    for device_id in attempt.fpga_ids:
        device = devices[device_id]
        level = rng.uniform(*t.fpga_dynamic_watts)
        watts = level * rng.uniform(0.9, 1.1, len(starts))
        loads.append(_Load(device, starts, ends, watts, np.full(len(starts), device.idle_watts)))
    return usage, loads, demands


def time_slice(demands: list[GpuDemand]) -> list[tuple[Usage, _Load]]:
    """The busy time each demand gets on its time-sliced GPU and the power it draws there, in `demands` order.

    Time-slicing gives every holder its busy fraction while the holders' fractions add up to at most 1, and
    the GPU's time in proportion to them beyond (rate = fraction / max(1, sum of fractions)), so no holder is
    busy more than 1 s per second nor the GPU more than all of its time. The GPU's idle power goes to the
    holders running, equally. Both change only where some holder's segment starts or ends.
    """
    got: dict[int, tuple[Usage, _Load]] = {}
    by_device: dict[Device, list[int]] = {}
    for i, demand in enumerate(demands):
        by_device.setdefault(demand.device, []).append(i)
    for device, members in by_device.items():
        bounds = np.unique(
            np.concatenate([np.r_[demands[i].start_seconds, demands[i].end_seconds] for i in members])
        )
        starts, ends = bounds[:-1], bounds[1:]
        running = np.zeros((len(members), len(starts)), bool)
        fraction = np.zeros(running.shape)
        for row, i in enumerate(members):
            demand = demands[i]
            running[row] = (starts >= demand.start_seconds[0]) & (starts < demand.end_seconds[-1])
            segment = np.searchsorted(demand.start_seconds, starts[running[row]], side="right") - 1
            fraction[row, running[row]] = demand.busy_fraction[segment]
        rate = fraction / np.maximum(1.0, fraction.sum(axis=0))
        idle_watts = device.idle_watts / np.maximum(running.sum(axis=0), 1)
        for row, i in enumerate(members):
            on = running[row]
            busy = Usage(starts[on], ends[on], rate[row, on])
            watts = demands[i].watts_per_busy_second * busy.seconds_per_second
            got[i] = (busy, _Load(device, busy.start_seconds, busy.end_seconds, watts, idle_watts[on]))
    return [got[i] for i in range(len(demands))]


def _segments(rng: np.random.Generator, start: float, end: float) -> tuple[np.ndarray, np.ndarray]:
    lengths = rng.uniform(8.0, 12.0, int((end - start) / 8.0) + 1)
    inner = start + np.cumsum(lengths)
    bounds = np.concatenate([[start], inner[inner < end], [end]])
    return bounds[:-1], bounds[1:]


def truth_row(load: _Load, runtime_seconds: float) -> dict:
    """The exact energy of one task on one device, as a `task_energy` row (ids added by the caller)."""
    durations = load.end_seconds - load.start_seconds
    dynamic = float(np.sum(load.watts * durations))
    idle = float(np.sum(load.idle_watts * durations))
    energy = dynamic + idle
    return {
        "device_kind": load.device.device_kind,
        "device_id": load.device.device_id,
        "energy_joules": energy,
        "dynamic_joules": dynamic,
        "idle_joules": idle,
        "avg_power_watts": energy / runtime_seconds,
        "peak_power_watts": float(np.max(load.watts + load.idle_watts)),
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
            PowerTrace.of_loads(
                device.idle_watts, [load for load in loads if load.device == device], end_seconds
            ),
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


def reading_times(
    rng: np.random.Generator, node: NodeSpec, end_seconds: float, gap: AgentGap
) -> dict[str, Readings]:
    """When the node's agent reads each device, by device id: the RAPL zones together at the node's reading
    interval, every GPU and FPGA on its own schedule every second."""
    rapl = poll_seconds(rng, node.reading_interval_seconds, end_seconds)
    times = {}
    for device in node_devices(node):
        polls = rapl if device.device_kind in ("cpu_package", "dram") else poll_seconds(rng, 1.0, end_seconds)
        times[device.device_id] = Readings(polls, ~gap.down(node.name, polls))
    return times


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
    readings: dict[str, Readings],
    reset: CounterReset,
    start_us: int,
) -> pa.Table:
    """Everything the node's agent spooled, as a `power_samples` table sorted by device, then time.

    Each device is read at its `readings` times (`reading_times`); readings while the agent is down are
    missing.
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

    def emit(device: Device, values: np.ndarray, value_kind: str, source: str) -> None:
        polls, up = readings[device.device_id].seconds, readings[device.device_id].up
        n = int(np.count_nonzero(up))
        columns["device_id"].append(np.full(n, device.device_id))
        columns["device_kind"].append(np.full(n, device.device_kind))
        columns["timestamp"].append(start_us + np.round(polls[up] * 1e6).astype(np.int64))
        columns["value"].append(values[up])
        columns["value_kind"].append(np.full(n, value_kind))
        columns["counter_max_joules"].append(
            np.full(n, RAPL_COUNTER_MAX_JOULES if source == "rapl" else np.nan)
        )
        columns["source"].append(np.full(n, source))

    for device, trace in traces:
        polls = readings[device.device_id].seconds
        if device.device_kind in ("cpu_package", "dram"):
            emit(device, _rapl_counter(rng, trace, polls), ENERGY_COUNTER, "rapl")
        elif device.device_kind == "gpu":
            energy = trace.energy_at(polls)
            counter = _nvml_counter(rng, trace, energy, polls, device, reset)
            emit(device, counter, ENERGY_COUNTER, "nvml")
            watts = (energy - trace.energy_at(polls - 1.0)) * (
                1.0 + rng.normal(0.0, GAUGE_NOISE_SD, len(polls))
            )
            emit(device, np.round(np.maximum(watts, 0.0), 3), POWER_GAUGE, "nvml")
        else:
            watts = trace.power_at(polls) * (1.0 + rng.normal(0.0, GAUGE_NOISE_SD, len(polls)))
            emit(device, np.round(np.maximum(watts, 0.0), 6), POWER_GAUGE, "hwmon")
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
