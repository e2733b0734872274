"""Integration: a real Prometheus scrapes the agent while a fake RAPL counter wraps several times, and while
fake NVML reports per-process GPU utilisation of processes in pod containers.

The energy Prometheus stores must be monotone and, once the counter stops, equal to every joule the test
added since the agent's first reading: the wraps are corrected in the agent, not lost as in a raw counter.
The GPU busy seconds read back through the reader's agent dialect must be valid container_samples rows
whose last values are the busy seconds the samples add up to.
"""

from __future__ import annotations

import contextlib
import json
import re
import shutil
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

import schemas
from collectors.agent.options import AgentOptions
from collectors.agent.server import Agent
from collectors.cluster.prometheus import connect, read_container_samples
from collectors.meters.nvml import NvmlSource
from collectors.meters.rapl import RaplSource

from .conftest import UUIDS, FakeNvml, four_gpus

PROMETHEUS = shutil.which("prometheus")
pytestmark = pytest.mark.skipif(
    PROMETHEUS is None, reason="the prometheus binary is not installed (Debian: apt-get install prometheus)"
)

ZONE = "intel-rapl:0"
MAX_ENERGY_RANGE_UJ = 1_000_000_000  # the counter wraps at 1000 J
JOULES_PER_STEP = 12.0  # every 0.02 s: 600 W, a wrap every 1.7 s; small steps keep every interval's power
STEP_SECONDS = 0.02  # far under the agent's 2000 W limit, which would read a bigger jump as a reset
ADVANCE_SECONDS = 7.0
AGENT_INTERVAL_SECONDS = 0.2
# At the agent's 2000 W limit an interval shorter than 1000 J / 2000 W = 0.5 s cannot hide a second wrap,
# so no interval is ambiguous and the count of wraps is exact.


def get_json(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=5) as response:
        return json.load(response)


def wait_for(condition, timeout_seconds: float, what: str) -> None:
    deadline = time.monotonic() + timeout_seconds
    while time.monotonic() < deadline:
        try:
            if condition():
                return
        except (OSError, urllib.error.URLError, KeyError, IndexError):
            pass
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout_seconds} s waiting for {what}")


def samples_taken(agent: Agent) -> float:
    return float(re.search(r"^jouletrace_samples_total (\S+)$", agent.metrics.render(), re.M).group(1))


def scrape_config(agent_port: int) -> str:
    return (
        "global:\n"
        "  scrape_interval: 1s\n"
        "  scrape_timeout: 1s\n"
        "  evaluation_interval: 1s\n"
        "scrape_configs:\n"
        "  - job_name: jouletrace-agent\n"
        "    static_configs:\n"
        f"      - targets: ['127.0.0.1:{agent_port}']\n"
    )


@contextlib.contextmanager
def scraped(agent: Agent, folder, start_prometheus):
    """The agent sampling and serving, and a Prometheus that has scraped it once; all stopped afterwards."""
    stop_agent = threading.Event()
    sampler = threading.Thread(target=agent.run, args=(stop_agent,))
    prometheus = None
    try:
        _, agent_port = agent.serve()
        sampler.start()
        prometheus = start_prometheus(folder, scrape_config(agent_port))
        wait_for(lambda: samples_taken(agent) >= 1, 5, "the agent's first reading")
        up = f"{prometheus.url}/api/v1/query?query=up"
        wait_for(
            lambda: get_json(up)["data"]["result"][0]["value"][1] == "1", 15, "Prometheus to scrape the agent"
        )
        yield prometheus
    finally:
        if prometheus is not None:
            prometheus.stop()
        stop_agent.set()
        if sampler.is_alive():
            sampler.join()
        agent.close()


def test_prometheus_stores_a_monotone_wrap_corrected_energy_counter(fake_sysfs, tmp_path, start_prometheus):
    fake_sysfs.add_rapl_zone(ZONE, "package-0", MAX_ENERGY_RANGE_UJ, energy_uj=123_456_789)
    options = AgentOptions(
        sysfs_root=fake_sysfs.root,
        listen="127.0.0.1:0",
        interval_seconds=AGENT_INTERVAL_SECONDS,
        container_cpu=False,
    )
    agent = Agent(options, [RaplSource(fake_sysfs.root)])
    stop_advancing = threading.Event()
    advanced = {"joules": 0.0, "wraps": 0}

    def advance() -> None:
        while not stop_advancing.wait(STEP_SECONDS):
            advanced["wraps"] += fake_sysfs.advance_joules(ZONE, JOULES_PER_STEP)
            advanced["joules"] += JOULES_PER_STEP

    advancer = threading.Thread(target=advance)
    try:
        with scraped(agent, tmp_path, start_prometheus) as prometheus:
            api = prometheus.url
            started_unix = time.time()
            advancer.start()
            time.sleep(ADVANCE_SECONDS)
            stop_advancing.set()
            advancer.join()
            # Let the agent read the last value, then Prometheus scrape twice after that reading.
            time.sleep(2 * AGENT_INTERVAL_SECONDS)
            time.sleep(2.2)

            query = urllib.parse.urlencode(
                {
                    "query": "jouletrace_energy_joules_total",
                    "start": started_unix - 1,
                    "end": time.time(),
                    "step": 1,
                }
            )
            (result,) = get_json(f"{api}/api/v1/query_range?{query}")["data"]["result"]
            assert result["metric"]["device_kind"] == "cpu_package"
            values = [float(value) for _, value in result["values"]]
            assert len(values) >= ADVANCE_SECONDS
            assert all(later >= earlier for earlier, later in zip(values, values[1:], strict=False)), values
            assert advanced["wraps"] >= 3
            assert values[0] == 0.0  # scraped before the first joule was added
            assert values[-1] == pytest.approx(advanced["joules"], rel=1e-6)

            wraps = get_json(f"{api}/api/v1/query?query=jouletrace_meter_wraps_total")["data"]["result"]
            assert float(wraps[0]["value"][1]) == advanced["wraps"]
            ambiguous = get_json(f"{api}/api/v1/query?query=jouletrace_meter_ambiguous_intervals_total")
            assert float(ambiguous["data"]["result"][0]["value"][1]) == 0
    finally:
        stop_advancing.set()
        if advancer.is_alive():
            advancer.join()


POD_A = "0f3c2b7e-1111-4a2b-9c3d-5e6f7a8b9c0d"
POD_B = "aa11bb22-3333-4444-5555-666677778888"
CONTAINER_1 = "1" * 64
CONTAINER_2 = "2" * 64
T0_US = 1_700_000_000_000_000
STEP_US = 100_000  # the fake driver's sampling period, 0.1 s
STEPS = 12


def sm_percent(step: int, pid: int) -> int:
    return (step * 7 + pid) % 101


def test_gpu_busy_seconds_round_trip_through_prometheus(fake_sysfs, fake_proc, tmp_path, start_prometheus):
    # CPU time of one container (the agent dialect needs it); GPU 0 shared by two pods, GPU 1 by one.
    cpu = (
        fake_sysfs.root / "fs" / "cgroup" / "kubepods.slice" / f"kubepods-pod{POD_A.replace('-', '_')}.slice"
    )
    (cpu / f"cri-containerd-{CONTAINER_1}.scope").mkdir(parents=True)
    (cpu / f"cri-containerd-{CONTAINER_1}.scope" / "cpu.stat").write_text("usage_usec 1500000\n")
    fake_proc.add_in_pod(101, POD_A, CONTAINER_1)
    fake_proc.add_in_pod(102, POD_B, CONTAINER_2)
    gpus = four_gpus()
    pids_on = {0: (101, 102), 1: (102,)}
    for index, pids in pids_on.items():
        gpus[index].add_samples(T0_US, dict.fromkeys(pids, 100))  # before the agent: never credited
    options = AgentOptions(
        sysfs_root=fake_sysfs.root,
        listen="127.0.0.1:0",
        interval_seconds=AGENT_INTERVAL_SECONDS,
        proc_root=fake_proc.root,
        host_node="gpu-node-1",
    )
    agent = Agent(options, [NvmlSource(FakeNvml(gpus))])
    owner = {101: (POD_A, CONTAINER_1), 102: (POD_B, CONTAINER_2)}
    want: dict[tuple[str, str, str], float] = {}
    for index, pids in pids_on.items():
        for pid in pids:
            # Every sample holds for the driver's period since the previous one (all pids sampled each time).
            seconds = sum(sm_percent(step, pid) / 100 * STEP_US / 1e6 for step in range(1, STEPS + 1))
            want[(*owner[pid], UUIDS[index])] = seconds
    started = datetime.now(UTC) - timedelta(seconds=1)
    with scraped(agent, tmp_path / "prometheus", start_prometheus) as prometheus:
        for step in range(1, STEPS + 1):
            for index, pids in pids_on.items():
                gpus[index].add_samples(T0_US + step * STEP_US, {pid: sm_percent(step, pid) for pid in pids})
            time.sleep(0.15)
        time.sleep(2 * AGENT_INTERVAL_SECONDS)
        time.sleep(2.2)  # two scrapes after the agent read the last samples

        rows = read_container_samples(
            connect(prometheus.url, retries=0), ["agent"], started, datetime.now(UTC) + timedelta(seconds=1)
        )

    assert schemas.validate("container_samples", rows).num_rows == rows.num_rows
    gpu_rows = [row for row in rows.to_pylist() if row["value_kind"] == "gpu_busy_seconds_counter"]
    series: dict[tuple, list[float]] = {}
    for row in gpu_rows:
        assert (row["host_node"], row["device_kind"], row["source"], row["provenance"]) == (
            "gpu-node-1",
            "gpu",
            "agent-nvml",
            "measured",
        )
        assert (row["namespace"], row["pod_name"]) == (None, None)
        series.setdefault((row["pod_uid"], row["container_id"], row["device_id"]), []).append(row["value"])
    assert series.keys() == want.keys()
    for key, values in series.items():
        assert len(values) >= 3
        assert all(np.diff(values) >= 0), (key, values)  # rows come sorted by time within a series
        assert values[-1] == pytest.approx(want[key], rel=1e-12)
    cpu_rows = [row for row in rows.to_pylist() if row["value_kind"] == "cpu_seconds_counter"]
    assert {(r["pod_uid"], r["container_id"], r["source"], r["device_id"]) for r in cpu_rows} == {
        (POD_A, CONTAINER_1, "agent-cgroup", None)
    }
    assert {r["value"] for r in cpu_rows} == {1.5}
