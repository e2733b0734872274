"""Generate the sample world: a recorded-sources folder (docs/recorded-sources.md) plus its ground truth.

One seed fixes everything, including the manifest's created_at, so that a seed always yields the same
bytes and a test can compare worlds file by file.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

import schemas
from datasets.sample_world.argo import WorkflowRenderer, node_id, rfc3339
from datasets.sample_world.cluster import build_cluster, node_list
from datasets.sample_world.plan import NAMESPACE, plan_world
from datasets.sample_world.power import (
    attempt_loads,
    choose_gap,
    choose_reset,
    device_traces,
    node_readings,
    reading_times,
    time_slice,
    truth_row,
)
from datasets.sample_world.scheduler import simulate
from datasets.sample_world.usage import container_readings, main_containers

GENERATOR = "jouletrace.sample_world"
WORLD_START = datetime(2026, 11, 2, 8, 0, 0, tzinfo=UTC)
IDLE_TAIL_SECONDS = 150.0
# The folders a previous sample world may have left files in that this world does not write again.
_OWNED_PATTERNS = (
    "argo/workflows/*/*.json",
    "kubernetes/pods/*/*.json",
    "power/*.parquet",
    "containers/*.parquet",
)


@dataclass
class SampleWorldSummary:
    """What was generated; the model's idle powers and injected faults are there for checking attribution."""

    out_dir: Path
    n_workflows: int
    n_tasks: int
    n_power_samples: int
    n_container_samples: int
    nodes: list[str]
    start: datetime
    end: datetime
    idle_power_watts: dict[str, dict[str, float]] = field(default_factory=dict)
    agent_gap: tuple[str, datetime, datetime] | None = None
    counter_reset: tuple[str, str, datetime] | None = None


def generate(
    out_dir: str | Path, n_workflows: int = 24, seed: int = 7, start: datetime = WORLD_START
) -> SampleWorldSummary:
    """Write the sample world into `out_dir`, replacing a previous sample world's files there. `start`
    (UTC) moves the whole world in time, e.g. across midnight to exercise collection by day."""
    if n_workflows < 1:
        raise ValueError(f"n_workflows must be at least 1, got {n_workflows}")
    out = Path(out_dir)
    cluster_rng, plan_rng, schedule_rng, render_rng, power_rng = (
        np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(5)
    )
    cluster = build_cluster(cluster_rng)
    hosts = {node.name: node for node in cluster}
    plans, pods = plan_world(plan_rng, n_workflows)
    outcomes = simulate(schedule_rng, plans, pods, cluster)
    attempts = [attempt for outcome in outcomes for attempt in outcome.attempts]
    end_seconds = float(math.ceil(max(a.end_seconds for a in attempts) + IDLE_TAIL_SECONDS))

    files: dict[str, bytes] = {"kubernetes/nodes.json": _json(node_list(cluster, cluster_rng))}
    containers = {}
    for index, plan in enumerate(plans):
        members = [i for i, pod in enumerate(pods) if pod.workflow == index]
        workflow, pod_list = WorkflowRenderer(
            render_rng, plan, [pods[i] for i in members], [outcomes[i] for i in members], cluster, start
        ).render()
        files[f"argo/workflows/{NAMESPACE}/{plan.name}.json"] = _json(workflow)
        files[f"kubernetes/pods/{NAMESPACE}/{plan.name}.json"] = _json(pod_list)
        containers |= main_containers(pod_list)

    loads_by_host: dict[str, list] = {node.name: [] for node in cluster}
    usage_by_host: dict[str, list] = {node.name: [] for node in cluster}
    ran, demands, holders = [], [], []
    for attempt in attempts:
        pod, plan = pods[attempt.pod], plans[pods[attempt.pod].workflow]
        ids = {"workflow_uid": plan.uid, "task_id": node_id(plan.name, pod.attempt_node_name(attempt.number))}
        usage, loads, gpu_demands = attempt_loads(power_rng, attempt, pod, hosts[attempt.host_node])
        ran.append((ids, attempt, loads))
        usage_by_host[attempt.host_node].append((containers[ids["task_id"]], None, usage))
        demands += gpu_demands
        holders += [len(ran) - 1] * len(gpu_demands)
    # A GPU's holders share it, so their power is known only once every attempt's demand is.
    for holder, demand, (busy, load) in zip(holders, demands, time_slice(demands), strict=True):
        ids, attempt, loads = ran[holder]
        loads.append(load)
        usage_by_host[attempt.host_node].append((containers[ids["task_id"]], demand.device.device_id, busy))
    truth = []
    for ids, attempt, loads in ran:
        truth += [ids | truth_row(load, attempt.runtime_seconds) for load in loads]
        loads_by_host[attempt.host_node] += loads
    gap = choose_gap(power_rng, cluster, end_seconds)
    gpu_node = next(node for node in cluster if node.gpu_ids)
    reset = choose_reset(power_rng, gpu_node, attempts, gap, end_seconds)
    start_us = int(start.timestamp()) * 1_000_000
    n_samples = n_container_samples = 0
    for node in cluster:
        traces = device_traces(node, loads_by_host[node.name], end_seconds)
        readings = reading_times(power_rng, node, end_seconds, gap)
        table = node_readings(power_rng, node, traces, readings, reset, start_us)
        files[f"power/{node.name}.parquet"] = _parquet(schemas.validate("power_samples", table))
        n_samples += table.num_rows
        # The agent reads the cgroup counters with RAPL and a GPU's busy-time counters with its energy.
        counter_times = {None: readings["package-0"]} | {gpu: readings[gpu] for gpu in node.gpu_ids}
        counters = container_readings(node.name, usage_by_host[node.name], counter_times, start_us)
        files[f"containers/{node.name}.parquet"] = _parquet(schemas.validate("container_samples", counters))
        n_container_samples += counters.num_rows
    files["truth/task_energy.parquet"] = _parquet(
        schemas.validate("task_energy", schemas.conform("task_energy", truth))
    )

    end = start + timedelta(seconds=end_seconds)
    manifest = {
        "cluster": "sample",
        "provenance": "synthetic",
        "generator": GENERATOR,
        "seed": seed,
        "created_at": rfc3339(end + timedelta(minutes=5)),
    }
    _remove_stale(out, {out / name for name in files})
    for name, data in files.items():
        _write_atomic(out / name, data)
    _write_atomic(out / "manifest.json", _json(manifest))
    return SampleWorldSummary(
        out_dir=out,
        n_workflows=len(plans),
        n_tasks=len(attempts),
        n_power_samples=n_samples,
        n_container_samples=n_container_samples,
        nodes=[node.name for node in cluster],
        start=start,
        end=end,
        idle_power_watts={node.name: node.idle_power_watts() for node in cluster},
        agent_gap=(gap.host_node, _moment(start, gap.start_seconds), _moment(start, gap.end_seconds)),
        counter_reset=(reset.host_node, reset.device_id, _moment(start, reset.at_seconds)),
    )


def _moment(start: datetime, seconds: float) -> datetime:
    return start + timedelta(seconds=seconds)


def _json(obj: dict) -> bytes:
    return (json.dumps(obj, indent=2, sort_keys=True) + "\n").encode()


def _parquet(table: pa.Table) -> bytes:
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink)
    return sink.getvalue().to_pybytes()


def _remove_stale(out: Path, keep: set[Path]) -> None:
    """Delete the files of an earlier sample world that this one does not rewrite (other worlds' files stay)."""
    manifest = out / "manifest.json"
    if not manifest.is_file():
        return
    try:
        previous = json.loads(manifest.read_text())
    except ValueError:
        return
    if previous.get("generator") != GENERATOR:
        return
    for pattern in _OWNED_PATTERNS:
        for path in sorted(out.glob(pattern)):
            if path not in keep:
                path.unlink()


def _write_atomic(path: Path, data: bytes) -> None:
    """Readers never see a half-written file: write a temporary file beside it, then rename over it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
