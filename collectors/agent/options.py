"""What the node agent is told: where /sys is, where to listen, how often to sample, where to spool."""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    pass


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
    import importlib.metadata  # reads every installed distribution's metadata: only when asked

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
