"""The node agent: sampling steps, the /metrics text, the Parquet spool, --probe, signals and cadence."""

from __future__ import annotations

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

import pyarrow.parquet as pq
import pytest

import schemas
from collectors.accumulate import EnergyAccumulator
from collectors.agent import (
    DEFAULT_LISTEN,
    EXPOSITION_CONTENT_TYPE,
    Agent,
    AgentOptions,
    Metrics,
    Sampler,
    Spool,
    build_sources,
    parse_listen,
    probe_report,
    run_agent,
)
from collectors.cgroups import cgroup_root
from collectors.rapl import RaplSource
from collectors.sources import ENERGY_COUNTER, POWER_GAUGE, Meter, ProbeLine, ReadError, Reading, ReadResult

PROJECT = Path(__file__).resolve().parents[2]
PACKAGE = Meter("cpu_package", "package-0", "fake", ENERGY_COUNTER, 100.0, "/fake/package-0/energy_uj")
BOARD = Meter("fpga", "0000:af:00.0", "fake", POWER_GAUGE, None, "/fake/hwmon3/power1_input")
GPU_COUNTER = Meter("gpu", "GPU-1234", "fake", ENERGY_COUNTER, None, "energy(GPU 0)")
GPU_POWER = Meter("gpu", "GPU-1234", "fake", POWER_GAUGE, None, "power(GPU 0)")


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


def new_sampler(sources, spool: Spool | None = None, cgroup_folder: Path | None = None) -> Sampler:
    """At most 60 W: in a 1 s step the fake 100 J counter can wrap once at most, so no step is ambiguous."""
    accumulator = EnergyAccumulator(max_power_watts=60.0)
    return Sampler(sources, accumulator, Metrics("node-a", "9.9"), spool, cgroup_folder)


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
def test_promtool_accepts_the_exposition(tmp_path):
    root = cgroup_root(tmp_path)
    container = root / "kubepods.slice" / "kubepods-pod1234_abcd.slice" / f"cri-containerd-{'a' * 64}.scope"
    container.mkdir(parents=True)
    (container / "cpu.stat").write_text("usage_usec 2500000\n")
    source = FakeSource({PACKAGE: 1.0, BOARD: 2.0, GPU_COUNTER: 3.0, GPU_POWER: 4.0})
    source.errors = [ReadError("fake", '/odd "path"', "x")]
    sampler = new_sampler([source], cgroup_folder=root)
    sampler.step()
    text = sampler.metrics.render()

    checked = subprocess.run(["promtool", "check", "metrics"], input=text, capture_output=True, text=True)
    # No parse error (exit 1) and no lint (exit 3).
    assert checked.returncode == 0, checked.stdout + checked.stderr
    samples, types = parse_exposition(text)
    container_series = frozenset({"container_id": "a" * 64, "pod_uid": "1234-abcd"}.items())
    assert samples[("jouletrace_container_cpu_seconds_total", container_series)] == 2.5
    assert types["jouletrace_container_cpu_seconds_total"] == "counter"


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
    # Every step starts on the grid start + k * interval (a late one skips ticks); sleeping one interval
    # after each step would instead drift 0.02 s, 40% of the interval, per step.
    grid_offsets = [(t - times[0]) / interval_seconds for t in times]
    assert max(abs(k - round(k)) for k in grid_offsets) < 0.3, grid_offsets
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
