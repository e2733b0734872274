"""Fixture sysfs trees shaped like Linux powercap and hwmon, whose counters tests can advance (and wrap)."""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from pathlib import Path

import pytest

NOBODY_UID = 65534


class FakeSysfs:
    """A directory laid out like /sys: class/powercap RAPL zones, class/hwmon sensors, CPU topology.

    Paths mirror the kernel's: top-level zones at class/powercap/<zone>, sub-zones both there and nested
    in their parent's folder (the kernel shows both), energy in microjoules that wraps at
    max_energy_range_uj, power in microwatts. Files are world-readable except where a test says otherwise,
    and the tree is world-traversable so a test can read it as an unprivileged user.
    """

    def __init__(self, root: Path):
        self.root = root
        self.powercap = root / "class" / "powercap"
        self.hwmon = root / "class" / "hwmon"
        self._energy_uj: dict[str, int] = {}
        self._max_uj: dict[str, int] = {}

    def _write(self, path: Path, text: str, mode: int = 0o644) -> Path:
        path.parent.mkdir(parents=True, exist_ok=True)
        for parent in [path.parent, *path.parent.parents]:
            if parent == self.root.parent:
                break
            parent.chmod(0o755)
        tmp = path.with_name(f".{path.name}.tmp")
        tmp.write_text(text)
        tmp.chmod(mode)
        os.replace(tmp, path)
        return path

    def zone_dirs(self, zone: str) -> list[Path]:
        """Every folder the kernel shows a zone in: class/powercap/<zone> and, for a sub-zone, its parent's."""
        dirs = [self.powercap / zone]
        parts = zone.split(":")
        if len(parts) == 3:
            dirs.append(self.powercap / ":".join(parts[:2]) / zone)
        return dirs

    def add_rapl_zone(
        self, zone: str, name: str, max_energy_range_uj: int = 262_143_328_850, energy_uj: int = 0
    ) -> Path:
        """A zone such as ("intel-rapl:0", "package-0"), ("intel-rapl:0:0", "core"), ("intel-rapl-mmio:0", ...)."""
        self._max_uj[zone] = max_energy_range_uj
        for folder in self.zone_dirs(zone):
            self._write(folder / "name", f"{name}\n")
            self._write(folder / "max_energy_range_uj", f"{max_energy_range_uj}\n")
            self._write(folder / "enabled", "1\n")
        self.set_energy_uj(zone, energy_uj)
        return self.powercap / zone

    def set_energy_uj(self, zone: str, value_uj: int) -> None:
        self._energy_uj[zone] = int(value_uj)
        for folder in self.zone_dirs(zone):
            path = folder / "energy_uj"
            mode = path.stat().st_mode & 0o777 if path.exists() else 0o644
            self._write(path, f"{int(value_uj)}\n", mode)

    def energy_uj(self, zone: str) -> int:
        return self._energy_uj[zone]

    def advance_joules(self, zone: str, joules: float) -> int:
        """Add energy to a zone's counter, wrapping at its max range; returns how many times it wrapped."""
        total = self._energy_uj[zone] + round(joules * 1e6)
        wraps, value = divmod(total, self._max_uj[zone])
        self.set_energy_uj(zone, value)
        return wraps

    def make_root_only(self, zone: str) -> None:
        """energy_uj mode 0400 owned by root, as kernels since the CVE-2020-8694 fix ship it."""
        for folder in self.zone_dirs(zone):
            (folder / "energy_uj").chmod(0o400)

    def add_hwmon(
        self,
        index: int,
        name: str,
        power_uw: int,
        label: str | None = None,
        pci_address: str | None = None,
        channel: int = 1,
    ) -> Path:
        """class/hwmon/hwmon<index> with power<channel>_input in microwatts and a device link to its PCI slot."""
        folder = self.hwmon / f"hwmon{index}"
        self._write(folder / "name", f"{name}\n")
        self._write(folder / f"power{channel}_input", f"{int(power_uw)}\n")
        if label is not None:
            self._write(folder / f"power{channel}_label", f"{label}\n")
        if pci_address is not None:
            device = self.root / "devices" / "pci0000:00" / pci_address
            device.mkdir(parents=True, exist_ok=True)
            link = folder / "device"
            if not link.exists():
                link.symlink_to(os.path.relpath(device, folder))
        return folder

    def set_power_uw(self, index: int, power_uw: int, channel: int = 1) -> None:
        self._write(self.hwmon / f"hwmon{index}" / f"power{channel}_input", f"{int(power_uw)}\n")

    def add_cpu_topology(self, cpus_per_die: int, dies_per_package: int, packages: int) -> None:
        """devices/system/cpu/cpuN/topology/{physical_package_id,die_id}."""
        cpu = 0
        for package in range(packages):
            for die in range(dies_per_package):
                for _ in range(cpus_per_die):
                    topology = self.root / "devices" / "system" / "cpu" / f"cpu{cpu}" / "topology"
                    self._write(topology / "physical_package_id", f"{package}\n")
                    self._write(topology / "die_id", f"{die}\n")
                    cpu += 1


@pytest.fixture
def fake_sysfs():
    """A fresh fake /sys in a world-traversable temporary folder (pytest's tmp_path is root-only)."""
    root = Path(tempfile.mkdtemp(prefix="jouletrace-sysfs-"))
    root.chmod(0o755)
    try:
        yield FakeSysfs(root)
    finally:
        shutil.rmtree(root, ignore_errors=True)


@contextlib.contextmanager
def unprivileged():
    """Run the block as an unprivileged user, so root-only files really refuse to open (root reads all)."""
    if os.geteuid() != 0:
        yield
        return
    os.setegid(NOBODY_UID)
    os.seteuid(NOBODY_UID)
    try:
        yield
    finally:
        os.seteuid(0)
        os.setegid(0)


@pytest.fixture
def as_unprivileged():
    return unprivileged
