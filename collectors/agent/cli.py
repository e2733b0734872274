"""The ``jouletrace agent`` command line: its options and the options object they make."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

from collectors.agent.options import (
    DEFAULT_INTERVAL_SECONDS,
    DEFAULT_LISTEN,
    DEFAULT_MAX_POWER_WATTS,
    DEFAULT_SPOOL_ROTATE_ROWS,
    DEFAULT_SPOOL_ROTATE_SECONDS,
    AgentOptions,
)


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
    return run_from_args(parser.parse_args(argv))


def run_from_args(args: argparse.Namespace) -> int:
    """Run the agent with the options of parsed arguments (its server is imported only to run it)."""
    from collectors.agent.server import run_agent

    return run_agent(options_from_args(args))
