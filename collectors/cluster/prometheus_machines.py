"""`machines` rows from what exporters tell Prometheus about a node, for nodes the Kubernetes API does not
describe (no access, or the node is gone).

Read over the collection window, never required (a node none of them describes stays unknown):
- node_exporter: ``node_cpu_info{cpu,package,model_name}`` (with ``--collector.cpu.info``): cores = the
  distinct ``cpu`` (logical CPUs, as a Node's ``capacity.cpu``), sockets = the distinct ``package``, the
  CPU model = the most common ``model_name``, and the nominal speed where the model name states it
  ("... @ 3.10GHz", Intel's brand strings); without it the cores are the distinct ``cpu`` of
  ``node_cpu_seconds_total{mode="idle"}`` (a default collector). ``node_memory_MemTotal_bytes`` gives the
  memory. Hosts from ``node_uname_info{nodename}`` joined on ``instance`` (or the series' own ``node``).
- Kepler 0.10+: ``kepler_node_cpu_info{processor,physical_id,model_name,node_name}`` where node_exporter
  says nothing.
- DCGM exporter: one GPU per ``UUID`` of ``DCGM_FI_DEV_POWER_USAGE`` / ``DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION``,
  its model the ``modelName`` label, in the order of the ``gpu`` index.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable
from datetime import datetime

import numpy as np
import pyarrow as pa

import schemas
from collectors.cluster.prometheus import (
    DCGM_METRICS,
    PROMETHEUS_POINTS_LIMIT,
    PrometheusReadError,
    _DcgmDevices,
    _InstanceHosts,
    _Raw,
    _Reader,
)

MACHINE_FIELDS = ("cpu_model", "sockets", "cores", "cpu_speed_mhz", "memory_bytes", "gpu_models")
_NOMINAL_GHZ = re.compile(r"@\s*([0-9]+(?:\.[0-9]+)?)\s*GHz", re.IGNORECASE)


class _Cpus:
    """Per host: logical CPUs, sockets and model names seen in an info metric."""

    def __init__(self):
        self.cpus: dict[str, set[str]] = {}
        self.packages: dict[str, set[str]] = {}
        self.models: dict[str, Counter] = {}

    def add(self, host: str, cpu: str | None, package: str | None, model: str | None) -> None:
        if cpu is not None:
            self.cpus.setdefault(host, set()).add(cpu)
        if package is not None:
            self.packages.setdefault(host, set()).add(package)
        if model:
            self.models.setdefault(host, Counter())[model] += 1

    def fields(self, host: str) -> dict:
        model = self.models[host].most_common(1)[0][0] if host in self.models else None
        speed = _NOMINAL_GHZ.search(model or "")
        return {
            "cpu_model": model,
            "sockets": len(self.packages[host]) if host in self.packages else None,
            "cores": len(self.cpus[host]) if host in self.cpus else None,
            "cpu_speed_mhz": float(speed.group(1)) * 1000.0 if speed else None,
        }


def _node_exporter_host(hosts: _InstanceHosts, labels: dict[str, str], metric: str) -> str | None:
    empty = np.zeros(0)
    try:
        return hosts.of(_Raw(labels, empty, empty), metric)
    except PrometheusReadError:
        return None  # no node_uname_info for its target: the node stays undescribed by it


def _cpus(reader: _Reader) -> tuple[_Cpus, _Cpus]:
    """CPU facts from node_exporter (info, else idle seconds) and from Kepler."""
    uname = _InstanceHosts(reader, "node_uname_info", "nodename", ("node", "nodename"))
    node_exporter, kepler = _Cpus(), _Cpus()
    for labels in reader.label_sets("node_cpu_info"):
        host = _node_exporter_host(uname, labels, "node_cpu_info")
        if host is not None:
            node_exporter.add(host, labels.get("cpu"), labels.get("package"), labels.get("model_name"))
    described = set(node_exporter.cpus)
    for labels in reader.label_sets('node_cpu_seconds_total{mode="idle"}'):
        host = _node_exporter_host(uname, labels, "node_cpu_seconds_total")
        if host is not None and host not in described:
            node_exporter.add(host, labels.get("cpu"), None, None)
    for labels in reader.label_sets("kepler_node_cpu_info"):
        if labels.get("node_name"):
            kepler.add(
                labels["node_name"],
                labels.get("processor"),
                labels.get("physical_id"),
                labels.get("model_name"),
            )
    return node_exporter, kepler


def _memory(reader: _Reader) -> dict[str, int]:
    uname = _InstanceHosts(reader, "node_uname_info", "nodename", ("node", "nodename"))
    memory = {}
    for labels, value in reader.latest("node_memory_MemTotal_bytes"):
        host = _node_exporter_host(uname, labels, "node_memory_MemTotal_bytes")
        if host is not None and np.isfinite(value):
            memory[host] = int(value)
    return memory


def _gpus(reader: _Reader) -> dict[str, list[str]]:
    """Per host, one model name per GPU UUID, ordered by the exporter's `gpu` index."""
    devices = _DcgmDevices(reader)
    found: dict[str, dict[str, tuple[tuple[int, str], str]]] = {}
    for metric in DCGM_METRICS:
        for labels in reader.label_sets(metric):
            try:
                host, uuid = devices.of(labels, metric)
            except PrometheusReadError:
                continue
            index = labels.get("gpu", "")
            order = (int(index) if index.isdigit() else 1 << 30, uuid)
            found.setdefault(host, {})[uuid] = (order, labels.get("modelName") or "unknown")
    return {host: [model for _, model in sorted(gpus.values())] for host, gpus in found.items()}


def read_machines(
    client, host_nodes: Iterable[str], start: datetime, end: datetime, provenance: str = "measured"
) -> list[dict]:
    """`machines` rows (dicts) of the given hosts that any exporter describes between start and end.

    Fields no exporter gives are None (gpu_models []: no GPU seen); hosts none describes are left out.
    """
    hosts = sorted(set(host_nodes))
    reader = _Reader(client, start, end, PROMETHEUS_POINTS_LIMIT, None, hosts)
    node_exporter, kepler = _cpus(reader)
    memory = _memory(reader)
    gpus = _gpus(reader)
    rows = []
    for host in hosts:
        cpu = node_exporter if host in node_exporter.cpus or host in node_exporter.models else kepler
        fields = (
            cpu.fields(host) if host in cpu.cpus or host in cpu.models else dict.fromkeys(MACHINE_FIELDS[:4])
        )
        row = {
            "host_node": host,
            **fields,
            "memory_bytes": memory.get(host),
            "gpu_models": gpus.get(host, []),
            "fpga_models": [],
            "labels": {},
            "provenance": provenance,
        }
        if any(row[name] for name in MACHINE_FIELDS):
            rows.append(row)
    return rows


def complete_machines(
    known: pa.Table, host_nodes: Iterable[str], described: list[dict], provenance: str = "measured"
) -> tuple[pa.Table, dict[str, list[str]]]:
    """Kubernetes' `machines` rows with the hosts it lacks added and its empty fields filled from
    `described` (read_machines rows); a host nobody describes gets a row of unknowns (nulls).

    Returns the table and which hosts came from where: "prometheus", "filled" (a Kubernetes row completed
    from Prometheus), "unknown".
    """
    rows = known.to_pylist()
    by_host = {row["host_node"]: row for row in described}
    origin: dict[str, list[str]] = {"prometheus": [], "filled": [], "unknown": []}
    for row in rows:
        extra = by_host.get(row["host_node"])
        empty = [name for name in MACHINE_FIELDS if not row[name] and extra is not None and extra[name]]
        for name in empty:
            row[name] = extra[name]
        if empty:
            origin["filled"].append(row["host_node"])
    listed = {row["host_node"] for row in rows}
    for host in sorted(set(host_nodes) - listed):
        if host in by_host:
            rows.append(by_host[host])
            origin["prometheus"].append(host)
        else:
            unknown = dict.fromkeys(MACHINE_FIELDS)
            rows.append({**unknown, "host_node": host, "gpu_models": [], "fpga_models": [], "labels": {}})
            rows[-1]["provenance"] = provenance
            origin["unknown"].append(host)
    rows.sort(key=lambda row: row["host_node"])
    table = schemas.validate(
        "machines", schemas.conform("machines", rows), "<kubernetes nodes and prometheus>"
    )
    return table, origin
