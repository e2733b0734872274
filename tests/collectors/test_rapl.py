"""RaplSource on fake powercap trees: zones, duplicates, AMD mirrors, permissions, and exact accumulated energy."""

from __future__ import annotations

import dataclasses
import errno
import os
from pathlib import Path

import pytest

from collectors.meters import rapl
from collectors.meters.accumulate import EnergyAccumulator
from collectors.meters.rapl import OVERLAPS, RaplSource, is_additive
from schemas.tables import ADDITIVE_DEVICE_KINDS, DEVICE_KINDS

MAX_UJ = 262_143_328_850


def two_socket_server(fake, max_energy_range_uj: int = MAX_UJ) -> None:
    """Two packages with core, uncore and dram sub-zones, and a platform (psys) zone."""
    for socket in (0, 1):
        fake.add_rapl_zone(
            f"intel-rapl:{socket}", f"package-{socket}", max_energy_range_uj, 1_000_000 * (socket + 1)
        )
        for sub, name in enumerate(("core", "uncore", "dram")):
            fake.add_rapl_zone(f"intel-rapl:{socket}:{sub}", name, max_energy_range_uj, 10_000 * (sub + 1))
    fake.add_rapl_zone("intel-rapl:2", "psys", max_energy_range_uj, 5_000_000)


def kinds_and_ids(source: RaplSource) -> set[tuple[str, str]]:
    return {(meter.device_kind, meter.device_id) for meter in source.meters()}


def probe_detail(source: RaplSource, zone_id: str) -> str:
    [line] = [line for line in source.probe() if line.what.startswith(f"{zone_id} ")]
    return line.detail


def refuse_reads(fake, zone: str) -> None:
    """energy_uj root-only; when the tests do not run as root the tree is ours, so drop our own read bit too."""
    fake.make_root_only(zone)
    if os.geteuid() != 0:
        for folder in fake.zone_dirs(zone):
            (folder / "energy_uj").chmod(0)


def test_two_socket_server_zones(fake_sysfs):
    two_socket_server(fake_sysfs)
    source = RaplSource(fake_sysfs.root)
    assert kinds_and_ids(source) == {
        ("cpu_package", "package-0"),
        ("cpu_package", "package-1"),
        ("cpu_core", "core-0"),
        ("cpu_core", "core-1"),
        ("dram", "dram-0"),
        ("dram", "dram-1"),
        ("psys", "psys-0"),
    }
    dram_1 = next(meter for meter in source.meters() if meter.device_id == "dram-1")
    assert dram_1.path == str(fake_sysfs.powercap / "intel-rapl:1:2" / "energy_uj")  # the top-level copy
    assert dram_1.counter_max_joules == MAX_UJ / 1e6
    assert (dram_1.source, dram_1.value_kind, dram_1.description) == (
        "rapl",
        "energy_counter_joules",
        "dram-1 (intel-rapl:1:2)",
    )
    assert "uncore" in probe_detail(source, "intel-rapl:0:1") and "skipped" in probe_detail(
        source, "intel-rapl:0:1"
    )
    assert probe_detail(source, "intel-rapl:1:2").startswith("dram dram-1: 0.030000 J")

    readings = {r.meter.device_id: r.value for r in source.read().readings}
    assert readings == {
        "package-0": 1.0,
        "package-1": 2.0,
        "core-0": 0.01,
        "core-1": 0.01,
        "dram-0": 0.03,
        "dram-1": 0.03,
        "psys-0": 5.0,
    }


def test_only_non_overlapping_kinds_are_additive():
    assert set(OVERLAPS) | {kind for inside in OVERLAPS.values() for kind in inside} <= set(DEVICE_KINDS)
    for outer, inside in OVERLAPS.items():
        assert not (is_additive(outer) and any(is_additive(kind) for kind in inside)), outer
    assert [kind for kind in DEVICE_KINDS if is_additive(kind)] == list(ADDITIVE_DEVICE_KINDS)
    assert not is_additive("psys") and not is_additive("cpu_core") and is_additive("dram")


def test_mmio_duplicate_is_skipped_and_kept_when_alone(fake_sysfs):
    two_socket_server(fake_sysfs)
    fake_sysfs.add_rapl_zone("intel-rapl-mmio:0", "package-0", MAX_UJ, 1_000_000)
    source = RaplSource(fake_sysfs.root)
    assert len([m for m in source.meters() if m.device_kind == "cpu_package"]) == 2
    assert "MMIO duplicate of intel-rapl:0" in probe_detail(source, "intel-rapl-mmio:0")

    fake_sysfs.add_rapl_zone("intel-rapl-mmio:1", "package-7", MAX_UJ, 3_000_000)
    alone = next(m for m in RaplSource(fake_sysfs.root).meters() if m.device_id == "package-7")
    assert alone.path == str(fake_sysfs.powercap / "intel-rapl-mmio:1" / "energy_uj")


def test_sub_zone_listed_only_inside_its_parent_is_found(fake_sysfs):
    fake_sysfs.add_rapl_zone("intel-rapl:0", "package-0")
    fake_sysfs.add_rapl_zone("intel-rapl:0:0", "dram", energy_uj=7_000_000)
    for child in (fake_sysfs.powercap / "intel-rapl:0:0").iterdir():
        child.unlink()
    (fake_sysfs.powercap / "intel-rapl:0:0").rmdir()
    source = RaplSource(fake_sysfs.root)
    [dram] = [m for m in source.meters() if m.device_kind == "dram"]
    assert dram.device_id == "dram-0"
    assert dram.path == str(fake_sysfs.powercap / "intel-rapl:0" / "intel-rapl:0:0" / "energy_uj")
    assert {r.meter.device_id: r.value for r in source.read().readings}["dram-0"] == 7.0


def test_no_zones_is_explained(fake_sysfs):
    source = RaplSource(fake_sysfs.root)
    assert source.meters() == [] and source.read().readings == []
    [line] = source.probe()
    assert not line.readable and "no RAPL zones" in line.detail


@pytest.mark.parametrize("names", [("package-0-die-0", "package-0-die-1"), ("package-0", "package-1")])
def test_amd_multi_die_mirror_from_topology(fake_sysfs, names):
    fake_sysfs.add_cpu_topology(cpus_per_die=4, dies_per_package=2, packages=1)
    for index, name in enumerate(names):
        fake_sysfs.add_rapl_zone(f"intel-rapl:{index}", name, energy_uj=5_000_000)
        fake_sysfs.add_rapl_zone(f"intel-rapl:{index}:0", "core", energy_uj=1_000_000)
    source = RaplSource(fake_sysfs.root)
    assert kinds_and_ids(source) == {("cpu_package", "package-0"), ("cpu_core", "core-0")}
    assert (
        "mirror of package-0: not summed (topology: 1 physical package(s), 2 package zones)"
        in probe_detail(source, "intel-rapl:1")
    )
    assert "a mirror of package-0: not summed" in probe_detail(source, "intel-rapl:1:0")


def test_intel_per_die_zones_are_separate_counters(fake_sysfs):
    fake_sysfs.add_cpu_topology(cpus_per_die=4, dies_per_package=2, packages=1)
    (fake_sysfs.root / "devices/system/cpu/modalias").write_text(
        "cpu:type:x86,ven0000fam0006mod0055:feature:,0000\n"
    )
    for die in (0, 1):
        fake_sysfs.add_rapl_zone(f"intel-rapl:{die}", f"package-0-die-{die}", energy_uj=5_000_000)
    assert kinds_and_ids(RaplSource(fake_sysfs.root)) == {
        ("cpu_package", "package-0-die-0"),
        ("cpu_package", "package-0-die-1"),
    }


def test_topology_with_one_zone_per_socket_never_calls_equal_readings_a_mirror(fake_sysfs):
    fake_sysfs.add_cpu_topology(cpus_per_die=4, dies_per_package=1, packages=2)
    for socket in (0, 1):
        fake_sysfs.add_rapl_zone(f"intel-rapl:{socket}", f"package-{socket}", energy_uj=0)
    assert len(RaplSource(fake_sysfs.root).meters()) == 2


def test_mirror_without_topology_is_found_by_identical_readings(fake_sysfs):
    for index in (0, 1):
        fake_sysfs.add_rapl_zone(f"intel-rapl:{index}", f"package-{index}", energy_uj=9_000_000)
    source = RaplSource(fake_sysfs.root)
    assert kinds_and_ids(source) == {("cpu_package", "package-0")}
    assert "suspected mirror of package-0" in probe_detail(source, "intel-rapl:1")

    for index in (0, 1):  # the one counter advances, seen through both zones
        fake_sysfs.advance_joules(f"intel-rapl:{index}", 3.0)
    assert [r.value for r in source.read().readings] == [12.0]
    assert "mirror of package-0: not summed (identical energy_uj" in probe_detail(source, "intel-rapl:1")
    assert "suspected" not in probe_detail(source, "intel-rapl:1")


def test_equal_readings_of_separate_counters_are_cleared_after_they_differ(fake_sysfs):
    for index in (0, 1):
        fake_sysfs.add_rapl_zone(f"intel-rapl:{index}", f"package-{index}", energy_uj=8_000_000)
        fake_sysfs.add_rapl_zone(f"intel-rapl:{index}:0", "dram", energy_uj=0)
    source = RaplSource(fake_sysfs.root)
    assert kinds_and_ids(source) == {("cpu_package", "package-0"), ("dram", "dram-0")}
    for _ in range(3):
        fake_sysfs.advance_joules("intel-rapl:0", 50.0)
        fake_sysfs.advance_joules("intel-rapl:1", 40.0)
        source.read()
    assert kinds_and_ids(source) == {
        ("cpu_package", "package-0"),
        ("cpu_package", "package-1"),
        ("dram", "dram-0"),
        ("dram", "dram-1"),
    }
    assert {r.meter.device_id: r.value for r in source.read().readings}["package-1"] == 128.0


def test_counters_reading_zero_are_not_suspected_mirrors(fake_sysfs):
    for index in (0, 1):
        fake_sysfs.add_rapl_zone(f"intel-rapl:{index}", f"package-{index}", energy_uj=0)
    assert len(RaplSource(fake_sysfs.root).meters()) == 2


def test_root_only_energy_uj_is_an_error_naming_the_file_and_the_fix(fake_sysfs, as_unprivileged):
    two_socket_server(fake_sysfs)
    refuse_reads(fake_sysfs, "intel-rapl:1:2")
    with as_unprivileged():
        source = RaplSource(fake_sysfs.root)
        result = source.read()
        probe = source.probe()
    path = str(fake_sysfs.powercap / "intel-rapl:1:2" / "energy_uj")
    [error] = result.errors
    assert (error.source, error.path) == ("rapl", path)
    assert error.message.startswith(f"{path}: permission denied")
    assert "CVE-2020-8694" in error.message and "root" in error.message
    assert sorted(r.meter.device_id for r in result.readings) == [
        "core-0",
        "core-1",
        "dram-0",
        "package-0",
        "package-1",
        "psys-0",
    ]
    [line] = [line for line in probe if line.what.startswith("intel-rapl:1:2 ")]
    assert not line.readable and "dram dram-1" in line.detail and "CVE-2020-8694" in line.detail
    assert all(line.readable for line in probe if not line.what.startswith("intel-rapl:1:2 "))


def test_held_descriptors_on_sysfs_re_read_and_fall_back_on_error(fake_sysfs, monkeypatch):
    fake_sysfs.add_rapl_zone("intel-rapl:0", "package-0", energy_uj=1_000_000)
    monkeypatch.setattr(rapl, "_on_sysfs", lambda path: True)
    source = RaplSource(fake_sysfs.root)
    energy_file = fake_sysfs.powercap / "intel-rapl:0" / "energy_uj"
    assert [r.value for r in source.read().readings] == [1.0]
    energy_file.write_text("2500000\n")  # in place, as sysfs values change: the held descriptor sees it
    assert [r.value for r in source.read().readings] == [2.5]

    real_pread = os.pread
    failures = []

    def pread_failing_once(fd, length, offset):
        if not failures:
            failures.append(fd)
            raise OSError(errno.ENODEV, "No such device")
        return real_pread(fd, length, offset)

    monkeypatch.setattr(os, "pread", pread_failing_once)
    energy_file.write_text("3000000\n")
    result = source.read()
    assert [r.value for r in result.readings] == [3.0] and result.errors == [] and failures
    source.close()
    assert [r.value for r in source.read().readings] == [3.0]
    source.close()


def test_on_sysfs_tells_the_fixture_tree_from_sys(fake_sysfs):
    assert not rapl._on_sysfs(fake_sysfs.powercap)
    if os.path.ismount("/sys"):
        assert rapl._on_sysfs(Path("/sys/class/powercap"))


def test_accumulated_rapl_energy_equals_the_energy_advanced_through_wraps(fake_sysfs):
    max_uj = 3_000_000_000  # 3000 J: wraps every few reads
    two_socket_server(fake_sysfs, max_energy_range_uj=max_uj)
    watts = {
        "intel-rapl:0": 1_450.0,
        "intel-rapl:0:0": 1_100.0,
        "intel-rapl:0:1": 90.0,
        "intel-rapl:0:2": 35.5,
        "intel-rapl:1": 990.25,
        "intel-rapl:1:0": 700.0,
        "intel-rapl:1:1": 80.0,
        "intel-rapl:1:2": 41.0,
        "intel-rapl:2": 1_900.0,
    }
    source = RaplSource(fake_sysfs.root)
    zone_of = {meter: Path(meter.path).parent.name for meter in source.meters()}
    accumulator = EnergyAccumulator()
    advanced = dict.fromkeys(watts, 0.0)
    wrapped = dict.fromkeys(watts, 0)
    t_seconds = 0.0
    for step, seconds in enumerate([0.0, 1.0, 1.0, 0.5, 1.5, 1.0, 1.0, 1.25, 0.75, 1.0]):
        if step:
            for zone, power_watts in watts.items():
                wrapped[zone] += fake_sysfs.advance_joules(zone, power_watts * seconds)
                advanced[zone] += power_watts * seconds
        t_seconds += seconds
        result = source.read()
        assert result.errors == []
        for reading in result.readings:
            accumulator.update(dataclasses.replace(reading, monotonic_seconds=t_seconds))
    totals, counts = accumulator.totals(), accumulator.counts()
    assert len(totals) == 7
    for meter, energy in totals.items():
        zone = zone_of[meter]
        assert energy.total_joules == pytest.approx(advanced[zone], rel=1e-6), meter.device_id
        assert counts[meter].wraps == wrapped[zone] and counts[meter].ambiguous_intervals == 0
    assert wrapped["intel-rapl:0"] >= 3 and wrapped["intel-rapl:2"] >= 4
    additive_joules = sum(e.total_joules for m, e in totals.items() if is_additive(m.device_kind))
    assert additive_joules == pytest.approx(
        sum(advanced[z] for z in ("intel-rapl:0", "intel-rapl:0:2", "intel-rapl:1", "intel-rapl:1:2"))
    )
