"""The node agent: sampling steps, the /metrics text, per-container GPU busy time, the Parquet spool, --probe,
signals and cadence."""

from __future__ import annotations

import argparse
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

import schemas
from collectors.agent.cli import add_agent_arguments, options_from_args
from collectors.agent.metrics import ContainerGpuBusy, GpuBusyCounters, Metrics
from collectors.agent.options import DEFAULT_LISTEN, EXPOSITION_CONTENT_TYPE, AgentOptions, parse_listen
from collectors.agent.probe import build_sources, probe_report
from collectors.agent.server import Agent, Sampler, run_agent
from collectors.agent.spool import Spool
from collectors.meters.accumulate import EnergyAccumulator
from collectors.meters.cgroups import PidContainers, cgroup_root
from collectors.meters.nvml import GpuProcessBusy, NvmlSource
from collectors.meters.rapl import RaplSource
from collectors.meters.source import Meter, ProbeLine, ReadError, Reading, ReadResult
from schemas.kinds import ENERGY_COUNTER, POWER_GAUGE

from .conftest import UUIDS, FakeNvml, four_gpus

PROJECT = Path(__file__).resolve().parents[2]
PACKAGE = Meter("cpu_package", "package-0", "rapl", ENERGY_COUNTER, 100.0, "/fake/package-0/energy_uj")
BOARD = Meter("fpga", "0000:af:00.0", "hwmon", POWER_GAUGE, None, "/fake/hwmon3/power1_input")
GPU_COUNTER = Meter("gpu", "GPU-1234", "nvml", ENERGY_COUNTER, None, "energy(GPU 0)")
GPU_POWER = Meter("gpu", "GPU-1234", "nvml", POWER_GAUGE, None, "power(GPU 0)")


@dataclass
class FakeSource:
    """Returns the values a test sets, at the (monotonic) times it sets."""

    values: dict[Meter, float]
    name: str = "fake"
    errors: list[ReadError] = field(default_factory=list)
    now_monotonic: float = 1000.0

    def meters(self) -> list[Meter]:
        return list(self.values)

    def read(self) -> ReadResult:
        readings = [
            Reading(meter, self.now_monotonic, 1.7e9 + self.now_monotonic, value)
            for meter, value in self.values.items()
        ]
        return ReadResult(readings, list(self.errors))

    def probe(self) -> list[ProbeLine]:
        return [ProbeLine(self.name, m.path, True, f"{v}") for m, v in self.values.items()]


class BrokenSource:
    name = "broken"

    def meters(self) -> list[Meter]:
        return []

    def read(self) -> ReadResult:
        raise RuntimeError("driver went away")

    def probe(self) -> list[ProbeLine]:
        return [ProbeLine(self.name, "device", False, "driver went away")]


_SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$")
_LABEL = re.compile(r'\s*([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"\s*(?:,|$)')
_UNESCAPE = {"\\\\": "\\", '\\"': '"', "\\n": "\n"}


def parse_exposition(text: str) -> tuple[dict[tuple[str, frozenset], float], dict[str, str]]:
    """Samples {(name, labels): value} and types {name: type} of a text exposition; fails on a bad line."""
    samples: dict[tuple[str, frozenset], float] = {}
    types: dict[str, str] = {}
    helps: set[str] = set()
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split(" ", 3)
            types[name] = kind
        elif line.startswith("# HELP "):
            helps.add(line.split(" ", 3)[2])
        elif line:
            match = _SAMPLE.match(line)
            assert match, f"not a sample line: {line!r}"
            name, label_text, value = match.groups()
            labels = {}
            for label in _LABEL.finditer(label_text or ""):
                labels[label.group(1)] = re.sub(r"\\[\\\"n]", lambda m: _UNESCAPE[m.group(0)], label.group(2))
            key = (name, frozenset(labels.items()))
            assert key not in samples, f"duplicate series {key}"
            samples[key] = float(value)
            assert name in types and name in helps, f"{name} has no # TYPE / # HELP"
    return samples, types


def series(meter: Meter) -> frozenset:
    return frozenset(
        {"device_kind": meter.device_kind, "device_id": meter.device_id, "source": meter.source}.items()
    )


def new_sampler(
    sources,
    spool: Spool | None = None,
    cgroup_folder: Path | None = None,
    gpu_busy: GpuBusyCounters | None = None,
) -> Sampler:
    """At most 60 W: in a 1 s step the fake 100 J counter can wrap once at most, so no step is ambiguous."""
    accumulator = EnergyAccumulator(max_power_watts=60.0)
    return Sampler(sources, accumulator, Metrics("node-a", "9.9"), spool, cgroup_folder, gpu_busy)


def test_one_step_updates_metrics_and_the_text_parses():
    source = FakeSource({PACKAGE: 10.0, BOARD: 50.0})
    sampler = new_sampler([source])
    sampler.step()
    source.values = {PACKAGE: 30.0, BOARD: 70.0}
    source.now_monotonic += 1.0
    sampler.step()

    samples, types = parse_exposition(sampler.metrics.render())
    assert samples[("jouletrace_energy_joules_total", series(PACKAGE))] == pytest.approx(20.0)
    assert samples[("jouletrace_power_watts", series(PACKAGE))] == pytest.approx(20.0)
    assert samples[("jouletrace_energy_joules_total", series(BOARD))] == pytest.approx(60.0)  # trapezoid
    assert samples[("jouletrace_power_watts", series(BOARD))] == pytest.approx(70.0)
    assert (
        samples[("jouletrace_agent_info", frozenset({"version": "9.9", "host_node": "node-a"}.items()))] == 1
    )
    assert samples[("jouletrace_samples_total", frozenset())] == 2
    assert types["jouletrace_energy_joules_total"] == "counter"
    assert types["jouletrace_power_watts"] == "gauge"
    for name in ("wraps", "ambiguous_intervals", "resets"):
        assert samples[(f"jouletrace_meter_{name}_total", series(PACKAGE))] == 0


def test_wraps_are_corrected_and_counted():
    source = FakeSource({PACKAGE: 90.0})
    sampler = new_sampler([source])
    sampler.step()
    for value in (10.0, 60.0, 5.0):  # +20 J through a wrap, +50 J, +45 J through another
        source.values = {PACKAGE: value}
        source.now_monotonic += 1.0
        sampler.step()

    samples, _ = parse_exposition(sampler.metrics.render())
    assert samples[("jouletrace_energy_joules_total", series(PACKAGE))] == pytest.approx(115.0)
    assert samples[("jouletrace_meter_wraps_total", series(PACKAGE))] == 2
    assert samples[("jouletrace_meter_ambiguous_intervals_total", series(PACKAGE))] == 0


def test_a_gpu_counter_and_power_gauge_make_one_series():
    source = FakeSource({GPU_COUNTER: 5000.0, GPU_POWER: 250.0})
    sampler = new_sampler([source])
    sampler.step()
    source.values = {GPU_COUNTER: 5300.0, GPU_POWER: 310.0}
    source.now_monotonic += 1.0
    sampler.step()

    samples, _ = parse_exposition(sampler.metrics.render())
    gpu = [key for key in samples if key[0] == "jouletrace_energy_joules_total"]
    assert gpu == [("jouletrace_energy_joules_total", series(GPU_COUNTER))]
    assert samples[gpu[0]] == pytest.approx(300.0)  # the counter, not the gauge's integral (280 J)
    assert samples[("jouletrace_power_watts", series(GPU_POWER))] == pytest.approx(310.0)  # the gauge


def test_read_errors_are_counted_per_source_and_path():
    source = FakeSource(
        {PACKAGE: 1.0, BOARD: -3.0}, errors=[ReadError("fake", "/fake/dram-0/energy_uj", "Permission denied")]
    )
    sampler = new_sampler([source, BrokenSource()])
    sampler.step()
    sampler.step()

    samples, _ = parse_exposition(sampler.metrics.render())
    errors = {
        dict(labels)["path"]: value
        for (name, labels), value in samples.items()
        if name == "jouletrace_read_errors_total"
    }
    assert errors == {"/fake/dram-0/energy_uj": 2, BOARD.path: 2, "read()": 2}  # the negative watts too
    assert ("jouletrace_energy_joules_total", series(BOARD)) not in samples
    assert ("jouletrace_energy_joules_total", series(PACKAGE)) in samples


def test_label_values_are_escaped():
    odd = Meter("fpga", 'board "A"\\1\nrev2', "fake", POWER_GAUGE, None, "/fake/odd")
    sampler = new_sampler([FakeSource({odd: 5.0})])
    sampler.step()

    text = sampler.metrics.render()
    assert 'device_id="board \\"A\\"\\\\1\\nrev2"' in text
    samples, _ = parse_exposition(text)
    assert samples[("jouletrace_power_watts", series(odd))] == 5.0


@pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool is not installed")
def test_promtool_accepts_the_exposition(tmp_path, fake_proc):
    root = cgroup_root(tmp_path)
    container = root / "kubepods.slice" / "kubepods-pod1234_abcd.slice" / f"cri-containerd-{'a' * 64}.scope"
    container.mkdir(parents=True)
    (container / "cpu.stat").write_text("usage_usec 2500000\n")
    source = FakeSource({PACKAGE: 1.0, BOARD: 2.0, GPU_COUNTER: 3.0, GPU_POWER: 4.0})
    source.errors = [ReadError("fake", '/odd "path"', "x")]
    gpus = four_gpus()
    gpus[0].add_sample(10, T0_US, 20)
    fake_proc.add_in_pod(10, POD_A, CONTAINER_1)
    sampler = new_sampler([source], cgroup_folder=root, gpu_busy=gpu_busy_counters(gpus, fake_proc))
    sampler.step()
    gpus[0].add_sample(10, T0_US + 500_000, 40)
    gpus[0].add_sample(11, T0_US + 500_000, 10)  # a host process
    sampler.step()
    text = sampler.metrics.render()

    checked = subprocess.run(["promtool", "check", "metrics"], input=text, capture_output=True, text=True)
    # No parse error (exit 1) and no lint (exit 3).
    assert checked.returncode == 0, checked.stdout + checked.stderr
    samples, types = parse_exposition(text)
    container_series = frozenset({"container_id": "a" * 64, "pod_uid": "1234-abcd"}.items())
    assert samples[("jouletrace_container_cpu_seconds_total", container_series)] == 2.5
    assert types["jouletrace_container_cpu_seconds_total"] == "counter"
    gpu_series = {"container_id": CONTAINER_1, "pod_uid": POD_A, "gpu_uuid": UUIDS[0]}
    assert samples[("jouletrace_container_gpu_busy_seconds_total", labelset(**gpu_series))] == 0.4 * 0.5
    assert types["jouletrace_container_gpu_busy_seconds_total"] == "counter"
    outside = labelset(gpu_uuid=UUIDS[0])
    assert samples[("jouletrace_gpu_busy_seconds_outside_pods_total", outside)] == 0.1 * 0.5


T0_US = 1_700_000_000_000_000
POD_A = "0f3c2b7e-1111-4a2b-9c3d-5e6f7a8b9c0d"
POD_B = "aa11bb22-3333-4444-5555-666677778888"
CONTAINER_1 = "1" * 64
CONTAINER_2 = "2" * 64


def labelset(**labels: str) -> frozenset:
    return frozenset(labels.items())


def gpu_busy_counters(gpus, fake_proc, retain_seconds: float = 3600.0) -> GpuBusyCounters:
    reader = GpuProcessBusy(NvmlSource(FakeNvml(gpus)), max_period_seconds=2.0)
    return GpuBusyCounters(reader, PidContainers(fake_proc.root), retain_seconds)


def gpu_busy_metrics(text: str) -> dict[tuple[str, str, str], float]:
    samples, types = parse_exposition(text)
    assert types["jouletrace_container_gpu_busy_seconds_total"] == "counter"
    return {
        (dict(labels)["pod_uid"], dict(labels)["container_id"], dict(labels)["gpu_uuid"]): value
        for (name, labels), value in samples.items()
        if name == "jouletrace_container_gpu_busy_seconds_total"
    }


def test_gpu_busy_seconds_per_container_survive_a_process_exiting(fake_proc):
    gpus = four_gpus()
    fake_proc.add_in_pod(101, POD_A, CONTAINER_1)
    fake_proc.add_in_pod(102, POD_A, CONTAINER_1)  # a second process of the same container
    fake_proc.add_in_pod(103, POD_B, CONTAINER_2)  # on two GPUs
    fake_proc.add(900, "0::/system.slice/some-host-daemon.service\n")
    for pid in (101, 102, 103, 900):
        gpus[0].add_sample(pid, T0_US, 99)  # before the agent: not credited
    gpus[1].add_sample(103, T0_US, 99)
    sampler = new_sampler([FakeSource({PACKAGE: 1.0})], gpu_busy=gpu_busy_counters(gpus, fake_proc))
    sampler.step()
    assert gpu_busy_metrics(sampler.metrics.render()) == {}

    for pid, percent in ((101, 50), (102, 20), (103, 30), (900, 10)):
        gpus[0].add_sample(pid, T0_US + 1_000_000, percent)
    gpus[1].add_sample(103, T0_US + 500_000, 80)
    sampler.step()
    want = {
        (POD_A, CONTAINER_1, UUIDS[0]): 0.5 * 1.0 + 0.2 * 1.0,
        (POD_B, CONTAINER_2, UUIDS[0]): 0.3 * 1.0,
        (POD_B, CONTAINER_2, UUIDS[1]): 0.8 * 0.5,
    }
    assert gpu_busy_metrics(sampler.metrics.render()) == pytest.approx(want)

    fake_proc.exit(103)  # its last sample comes after it exited: still its container's
    fake_proc.exit(101)
    gpus[1].add_sample(103, T0_US + 1_000_000, 60)
    gpus[0].add_sample(102, T0_US + 2_000_000, 100)
    sampler.step()
    want[(POD_B, CONTAINER_2, UUIDS[1])] += 0.6 * 0.5
    want[(POD_A, CONTAINER_1, UUIDS[0])] += 1.0 * 1.0
    sampler.step()  # nothing new: every counter keeps its value, the exited processes' too
    samples, _ = parse_exposition(sampler.metrics.render())
    assert gpu_busy_metrics(sampler.metrics.render()) == pytest.approx(want)
    outside = samples[("jouletrace_gpu_busy_seconds_outside_pods_total", labelset(gpu_uuid=UUIDS[0]))]
    assert outside == pytest.approx(0.1 * 1.0)


def test_a_gpu_busy_counter_without_samples_for_the_retention_time_is_dropped(fake_proc):
    gpus = four_gpus()
    fake_proc.add_in_pod(101, POD_A, CONTAINER_1)
    fake_proc.add_in_pod(103, POD_B, CONTAINER_2)
    gpus[0].add_sample(101, T0_US, 10)
    counters = gpu_busy_counters(gpus, fake_proc, retain_seconds=60.0)
    assert counters.update(0.0) == []
    gpus[0].add_sample(101, T0_US + 1_000_000, 50)
    gpus[0].add_sample(103, T0_US + 1_000_000, 50)
    counters.update(1.0)
    gpus[0].add_sample(103, T0_US + 1_500_000, 50)
    counters.update(30.0)
    assert counters.update(61.0) == []
    assert counters.containers() == [
        ContainerGpuBusy(CONTAINER_1, POD_A, UUIDS[0], 0.5),
        ContainerGpuBusy(CONTAINER_2, POD_B, UUIDS[0], 0.5 + 0.25),
    ]
    counters.update(61.5)  # container 1's last sample was at 1.0, 60.5 s ago
    assert [c.container_id for c in counters.containers()] == [CONTAINER_2]


def test_gpu_errors_are_counted_and_no_gpu_means_no_family(fake_proc):
    gpus = four_gpus()
    sampler = new_sampler([FakeSource({PACKAGE: 1.0})], gpu_busy=gpu_busy_counters(gpus, fake_proc))
    sampler.step()
    gpus[2].lost = True
    sampler.step()
    samples, _ = parse_exposition(sampler.metrics.render())
    path = labelset(source="nvml", path="nvmlDeviceGetProcessUtilization(GPU 2)")
    assert samples[("jouletrace_read_errors_total", path)] == 1
    assert gpu_busy_metrics(sampler.metrics.render()) == {}  # HELP and TYPE, no series yet

    plain = new_sampler([FakeSource({PACKAGE: 1.0})])
    plain.step()
    assert "jouletrace_container_gpu_busy_seconds_total" not in plain.metrics.render()


def test_the_agent_exports_gpu_busy_time_unless_told_not_to(fake_proc, tmp_path):
    gpus = four_gpus()
    fake_proc.add_in_pod(101, POD_A, CONTAINER_1)
    gpus[0].add_sample(101, T0_US, 10)
    nvml = NvmlSource(FakeNvml(gpus))
    options = AgentOptions(sysfs_root=tmp_path, listen="127.0.0.1:0", proc_root=fake_proc.root)
    agent = Agent(options, [nvml])
    agent.sampler.step()
    gpus[0].add_sample(101, T0_US + 250_000, 100)
    agent.sampler.step()
    assert gpu_busy_metrics(agent.metrics.render()) == {(POD_A, CONTAINER_1, UUIDS[0]): pytest.approx(0.25)}

    off = Agent(AgentOptions(sysfs_root=tmp_path, container_gpu=False, proc_root=fake_proc.root), [nvml])
    off.sampler.step()
    assert "jouletrace_container_gpu_busy_seconds_total" not in off.metrics.render()

    parser = argparse.ArgumentParser()
    add_agent_arguments(parser)
    parsed = options_from_args(parser.parse_args(["--no-container-gpu", "--proc-root", "/host/proc"]))
    assert (parsed.container_gpu, parsed.proc_root) == (False, Path("/host/proc"))
    default = options_from_args(parser.parse_args([]))
    assert (default.container_gpu, default.proc_root) == (True, Path("/proc"))


def test_probe_says_whether_gpu_busy_time_reads_and_whether_pids_are_the_hosts(fake_proc, tmp_path, capsys):
    gpus = four_gpus()
    fake_proc.add_in_pod(101, POD_A, CONTAINER_1)
    gpus[0].add_sample(101, T0_US, 10)
    gpus[0].add_sample(4242, T0_US, 10)  # not in this /proc: the pod would lack hostPID
    gpus[3].process_samples = None
    options = AgentOptions(sysfs_root=tmp_path, probe=True, proc_root=fake_proc.root)
    assert run_agent(options, sources=[NvmlSource(FakeNvml(gpus))]) == 0
    lines = capsys.readouterr().out.splitlines()
    gpu0 = next(line for line in lines if f"GPU 0 ({UUIDS[0]}) per-process utilisation" in line)
    assert " readable " in gpu0
    assert gpu0.endswith(
        f"readable; samples of 2 processes: 1 in pod containers, 1 not in {fake_proc.root} "
        "(NVML reports host PIDs: does the pod have hostPID?)"
    )
    gpu3 = next(line for line in lines if f"GPU 3 ({UUIDS[3]}) per-process utilisation" in line)
    assert "NOT readable" in gpu3 and "not supported (MIG enabled)" in gpu3

    run_agent(
        AgentOptions(sysfs_root=tmp_path, probe=True, container_gpu=False), [NvmlSource(FakeNvml(gpus))]
    )
    assert "per-process utilisation" not in capsys.readouterr().out


def rapl_tree(fake_sysfs, max_energy_range_uj: int = 262_143_328_850):
    fake_sysfs.add_rapl_zone("intel-rapl:0", "package-0", max_energy_range_uj)
    fake_sysfs.add_rapl_zone("intel-rapl:0:0", "dram", max_energy_range_uj)
    return fake_sysfs


def scrape(address: tuple[str, int], path: str = "/metrics") -> tuple[str, str]:
    with urllib.request.urlopen(f"http://{address[0]}:{address[1]}{path}", timeout=5) as response:
        return response.read().decode(), response.headers["Content-Type"]


def test_rapl_on_a_fake_sysfs_served_over_http(fake_sysfs):
    rapl_tree(fake_sysfs, max_energy_range_uj=100_000_000)  # wraps at 100 J
    agent = Agent(
        AgentOptions(sysfs_root=fake_sysfs.root, listen="127.0.0.1:0"), [RaplSource(fake_sysfs.root)]
    )
    address = agent.serve()
    try:
        agent.sampler.step()
        fake_sysfs.advance_joules("intel-rapl:0:0", 7.5)
        wraps = 0
        for _ in range(4):  # 30 J every 0.05 s (600 W, under the 2000 W limit): 120 J through one wrap
            time.sleep(0.05)
            wraps += fake_sysfs.advance_joules("intel-rapl:0", 30.0)
            agent.sampler.step()
        assert wraps == 1

        text, content_type = scrape(address)
        assert content_type == EXPOSITION_CONTENT_TYPE
        samples, _ = parse_exposition(text)
        energy = {
            dict(labels)["device_kind"]: value
            for (name, labels), value in samples.items()
            if name == "jouletrace_energy_joules_total"
        }
        assert energy == {"cpu_package": pytest.approx(120.0), "dram": pytest.approx(7.5)}
        package = next(
            labels for (name, labels) in samples if dict(labels).get("device_kind") == "cpu_package"
        )
        assert samples[("jouletrace_meter_wraps_total", package)] == 1
        with pytest.raises(urllib.error.HTTPError) as not_found:
            scrape(address, "/")
        assert not_found.value.code == 404
    finally:
        agent.close()


def test_the_server_binds_loopback_by_default():
    assert DEFAULT_LISTEN == "127.0.0.1:9471"
    assert AgentOptions().listen == DEFAULT_LISTEN
    assert parse_listen("[::1]:9471") == ("::1", 9471)
    with pytest.raises(ValueError, match="HOST:PORT"):
        parse_listen("9471")
    host, port = DEFAULT_LISTEN.rsplit(":", 1)
    agent = Agent(AgentOptions(listen=f"{host}:0", container_cpu=False), [])
    try:
        bound_host, bound_port = agent.serve()
        assert bound_host == "127.0.0.1" and bound_port > 0
    finally:
        agent.close()


def readings_at(unix_seconds: float, package_joules: float, board_watts: float) -> list[Reading]:
    return [
        Reading(PACKAGE, unix_seconds, unix_seconds, package_joules),
        Reading(BOARD, unix_seconds, unix_seconds, board_watts),
    ]


def test_spool_files_keep_raw_counters_validate_and_rotate_by_rows(tmp_path):
    spool = Spool(tmp_path, "node/a", rotate_seconds=300.0, rotate_rows=4)
    written = [
        spool.add(readings_at(1.7e9 + t, value, 40.0 + t), now_monotonic=t)
        for t, value in enumerate([90.0, 5.0, 20.0])
    ]
    assert written[0] is None and written[2] is None
    assert spool.flush() is not None  # shutdown writes the rest

    files = sorted(tmp_path.glob("*.parquet"))
    assert [f.name for f in files] == [
        "power_samples-node_a-20231114T221320.000000Z-20231114T221321.000000Z.parquet",
        "power_samples-node_a-20231114T221322.000000Z-20231114T221322.000000Z.parquet",
    ]
    assert written[1] == files[0]
    for file in files:
        assert schemas.validate_path(file) == {"power_samples": pq.read_metadata(file).num_rows}
    table = pq.read_table(files[0]).to_pylist()
    counters = [row for row in table if row["value_kind"] == ENERGY_COUNTER]
    assert [row["value"] for row in counters] == [90.0, 5.0]  # as read: the wrap is left to attribution
    assert {row["counter_max_joules"] for row in counters} == {100.0}
    gauges = [row for row in table if row["value_kind"] == POWER_GAUGE]
    assert {row["counter_max_joules"] for row in gauges} == {None}
    assert {(row["host_node"], row["provenance"]) for row in table} == {("node/a", "measured")}


def test_spool_rotates_by_time(tmp_path):
    spool = Spool(tmp_path, "node-a", rotate_seconds=10.0, rotate_rows=1000)
    assert spool.add(readings_at(1.7e9, 1.0, 1.0), now_monotonic=100.0) is None
    assert spool.add(readings_at(1.7e9 + 5, 2.0, 1.0), now_monotonic=105.0) is None
    first = spool.add(readings_at(1.7e9 + 10, 3.0, 1.0), now_monotonic=110.0)
    assert first is not None and pq.read_metadata(first).num_rows == 6
    assert spool.add(readings_at(1.7e9 + 11, 4.0, 1.0), now_monotonic=111.0) is None
    assert spool.flush() is not None
    assert spool.flush() is None  # nothing left
    assert len(list(tmp_path.glob("*.parquet"))) == 2


def test_a_failed_spool_write_keeps_the_rows(tmp_path):
    blocked = tmp_path / "not-a-folder"
    blocked.write_text("")
    source = FakeSource({PACKAGE: 1.0})
    sampler = new_sampler([source], spool=Spool(blocked, "node-a", rotate_seconds=0.0, rotate_rows=1))
    sampler.step()
    samples, _ = parse_exposition(sampler.metrics.render())
    assert samples[("jouletrace_spool_write_errors_total", frozenset())] == 1
    sampler.spool.folder = tmp_path / "spool"
    source.now_monotonic += 1
    sampler.step()
    (file,) = (tmp_path / "spool").glob("*.parquet")
    assert pq.read_metadata(file).num_rows == 2


def test_run_agent_samples_on_a_steady_cadence_and_flushes_on_stop(tmp_path):
    interval_seconds = 0.05
    source = FakeSource({PACKAGE: 1.0})
    source.read_times: list[float] = []
    plain_read = source.read

    def slow_read() -> ReadResult:
        source.read_times.append(time.monotonic())
        time.sleep(0.02)  # a step taking 40% of the interval must not stretch the cadence
        source.now_monotonic += 1
        return plain_read()

    source.read = slow_read
    options = AgentOptions(
        sysfs_root=tmp_path,
        listen="127.0.0.1:0",
        interval_seconds=interval_seconds,
        spool_dir=tmp_path / "spool",
    )
    stop = threading.Event()
    runner = threading.Thread(target=run_agent, args=(options, stop, [source]))
    runner.start()
    time.sleep(1.0)
    stop.set()
    runner.join(timeout=5)
    assert not runner.is_alive()

    times = source.read_times
    assert 10 <= len(times) <= 22
    # Steps start on the grid start + k * interval (a late one skips ticks), so consecutive starts are a
    # whole number of intervals apart; sleeping one interval after each step would put every pair 1.4
    # intervals apart (0.4 off). The median keeps a busy machine's odd late wake-up from deciding it.
    gaps = np.diff(times) / interval_seconds
    assert float(np.median(np.abs(gaps - np.round(gaps)))) < 0.15, gaps.round(2).tolist()
    (file,) = (tmp_path / "spool").glob("*.parquet")
    assert pq.read_metadata(file).num_rows == len(times)


def test_sigterm_writes_the_spool_and_exits_cleanly(fake_sysfs, tmp_path):
    rapl_tree(fake_sysfs)
    spool = tmp_path / "spool"
    agent = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "collectors.agent",
            "--sysfs-root",
            str(fake_sysfs.root),
            "--listen",
            "127.0.0.1:0",
            "--interval",
            "0.05",
            "--spool",
            str(spool),
        ],
        cwd=PROJECT,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "NODE_NAME": "node-7"},
    )
    try:
        assert "metrics at http://127.0.0.1:" in agent.stderr.readline()
        time.sleep(0.5)
        agent.send_signal(signal.SIGTERM)
        assert agent.wait(timeout=10) == 0
    finally:
        agent.kill()
    (file,) = spool.glob("power_samples-node-7-*.parquet")
    table = pq.read_table(file)
    assert schemas.validate_path(file) == {"power_samples": table.num_rows}
    assert table.num_rows >= 10 and set(table["device_kind"].to_pylist()) == {"cpu_package", "dram"}


def test_probe_lists_readable_and_unreadable_meters(fake_sysfs, as_unprivileged, capsys):
    rapl_tree(fake_sysfs)
    fake_sysfs.make_root_only("intel-rapl:0:0")
    with as_unprivileged():
        sources = [RaplSource(fake_sysfs.root), BrokenSource()]
        code = run_agent(AgentOptions(sysfs_root=fake_sysfs.root, probe=True), sources=sources)
    out = capsys.readouterr().out
    assert code == 0
    lines = out.splitlines()
    assert any("package-0" in line and " readable " in line for line in lines), out
    assert any("intel-rapl:0:0" in line and "NOT readable" in line for line in lines), out
    assert any(line.startswith("broken") and "NOT readable" in line for line in lines), out
    assert "cgroup v2: CPU time of 0 pod containers readable" in out


def test_probe_exits_1_when_nothing_is_readable(tmp_path, capsys):
    assert run_agent(AgentOptions(sysfs_root=tmp_path, probe=True), sources=[BrokenSource()]) == 1
    assert "0 readable, 1 not readable" in capsys.readouterr().out


def test_build_sources_finds_rapl_and_fpga_without_a_gpu_driver(fake_sysfs):
    rapl_tree(fake_sysfs)
    fake_sysfs.add_hwmon(3, "xclmgmt_microblaze", 31_500_000, label="POWER", pci_address="0000:af:00.0")
    sources = build_sources(fake_sysfs.root, nvml=None, xrt_devices=())
    assert [source.name for source in sources] == ["rapl", "nvml", "hwmon"]
    kinds = {meter.device_kind for source in sources for meter in source.meters()}
    assert {"cpu_package", "dram", "fpga"} <= kinds
    report = probe_report(sources)
    assert "0000:af:00.0" in report and "package-0" in report
