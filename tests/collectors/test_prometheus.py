"""The Prometheus reader against a real Prometheus serving TSDB blocks built by promtool.

One Prometheus per module holds every dialect: the sample world written as agent, node-exporter, dcgm
and kepler OpenMetrics (datasets/openmetrics.py), plus hand-written series a day later for the container
dialects, DCGM pod labels, other RAPL zones, and a node_exporter target without node_uname_info (an hour
after those). Readings come back exactly; attribution over them matches attribution over the world's own
readings at Prometheus' millisecond resolution.
"""

from __future__ import annotations

import http.server
import json
import logging
import shutil
import socket
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest

from collectors.cluster.prometheus import (
    PrometheusReadError,
    connect,
    gpu_ids_by_pod,
    infer_counter_max_joules,
    read_container_samples,
    read_power_samples,
)
from collectors.cluster.recorded import RecordedSources
from datasets.attribution import attribute, unwrap_counter
from datasets.openmetrics import DIALECTS, create_tsdb_blocks, world_readings, write_openmetrics
from datasets.sample_world import SampleWorldSummary, generate
from datasets.sample_world.cluster import RAPL_COUNTER_MAX_JOULES

PROMTOOL = shutil.which("promtool")
# Hand-written series: window A a day after the world, window B an hour after A.
EXTRA_STEP_SECONDS = 5
EXTRA_SAMPLES = 12
RELATIVE = 1e-6
POD_UID = "1b4e28ba-2fa1-11d2-883f-0016d3cca427"
CONTAINER_ID = "a" * 64
_T0 = datetime(2026, 11, 2, 8, tzinfo=UTC)


@dataclass(frozen=True)
class Env:
    url: str
    world_dir: Path
    world: SampleWorldSummary

    def client(self):
        return connect(self.url, timeout_seconds=20, retries=0)

    @property
    def window_a(self):
        start = self.world.start + timedelta(days=1)
        return start, start + timedelta(seconds=EXTRA_STEP_SECONDS * (EXTRA_SAMPLES - 1))

    @property
    def window_b(self):
        start, end = self.window_a
        return start + timedelta(hours=1), end + timedelta(hours=1)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _extra_openmetrics(start_s: int) -> str:
    """Series of the container dialects, DCGM pod labels and other zones; one family per metric name."""
    families: dict[str, list[str]] = {}

    def series(name: str, labels: dict[str, str], values, offset_s: int = 0, first: int = 0) -> None:
        text = ",".join(f'{key}="{value}"' for key, value in labels.items())
        lines = families.setdefault(name, [])
        for i, value in enumerate(values, start=first):
            lines.append(
                f"{name}{{{text}}} {float(value)!r} {start_s + offset_s + i * EXTRA_STEP_SECONDS}.000"
            )

    ramp = np.arange(EXTRA_SAMPLES, dtype=float)
    node1 = {"node_name": "cpu-node-1", "instance": "10.0.0.11:28282"}
    pod = {"pod_id": POD_UID, "pod_name": "wf-a", "pod_namespace": "argo", "state": "running"}
    for zone, watts in (("package", 20.0), ("dram", 2.0), ("uncore", 1.0)):
        series("kepler_pod_cpu_joules_total", {**node1, **pod, "zone": zone}, 100 + watts * 5 * ramp)
    container = {"container_id": "c1", "container_name": "main", "pod_id": POD_UID, "zone": "package"}
    series(
        "kepler_container_cpu_joules_total", {**node1, **container, "state": "running"}, 50 + 90 * ramp[:6]
    )
    series(
        "kepler_container_cpu_joules_total",
        {**node1, **container, "state": "terminated"},
        50 + 90 * ramp[6:],
        first=6,
    )
    series(
        "kepler_container_cpu_joules_total",
        {**node1, **container, "container_id": "c9", "pod_id": "gone"},
        ramp,
    )

    legacy = {
        "container_id": "c2",
        "container_name": "main",
        "container_namespace": "argo",
        "pod_name": "wf-b",
    }
    for mode, watts in (("dynamic", 8.0), ("idle", 3.0)):
        labels = {**legacy, "instance": "cpu-node-2", "mode": mode}
        series("kepler_container_joules_total", labels, watts * 5 * ramp)
        series("kepler_container_package_joules_total", labels, watts * 4 * ramp)
        node = {"instance": "cpu-node-2", "mode": mode, "package": "0", "source": "rapl"}
        series("kepler_node_package_joules_total", node, 1000 * (mode == "idle") + watts * 50 * ramp)

    cgroup = (
        "/kubepods.slice/kubepods-burstable.slice/"
        f"kubepods-burstable-pod{POD_UID.replace('-', '_')}.slice/cri-containerd-{CONTAINER_ID}.scope"
    )
    cadvisor = {"namespace": "argo", "pod": "wf-c", "node": "cpu-node-3", "cpu": "total"}
    series("container_cpu_usage_seconds_total", {**cadvisor, "container": "main", "id": cgroup}, 0.5 * ramp)
    series("container_cpu_usage_seconds_total", {**cadvisor, "container": "POD", "id": "/pause"}, 0.01 * ramp)
    series("container_cpu_usage_seconds_total", {**cadvisor, "container": "", "id": "/pod"}, 0.6 * ramp)

    agent = {"instance": "10.0.0.11:9471"}
    series(
        "jouletrace_agent_info", {**agent, "host_node": "cpu-node-1", "version": "x"}, np.ones(EXTRA_SAMPLES)
    )
    series(
        "jouletrace_container_cpu_seconds_total", {**agent, "container_id": "c1", "pod_uid": POD_UID}, ramp
    )

    gpu = {"UUID": "GPU-x", "gpu": "0", "hostname": "gpu-node-9", "instance": "10.0.0.99:9400"}
    idle = {"container": "", "namespace": "", "pod": ""}
    busy = {"container": "main", "namespace": "argo", "pod": "train-1"}
    series("DCGM_FI_DEV_POWER_USAGE", {**gpu, **idle}, 60 + ramp[:4])
    series("DCGM_FI_DEV_POWER_USAGE", {**gpu, **busy}, 200 + ramp[4:8], first=4)
    series("DCGM_FI_DEV_POWER_USAGE", {**gpu, **idle}, 60 + ramp[8:], first=8)
    old = {"uuid": "GPU-y", "gpu": "1", "instance": "10.0.0.99:9400"}
    series("DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION", old, 5_000_000 + 300_000 * ramp)
    uname = {"instance": "10.0.0.99:9100", "nodename": "gpu-node-9", "sysname": "Linux"}
    series("node_uname_info", uname, np.ones(EXTRA_SAMPLES))
    for metric, labels in (
        ("node_rapl_core_joules_total", {"index": "0"}),
        ("node_rapl_uncore_joules_total", {"index": "0"}),
        ("node_rapl_joules_total", {"index": "0", "rapl_zone": "psys"}),
    ):
        series(metric, {**labels, "instance": "10.0.0.99:9100"}, 10 + 30 * ramp)
    orphan = {
        "index": "0",
        "instance": "10.0.0.77:9100",
        "path": "/sys/devices/virtual/powercap/intel-rapl:0",
    }
    series("node_rapl_package_joules_total", orphan, 10 + 30 * ramp, offset_s=3600)

    text = [line for name, lines in families.items() for line in [f"# TYPE {name} unknown", *lines]]
    return "\n".join([*text, "# EOF", ""])


@pytest.fixture(scope="module")
def env(tmp_path_factory, request, start_prometheus) -> Env:
    if PROMTOOL is None:
        pytest.skip("promtool is not installed (make test installs Debian's prometheus package as root)")
    root = tmp_path_factory.mktemp("prometheus")
    world = generate(root / "world", n_workflows=6, seed=3)
    tsdb = root / "tsdb"
    files = []
    for dialect in DIALECTS:
        files.append(root / f"{dialect}.om")
        write_openmetrics(root / "world", files[-1], dialect)
    files.append(root / "extra.om")
    files[-1].write_text(_extra_openmetrics(int((world.start + timedelta(days=1)).timestamp())))
    for path in files:
        create_tsdb_blocks(path, tsdb, PROMTOOL)
    server = start_prometheus(root, "scrape_configs: []\n", tsdb)
    request.addfinalizer(server.stop)
    return Env(server.url, root / "world", world)


def _at_milliseconds(table: pa.Table) -> pa.Table:
    """The world's readings at Prometheus' resolution: timestamps rounded to the nearest millisecond."""
    us = table["timestamp"].cast(pa.int64()).to_numpy()
    ms = pa.array((us + 500) // 1000 * 1000).cast(table.schema.field("timestamp").type)
    return table.set_column(table.schema.get_field_index("timestamp"), "timestamp", ms)


def _world_samples(env: Env, kinds: tuple[str, ...] | None = None) -> pa.Table:
    table = _at_milliseconds(RecordedSources(env.world_dir).power_samples())
    return table if kinds is None else table.filter(pc.is_in(table["device_kind"], pa.array(kinds)))


def _task_energy(env: Env, samples: pa.Table) -> dict[tuple, float]:
    sources = RecordedSources(env.world_dir)
    _, tasks = sources.workflows_and_tasks()
    rows = attribute(tasks, samples, sources.machines()).task_energy
    keys = zip(
        *(rows[c].to_pylist() for c in ("workflow_uid", "task_id", "device_kind", "device_id")), strict=True
    )
    return dict(zip(keys, rows["energy_joules"].to_pylist(), strict=True))


def _assert_same_energy(got: dict[tuple, float], want: dict[tuple, float]) -> None:
    assert got.keys() == want.keys() and want
    worst = max(abs(got[k] - want[k]) / max(abs(want[k]), 1e-9) for k in want)
    assert worst < RELATIVE, worst


def _series(table: pa.Table, **match) -> pa.Table:
    for column, value in match.items():
        table = table.filter(pc.equal(table[column], value))
    return table.sort_by("timestamp")


def _ms(table: pa.Table) -> np.ndarray:
    return table["timestamp"].cast(pa.int64()).to_numpy() // 1000


def _read_world(env: Env, dialects, **kwargs) -> pa.Table:
    return read_power_samples(env.client(), dialects, env.world.start, env.world.end, **kwargs)


def test_node_exporter_gives_raw_counters_exactly_and_infers_the_wrap_point(env):
    samples = _read_world(env, ["node-exporter"])
    world = [r for r in world_readings(env.world_dir) if r.source == "rapl"]
    wrapped = 0
    for reading in world:
        got = _series(samples, host_node=reading.host_node, device_id=reading.device_id)
        np.testing.assert_array_equal(_ms(got), reading.times_ms)
        np.testing.assert_array_equal(got["value"].to_numpy(), reading.values)
        drops = bool((np.diff(reading.values) < 0).any())
        wrapped += drops
        assert got["counter_max_joules"].unique().to_pylist() == [RAPL_COUNTER_MAX_JOULES if drops else None]
        assert set(got["source"].to_pylist()) == {"node_exporter"}
    assert len(world) == 20 and wrapped >= 3
    assert set(samples["provenance"].to_pylist()) == {"measured"}


def test_node_exporter_attribution_matches_the_world(env):
    kinds = ("cpu_package", "dram")
    _assert_same_energy(
        _task_energy(env, _read_world(env, ["node-exporter"])), _task_energy(env, _world_samples(env, kinds))
    )


def test_agent_energy_between_readings_matches_the_world(env):
    samples = _read_world(env, ["agent"])
    for reading in world_readings(env.world_dir):
        got = _series(samples, host_node=reading.host_node, device_id=reading.device_id)
        np.testing.assert_array_equal(_ms(got), reading.times_ms)
        if reading.value_kind == "energy_counter_joules":
            seconds = (reading.times_ms - reading.times_ms[0]) / 1000
            want, _ = unwrap_counter(reading.values, seconds, reading.counter_max_joules)
            np.testing.assert_allclose(np.diff(got["value"].to_numpy()), np.diff(want), rtol=1e-9, atol=1e-6)
            assert got["counter_max_joules"].null_count == got.num_rows
        if reading.device_kind == "fpga":
            np.testing.assert_array_equal(got["value"].to_numpy(), reading.values)
    kinds = set(zip(samples["device_kind"].to_pylist(), samples["value_kind"].to_pylist(), strict=True))
    assert ("gpu", "power_watts") not in kinds and ("fpga", "power_watts") in kinds
    assert set(samples["source"].to_pylist()) == {"agent/rapl", "agent/nvml", "agent/hwmon"}


def test_agent_attribution_matches_the_world(env):
    _assert_same_energy(
        _task_energy(env, _read_world(env, ["agent"])), _task_energy(env, _world_samples(env))
    )


def test_dcgm_converts_millijoules_and_matches_the_world(env):
    samples = _read_world(env, ["dcgm"])
    for reading in world_readings(env.world_dir):
        if reading.device_kind != "gpu":
            continue
        got = _series(samples, device_id=reading.device_id, value_kind=reading.value_kind)
        np.testing.assert_array_equal(_ms(got), reading.times_ms)
        np.testing.assert_array_equal(got["value"].to_numpy(), reading.values)
        assert set(got["host_node"].to_pylist()) == {reading.host_node}
    _assert_same_energy(_task_energy(env, samples), _task_energy(env, _world_samples(env, ("gpu",))))


def test_kepler_sums_sockets_and_attribution_matches_per_zone(env):
    """Kepler meters a zone summed over sockets, so its tasks get one "package" row where the world has
    package-0 and package-1: compare the per-task sums over sockets, and the per-node totals. They agree
    to 1e-6 here because the sample world's sockets carry equal loads and idle power."""
    samples = _read_world(env, ["kepler"])
    assert set(samples["device_id"].to_pylist()) - {r.device_id for r in world_readings(env.world_dir)} == {
        "package",
        "dram",
    }
    zone = {"cpu_package": "package", "dram": "dram"}
    want: dict[tuple, float] = {}
    for (workflow, task, kind, device), joules in _task_energy(
        env, _world_samples(env, ("cpu_package", "dram", "gpu"))
    ).items():
        key = (workflow, task, kind, zone.get(kind, device))
        want[key] = want.get(key, 0.0) + joules
    got = _task_energy(env, samples)
    _assert_same_energy(got, want)
    _, tasks = RecordedSources(env.world_dir).workflows_and_tasks()
    node_of = dict(zip(tasks["task_id"].to_pylist(), tasks["host_node"].to_pylist(), strict=True))
    for node in env.world.nodes:
        mine = sum(j for k, j in got.items() if node_of[k[1]] == node and k[2] != "gpu")
        theirs = sum(j for k, j in want.items() if node_of[k[1]] == node and k[2] != "gpu")
        assert abs(mine - theirs) <= RELATIVE * theirs


class _Recording:
    """Passes queries to a client and remembers the most points one series had in one answer."""

    def __init__(self, client):
        self.client = client
        self.url = client.url
        self.queries = 0
        self.most_points = 0

    def custom_query(self, query, params=None):
        result = self.client.custom_query(query, params=params)
        self.queries += 1
        self.most_points = max([self.most_points, *(len(item.get("values", [])) for item in result)])
        return result


@pytest.mark.parametrize("interval", [None, 1.0])
def test_chunked_reads_return_every_sample_exactly_once(env, interval):
    start = env.world.start + timedelta(minutes=3)
    end = start + timedelta(minutes=10)
    whole = read_power_samples(env.client(), ["node-exporter"], start, end)
    recording = _Recording(env.client())
    chunked = read_power_samples(
        recording, ["node-exporter"], start, end, max_points_per_series=50, scrape_interval_seconds=interval
    )
    assert chunked.equals(whole)
    assert recording.most_points <= 50 and recording.queries > 12
    assert _ms(whole).min() >= start.timestamp() * 1000 and _ms(whole).max() <= end.timestamp() * 1000
    node1 = _series(whole, host_node="cpu-node-1", device_id="package-0")
    assert 590 <= node1.num_rows <= 601


def test_host_nodes_keep_only_those_nodes(env):
    samples = _read_world(env, ["node-exporter", "dcgm"], host_nodes=["gpu-node-1"])
    assert set(samples["host_node"].to_pylist()) == {"gpu-node-1"}
    assert set(samples["device_kind"].to_pylist()) == {"cpu_package", "dram", "gpu"}


def test_first_dialect_meters_a_device_kind(env):
    agent_first = _read_world(env, ["agent", "kepler", "node-exporter", "dcgm"])
    assert {s.split("/")[0] for s in agent_first["source"].to_pylist()} == {"agent"}
    kepler_first = _read_world(env, ["kepler", "agent"])
    by_kind = {
        (kind, source.split("/")[0])
        for kind, source in zip(
            kepler_first["device_kind"].to_pylist(), kepler_first["source"].to_pylist(), strict=True
        )
    }
    assert by_kind == {("cpu_package", "kepler"), ("dram", "kepler"), ("gpu", "kepler"), ("fpga", "agent")}


def test_a_gap_in_a_series_is_reported_not_filled(env, caplog):
    gap_host, gap_start, gap_end = env.world.agent_gap
    with caplog.at_level(logging.WARNING, logger="collectors.cluster.prometheus"):
        samples = _read_world(env, ["agent"])
    reported = [r.getMessage() for r in caplog.records if gap_host in r.getMessage()]
    assert reported and all("no readings in" in message for message in reported)
    inside = pc.and_(
        pc.equal(samples["host_node"], gap_host),
        pc.and_(pc.greater(samples["timestamp"], gap_start), pc.less(samples["timestamp"], gap_end)),
    )
    assert not pc.any(inside).as_py()


def test_container_dialects(env):
    start, end = env.window_a
    rows = read_container_samples(env.client(), ["kepler", "kepler-legacy", "cadvisor", "agent"], start, end)
    by_source: dict[str, list[dict]] = {}
    for row in rows.to_pylist():
        by_source.setdefault(row["source"], []).append(row)
    kepler = by_source["kepler"]
    pods = {(r["pod_name"], r["container_id"], r["device_kind"]) for r in kepler}
    # uncore skipped; the container's running and terminated series are one; an unknown pod_id keeps no name.
    assert pods == {
        ("wf-a", None, "cpu_package"),
        ("wf-a", None, "dram"),
        ("wf-a", "c1", "cpu_package"),
        (None, "c9", "cpu_package"),
    }
    c1 = [r for r in kepler if r["container_id"] == "c1"]
    assert len(c1) == EXTRA_SAMPLES and {r["pod_uid"] for r in c1} == {POD_UID}
    assert [r["value"] for r in c1] == [50 + 90 * i for i in range(EXTRA_SAMPLES)]
    for mode in ("dynamic", "idle"):
        legacy = by_source[f"kepler-legacy/{mode}"]
        assert {(r["host_node"], r["namespace"], r["pod_name"], r["device_kind"]) for r in legacy} == {
            ("cpu-node-2", "argo", "wf-b", None),
            ("cpu-node-2", "argo", "wf-b", "cpu_package"),
        }
    cadvisor = by_source["cadvisor"]
    assert {(r["pod_name"], r["pod_uid"], r["container_id"], r["host_node"]) for r in cadvisor} == {
        ("wf-c", POD_UID, CONTAINER_ID, "cpu-node-3")
    }
    assert {r["value_kind"] for r in cadvisor + by_source["agent-cgroup"]} == {"cpu_seconds_counter"}
    assert {(r["host_node"], r["pod_uid"], r["container_id"]) for r in by_source["agent-cgroup"]} == {
        ("cpu-node-1", POD_UID, "c1")
    }
    # No GPU busy series in this window (a cluster without GPUs): not an error, just no rows.
    assert "agent-nvml" not in by_source
    assert set(rows["device_id"].to_pylist()) == {None}


def test_kepler_legacy_node_energy_sums_the_modes(env):
    start, end = env.window_a
    samples = read_power_samples(env.client(), ["kepler-legacy"], start, end)
    assert set(zip(samples["host_node"].to_pylist(), samples["device_id"].to_pylist(), strict=True)) == {
        ("cpu-node-2", "package-0")
    }
    assert samples["value"].to_pylist() == [1000 + 550 * i for i in range(EXTRA_SAMPLES)]
    assert read_power_samples(env.client(), ["kepler-legacy"], env.world.start, env.world.end).num_rows == 0


def test_dcgm_joins_pod_label_changes_and_finds_hosts_by_address(env):
    start, end = env.window_a
    samples = read_power_samples(env.client(), ["dcgm"], start, end)
    power = _series(samples, device_id="GPU-x")
    assert power.num_rows == EXTRA_SAMPLES and set(power["host_node"].to_pylist()) == {"gpu-node-9"}
    energy = _series(samples, device_id="GPU-y")
    assert set(energy["host_node"].to_pylist()) == {"gpu-node-9"}
    assert energy["value"].to_pylist() == [5000 + 300 * i for i in range(EXTRA_SAMPLES)]
    assert gpu_ids_by_pod(env.client(), start, end) == {("argo", "train-1"): ["GPU-x"]}


def test_node_exporter_zones_and_the_zone_label(env):
    start, end = env.window_a
    samples = read_power_samples(env.client(), ["node-exporter"], start, end)
    assert set(zip(samples["device_kind"].to_pylist(), samples["device_id"].to_pylist(), strict=True)) == {
        ("cpu_core", "core-0"),
        ("psys", "psys-0"),
    }
    assert set(samples["host_node"].to_pylist()) == {"gpu-node-9"}


def test_a_missing_info_series_is_named(env):
    start, end = env.window_b
    with pytest.raises(PrometheusReadError, match=r"instance='10\.0\.0\.77:9100'.*no node_uname_info series"):
        read_power_samples(env.client(), ["node-exporter"], start, end)


def test_a_dialect_without_series_is_named(env):
    before = env.world.start - timedelta(hours=2)
    with pytest.raises(
        PrometheusReadError,
        match=r"no DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION or DCGM_FI_DEV_POWER_USAGE series between .*dcgm",
    ):
        read_power_samples(env.client(), ["dcgm"], before, before + timedelta(hours=1))
    with pytest.raises(PrometheusReadError, match=r"no kepler_container_joules_total series.*kepler-legacy"):
        read_container_samples(env.client(), ["kepler-legacy"], env.world.start, env.world.end)


def test_prometheus_down_names_the_url(env):
    url = f"http://127.0.0.1:{_free_port()}"
    with pytest.raises(
        PrometheusReadError, match=rf"{url} cannot be reached on query .*for chunk \(2026-11-02"
    ):
        read_power_samples(connect(url, retries=0), ["agent"], env.world.start, env.world.end)


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True


def _serve(handler) -> tuple[_Server, str]:
    server = _Server(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}"


class _Slow(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        time.sleep(1.0)
        try:
            self.send_response(200)
            self.end_headers()
        except OSError:
            pass

    def log_message(self, *args):
        pass


class _Broken(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = json.dumps({"status": "error", "errorType": "internal", "error": "disk on fire"}).encode()
        self.send_response(500)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


def test_a_slow_prometheus_times_out(env):
    server, url = _serve(_Slow)
    try:
        with pytest.raises(PrometheusReadError, match=rf"{url} timed out on query .*read timeout=0.2"):
            read_power_samples(
                connect(url, timeout_seconds=0.2, retries=0), ["agent"], env.world.start, env.world.end
            )
    finally:
        server.shutdown()
        server.server_close()


def test_an_http_error_names_the_query():
    server, url = _serve(_Broken)
    try:
        with pytest.raises(
            PrometheusReadError,
            match=rf"{url} answered an error to query 'count_over_time\(DCGM.*disk on fire",
        ):
            read_power_samples(connect(url, retries=0), ["dcgm"], _T0, _T0 + timedelta(minutes=5))
    finally:
        server.shutdown()
        server.server_close()


def _counter(watts: float, seconds: np.ndarray, origin: float, wrap: float) -> np.ndarray:
    return (origin + watts * seconds) % wrap


@pytest.mark.parametrize("wrap", [RAPL_COUNTER_MAX_JOULES, 65536.0, 65712.999613])
def test_the_wrap_point_snaps_to_a_known_rapl_range(wrap):
    seconds = np.arange(0.0, 600.0, 5.0)
    values = _counter(120.0, seconds, wrap - 20_000.0, wrap)
    assert infer_counter_max_joules(seconds, values) == wrap


def test_an_unknown_wrap_point_is_estimated_and_a_reset_is_not_a_wrap():
    seconds = np.arange(0.0, 100.0, 1.0)
    estimate = infer_counter_max_joules(seconds, _counter(100.0, seconds, 4000.0, 5000.0))
    assert estimate == pytest.approx(5000.0, rel=1e-9)
    assert infer_counter_max_joules(seconds, _counter(50.0, seconds, 4000.0, 5000.0)) is None
    reset = np.concatenate([1000.0 + 50.0 * seconds[:50], 50.0 * seconds[:50]])
    assert infer_counter_max_joules(seconds, reset) is None
    assert infer_counter_max_joules(seconds, 50.0 * seconds) is None


class _Fake:
    """A client whose every range read answers the same series, to test merging without Prometheus."""

    url = "fake://prometheus"

    def __init__(self, series: list[dict]):
        self.series = series

    def custom_query(self, query, params=None):
        if query.startswith("count_over_time("):
            return [
                {"metric": s["metric"], "value": [0, str(len(s["values"]))]}
                for s in self.series
                if s["metric"]["__name__"] in query
            ]
        return [s for s in self.series if query.startswith(s["metric"]["__name__"])]


def test_two_series_disagreeing_about_one_device_are_an_error():
    t = _T0.timestamp()
    labels = {"__name__": "DCGM_FI_DEV_POWER_USAGE", "UUID": "GPU-z", "hostname": "n1"}
    fake = _Fake(
        [
            {"metric": {**labels, "pod": ""}, "values": [[t + 1, "60"], [t + 2, "61"]]},
            {"metric": {**labels, "pod": "p"}, "values": [[t + 2, "70"], [t + 3, "71"]]},
        ]
    )
    with pytest.raises(
        PrometheusReadError, match="different values at 2026-11-02T08:00:02.000Z: 61.0 and 70.0"
    ):
        read_power_samples(fake, ["dcgm"], _T0, _T0 + timedelta(minutes=1))


def test_arguments_are_checked():
    fake = _Fake([])
    with pytest.raises(ValueError, match="unknown Prometheus dialects"):
        read_power_samples(fake, ["kepler", "scaphandre"], _T0, _T0 + timedelta(minutes=1))
    with pytest.raises(ValueError, match="no time zone"):
        read_power_samples(fake, ["agent"], _T0.replace(tzinfo=None), _T0 + timedelta(minutes=1))
    with pytest.raises(ValueError, match="is before start"):
        read_power_samples(fake, ["agent"], _T0, _T0 - timedelta(microseconds=1))
    with pytest.raises(ValueError, match="at least 2"):
        read_power_samples(fake, ["agent"], _T0, _T0 + timedelta(minutes=1), max_points_per_series=1)
