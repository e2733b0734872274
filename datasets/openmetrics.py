"""The sample world's meter readings as OpenMetrics text in one exporter's dialect, for a real Prometheus.

``promtool tsdb create-blocks-from openmetrics FILE DIR`` turns the file into TSDB blocks, so the
Prometheus reader (collectors/cluster/prometheus.py) can be tested against the exporters' own metric names and
labels (docs: shared/reference/energy-measurement.md §2.4, §4.1, §4.3) with the world as ground truth.

Dialects; every series also has ``instance="<node InternalIP>:<exporter port>"``:
- agent: ``jouletrace_energy_joules_total{device_kind,device_id,source}`` for every counter, made
  monotone as the agent exports it (the first raw reading plus ``unwrap_counter``'s energy since it, over
  the written millisecond times); ``jouletrace_power_watts`` for the gauges (NVML, hwmon FPGA);
  ``jouletrace_agent_info{host_node,version} 1``.
- node-exporter: ``node_rapl_{package,dram}_joules_total{index,path}``, the RAW counters (they wrap at
  counter_max_joules, as node_exporter never corrects them); ``node_uname_info{nodename,...} 1``.
- dcgm: ``DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION`` (the raw NVML counter in mJ, with its driver-reload
  reset) and ``DCGM_FI_DEV_POWER_USAGE`` (W) ``{gpu,UUID,device,modelName,Hostname}``; GPUs only.
- kepler: ``kepler_node_cpu_joules_total{zone,node_name}`` per zone package|dram, the sockets' monotone
  counters summed into one series per zone as Kepler 0.10 aggregates them (at the readings all sockets
  share), and ``kepler_node_gpu_joules_total{gpu,gpu_uuid,gpu_name,vendor,node_name}`` (monotone NVML).

Info series (agent_info, uname_info) get a sample at each CPU-package reading of their node, as a scrape
would. Timestamps are the world's microseconds rounded to the nearest millisecond (Prometheus' resolution),
written as seconds with three decimals; values are the shortest text that reads back to the same float.
The DCGM energy family is typed ``unknown``: an OpenMetrics counter needs the ``_total`` suffix DCGM's name
lacks, and Prometheus' TSDB keeps no type anyway.
"""

from __future__ import annotations

import os
import subprocess
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa

from collectors.cluster.recorded import RecordedSources
from datasets.attribution import unwrap_counter
from schemas.kinds import ENERGY_COUNTER, POWER_GAUGE

DIALECTS = ("agent", "node-exporter", "dcgm", "kepler")
EXPORTER_PORTS = {"agent": 9471, "node-exporter": 9100, "dcgm": 9400, "kepler": 28282}
AGENT_VERSION = "sample-world"
_RAPL_ZONES = {"cpu_package": "package", "dram": "dram"}


@dataclass(frozen=True)
class Readings:
    """One device's readings of one value kind, times in ms since the epoch (as Prometheus stores them)."""

    host_node: str
    device_kind: str
    device_id: str
    value_kind: str
    source: str
    times_ms: np.ndarray
    values: np.ndarray
    counter_max_joules: float | None

    def monotone_joules(self) -> np.ndarray:
        """The counter wrap- and reset-corrected as the agent exports it: first reading + energy since."""
        seconds = (self.times_ms - self.times_ms[0]) / 1000.0
        since_first, _ = unwrap_counter(self.values, seconds, self.counter_max_joules)
        return self.values[0] + since_first


@dataclass(frozen=True)
class _Node:
    address: str
    kernel: str
    gpu_model: str


@dataclass(frozen=True)
class _Series:
    labels: dict[str, str]
    times_ms: np.ndarray
    values: np.ndarray


@dataclass(frozen=True)
class _Family:
    """One metric family: promtool needs each family's series together, each series in time order."""

    name: str
    kind: str
    sample_name: str
    series: list[_Series]


def world_readings(world_dir: Path) -> list[Readings]:
    """Every device series of the world's power/<node>.parquet files, times rounded to the millisecond."""
    return _readings(RecordedSources(world_dir).power_samples())


def _readings(table: pa.Table) -> list[Readings]:
    if table.num_rows == 0:
        return []
    columns = {
        name: table[name].combine_chunks().to_numpy(zero_copy_only=False)
        for name in ("host_node", "device_kind", "device_id", "value_kind", "source", "value")
    }
    times_us = table["timestamp"].combine_chunks().cast(pa.int64()).to_numpy()
    counter_max = table["counter_max_joules"].combine_chunks().to_numpy(zero_copy_only=False)
    key = [columns[name] for name in ("host_node", "device_kind", "device_id", "value_kind")]
    # power_samples() sorts by host, kind, device, value kind, then time: a new key starts a new series.
    changed = np.zeros(table.num_rows, dtype=bool)
    changed[0] = True
    for column in key:
        changed[1:] |= column[1:] != column[:-1]
    starts = np.flatnonzero(changed)
    readings = []
    for lo, hi in zip(starts, [*starts[1:], table.num_rows], strict=True):
        wrap = counter_max[lo]
        readings.append(
            Readings(
                host_node=str(columns["host_node"][lo]),
                device_kind=str(columns["device_kind"][lo]),
                device_id=str(columns["device_id"][lo]),
                value_kind=str(columns["value_kind"][lo]),
                source=str(columns["source"][lo]),
                times_ms=(times_us[lo:hi] + 500) // 1000,
                values=columns["value"][lo:hi].astype(float),
                counter_max_joules=None if wrap is None or np.isnan(wrap) else float(wrap),
            )
        )
    return readings


def _nodes(node_list: dict) -> dict[str, _Node]:
    nodes = {}
    for item in node_list.get("items", []):
        status = item.get("status", {})
        addresses = {a.get("type"): a.get("address") for a in status.get("addresses", [])}
        name = item["metadata"]["name"]
        nodes[name] = _Node(
            address=addresses.get("InternalIP") or name,
            kernel=status.get("nodeInfo", {}).get("kernelVersion", ""),
            gpu_model=item["metadata"]
            .get("labels", {})
            .get("nvidia.com/gpu.product", "")
            .replace("-", " ", 1),
        )
    return nodes


def _info_times(readings: list[Readings]) -> dict[str, np.ndarray]:
    """Per node, the times an info series is sampled at: its first CPU-package series' readings."""
    times: dict[str, np.ndarray] = {}
    for series in sorted(readings, key=lambda r: (r.device_kind != "cpu_package", r.device_id)):
        times.setdefault(series.host_node, series.times_ms)
    return times


def _agent(readings: list[Readings], nodes: dict[str, _Node]) -> list[_Family]:
    def instance(host: str) -> str:
        return f"{nodes[host].address}:{EXPORTER_PORTS['agent']}"

    def device(series: Readings) -> dict[str, str]:
        return {
            "device_id": series.device_id,
            "device_kind": series.device_kind,
            "instance": instance(series.host_node),
            "source": series.source,
        }

    info = [
        _Series(
            {"host_node": host, "instance": instance(host), "version": AGENT_VERSION},
            times,
            np.ones(times.size),
        )
        for host, times in _info_times(readings).items()
    ]
    counters = [
        _Series(device(r), r.times_ms, r.monotone_joules())
        for r in readings
        if r.value_kind == ENERGY_COUNTER
    ]
    gauges = [_Series(device(r), r.times_ms, r.values) for r in readings if r.value_kind == POWER_GAUGE]
    return [
        _Family("jouletrace_agent_info", "gauge", "jouletrace_agent_info", info),
        _Family("jouletrace_energy_joules", "counter", "jouletrace_energy_joules_total", counters),
        _Family("jouletrace_power_watts", "gauge", "jouletrace_power_watts", gauges),
    ]


def _node_exporter(readings: list[Readings], nodes: dict[str, _Node]) -> list[_Family]:
    def instance(host: str) -> str:
        return f"{nodes[host].address}:{EXPORTER_PORTS['node-exporter']}"

    uname = [
        _Series(
            {
                "domainname": "(none)",
                "instance": instance(host),
                "machine": "x86_64",
                "nodename": host,
                "release": nodes[host].kernel,
                "sysname": "Linux",
            },
            times,
            np.ones(times.size),
        )
        for host, times in _info_times(readings).items()
    ]
    families = [_Family("node_uname_info", "gauge", "node_uname_info", uname)]
    for kind, zone in _RAPL_ZONES.items():
        series = []
        for r in readings:
            if r.device_kind != kind or r.value_kind != ENERGY_COUNTER:
                continue
            socket = r.device_id.rsplit("-", 1)[1]
            path = f"/sys/devices/virtual/powercap/intel-rapl/intel-rapl:{socket}"
            if zone == "dram":
                path += f"/intel-rapl:{socket}:0"
            labels = {"index": socket, "instance": instance(r.host_node), "path": path}
            series.append(_Series(labels, r.times_ms, r.values))
        families.append(
            _Family(f"node_rapl_{zone}_joules", "counter", f"node_rapl_{zone}_joules_total", series)
        )
    return families


def _gpu_index(readings: list[Readings]) -> dict[str, str]:
    """GPU UUID -> its index on its node (UUID order), as nvidia-smi would number them."""
    by_node: dict[str, set[str]] = {}
    for r in readings:
        if r.device_kind == "gpu":
            by_node.setdefault(r.host_node, set()).add(r.device_id)
    return {uuid: str(i) for uuids in by_node.values() for i, uuid in enumerate(sorted(uuids))}


def _dcgm(readings: list[Readings], nodes: dict[str, _Node]) -> list[_Family]:
    index = _gpu_index(readings)

    def labels(r: Readings) -> dict[str, str]:
        return {
            "Hostname": r.host_node,
            "UUID": r.device_id,
            "device": f"nvidia{index[r.device_id]}",
            "gpu": index[r.device_id],
            "instance": f"{nodes[r.host_node].address}:{EXPORTER_PORTS['dcgm']}",
            "modelName": nodes[r.host_node].gpu_model,
        }

    gpus = [r for r in readings if r.device_kind == "gpu"]
    energy = [
        _Series(labels(r), r.times_ms, np.rint(r.values * 1000.0))
        for r in gpus
        if r.value_kind == ENERGY_COUNTER
    ]
    power = [_Series(labels(r), r.times_ms, r.values) for r in gpus if r.value_kind == POWER_GAUGE]
    return [
        _Family(
            "DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION", "unknown", "DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION", energy
        ),
        _Family("DCGM_FI_DEV_POWER_USAGE", "gauge", "DCGM_FI_DEV_POWER_USAGE", power),
    ]


def _summed(parts: list[Readings]) -> tuple[np.ndarray, np.ndarray]:
    """The sum of monotone counters at the times every part has a reading."""
    times = parts[0].times_ms
    for part in parts[1:]:
        times = np.intersect1d(times, part.times_ms)
    total = np.zeros(times.size)
    for part in parts:
        total += part.monotone_joules()[np.searchsorted(part.times_ms, times)]
    return times, total


def _kepler(readings: list[Readings], nodes: dict[str, _Node]) -> list[_Family]:
    def instance(host: str) -> str:
        return f"{nodes[host].address}:{EXPORTER_PORTS['kepler']}"

    zones: dict[tuple[str, str], list[Readings]] = {}
    for r in readings:
        if r.device_kind in _RAPL_ZONES and r.value_kind == ENERGY_COUNTER:
            zones.setdefault((r.host_node, _RAPL_ZONES[r.device_kind]), []).append(r)
    cpu = [
        _Series({"instance": instance(host), "node_name": host, "zone": zone}, *_summed(parts))
        for (host, zone), parts in zones.items()
    ]
    index = _gpu_index(readings)
    gpu = [
        _Series(
            {
                "gpu": index[r.device_id],
                "gpu_name": nodes[r.host_node].gpu_model,
                "gpu_uuid": r.device_id,
                "instance": instance(r.host_node),
                "node_name": r.host_node,
                "vendor": "nvidia",
            },
            r.times_ms,
            r.monotone_joules(),
        )
        for r in readings
        if r.device_kind == "gpu" and r.value_kind == ENERGY_COUNTER
    ]
    return [
        _Family("kepler_node_cpu_joules", "counter", "kepler_node_cpu_joules_total", cpu),
        _Family("kepler_node_gpu_joules", "counter", "kepler_node_gpu_joules_total", gpu),
    ]


_DIALECT_FAMILIES: dict[str, Callable[[list[Readings], dict[str, _Node]], list[_Family]]] = {
    "agent": _agent,
    "node-exporter": _node_exporter,
    "dcgm": _dcgm,
    "kepler": _kepler,
}


def _label_text(labels: dict[str, str]) -> str:
    escaped = (
        (key, value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n"))
        for key, value in labels.items()
    )
    return "{" + ",".join(f'{key}="{value}"' for key, value in escaped) + "}"


def _lines(family: _Family) -> Iterator[str]:
    yield f"# TYPE {family.name} {family.kind}\n"
    for series in family.series:
        prefix = family.sample_name + _label_text(series.labels) + " "
        for value, ms in zip(series.values.tolist(), series.times_ms.tolist(), strict=True):
            yield f"{prefix}{value!r} {ms // 1000}.{ms % 1000:03d}\n"


def write_openmetrics(world_dir: Path, out_file: Path, dialect: str) -> int:
    """Write the world's readings as `dialect` OpenMetrics text to `out_file`; returns the samples written.

    Written to a temporary sibling and renamed over `out_file`, so a reader never sees half a file.
    """
    if dialect not in _DIALECT_FAMILIES:
        raise ValueError(f"dialect {dialect!r} is not one of {DIALECTS}")
    sources = RecordedSources(world_dir)
    readings = _readings(sources.power_samples())
    families = _DIALECT_FAMILIES[dialect](readings, _nodes(sources.node_list()))
    out_file = Path(out_file)
    out_file.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=out_file.parent, prefix=f".{out_file.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            for family in families:
                handle.writelines(_lines(family))
            handle.write("# EOF\n")
        os.replace(tmp, out_file)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return sum(series.times_ms.size for family in families for series in family.series)


def create_tsdb_blocks(openmetrics_file: Path, tsdb_dir: Path, promtool: str = "promtool") -> None:
    """Turn an OpenMetrics file into Prometheus TSDB blocks (`promtool tsdb create-blocks-from openmetrics`).

    Start Prometheus on `tsdb_dir` with a long `--storage.tsdb.retention.time` so past readings are kept.
    """
    done = subprocess.run(
        [promtool, "tsdb", "create-blocks-from", "openmetrics", str(openmetrics_file), str(tsdb_dir)],
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        raise RuntimeError(f"promtool could not import {openmetrics_file}: {done.stderr.strip()[-1000:]}")
