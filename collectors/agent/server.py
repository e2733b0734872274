"""The running agent: the sampling thread and the metrics server (`run_agent`).

A sample reads every source, accumulates the energy and updates the metric state under a lock; the HTTP
server renders that state in its own threads, so a slow scrape never delays a sample.
"""

from __future__ import annotations

import math
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable, Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import TYPE_CHECKING

from collectors.meters.accumulate import EnergyAccumulator
from collectors.meters.cgroups import PidContainers, cgroup_root, scan_containers
from collectors.meters.source import PowerSource, ReadError, Reading

if TYPE_CHECKING:
    pass
from collectors.agent.metrics import GpuBusyCounters, GpuBusySnapshot, Metrics
from collectors.agent.options import (
    EXPOSITION_CONTENT_TYPE,
    AgentOptions,
    agent_version,
    host_node_name,
    parse_listen,
)
from collectors.agent.probe import (
    build_sources,
    format_probe,
    gpu_busy_probe_lines,
    gpu_busy_reader,
    probe_lines,
)
from collectors.agent.spool import Spool

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
            reader = gpu_busy_reader(sources, options.interval_seconds)
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
    reader = gpu_busy_reader(sources, options.interval_seconds) if options.container_gpu else None
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
