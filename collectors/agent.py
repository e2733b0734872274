"""The node agent: samples every power source on a fixed cadence, serves Prometheus metrics, spools Parquet.

One sampling thread reads the sources, feeds the readings to an energy accumulator (wrap-corrected joules
since the agent started) and updates the metric state under a lock; the HTTP server renders that state in
its own threads, so a slow scrape never delays a sample. With a spool folder the raw readings (counters as
read, with their wrap point) are also written to ``power_samples`` Parquet files, so attribution can
re-check every wrap and nothing depends on Prometheus having scraped.

Per-container usage, for splitting a node's energy between the pods on it: CPU seconds from the cgroup v2
tree, and GPU busy seconds from NVML's per-process utilisation, each process's seconds added to the pod
container its ``/proc/<pid>/cgroup`` names (``GpuBusyCounters``).
"""

from __future__ import annotations

import argparse
import importlib.metadata
import math
import os
import re
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import TYPE_CHECKING

from collectors.accumulate import AccumulatedEnergy, EnergyAccumulator, MeterCounts
from collectors.cgroups import ContainerCpu, PidContainers, cgroup_root, scan_containers
from collectors.fpga import HwmonFpgaSource, XrtFpgaSource
from collectors.nvml import DEFAULT_MAX_SAMPLE_PERIOD_SECONDS, READY, GpuProcessBusy, NvmlSource
from collectors.rapl import RaplSource
from collectors.sources import ENERGY_COUNTER, POWER_GAUGE, Meter, PowerSource, ProbeLine, ReadError, Reading

if TYPE_CHECKING:
    import pyarrow as pa

DEFAULT_LISTEN = "127.0.0.1:9471"
DEFAULT_INTERVAL_SECONDS = 1.0
DEFAULT_SPOOL_ROTATE_SECONDS = 300.0
DEFAULT_SPOOL_ROTATE_ROWS = 100_000
DEFAULT_MAX_POWER_WATTS = 2000.0
# A container's GPU busy counter that has had no sample for this long is dropped (its pod is long gone), so
# a node running many short GPU pods does not export them all forever.
DEFAULT_GPU_BUSY_RETAIN_SECONDS = 3600.0
EXPOSITION_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


@dataclass(frozen=True)
class AgentOptions:
    sysfs_root: Path = Path("/sys")
    listen: str = DEFAULT_LISTEN  # loopback unless told otherwise: the metrics reveal node activity
    interval_seconds: float = DEFAULT_INTERVAL_SECONDS
    spool_dir: Path | None = None
    spool_rotate_seconds: float = DEFAULT_SPOOL_ROTATE_SECONDS
    spool_rotate_rows: int = DEFAULT_SPOOL_ROTATE_ROWS
    probe: bool = False
    container_cpu: bool = True  # per-container CPU seconds from <sysfs_root>/fs/cgroup
    container_gpu: bool = True  # per-container GPU busy seconds from NVML, pids mapped through proc_root
    proc_root: Path = Path("/proc")  # the host's /proc (hostPID): NVML reports host PIDs
    xrt_devices: tuple[str, ...] = ()  # Alveo PCI addresses to read with xbutil
    max_power_watts: float = DEFAULT_MAX_POWER_WATTS  # above this a counter delta is called ambiguous
    host_node: str = ""  # empty: NODE_NAME, else the host name


def host_node_name() -> str:
    """The Kubernetes node name (NODE_NAME, set from spec.nodeName), else this host's name."""
    return os.environ.get("NODE_NAME") or socket.gethostname()


def agent_version() -> str:
    try:
        return importlib.metadata.version("jouletrace")
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


def parse_listen(listen: str) -> tuple[str, int]:
    """``HOST:PORT`` or ``[IPV6]:PORT`` -> (host, port)."""
    host, sep, port = listen.rpartition(":")
    if not sep or not port.isdigit() or not host:
        raise ValueError(f"--listen {listen!r}: expected HOST:PORT, e.g. {DEFAULT_LISTEN} or [::1]:9471")
    return host.removeprefix("[").removesuffix("]"), int(port)


def build_sources(sysfs_root: str | Path, nvml=None, xrt_devices: Sequence[str] = ()) -> list[PowerSource]:
    """Every source the agent knows; one finding no device simply has no meters."""
    sysfs_root = Path(sysfs_root)
    sources: list[PowerSource] = [RaplSource(sysfs_root), NvmlSource(nvml), HwmonFpgaSource(sysfs_root)]
    if xrt_devices:
        sources.append(XrtFpgaSource(list(xrt_devices)))
    return sources


# ---------------------------------------------------------------------------------------------- probe


def probe_lines(sources: Iterable[PowerSource]) -> list[ProbeLine]:
    lines = []
    for source in sources:
        try:
            lines.extend(source.probe())
        except Exception as exc:  # a source must not hide the others' answers
            lines.append(ProbeLine(source.name, "probe()", False, f"raised {type(exc).__name__}: {exc}"))
    return lines


def format_probe(lines: Sequence[ProbeLine], containers: Sequence[ContainerCpu] | None = None) -> str:
    """One line per meter: readable or not, and the value read or why not."""
    what_width = max((len(line.what) for line in lines), default=0)
    source_width = max((len(line.source) for line in lines), default=0)
    out = [
        f"{line.source:<{source_width}}  {line.what:<{what_width}}  "
        f"{'readable' if line.readable else 'NOT readable':<12}  {line.detail}"
        for line in lines
    ]
    readable = sum(line.readable for line in lines)
    out.append(f"{readable} readable, {len(lines) - readable} not readable")
    if containers is not None:
        out.append(f"cgroup v2: CPU time of {len(containers)} pod containers readable")
    return "\n".join(out)


def _gpu_busy_reader(sources: Iterable[PowerSource], interval_seconds: float) -> GpuProcessBusy | None:
    """Per-process GPU time through the NVML source's driver session; None without a working driver."""
    nvml = next((source for source in sources if isinstance(source, NvmlSource)), None)
    if nvml is None or nvml.status != READY:
        return None
    return GpuProcessBusy(nvml, max(DEFAULT_MAX_SAMPLE_PERIOD_SECONDS, 2 * interval_seconds))


def gpu_busy_probe_lines(reader: GpuProcessBusy, proc_root: Path) -> list[ProbeLine]:
    """Per GPU whether per-process utilisation reads, and whether its pids are found in `proc_root`."""

    def describe(pids: list[int]) -> str:
        in_pods = sum(ids is not None for ids in PidContainers(proc_root).lookup(pids).values())
        absent = sum(not (proc_root / str(pid)).is_dir() for pid in pids)
        text = f"{in_pods} in pod containers"
        if absent:
            text += f", {absent} not in {proc_root} (NVML reports host PIDs: does the pod have hostPID?)"
        return text

    return reader.probe(describe)


def probe_report(sources: Iterable[PowerSource], cgroup_folder: Path | None = None) -> str:
    """The ``--probe`` text: every source's probe lines, and optionally the containers whose CPU is read."""
    containers = scan_containers(cgroup_folder) if cgroup_folder is not None else None
    return format_probe(probe_lines(sources), containers)


# -------------------------------------------------------------------------------------------- metrics


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


def _file_time(unix_seconds: float) -> str:
    return datetime.fromtimestamp(unix_seconds, UTC).strftime("%Y%m%dT%H%M%S.%fZ")


class Spool:
    """Raw readings buffered in memory and written as one ``power_samples`` Parquet file per rotation.

    Arrow and the schemas (which pull in pandas, ~100 MB resident) are imported when the first file is
    written, so an agent without a spool does not load them for its own sake.
    """

    def __init__(self, folder: Path, host_node: str, rotate_seconds: float, rotate_rows: int):
        self.folder = Path(folder)
        self.host_node = host_node
        self.rotate_seconds = rotate_seconds
        self.rotate_rows = rotate_rows
        self._readings: list[Reading] = []
        self._next_write_monotonic: float | None = None  # set by the first reading of a file

    def add(self, readings: Sequence[Reading], now_monotonic: float) -> Path | None:
        """Buffer readings; write the buffer when the file is old or big enough. Returns the file written."""
        if not readings:
            return None
        if self._next_write_monotonic is None:
            self._next_write_monotonic = now_monotonic + self.rotate_seconds
        self._readings.extend(readings)
        due = now_monotonic >= self._next_write_monotonic or len(self._readings) >= self.rotate_rows
        return self.flush(now_monotonic) if due else None

    def table(self) -> pa.Table:
        """The buffer as a ``power_samples`` table."""
        import pyarrow as pa

        import schemas
        from schemas.tables import UTC_TIMESTAMP

        readings = self._readings
        timestamps_us = pa.array([round(r.unix_seconds * 1e6) for r in readings], pa.int64())
        return schemas.conform(
            "power_samples",
            {
                "host_node": [self.host_node] * len(readings),
                "device_kind": [r.meter.device_kind for r in readings],
                "device_id": [r.meter.device_id for r in readings],
                "timestamp": timestamps_us.cast(UTC_TIMESTAMP),
                "value": [r.value for r in readings],
                "value_kind": [r.meter.value_kind for r in readings],
                "counter_max_joules": [
                    r.meter.counter_max_joules if r.meter.value_kind == ENERGY_COUNTER else None
                    for r in readings
                ],
                "source": [r.meter.source for r in readings],
                "provenance": ["measured"] * len(readings),
            },
        )

    def flush(self, now_monotonic: float | None = None) -> Path | None:
        """Write the buffer to a new file (atomically). On failure keep it and retry one rotation later."""
        from datasets.traces import write_parquet_atomic

        if not self._readings:
            return None
        start = min(r.unix_seconds for r in self._readings)
        end = max(r.unix_seconds for r in self._readings)
        host = re.sub(r"[^A-Za-z0-9._-]", "_", self.host_node)
        path = self.folder / f"power_samples-{host}-{_file_time(start)}-{_file_time(end)}.parquet"
        try:
            write_parquet_atomic(self.table(), path)
        except OSError:
            if now_monotonic is not None:
                self._next_write_monotonic = now_monotonic + self.rotate_seconds
            raise
        self._readings = []
        self._next_write_monotonic = None
        return path


# ------------------------------------------------------------------------------------------- sampling


class Sampler:
    """One sampling step: read every source, accumulate, update the metrics, spool the raw readings."""

    def __init__(
        self,
        sources: Sequence[PowerSource],
        accumulator: EnergyAccumulator,
        metrics: Metrics,
        spool: Spool | None = None,
        cgroup_folder: Path | None = None,
        gpu_busy: GpuBusyCounters | None = None,
    ):
        self.sources = list(sources)
        self.accumulator = accumulator
        self.metrics = metrics
        self.spool = spool
        self.cgroup_folder = cgroup_folder
        self.gpu_busy = gpu_busy

    def read(self) -> tuple[list[Reading], list[ReadError]]:
        readings: list[Reading] = []
        errors: list[ReadError] = []
        for source in self.sources:
            try:
                result = source.read()
            except Exception as exc:  # one broken source must not stop the others being sampled
                errors.append(ReadError(source.name, "read()", f"raised {type(exc).__name__}: {exc}"))
                continue
            errors.extend(result.errors)
            for reading in result.readings:
                if math.isfinite(reading.value) and reading.value >= 0:
                    readings.append(reading)
                else:
                    errors.append(
                        ReadError(reading.meter.source, reading.meter.path, f"invalid value {reading.value}")
                    )
        return readings, errors

    def step(self) -> None:
        started = time.monotonic()
        readings, errors = self.read()
        accumulated = []
        for reading in readings:
            try:
                accumulated.append(self.accumulator.update(reading))
            except ValueError as exc:  # e.g. a reading older than the meter's previous one
                errors.append(ReadError(reading.meter.source, reading.meter.path, str(exc)))
        containers = scan_containers(self.cgroup_folder) if self.cgroup_folder is not None else None
        gpu_busy = None
        if self.gpu_busy is not None:
            try:
                errors.extend(self.gpu_busy.update(time.monotonic()))
            except Exception as exc:  # per-process GPU time must not stop the energy being sampled
                errors.append(ReadError("nvml", "process utilisation", f"raised {type(exc).__name__}: {exc}"))
            gpu_busy = GpuBusySnapshot(self.gpu_busy.containers(), self.gpu_busy.outside_pods())
        self.metrics.record(
            accumulated,
            self.accumulator.counts(),
            errors,
            containers,
            time.monotonic() - started,
            gpu_busy,
        )
        if self.spool is not None:
            try:
                self.spool.add(readings, time.monotonic())
            except OSError as exc:
                self.metrics.count_spool_write_error()
                print(f"jouletrace agent: spool write failed, keeping the rows: {exc}", file=sys.stderr)


# --------------------------------------------------------------------------------------------- server


class _MetricsHandler(BaseHTTPRequestHandler):
    server: MetricsServer

    def do_GET(self) -> None:
        if self.path.partition("?")[0] != "/metrics":
            self._reply(404, "text/plain; charset=utf-8", b"jouletrace agent: metrics are at /metrics\n")
            return
        self._reply(200, EXPOSITION_CONTENT_TYPE, self.server.metrics.render().encode())

    def _reply(self, status: int, content_type: str, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format, *args) -> None:
        """Silent: a log line per scrape would flood the pod's log."""


class MetricsServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, listen: str, metrics: Metrics):
        host, port = parse_listen(listen)
        self.address_family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.metrics = metrics
        super().__init__((host, port), _MetricsHandler)

    def server_bind(self) -> None:
        """Bind without HTTPServer's getfqdn(), a reverse-DNS lookup that can hang in a pod without DNS."""
        self.socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.socket.bind(self.server_address)
        self.server_address = self.socket.getsockname()
        self.server_name, self.server_port = str(self.server_address[0]), self.server_address[1]


# ---------------------------------------------------------------------------------------------- agent


class Agent:
    """The sampler, its metrics server and spool, wired from options."""

    def __init__(self, options: AgentOptions, sources: Sequence[PowerSource]):
        self.options = options
        self.host_node = options.host_node or host_node_name()
        self.metrics = Metrics(self.host_node, agent_version())
        spool = None
        if options.spool_dir is not None:
            spool = Spool(
                options.spool_dir, self.host_node, options.spool_rotate_seconds, options.spool_rotate_rows
            )
        gpu_busy = None
        if options.container_gpu:
            reader = _gpu_busy_reader(sources, options.interval_seconds)
            if reader is not None:
                gpu_busy = GpuBusyCounters(reader, PidContainers(options.proc_root))
        self.sampler = Sampler(
            sources,
            EnergyAccumulator(max_power_watts=options.max_power_watts),
            self.metrics,
            spool,
            cgroup_root(options.sysfs_root) if options.container_cpu else None,
            gpu_busy,
        )
        self.server: MetricsServer | None = None

    def serve(self) -> tuple[str, int]:
        """Start the metrics server in a thread; returns the address it bound (port 0 picks a free one)."""
        self.server = MetricsServer(self.options.listen, self.metrics)
        threading.Thread(target=self.server.serve_forever, name="jouletrace-metrics", daemon=True).start()
        return self.server.server_address[0], self.server.server_address[1]

    def run(self, stop: threading.Event) -> None:
        """Sample at start + k * interval on the monotonic clock until stopped; late steps skip ticks, not drift."""
        interval = self.options.interval_seconds
        start = time.monotonic()
        tick = 0
        while not stop.is_set():
            self.sampler.step()
            tick = max(tick + 1, math.floor((time.monotonic() - start) / interval) + 1)
            stop.wait(start + tick * interval - time.monotonic())

    def close(self) -> None:
        """Stop serving and write what the spool still holds."""
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
        if self.sampler.spool is not None:
            self.sampler.spool.flush()


def _stop_on_signals(stop: threading.Event) -> Callable[[], None]:
    """SIGTERM (pod deletion) and SIGINT set `stop`; returns a function restoring the old handlers."""
    if threading.current_thread() is not threading.main_thread():
        return lambda: None
    previous = {sig: signal.signal(sig, lambda *_: stop.set()) for sig in (signal.SIGTERM, signal.SIGINT)}

    def restore() -> None:
        for sig, handler in previous.items():
            signal.signal(sig, handler)

    return restore


def run_agent(
    options: AgentOptions, stop: threading.Event | None = None, sources: Sequence[PowerSource] | None = None
) -> int:
    """``jouletrace agent``: probe and exit, or sample and serve until `stop` is set (or SIGTERM/SIGINT).

    `sources` defaults to build_sources(); sources built here are closed here, given ones are the caller's.
    """
    built = sources is None
    if sources is None:
        sources = build_sources(options.sysfs_root, xrt_devices=options.xrt_devices)
    try:
        if options.probe:
            return _probe(options, sources)
        _serve_until_stopped(options, sources, stop if stop is not None else threading.Event())
        return 0
    finally:
        if built:
            for source in sources:
                close = getattr(source, "close", None)  # NVML holds a driver session
                if close is not None:
                    close()


def _probe(options: AgentOptions, sources: Sequence[PowerSource]) -> int:
    lines = probe_lines(sources)
    reader = _gpu_busy_reader(sources, options.interval_seconds) if options.container_gpu else None
    if reader is not None:
        lines += gpu_busy_probe_lines(reader, options.proc_root)
    containers = scan_containers(cgroup_root(options.sysfs_root)) if options.container_cpu else None
    print(format_probe(lines, containers))
    return 0 if any(line.readable for line in lines) else 1


def _serve_until_stopped(
    options: AgentOptions, sources: Sequence[PowerSource], stop: threading.Event
) -> None:
    restore_signals = _stop_on_signals(stop)
    agent = Agent(options, sources)
    try:
        host, port = agent.serve()
        meters = sum(len(source.meters()) for source in sources)
        print(
            f"jouletrace agent on {agent.host_node}: {meters} meters every {options.interval_seconds:g} s, "
            f"metrics at http://{host}:{port}/metrics",
            file=sys.stderr,
            flush=True,
        )
        agent.run(stop)
    finally:
        try:
            agent.close()  # writes the spool: keep the handlers so a second SIGTERM cannot cut it short
        finally:
            restore_signals()


def add_agent_arguments(parser: argparse.ArgumentParser) -> None:
    """The ``jouletrace agent`` options (for the CLI to add to its sub-command)."""
    parser.add_argument(
        "--sysfs-root", type=Path, default=Path("/sys"), help="where /sys is (in a pod: /host/sys)"
    )
    parser.add_argument("--listen", default=DEFAULT_LISTEN, help="HOST:PORT for /metrics (default loopback)")
    parser.add_argument(
        "--interval", type=float, default=DEFAULT_INTERVAL_SECONDS, help="seconds between samples"
    )
    parser.add_argument("--spool", type=Path, help="also write power_samples Parquet files to this folder")
    parser.add_argument(
        "--spool-rotate-seconds",
        type=float,
        default=DEFAULT_SPOOL_ROTATE_SECONDS,
        help="new spool file after",
    )
    parser.add_argument(
        "--spool-rotate-rows", type=int, default=DEFAULT_SPOOL_ROTATE_ROWS, help="or after rows"
    )
    parser.add_argument("--probe", action="store_true", help="print which meters are readable, then exit")
    parser.add_argument(
        "--no-container-cpu", action="store_true", help="do not export per-container CPU time from cgroup v2"
    )
    parser.add_argument(
        "--no-container-gpu",
        action="store_true",
        help="do not export per-container GPU busy time from NVML's per-process utilisation",
    )
    parser.add_argument(
        "--proc-root",
        type=Path,
        default=Path("/proc"),
        help="the host's /proc, to map NVML's host PIDs to pod containers (in a pod: needs hostPID)",
    )
    parser.add_argument(
        "--xrt-device", action="append", default=[], help="Alveo PCI address to read with xbutil"
    )
    parser.add_argument(
        "--max-power-watts", type=float, default=DEFAULT_MAX_POWER_WATTS, help="power limit for wrap checks"
    )


def options_from_args(args: argparse.Namespace) -> AgentOptions:
    if args.interval <= 0:
        raise ValueError(f"--interval {args.interval}: must be positive")
    return AgentOptions(
        sysfs_root=args.sysfs_root,
        listen=args.listen,
        interval_seconds=args.interval,
        spool_dir=args.spool,
        spool_rotate_seconds=args.spool_rotate_seconds,
        spool_rotate_rows=args.spool_rotate_rows,
        probe=args.probe,
        container_cpu=not args.no_container_cpu,
        container_gpu=not args.no_container_gpu,
        proc_root=args.proc_root,
        xrt_devices=tuple(args.xrt_device),
        max_power_watts=args.max_power_watts,
    )


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m collectors.agent``: the same as ``jouletrace agent``."""
    parser = argparse.ArgumentParser(prog="jouletrace agent", description=__doc__.splitlines()[0])
    add_agent_arguments(parser)
    return run_agent(options_from_args(parser.parse_args(argv)))


if __name__ == "__main__":
    sys.exit(main())
