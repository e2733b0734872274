"""Raw energy readings from Prometheus, in the metric dialects of the exporters that put them there.

Reading. No rate(), no step alignment: a metric is read as its stored samples with a range selector
``metric{...}[<L>ms]`` evaluated at a chunk's end ``t`` through the instant-query API. Prometheus 2 returns
the samples of [t - L, t]; the one at exactly t - L belongs to the previous chunk and is dropped, so chunks
(a, t] tile the window and every sample comes back exactly once, with its true (millisecond) timestamp.
Chunks keep every series under ``max_points_per_series`` (Prometheus refuses more than 11,000 points per
series in a range query; raw reads keep to the same bound):
- with ``scrape_interval_seconds`` given, chunks are 0.9 x interval x (max - 1) long, so a series whose
  scrapes come at most 10% early fits;
- without it the interval is read from the data: ``count_over_time(metric{...}[L])`` counts each series'
  samples in a window, and a window whose fullest series holds more than the limit is split into
  ceil(count / limit) + 1 equal parts, recursively. One count query per window; it loads the window's
  samples once on the server (bounded by Prometheus' --query.max-samples, 50M by default).

Dialects. ``read_power_samples`` gives ``power_samples`` rows, ``read_container_samples`` gives
``container_samples`` rows, all with provenance "measured" and the dialect in ``source``. Counter values
are joules (DCGM's mJ divided by 1000).
- agent (jouletrace node agent): ``jouletrace_energy_joules_total{device_kind,device_id,source}`` ->
  energy_counter_joules, monotone (the agent corrects wraps), counter_max null; ``jouletrace_power_watts``
  -> power_watts only for devices without a counter; source "agent/<source>". Host: the series' own
  ``host_node`` or ``node`` label, else ``jouletrace_agent_info{host_node}`` joined on ``instance``.
  Containers: ``jouletrace_container_cpu_seconds_total{container_id,pod_uid}`` -> cpu_seconds_counter,
  source "agent-cgroup"; ``jouletrace_container_gpu_busy_seconds_total{container_id,pod_uid,gpu_uuid}`` ->
  gpu_busy_seconds_counter, device_kind "gpu", device_id the gpu_uuid, source "agent-nvml" (optional: a
  cluster without GPUs, or agents run with --no-container-gpu, has none).
- node-exporter: ``node_rapl_<zone>_joules_total{index,path}`` (or ``node_rapl_joules_total{rapl_zone}``),
  zone package|dram|core|psys -> cpu_package|dram|cpu_core|psys, device_id "<zone>-<index>", uncore
  skipped; source "node_exporter". Host: ``node`` or ``nodename`` label, else ``node_uname_info{nodename}``
  joined on ``instance``. node_exporter never corrects wraps, so a drop in the raw counter is a wrap:
  ``infer_counter_max_joules`` recovers the wrap point and writes it into counter_max_joules, and the
  attribution unwraps the drop with it (a drop it cannot explain as a wrap stays a reset).
- dcgm: ``DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION`` (mJ counter, reset at driver reload) and/or
  ``DCGM_FI_DEV_POWER_USAGE`` (W), whichever is exported (neither is required when the other is) -> gpu,
  device_id the ``UUID`` (old mode ``uuid``) label; source "dcgm". Host: ``node``, ``hostname``
  (``Hostname`` before dcgm-exporter #655), else the node whose node_uname_info or jouletrace_agent_info
  target has the same address. With the exporter's Kubernetes mapping a GPU's series change labels when
  a pod takes it (``pod``,``namespace``,``container``; ``exported_*`` when Prometheus renames them,
  ``pod_name``/``pod_namespace`` in the old mode); they are one device series here, and
  ``gpu_ids_by_pod`` reads the holders. Without the mapping there are no such labels: the holders then
  come from the pods' requests (collectors/cluster/task_resources.py).
- kepler (0.10+): ``kepler_node_cpu_joules_total{zone,node_name}`` -> one series per node and zone (package,
  dram, core, psys; uncore skipped), device_id the zone itself ("package"), because Kepler sums the zone
  over all sockets; ``kepler_node_gpu_joules_total{gpu_uuid}`` -> gpu. Monotone counters, source
  "kepler". Containers: ``kepler_pod_cpu_joules_total{pod_id,pod_name,pod_namespace,zone}`` (pod_uid =
  pod_id) and ``kepler_container_cpu_joules_total{container_id,pod_id,zone}`` (pod name and namespace
  joined from the pod series by pod_id), energy_counter_joules of device_kind from zone.
- kepler-legacy (<= 0.9): containers from ``kepler_container_joules_total`` (device_kind null: all
  components) and ``kepler_container_{package,dram,core,gpu}_joules_total``
  ``{container_id,pod_name,container_namespace,mode}``, source "kepler-legacy/<mode>". Node energy from
  ``kepler_node_{package,dram,core}_joules_total{package}`` summed over ``mode`` (dynamic + idle) at the
  scrapes both modes have, device_id "<zone>-<package>"; absent node series give no rows, not an error.
  Host: ``node``, ``node_name``, ``exported_instance`` or ``instance`` (Kepler's ServiceMonitor relabels
  the node name into ``instance``).
- cadvisor: ``container_cpu_usage_seconds_total{namespace,pod,container,id}`` without the pod-level
  aggregates (container "" and "POD") -> cpu_seconds_counter; container_id and pod_uid parsed from the
  cgroup path in ``id`` (``collectors.meters.cgroups.cgroup_ids``); host from ``node`` or
  ``kubernetes_io_hostname`` (else null); source "cadvisor".

Several dialects. When more than one configured dialect meters a device kind on a node (the agent's
package-0/1 and Kepler's aggregated "package" both meter cpu_package), only the series of the dialect
listed first is kept, so the attribution never counts a node's energy twice. ``host_nodes`` filters on
the client, after the host is known.

Errors (``PrometheusReadError``): connection refused, timeout or HTTP error, naming the URL, the query
and the time chunk; a configured dialect with no series at all in the window; a series whose host cannot
be found (its info series is missing). A device series that stops, starts late or has gaps is data, not
an error: it is logged as a warning with the span it covers, and no row is made where it has no samples.
"""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from datetime import UTC, datetime

import numpy as np
import pyarrow as pa
import requests
from prometheus_api_client import PrometheusApiClientException, PrometheusConnect
from urllib3.exceptions import MaxRetryError, NewConnectionError
from urllib3.exceptions import TimeoutError as Urllib3Timeout
from urllib3.util.retry import Retry

import schemas
from collectors.meters.cgroups import cgroup_ids
from schemas.kinds import (
    AGENT_CGROUP_SOURCE,
    AGENT_GPU_BUSY_SOURCE,
    CADVISOR_SOURCE,
    CPU_SECONDS_COUNTER,
    ENERGY_COUNTER,
    GPU_BUSY_SECONDS_COUNTER,
    KEPLER_LEGACY_SOURCE,
    KEPLER_SOURCE,
    POWER_GAUGE,
)
from schemas.tables import KEYS, UTC_TIMESTAMP

logger = logging.getLogger(__name__)

DIALECTS = ("agent", "kepler", "kepler-legacy", "node-exporter", "dcgm", "cadvisor")
PROMETHEUS_POINTS_LIMIT = 11000
# A scrape may come up to 10% before its nominal time; fixed chunks leave room for that.
SCRAPE_EARLY_FRACTION = 0.1
# Known RAPL counter ranges (J): Intel powercap's max_energy_range_uj 262143328850; 2^32 x 15.3 uJ (the
# fixed DRAM energy unit of Intel servers); 2^32 x 2^-16 J (AMD's 15.26 uJ unit).
RAPL_RANGES_JOULES = (262143.328850, 65712.999613, 65536.0)
RAPL_SNAP_FRACTION = 0.01
# A device series whose readings stop for longer than this many of its median intervals is reported.
GAP_FACTOR = 3.0
CPU_ZONES = {"package": "cpu_package", "dram": "dram", "core": "cpu_core", "psys": "psys"}
_ZONE_MATCHER = f'zone=~"{"|".join(CPU_ZONES)}"'
LEGACY_NODE_ZONES = ("package", "dram", "core")
# kepler_container{_component}_joules_total -> device_kind; "" is the all-components total.
LEGACY_CONTAINER_COMPONENTS = {
    "": None,
    "package": "cpu_package",
    "dram": "dram",
    "core": "cpu_core",
    "gpu": "gpu",
}
LEGACY_HOST_LABELS = ("node", "node_name", "exported_instance", "instance")
POWER_SORT_KEYS = ("host_node", "device_kind", "device_id", "value_kind", "timestamp")
CONTAINER_SORT_KEYS = KEYS["container_samples"]


class PrometheusReadError(RuntimeError):
    """Prometheus could not be read, or holds no series a configured dialect needs."""


def connect(url: str, *, timeout_seconds: float = 30.0, retries: int = 2) -> PrometheusConnect:
    """A client whose requests give up after `timeout_seconds`, retrying failures `retries` times.

    The library's default retries three times with growing back-off on connection errors too, which turns
    a Prometheus that is down into a long wait before the error.
    """
    retry = Retry(total=retries, backoff_factor=0.5, status_forcelist=(502, 503, 504))
    return PrometheusConnect(url=url, timeout=timeout_seconds, retry=retry)


@dataclass(frozen=True)
class _Raw:
    """One Prometheus series as stored: its labels and samples (ms since the epoch)."""

    labels: dict[str, str]
    times_ms: np.ndarray
    values: np.ndarray


@dataclass(frozen=True)
class _Out:
    """One output series: the columns constant along it, and its samples."""

    fields: dict[str, object]
    times_ms: np.ndarray
    values: np.ndarray

    def name(self) -> str:
        return " ".join(f"{key}={value}" for key, value in self.fields.items() if value is not None)


def _iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _utc_microseconds(moment: datetime, name: str) -> int:
    if moment.tzinfo is None:
        raise ValueError(f"{name} {moment.isoformat()} has no time zone; the trace model is UTC only")
    delta = moment - datetime(1970, 1, 1, tzinfo=UTC)
    return (delta.days * 86400 + delta.seconds) * 1_000_000 + delta.microseconds


def _timed_out(exc: requests.RequestException) -> bool:
    """requests reports a read timeout after exhausted retries as a ConnectionError wrapping it (and urllib3
    makes a refused connection a kind of timeout, which it is not)."""
    if isinstance(exc, requests.Timeout):
        return True
    return any(
        isinstance(arg, MaxRetryError)
        and isinstance(arg.reason, Urllib3Timeout)
        and not isinstance(arg.reason, NewConnectionError)
        for arg in exc.args
    )


class _Reader:
    """Raw, chunked reads of one time window [start, end] (both inclusive) from one Prometheus."""

    def __init__(
        self,
        client,
        start: datetime,
        end: datetime,
        max_points_per_series: int,
        scrape_interval_seconds: float | None,
        host_nodes: Iterable[str] | None,
    ):
        first_us, last_us = _utc_microseconds(start, "start"), _utc_microseconds(end, "end")
        if last_us // 1000 < -(-first_us // 1000):
            raise ValueError(
                f"end {end.isoformat()} is before start {start.isoformat()} (to the millisecond)"
            )
        if max_points_per_series < 2:
            raise ValueError(f"max_points_per_series must be at least 2, got {max_points_per_series}")
        if scrape_interval_seconds is not None and not scrape_interval_seconds > 0:
            raise ValueError(f"scrape_interval_seconds must be positive, got {scrape_interval_seconds}")
        self.client = client
        self.url = getattr(client, "url", type(client).__name__)
        self.first_ms = -(-first_us // 1000)
        self.last_ms = last_us // 1000
        self.max_points = max_points_per_series
        self.chunk_ms = None
        if scrape_interval_seconds is not None:
            usable = (1.0 - SCRAPE_EARLY_FRACTION) * scrape_interval_seconds * 1000.0
            self.chunk_ms = max(1, math.floor(usable * (max_points_per_series - 1)))
        self.host_nodes = None if host_nodes is None else frozenset(host_nodes)
        self._label_sets: dict[str, list[dict[str, str]]] = {}

    def span(self) -> str:
        return f"{_iso(self.first_ms)} and {_iso(self.last_ms)}"

    def missing(self, metric: str, dialect: str) -> PrometheusReadError:
        return PrometheusReadError(
            f"{self.url}: no {metric} series between {self.span()} (is the {dialect} exporter scraped?)"
        )

    def _query(self, query: str, after_ms: int, at_ms: int) -> list[dict]:
        chunk = f"({_iso(after_ms + 1)} .. {_iso(at_ms)}]"
        params = {"time": f"{at_ms // 1000}.{at_ms % 1000:03d}"}
        try:
            return self.client.custom_query(query, params=params)
        except requests.RequestException as exc:
            if _timed_out(exc):
                reason = "timed out"
            elif isinstance(exc, requests.ConnectionError):
                reason = "cannot be reached"
            else:
                reason = "failed"
            raise PrometheusReadError(
                f"Prometheus at {self.url} {reason} on query {query!r} for chunk {chunk}: {exc}"
            ) from None  # the message holds the client's; a chained cause would be reported instead of it
        except PrometheusApiClientException as exc:
            raise PrometheusReadError(
                f"Prometheus at {self.url} answered an error to query {query!r} for chunk {chunk}: {exc}"
            ) from None

    def _counts(self, selector: str, after_ms: int, last_ms: int) -> list[tuple[dict[str, str], int]]:
        result = self._query(f"count_over_time({selector}[{last_ms - after_ms}ms])", after_ms, last_ms)
        return [(item["metric"], int(float(item["value"][1]))) for item in result]

    def label_sets(self, selector: str) -> list[dict[str, str]]:
        """Label sets (without __name__) of the series with a sample in the window."""
        if selector not in self._label_sets:
            self._label_sets[selector] = [
                labels for labels, _ in self._counts(selector, self.first_ms - 1, self.last_ms)
            ]
        return self._label_sets[selector]

    def latest(self, selector: str) -> list[tuple[dict[str, str], float]]:
        """(labels, newest value) of each series with a sample in the window."""
        span = self.last_ms - self.first_ms + 1
        result = self._query(f"last_over_time({selector}[{span}ms])", self.first_ms - 1, self.last_ms)
        return [(item["metric"], float(item["value"][1])) for item in result]

    def _chunks(self, selector: str, after_ms: int, last_ms: int) -> list[tuple[int, int]]:
        """Windows (after, last] tiling this one, each holding at most max_points samples of any series."""
        if self.chunk_ms is not None:
            return [(lo, min(lo + self.chunk_ms, last_ms)) for lo in range(after_ms, last_ms, self.chunk_ms)]
        counts = self._counts(selector, after_ms, last_ms)
        if not counts:
            return []
        fullest = max(count for _, count in counts)
        # A window of 1 ms holds at most 2 samples of a series, so the recursion ends.
        if fullest <= self.max_points:
            return [(after_ms, last_ms)]
        parts = -(-fullest // self.max_points) + 1
        edges = np.unique(np.linspace(after_ms, last_ms, parts + 1).round().astype(np.int64)).tolist()
        return [
            chunk
            for lo, hi in zip(edges[:-1], edges[1:], strict=True)
            for chunk in self._chunks(selector, lo, hi)
        ]

    def series(self, selector: str) -> list[_Raw]:
        """Every stored sample of the series `selector` matches in the window, non-finite values dropped."""
        pieces: dict[tuple, list[tuple[np.ndarray, np.ndarray]]] = {}
        for after_ms, last_ms in self._chunks(selector, self.first_ms - 1, self.last_ms):
            for item in self._query(f"{selector}[{last_ms - after_ms}ms]", after_ms, last_ms):
                pairs = item.get("values", [])
                times = np.rint(np.fromiter((p[0] for p in pairs), float, len(pairs)) * 1000).astype(np.int64)
                values = np.fromiter((float(p[1]) for p in pairs), float, len(pairs))
                keep = (times > after_ms) & np.isfinite(values)
                pieces.setdefault(tuple(sorted(item["metric"].items())), []).append(
                    (times[keep], values[keep])
                )
        raws = []
        for key, parts in pieces.items():
            times = np.concatenate([t for t, _ in parts])
            if times.size:
                raws.append(_Raw(dict(key), times, np.concatenate([v for _, v in parts])))
        return raws

    def wants(self, host: str | None) -> bool:
        return self.host_nodes is None or host in self.host_nodes


class _InstanceHosts:
    """Host of a series from its own labels, else from an info metric's host label joined on `instance`."""

    def __init__(self, reader: _Reader, info_metric: str, host_label: str, own_labels: tuple[str, ...]):
        self.reader = reader
        self.info_metric = info_metric
        self.host_label = host_label
        self.own_labels = own_labels
        self._by_instance: dict[str, str] | None = None

    def by_instance(self) -> dict[str, str]:
        if self._by_instance is None:
            hosts: dict[str, str] = {}
            for labels in self.reader.label_sets(self.info_metric):
                instance, host = labels.get("instance"), labels.get(self.host_label)
                if instance and host and hosts.setdefault(instance, host) != host:
                    raise PrometheusReadError(
                        f"{self.reader.url}: {self.info_metric} of instance {instance} names two hosts, "
                        f"{hosts[instance]} and {host}, between {self.reader.span()}; give the targets a "
                        "`node` label"
                    )
            self._by_instance = hosts
        return self._by_instance

    def of(self, raw: _Raw, metric: str) -> str:
        for label in self.own_labels:
            if raw.labels.get(label):
                return raw.labels[label]
        instance = raw.labels.get("instance", "")
        host = self.by_instance().get(instance)
        if host is None:
            raise PrometheusReadError(
                f"{self.reader.url}: {metric}{{instance={instance!r}}} has no host: no {self.info_metric} "
                f"series of that instance between {self.reader.span()} (partial data: is "
                f"{self.info_metric} scraped from it?)"
            )
        return host


def _agent_hosts(reader: _Reader) -> _InstanceHosts:
    return _InstanceHosts(reader, "jouletrace_agent_info", "host_node", ("host_node", "node"))


def _merge(outs: Iterable[_Out]) -> list[_Out]:
    """Join the series that give the same output series (e.g. before and after a label change)."""
    groups: dict[tuple, list[_Out]] = {}
    for out in outs:
        groups.setdefault(tuple(sorted(out.fields.items())), []).append(out)
    merged = []
    for parts in groups.values():
        times = np.concatenate([part.times_ms for part in parts])
        values = np.concatenate([part.values for part in parts])
        order = np.argsort(times, kind="stable")
        times, values = times[order], values[order]
        repeated = np.flatnonzero(np.diff(times) == 0)
        clash = repeated[values[repeated] != values[repeated + 1]]
        if clash.size:
            i = int(clash[0])
            raise PrometheusReadError(
                f"two series give {parts[0].name()} different values at {_iso(int(times[i]))}: "
                f"{float(values[i])!r} and {float(values[i + 1])!r} (two exporters for one device?)"
            )
        keep = np.diff(times, prepend=times[:1] - 1) > 0
        merged.append(_Out(parts[0].fields, times[keep], values[keep]))
    return merged


def _power(
    host: str, kind: str, device_id: str, value_kind: str, source: str, raw: _Raw, divisor: float = 1.0
) -> _Out:
    fields = {
        "host_node": host,
        "device_kind": kind,
        "device_id": device_id,
        "value_kind": value_kind,
        "counter_max_joules": None,
        "source": source,
    }
    return _Out(fields, raw.times_ms, raw.values / divisor)


def infer_counter_max_joules(times_seconds: np.ndarray, values_joules: np.ndarray) -> float | None:
    """The wrap point of a raw RAPL counter, from its drops; None when it has none or they are resets.

    At a drop i: M ~ v_i + P * dt_i - v_{i+1}, P the mean power of the nearest intervals before and after
    without a drop. An estimate within 1% of a known RAPL range snaps to it; the most common snapped range
    wins. Without one, the median estimate when at least two drops agree on it within 1% (a wrap point
    repeats, a reboot's reset does not) and it exceeds every reading; else None, and the attribution
    estimates the drop's interval from its neighbours as a reset.
    """
    values = np.asarray(values_joules, dtype=float)
    delta = np.diff(values)
    seconds = np.diff(np.asarray(times_seconds, dtype=float))
    watts = np.where(delta >= 0, delta / np.where(seconds > 0, seconds, np.nan), np.nan)
    estimates = []
    for i in np.flatnonzero(delta < 0):
        before, after = watts[:i][np.isfinite(watts[:i])], watts[i + 1 :][np.isfinite(watts[i + 1 :])]
        near = [*before[-1:], *after[:1]]
        if near:
            estimates.append(values[i] + float(np.mean(near)) * seconds[i] - values[i + 1])
    snapped = []
    for estimate in estimates:
        nearest = min(RAPL_RANGES_JOULES, key=lambda joules: abs(estimate - joules))
        if abs(estimate - nearest) <= RAPL_SNAP_FRACTION * nearest:
            snapped.append(nearest)
    if snapped:
        return max(set(snapped), key=snapped.count)
    if len(estimates) < 2:
        return None
    median = float(np.median(estimates))
    agreeing = sum(abs(estimate - median) <= RAPL_SNAP_FRACTION * median for estimate in estimates)
    return median if agreeing >= 2 and median > values.max() else None


# --- power_samples per dialect ---------------------------------------------------------------------------


def _agent_power(reader: _Reader) -> list[_Out]:
    hosts = _agent_hosts(reader)
    counters = reader.series("jouletrace_energy_joules_total")
    gauges = reader.series("jouletrace_power_watts")
    if not counters and not gauges:
        raise reader.missing("jouletrace_energy_joules_total", "agent")
    outs, metered = [], set()
    for metric, raws, value_kind in (
        ("jouletrace_energy_joules_total", counters, ENERGY_COUNTER),
        ("jouletrace_power_watts", gauges, POWER_GAUGE),
    ):
        for raw in raws:
            host, kind, device_id = hosts.of(raw, metric), raw.labels["device_kind"], raw.labels["device_id"]
            if value_kind == POWER_GAUGE and (host, kind, device_id) in metered:
                continue
            metered.add((host, kind, device_id))
            source = f"agent/{raw.labels['source']}" if raw.labels.get("source") else "agent"
            outs.append(_power(host, kind, device_id, value_kind, source, raw))
    return outs


def _node_exporter_power(reader: _Reader) -> list[_Out]:
    hosts = _InstanceHosts(reader, "node_uname_info", "nodename", ("node", "nodename"))
    outs = []
    found = False
    for zone_of_metric in (*CPU_ZONES, None):
        metric = (
            "node_rapl_joules_total" if zone_of_metric is None else f"node_rapl_{zone_of_metric}_joules_total"
        )
        raws = reader.series(metric)
        found = found or bool(raws)
        for raw in raws:
            zone = zone_of_metric or re.sub(r"-\d+$", "", raw.labels.get("rapl_zone", ""))
            if zone not in CPU_ZONES:
                continue
            device_id = f"{zone}-{raw.labels.get('index', '0')}"
            outs.append(
                _power(
                    hosts.of(raw, metric), CPU_ZONES[zone], device_id, ENERGY_COUNTER, "node_exporter", raw
                )
            )
    if not found:
        raise reader.missing("node_rapl_<zone>_joules_total", "node-exporter")
    repaired = []
    for out in _merge(outs):
        counter_max = infer_counter_max_joules(out.times_ms / 1000.0, out.values)
        repaired.append(replace(out, fields={**out.fields, "counter_max_joules": counter_max}))
    return repaired


def _address(instance: str) -> str:
    return instance.rsplit(":", 1)[0] if ":" in instance else instance


class _DcgmDevices:
    """Host and UUID of a DCGM exporter series: its ``node``, ``hostname`` (``Hostname`` before
    dcgm-exporter #655) label, else the node of the node_uname_info or jouletrace_agent_info target at the
    same address."""

    def __init__(self, reader: _Reader):
        self.reader = reader
        self._by_address: dict[str, str] | None = None

    def of(self, labels: dict[str, str], metric: str) -> tuple[str, str]:
        host = labels.get("node") or labels.get("hostname") or labels.get("Hostname")
        if not host:
            if self._by_address is None:
                self._by_address = {
                    _address(info.get("instance", "")): info.get(label, "")
                    for info_metric, label in (
                        ("node_uname_info", "nodename"),
                        ("jouletrace_agent_info", "host_node"),
                    )
                    for info in self.reader.label_sets(info_metric)
                }
            host = self._by_address.get(_address(labels.get("instance", "")))
        uuid = labels.get("UUID") or labels.get("uuid")
        if not host or not uuid:
            raise PrometheusReadError(
                f"{self.reader.url}: {metric}{labels} has no {'host' if uuid else 'UUID'}: no node/hostname "
                "label and no node_uname_info or jouletrace_agent_info target at its address"
            )
        return host, uuid


def _dcgm_power(reader: _Reader) -> list[_Out]:
    """Whichever of the energy counter and the power gauge is exported; both when both are (the
    attribution prefers a device's counter)."""
    energy = reader.series("DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION")
    power = reader.series("DCGM_FI_DEV_POWER_USAGE")
    if not energy and not power:
        raise reader.missing("DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION or DCGM_FI_DEV_POWER_USAGE", "dcgm")
    devices = _DcgmDevices(reader)
    outs = []
    for metric, raws, value_kind, divisor in (
        ("DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION", energy, ENERGY_COUNTER, 1000.0),
        ("DCGM_FI_DEV_POWER_USAGE", power, POWER_GAUGE, 1.0),
    ):
        for raw in raws:
            host, uuid = devices.of(raw.labels, metric)
            outs.append(_power(host, "gpu", uuid, value_kind, "dcgm", raw, divisor))
    return outs


def _kepler_host(reader: _Reader, raw: _Raw, metric: str) -> str:
    host = raw.labels.get("node_name")
    if not host:
        raise PrometheusReadError(f"{reader.url}: {metric}{raw.labels} has no node_name label")
    return host


def _kepler_power(reader: _Reader) -> list[_Out]:
    cpu = reader.series(f"kepler_node_cpu_joules_total{{{_ZONE_MATCHER}}}")
    gpu = reader.series("kepler_node_gpu_joules_total")
    if not cpu and not gpu:
        raise reader.missing("kepler_node_cpu_joules_total", "kepler")
    outs = [
        _power(
            _kepler_host(reader, raw, "kepler_node_cpu_joules_total"),
            CPU_ZONES[raw.labels["zone"]],
            raw.labels["zone"],
            ENERGY_COUNTER,
            "kepler",
            raw,
        )
        for raw in cpu
    ]
    outs += [
        _power(
            _kepler_host(reader, raw, "kepler_node_gpu_joules_total"),
            "gpu",
            raw.labels["gpu_uuid"],
            ENERGY_COUNTER,
            "kepler",
            raw,
        )
        for raw in gpu
    ]
    return outs


def _legacy_host(labels: dict[str, str]) -> str | None:
    return next((labels[label] for label in LEGACY_HOST_LABELS if labels.get(label)), None)


def _kepler_legacy_power(reader: _Reader) -> list[_Out]:
    by_mode = []
    for zone in LEGACY_NODE_ZONES:
        metric = f"kepler_node_{zone}_joules_total"
        for raw in reader.series(metric):
            host = _legacy_host(raw.labels)
            if host is None:
                raise PrometheusReadError(f"{reader.url}: {metric}{raw.labels} names no node")
            device_id = f"{zone}-{raw.labels.get('package', '0')}"
            out = _power(host, CPU_ZONES[zone], device_id, ENERGY_COUNTER, "kepler-legacy", raw)
            by_mode.append(replace(out, fields={**out.fields, "mode": raw.labels.get("mode", "")}))
    devices: dict[tuple, list[_Out]] = {}
    for out in _merge(by_mode):
        fields = {key: value for key, value in out.fields.items() if key != "mode"}
        devices.setdefault(tuple(fields.items()), []).append(out)
    outs = []
    for key, modes in devices.items():
        times = modes[0].times_ms
        for mode in modes[1:]:
            times = np.intersect1d(times, mode.times_ms)
        total = sum(mode.values[np.searchsorted(mode.times_ms, times)] for mode in modes)
        outs.append(_Out(dict(key), times, total))
    return outs


# --- container_samples per dialect -----------------------------------------------------------------------


def _container(
    raw: _Raw,
    *,
    host: str | None,
    namespace: str | None,
    pod_name: str | None,
    pod_uid: str | None,
    container_id: str | None,
    device_kind: str | None,
    value_kind: str,
    source: str,
    device_id: str | None = None,
) -> _Out:
    fields = {
        "host_node": host,
        "namespace": namespace,
        "pod_name": pod_name,
        "pod_uid": pod_uid,
        "container_id": container_id,
        "device_kind": device_kind,
        "device_id": device_id,
        "value_kind": value_kind,
        "source": source,
    }
    return _Out(fields, raw.times_ms, raw.values)


def _agent_containers(reader: _Reader) -> list[_Out]:
    """CPU seconds (required) and GPU busy seconds (optional: only nodes with GPUs export them)."""
    cpu_metric = "jouletrace_container_cpu_seconds_total"
    gpu_metric = "jouletrace_container_gpu_busy_seconds_total"
    cpu = reader.series(cpu_metric)
    if not cpu:
        raise reader.missing(cpu_metric, "agent")
    gpu = reader.series(gpu_metric)
    hosts = _agent_hosts(reader)
    outs = [
        _container(
            raw,
            host=hosts.of(raw, cpu_metric),
            namespace=None,
            pod_name=None,
            pod_uid=raw.labels.get("pod_uid"),
            container_id=raw.labels.get("container_id"),
            device_kind=None,
            value_kind=CPU_SECONDS_COUNTER,
            source=AGENT_CGROUP_SOURCE,
        )
        for raw in cpu
    ]
    for raw in gpu:
        uuid = raw.labels.get("gpu_uuid")
        if not uuid:
            raise PrometheusReadError(f"{reader.url}: {gpu_metric}{raw.labels} has no gpu_uuid label")
        outs.append(
            _container(
                raw,
                host=hosts.of(raw, gpu_metric),
                namespace=None,
                pod_name=None,
                pod_uid=raw.labels.get("pod_uid"),
                container_id=raw.labels.get("container_id"),
                device_kind="gpu",
                device_id=uuid,
                value_kind=GPU_BUSY_SECONDS_COUNTER,
                source=AGENT_GPU_BUSY_SOURCE,
            )
        )
    return outs


def _kepler_containers(reader: _Reader) -> list[_Out]:
    pods = reader.series(f"kepler_pod_cpu_joules_total{{{_ZONE_MATCHER}}}")
    containers = reader.series(f"kepler_container_cpu_joules_total{{{_ZONE_MATCHER}}}")
    if not pods and not containers:
        raise reader.missing("kepler_pod_cpu_joules_total", "kepler")
    names = {
        raw.labels["pod_id"]: (raw.labels.get("pod_namespace"), raw.labels.get("pod_name"))
        for raw in pods
        if raw.labels.get("pod_id")
    }
    outs = []
    for raw in pods + containers:
        labels = raw.labels
        namespace, pod_name = names.get(labels.get("pod_id", ""), (None, None))
        outs.append(
            _container(
                raw,
                host=labels.get("node_name"),
                namespace=namespace,
                pod_name=pod_name,
                pod_uid=labels.get("pod_id") or None,
                container_id=labels.get("container_id") or None,
                device_kind=CPU_ZONES[labels["zone"]],
                value_kind=ENERGY_COUNTER,
                source=KEPLER_SOURCE,
            )
        )
    return outs


def _kepler_legacy_containers(reader: _Reader) -> list[_Out]:
    outs = []
    for component, device_kind in LEGACY_CONTAINER_COMPONENTS.items():
        for raw in reader.series(f"kepler_container{'_' + component if component else ''}_joules_total"):
            labels = raw.labels
            mode = labels.get("mode")
            outs.append(
                _container(
                    raw,
                    host=_legacy_host(labels),
                    namespace=labels.get("container_namespace") or None,
                    pod_name=labels.get("pod_name") or None,
                    pod_uid=None,
                    container_id=labels.get("container_id") or None,
                    device_kind=device_kind,
                    value_kind=ENERGY_COUNTER,
                    source=f"{KEPLER_LEGACY_SOURCE}/{mode}" if mode else KEPLER_LEGACY_SOURCE,
                )
            )
    if not outs:
        raise reader.missing("kepler_container_joules_total", "kepler-legacy")
    return outs


def _cadvisor_containers(reader: _Reader) -> list[_Out]:
    metric = "container_cpu_usage_seconds_total"
    raws = reader.series(f'{metric}{{container!="",container!="POD"}}')
    if not raws:
        raise reader.missing(metric, "cadvisor")
    outs = []
    for raw in raws:
        labels = raw.labels
        pod_uid, container_id = cgroup_ids(labels.get("id", ""))
        outs.append(
            _container(
                raw,
                host=labels.get("node") or labels.get("kubernetes_io_hostname"),
                namespace=labels.get("namespace"),
                pod_name=labels.get("pod"),
                pod_uid=pod_uid,
                container_id=container_id,
                device_kind=None,
                value_kind=CPU_SECONDS_COUNTER,
                source=CADVISOR_SOURCE,
            )
        )
    return outs


_POWER_DIALECTS: dict[str, Callable[[_Reader], list[_Out]]] = {
    "agent": _agent_power,
    "kepler": _kepler_power,
    "kepler-legacy": _kepler_legacy_power,
    "node-exporter": _node_exporter_power,
    "dcgm": _dcgm_power,
}
_CONTAINER_DIALECTS: dict[str, Callable[[_Reader], list[_Out]]] = {
    "agent": _agent_containers,
    "kepler": _kepler_containers,
    "kepler-legacy": _kepler_legacy_containers,
    "cadvisor": _cadvisor_containers,
}


def _dialects(dialects: Iterable[str]) -> list[str]:
    chosen = list(dict.fromkeys([dialects] if isinstance(dialects, str) else dialects))
    unknown = [d for d in chosen if d not in DIALECTS]
    if unknown:
        raise ValueError(f"unknown Prometheus dialects {unknown}; known: {list(DIALECTS)}")
    return chosen


def _report_coverage(outs: list[_Out], reader: _Reader) -> None:
    """Warn about device series that start late, stop early or have gaps within the window."""
    for out in outs:
        times = out.times_ms
        if times.size < 2:
            logger.warning("%s: %d reading(s) between %s", out.name(), times.size, reader.span())
            continue
        slack = GAP_FACTOR * float(np.median(np.diff(times)))
        gaps = np.flatnonzero(np.diff(times) > slack)
        late, early = times[0] - reader.first_ms > slack, reader.last_ms - times[-1] > slack
        if late or early or gaps.size:
            holes = ", ".join(f"{_iso(int(times[i]))} .. {_iso(int(times[i + 1]))}" for i in gaps)
            logger.warning(
                "%s: readings cover %s .. %s of the window between %s%s",
                out.name(),
                _iso(int(times[0])),
                _iso(int(times[-1])),
                reader.span(),
                f"; no readings in {holes}" if holes else "",
            )


def _table(name: str, outs: list[_Out], sort_keys: tuple[str, ...]) -> pa.Table:
    if not outs:
        return schemas.empty(name)
    sizes = [out.times_ms.size for out in outs]
    columns: dict[str, object] = {
        key: np.repeat(np.array([out.fields[key] for out in outs], dtype=object), sizes)
        for key in outs[0].fields
    }
    times_us = np.concatenate([out.times_ms for out in outs]) * 1000
    columns["timestamp"] = pa.array(times_us, pa.int64()).cast(UTC_TIMESTAMP)
    columns["value"] = np.concatenate([out.values for out in outs])
    columns["provenance"] = ["measured"] * len(times_us)
    table = schemas.conform(name, columns).sort_by([(key, "ascending") for key in sort_keys])
    return schemas.validate(name, table, "prometheus")


def read_power_samples(
    client,
    dialects: Iterable[str],
    start: datetime,
    end: datetime,
    *,
    host_nodes: Iterable[str] | None = None,
    max_points_per_series: int = PROMETHEUS_POINTS_LIMIT,
    scrape_interval_seconds: float | None = None,
) -> pa.Table:
    """Raw meter readings between start and end (inclusive) as `power_samples` rows (module doc).

    `client` is a PrometheusConnect, or anything with its `custom_query(query, params)`. Dialects without
    node meters (cadvisor) add nothing; a device kind several dialects meter on a node comes from the
    first of them in `dialects`.
    """
    reader = _Reader(client, start, end, max_points_per_series, scrape_interval_seconds, host_nodes)
    kept: list[_Out] = []
    owner: dict[tuple[str, str], str] = {}
    for dialect in _dialects(dialects):
        if dialect not in _POWER_DIALECTS:
            continue
        outs = _merge(
            out for out in _POWER_DIALECTS[dialect](reader) if reader.wants(out.fields["host_node"])
        )
        for out in outs:
            meter = (out.fields["host_node"], out.fields["device_kind"])
            if owner.setdefault(meter, dialect) == dialect:
                kept.append(out)
            else:
                logger.info("%s: skipped, %s already meters %s on %s", out.name(), owner[meter], *meter[::-1])
    _report_coverage(kept, reader)
    return _table("power_samples", kept, POWER_SORT_KEYS)


def read_container_samples(
    client,
    dialects: Iterable[str],
    start: datetime,
    end: datetime,
    *,
    host_nodes: Iterable[str] | None = None,
    max_points_per_series: int = PROMETHEUS_POINTS_LIMIT,
    scrape_interval_seconds: float | None = None,
) -> pa.Table:
    """Per-container CPU seconds, GPU busy seconds and energy between start and end as `container_samples`
    rows (module doc).

    Dialects without container series (node-exporter, dcgm) add nothing. With `host_nodes`, rows whose
    source names no host are dropped.
    """
    reader = _Reader(client, start, end, max_points_per_series, scrape_interval_seconds, host_nodes)
    outs = [
        out
        for dialect in _dialects(dialects)
        if dialect in _CONTAINER_DIALECTS
        for out in _CONTAINER_DIALECTS[dialect](reader)
        if reader.wants(out.fields["host_node"])
    ]
    return _table("container_samples", _merge(outs), CONTAINER_SORT_KEYS)


# Where DCGM exporter's Kubernetes mapping puts the holder of a GPU: its labels, the same renamed by
# Prometheus when the scrape target has its own (``exported_*``, honor_labels false), and the old mode's.
DCGM_POD_LABELS = (
    ("exported_namespace", "exported_pod"),
    ("namespace", "pod"),
    ("pod_namespace", "pod_name"),
)
DCGM_METRICS = ("DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION", "DCGM_FI_DEV_POWER_USAGE")


def gpu_ids_by_pod(client, start: datetime, end: datetime) -> dict[tuple[str, str], list[str]]:
    """(namespace, pod) -> UUIDs of the GPUs DCGM exporter saw it hold between start and end.

    From the pod labels dcgm-exporter adds (with --kubernetes) while a pod holds a GPU, read from whichever
    of its energy and power metrics is exported; empty when no series has them (no Kubernetes mapping), an
    error when neither metric has any series.
    """
    reader = _Reader(client, start, end, PROMETHEUS_POINTS_LIMIT, None, None)
    label_sets = [labels for metric in DCGM_METRICS for labels in reader.label_sets(metric)]
    if not label_sets:
        raise reader.missing(" or ".join(DCGM_METRICS), "dcgm")
    where = DCGM_POD_LABELS
    if any("exported_pod" in labels for labels in label_sets):
        # Prometheus renamed the exporter's labels: `pod`/`namespace` are the exporter's own pod.
        where = tuple(pair for pair in DCGM_POD_LABELS if pair != ("namespace", "pod"))
    held: dict[tuple[str, str], set[str]] = {}
    for labels in label_sets:
        uuid = labels.get("UUID") or labels.get("uuid")
        pod = next(((labels.get(ns, ""), labels[name]) for ns, name in where if labels.get(name)), None)
        if uuid and pod:
            held.setdefault(pod, set()).add(uuid)
    return {pod: sorted(uuids) for pod, uuids in sorted(held.items())}
