"""The sample world as OpenMetrics text: valid for promtool, exact, and in each exporter's dialect."""

from __future__ import annotations

import re
import shutil
import subprocess
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from collectors.cluster.recorded import RecordedSources
from datasets.attribution import unwrap_counter
from datasets.openmetrics import DIALECTS, world_readings, write_openmetrics
from datasets.sample_world import generate

PROMTOOL = shutil.which("promtool")
_SAMPLE = re.compile(r"^([A-Za-z_:][\w:]*)\{(.*)\} (\S+) (\d+)\.(\d{3})$")
_LABEL = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("openmetrics") / "world"
    generate(folder, n_workflows=6, seed=3)
    return folder


@pytest.fixture(scope="module")
def written(world) -> dict[str, tuple[Path, int]]:
    out = {}
    for dialect in DIALECTS:
        path = world.parent / f"{dialect}.om"
        out[dialect] = (path, write_openmetrics(world, path, dialect))
    return out


def _parse(path: Path) -> dict[tuple, tuple[np.ndarray, np.ndarray]]:
    """(metric, labels) -> (times in ms, values), checking the layout promtool needs on the way."""
    lines = path.read_text().splitlines()
    assert lines[-1] == "# EOF" and "# EOF" not in lines[:-1]
    families, current = [], None
    series: dict[tuple, list[tuple[int, float]]] = {}
    for line in lines[:-1]:
        if line.startswith("# TYPE "):
            current = line.split()[2]
            assert current not in families, f"family {current} is split"
            families.append(current)
            continue
        match = _SAMPLE.match(line)
        assert match, line
        name, labels, value, seconds, millis = match.groups()
        assert name.startswith(current)
        key = (name, tuple(sorted(_LABEL.findall(labels))))
        series.setdefault(key, []).append((int(seconds) * 1000 + int(millis), float(value)))
    parsed = {}
    for key, samples in series.items():
        times = np.array([t for t, _ in samples])
        assert (np.diff(times) > 0).all(), f"{key}: samples out of time order"
        parsed[key] = (times, np.array([v for _, v in samples]))
    return parsed


def _by(parsed: dict, metric: str, **labels) -> tuple[np.ndarray, np.ndarray]:
    found = [
        v for (name, pairs), v in parsed.items() if name == metric and labels.items() <= dict(pairs).items()
    ]
    assert len(found) == 1, (metric, labels, len(found))
    return found[0]


def test_layout_and_counts(written):
    for path, count in written.values():
        parsed = _parse(path)
        assert sum(times.size for times, _ in parsed.values()) == count > 0


def test_world_readings_are_the_parquet_files_at_millisecond_resolution(world):
    table = RecordedSources(world).power_samples()
    readings = world_readings(world)
    assert sum(r.times_ms.size for r in readings) == table.num_rows
    us = table["timestamp"].cast(pa.int64()).to_numpy()
    np.testing.assert_array_equal(np.concatenate([r.times_ms for r in readings]), (us + 500) // 1000)
    np.testing.assert_array_equal(np.concatenate([r.values for r in readings]), table["value"].to_numpy())


def test_node_exporter_writes_the_raw_wrapping_counters(world, written):
    parsed = _parse(written["node-exporter"][0])
    rapl = [r for r in world_readings(world) if r.source == "rapl"]
    wraps = 0
    for reading in rapl:
        zone, index = reading.device_id.split("-")
        times, values = _by(
            parsed,
            f"node_rapl_{zone}_joules_total",
            index=index,
            instance=_instance(world, reading.host_node, 9100),
        )
        np.testing.assert_array_equal(times, reading.times_ms)
        np.testing.assert_array_equal(values, reading.values)
        wraps += int((np.diff(values) < 0).sum())
    assert wraps >= 3
    hosts = {dict(pairs)["nodename"] for name, pairs in parsed if name == "node_uname_info"}
    assert hosts == {r.host_node for r in rapl}


def _instance(world: Path, host: str, port: int) -> str:
    for item in RecordedSources(world).node_list()["items"]:
        if item["metadata"]["name"] == host:
            address = next(a["address"] for a in item["status"]["addresses"] if a["type"] == "InternalIP")
            return f"{address}:{port}"
    raise AssertionError(host)


def test_agent_counters_are_monotone_and_keep_the_energy(world, written):
    parsed = _parse(written["agent"][0])
    fixed = set()
    for reading in world_readings(world):
        instance = _instance(world, reading.host_node, 9471)
        metric = (
            "jouletrace_energy_joules_total"
            if reading.value_kind == "energy_counter_joules"
            else "jouletrace_power_watts"
        )
        times, values = _by(
            parsed, metric, device_id=reading.device_id, instance=instance, source=reading.source
        )
        np.testing.assert_array_equal(times, reading.times_ms)
        if metric == "jouletrace_power_watts":
            np.testing.assert_array_equal(values, reading.values)
            continue
        since_first, flags = unwrap_counter(
            reading.values, (times - times[0]) / 1000, reading.counter_max_joules
        )
        fixed |= set(flags.tolist())
        assert values[0] == reading.values[0] and (np.diff(values) >= 0).all()
        np.testing.assert_allclose(values - values[0], since_first, rtol=1e-12, atol=1e-6)
    assert fixed == {0, 1, 2}  # the world has RAPL wraps and an NVML reset, both corrected
    infos = [dict(pairs) for name, pairs in parsed if name == "jouletrace_agent_info"]
    assert {(i["host_node"], i["instance"]) for i in infos} == {
        (host, _instance(world, host, 9471)) for host in {r.host_node for r in world_readings(world)}
    }


def test_dcgm_writes_millijoules_and_watts_of_gpus_only(world, written):
    parsed = _parse(written["dcgm"][0])
    gpus = [r for r in world_readings(world) if r.device_kind == "gpu"]
    assert len(parsed) == len(gpus) == 4
    for reading in gpus:
        metric = (
            "DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION"
            if reading.value_kind == "energy_counter_joules"
            else "DCGM_FI_DEV_POWER_USAGE"
        )
        times, values = _by(parsed, metric, UUID=reading.device_id, Hostname=reading.host_node)
        np.testing.assert_array_equal(times, reading.times_ms)
        if metric == "DCGM_FI_DEV_POWER_USAGE":
            np.testing.assert_array_equal(values, reading.values)
        else:
            assert (values == np.round(values)).all()
            np.testing.assert_array_equal(values / 1000, reading.values)


def test_kepler_sums_the_sockets_of_a_zone(world, written):
    parsed = _parse(written["kepler"][0])
    readings = world_readings(world)
    for host in {r.host_node for r in readings}:
        for kind, zone in (("cpu_package", "package"), ("dram", "dram")):
            sockets = [r for r in readings if r.host_node == host and r.device_kind == kind]
            times, values = _by(parsed, "kepler_node_cpu_joules_total", node_name=host, zone=zone)
            np.testing.assert_array_equal(times, sockets[0].times_ms)
            want = sum(s.monotone_joules() for s in sockets)
            np.testing.assert_allclose(np.diff(values), np.diff(want), rtol=1e-12, atol=1e-6)
    gpu_uuids = {dict(pairs)["gpu_uuid"] for name, pairs in parsed if name == "kepler_node_gpu_joules_total"}
    assert gpu_uuids == {r.device_id for r in readings if r.device_kind == "gpu"}


@pytest.mark.skipif(PROMTOOL is None, reason="promtool is not installed (make prometheus)")
def test_promtool_ingests_every_sample(written, tmp_path):
    for dialect, (path, count) in written.items():
        done = subprocess.run(
            [PROMTOOL, "tsdb", "create-blocks-from", "openmetrics", str(path), str(tmp_path / dialect)],
            check=True,
            capture_output=True,
            text=True,
        )
        rows = [line.split() for line in done.stdout.splitlines() if re.match(r"^[0-9A-Z]{26} ", line)]
        assert sum(int(row[4]) for row in rows) == count, done.stdout  # ULID, min, max, duration, samples


def test_the_default_world_is_written_in_seconds(tmp_path):
    generate(tmp_path / "world")
    began = time.monotonic()
    total = sum(write_openmetrics(tmp_path / "world", tmp_path / f"{d}.om", d) for d in DIALECTS)
    assert time.monotonic() - began < 5.0
    assert total > 200_000


def test_writes_are_atomic(world, tmp_path):
    out = tmp_path / "metrics.om"
    out.write_text("old\n")
    with pytest.raises(ValueError, match="dialect 'scaphandre' is not one of"):
        write_openmetrics(world, out, "scaphandre")
    assert out.read_text() == "old\n"
    write_openmetrics(world, out, "dcgm")
    assert out.read_text().endswith("# EOF\n")
    assert [p.name for p in tmp_path.iterdir()] == ["metrics.om"]
