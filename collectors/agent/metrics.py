"""The agent's metric state and its Prometheus text exposition: energy counters, power gauges, meter
health, and per-container CPU and GPU busy seconds (GPU time added to the pod container its process is in)."""

from __future__ import annotations

import math
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from collectors.meters.accumulate import AccumulatedEnergy, MeterCounts
from collectors.meters.cgroups import ContainerCpu, PidContainers
from collectors.meters.nvml import GpuProcessBusy
from collectors.meters.source import Meter, ReadError
from schemas.kinds import ENERGY_COUNTER, POWER_GAUGE

if TYPE_CHECKING:
    pass
from collectors.agent.options import DEFAULT_GPU_BUSY_RETAIN_SECONDS


def _escape_label_value(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _escape_help(text: str) -> str:
    return text.replace("\\", "\\\\").replace("\n", "\\n")


def _format_value(value: float) -> str:
    """Shortest text that reads back to the same float (Go's ParseFloat syntax)."""
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return repr(float(value))


def _family(
    out: list[str], name: str, kind: str, help_text: str, samples: Iterable[tuple[Sequence[tuple], float]]
) -> None:
    out.append(f"# HELP {name} {_escape_help(help_text)}")
    out.append(f"# TYPE {name} {kind}")
    for labels, value in samples:
        text = ",".join(f'{key}="{_escape_label_value(str(v))}"' for key, v in labels)
        out.append(f"{name}{{{text}}} {_format_value(value)}" if text else f"{name} {_format_value(value)}")


@dataclass(frozen=True)
class ContainerGpuBusy:
    container_id: str
    pod_uid: str
    gpu_uuid: str
    busy_seconds: float  # SM-busy seconds of the container's processes on the GPU since the agent saw it


class GpuBusyCounters:
    """Per (pod uid, container id, GPU UUID) busy seconds: monotonic, and kept when a process exits (the
    counter is the container's). A process in no pod container (a host process, or one gone before its
    cgroup was ever read) adds to a per-GPU ``outside_pods`` counter instead, so what the split misses shows.
    """

    def __init__(
        self,
        reader: GpuProcessBusy,
        pid_containers: PidContainers,
        retain_seconds: float = DEFAULT_GPU_BUSY_RETAIN_SECONDS,
    ):
        self.reader = reader
        self.pid_containers = pid_containers
        self.retain_seconds = retain_seconds
        self._seconds: dict[tuple[str, str, str], float] = {}
        self._sampled_at: dict[tuple[str, str, str], float] = {}  # monotonic time of the last sample
        self._outside_pods: dict[str, float] = {}

    def update(self, now_monotonic: float) -> list[ReadError]:
        """Read NVML once and add each process's new busy seconds to its container; returns the errors."""
        read = self.reader.read()
        owners = self.pid_containers.lookup(pid for pid, _ in read.busy_seconds)
        for (pid, gpu_uuid), seconds in read.busy_seconds.items():
            owner = owners.get(pid)
            if owner is None:
                self._outside_pods[gpu_uuid] = self._outside_pods.get(gpu_uuid, 0.0) + seconds
                continue
            key = (*owner, gpu_uuid)
            self._seconds[key] = self._seconds.get(key, 0.0) + seconds
            self._sampled_at[key] = now_monotonic
        for key, sampled_at in list(self._sampled_at.items()):
            if now_monotonic - sampled_at > self.retain_seconds:
                del self._seconds[key], self._sampled_at[key]
        return read.errors

    def containers(self) -> list[ContainerGpuBusy]:
        return [
            ContainerGpuBusy(container_id, pod_uid, gpu_uuid, seconds)
            for (pod_uid, container_id, gpu_uuid), seconds in sorted(self._seconds.items())
        ]

    def outside_pods(self) -> dict[str, float]:
        return dict(sorted(self._outside_pods.items()))


@dataclass(frozen=True)
class GpuBusySnapshot:
    containers: list[ContainerGpuBusy]
    outside_pods: dict[str, float]  # GPU UUID -> busy seconds of processes in no pod container


@dataclass
class _MeterState:
    energy_joules_total: float = 0.0
    power_watts: float | None = None
    wraps_total: int = 0
    ambiguous_intervals_total: int = 0
    resets_total: int = 0


@dataclass
class _Snapshot:
    meters: dict[Meter, _MeterState]
    read_errors: dict[tuple[str, str], int]
    containers: list[ContainerCpu] | None
    gpu_busy: GpuBusySnapshot | None
    samples_total: int
    sample_seconds: float
    spool_write_errors_total: int


@dataclass
class Metrics:
    """Metric state shared by the sampling thread (writer) and the HTTP threads (readers)."""

    host_node: str
    version: str
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    _meters: dict[Meter, _MeterState] = field(default_factory=dict)
    _read_errors: dict[tuple[str, str], int] = field(default_factory=dict)
    _containers: list[ContainerCpu] | None = None
    _gpu_busy: GpuBusySnapshot | None = None
    _samples_total: int = 0
    _sample_seconds: float = 0.0
    _spool_write_errors_total: int = 0

    def record(
        self,
        accumulated: Iterable[AccumulatedEnergy],
        counts: dict[Meter, MeterCounts],
        errors: Iterable[ReadError],
        containers: list[ContainerCpu] | None,
        sample_seconds: float,
        gpu_busy: GpuBusySnapshot | None = None,
    ) -> None:
        with self._lock:
            for energy in accumulated:
                state = self._meters.setdefault(energy.meter, _MeterState())
                state.energy_joules_total = energy.total_joules
                state.power_watts = energy.power_watts
                meter_counts = counts.get(energy.meter, MeterCounts())
                state.wraps_total = meter_counts.wraps
                state.ambiguous_intervals_total = meter_counts.ambiguous_intervals
                state.resets_total = meter_counts.resets
            for error in errors:
                key = (error.source, error.path)
                self._read_errors[key] = self._read_errors.get(key, 0) + 1
            self._containers = containers
            self._gpu_busy = gpu_busy
            self._samples_total += 1
            self._sample_seconds = sample_seconds

    def count_spool_write_error(self) -> None:
        with self._lock:
            self._spool_write_errors_total += 1

    def _snapshot(self) -> _Snapshot:
        with self._lock:
            return _Snapshot(
                meters={meter: _MeterState(**vars(state)) for meter, state in self._meters.items()},
                read_errors=dict(self._read_errors),
                containers=self._containers,
                gpu_busy=self._gpu_busy,
                samples_total=self._samples_total,
                sample_seconds=self._sample_seconds,
                spool_write_errors_total=self._spool_write_errors_total,
            )

    def render(self) -> str:
        """Text exposition format 0.0.4; the lock is held only to copy the state, not to format it."""
        snap = self._snapshot()
        devices = _device_series(snap.meters)
        out: list[str] = []
        _family(
            out,
            "jouletrace_agent_info",
            "gauge",
            "The agent's version and the node it runs on (always 1).",
            [((("version", self.version), ("host_node", self.host_node)), 1.0)],
        )
        _family(
            out,
            "jouletrace_energy_joules_total",
            "counter",
            "Energy since the agent started, wrap-corrected (counters) or integrated (power gauges).",
            [(labels, d.energy_joules_total) for labels, d in devices],
        )
        _family(
            out,
            "jouletrace_power_watts",
            "gauge",
            "Power over the last sampling interval (counters) or as the device reports it (gauges).",
            [(labels, d.power_watts) for labels, d in devices if d.power_watts is not None],
        )
        _family(
            out,
            "jouletrace_meter_wraps_total",
            "counter",
            "Times an energy counter passed its wrap point and was corrected.",
            [(labels, d.wraps_total) for labels, d in devices],
        )
        _family(
            out,
            "jouletrace_meter_ambiguous_intervals_total",
            "counter",
            "Intervals long enough for a counter to wrap more than once at the power limit.",
            [(labels, d.ambiguous_intervals_total) for labels, d in devices],
        )
        _family(
            out,
            "jouletrace_meter_resets_total",
            "counter",
            "Times a counter went back without wrapping (driver reload, reboot) and restarted from there.",
            [(labels, d.resets_total) for labels, d in devices],
        )
        _family(
            out,
            "jouletrace_read_errors_total",
            "counter",
            "Failed reads per source and file or device.",
            [
                ((("source", source), ("path", path)), n)
                for (source, path), n in sorted(snap.read_errors.items())
            ],
        )
        if snap.containers is not None:
            _family(
                out,
                "jouletrace_container_cpu_seconds_total",
                "counter",
                "CPU time of each pod container from cgroup v2 cpu.stat, for splitting node energy.",
                [
                    ((("container_id", c.container_id), ("pod_uid", c.pod_uid)), c.cpu_seconds)
                    for c in snap.containers
                ],
            )
        if snap.gpu_busy is not None:
            _family(
                out,
                "jouletrace_container_gpu_busy_seconds_total",
                "counter",
                "SM-busy seconds of each pod container's processes on each GPU (NVML per-process "
                "utilisation), for splitting a time-sliced GPU's energy.",
                [
                    (
                        (("container_id", c.container_id), ("pod_uid", c.pod_uid), ("gpu_uuid", c.gpu_uuid)),
                        c.busy_seconds,
                    )
                    for c in snap.gpu_busy.containers
                ],
            )
            _family(
                out,
                "jouletrace_gpu_busy_seconds_outside_pods_total",
                "counter",
                "SM-busy seconds on each GPU of processes in no pod container (host processes, or gone "
                "before their cgroup was read): GPU time the per-container split does not see.",
                [((("gpu_uuid", uuid),), seconds) for uuid, seconds in snap.gpu_busy.outside_pods.items()],
            )
        _family(
            out, "jouletrace_samples_total", "counter", "Sampling steps taken.", [((), snap.samples_total)]
        )
        _family(
            out,
            "jouletrace_sample_duration_seconds",
            "gauge",
            "Wall time the last sampling step took.",
            [((), snap.sample_seconds)],
        )
        _family(
            out,
            "jouletrace_spool_write_errors_total",
            "counter",
            "Failed Parquet spool writes (the rows are kept and retried).",
            [((), snap.spool_write_errors_total)],
        )
        out.append("")
        return "\n".join(out)


def _device_series(meters: dict[Meter, _MeterState]) -> list[tuple[tuple, _MeterState]]:
    """One series per device: energy from its counter when it has one, power from its gauge when it has one.

    A GPU can expose both an energy counter and a power gauge; they share labels, so they become one series.
    """
    by_device: dict[tuple, dict[str, _MeterState]] = {}
    for meter, state in meters.items():
        labels = (
            ("device_kind", meter.device_kind),
            ("device_id", meter.device_id),
            ("source", meter.source),
        )
        by_device.setdefault(labels, {})[meter.value_kind] = state
    series = []
    for labels, kinds in sorted(by_device.items()):
        counter, gauge = kinds.get(ENERGY_COUNTER), kinds.get(POWER_GAUGE)
        main = counter or gauge
        power = gauge.power_watts if gauge is not None else main.power_watts
        series.append((labels, _MeterState(**{**vars(main), "power_watts": power})))
    return series


# ---------------------------------------------------------------------------------------------- spool
