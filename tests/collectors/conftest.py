"""Fixtures shaped like the node: sysfs trees (powercap, hwmon) whose counters tests can advance (and wrap),
a stand-in for pynvml, and /proc trees whose processes sit in pod cgroups."""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import pynvml
import pytest

NOBODY_UID = 65534


# Error codes and constants with pynvml's names and values (test_nvml.py checks them against pynvml).
NVML_SUCCESS = 0
NVML_ERROR_NOT_SUPPORTED = 3
NVML_ERROR_NOT_FOUND = 6
NVML_ERROR_LIBRARY_NOT_FOUND = 12
NVML_ERROR_GPU_IS_LOST = 15
NVML_DEVICE_MIG_ENABLE = 1
NVML_DEVICE_MIG_DISABLE = 0
MESSAGES = {
    NVML_SUCCESS: "NVML Error with code 0",  # pynvml has no message for the SUCCESS it raises
    NVML_ERROR_NOT_SUPPORTED: "Not Supported",
    NVML_ERROR_NOT_FOUND: "Not Found",
    NVML_ERROR_LIBRARY_NOT_FOUND: "NVML Shared Library Not Found",
    NVML_ERROR_GPU_IS_LOST: "GPU is lost",
}


class FakeNVMLError(Exception):
    def __init__(self, value: int):
        super().__init__(value)
        self.value = value

    def __str__(self) -> str:
        return MESSAGES[self.value]


@dataclass
class FakeGpu:
    uuid: bytes | str
    name: bytes | str
    power_mw: int
    energy_mj: int | None = None  # None: no counter (before Volta)
    mig_current: int | None = None  # None: MIG not supported
    lost: bool = False
    # The driver's per-process utilisation buffer; None: the GPU answers NOT_SUPPORTED.
    process_samples: list | None = field(default_factory=list)
    # pynvml raises NVMLError(NVML_SUCCESS) when NVML finds no sample on its size query (some drivers).
    empty_answer: int = NVML_ERROR_NOT_FOUND

    def add_sample(self, pid: int, timestamp_us: int, sm_util: int) -> None:
        """A per-process sample as pynvml returns it (its own ctypes structure, so the field names match)."""
        self.process_samples.append(
            pynvml.c_nvmlProcessUtilizationSample_t(pid, timestamp_us, sm_util, 0, 0, 0)
        )

    def add_samples(self, timestamp_us: int, sm_util_by_pid: dict[int, int]) -> None:
        """One driver sampling instant for several processes, added in one list.extend (atomic under the
        GIL), so a reader in another thread sees all of them or none, as from the driver."""
        samples = [
            pynvml.c_nvmlProcessUtilizationSample_t(pid, timestamp_us, sm_util, 0, 0, 0)
            for pid, sm_util in sm_util_by_pid.items()
        ]
        self.process_samples.extend(samples)


class FakeNvml:
    """The pynvml functions NvmlSource calls; a device handle is the FakeGpu itself."""

    NVMLError = FakeNVMLError
    NVML_SUCCESS = NVML_SUCCESS
    NVML_ERROR_NOT_SUPPORTED = NVML_ERROR_NOT_SUPPORTED
    NVML_ERROR_NOT_FOUND = NVML_ERROR_NOT_FOUND
    NVML_ERROR_LIBRARY_NOT_FOUND = NVML_ERROR_LIBRARY_NOT_FOUND
    NVML_ERROR_GPU_IS_LOST = NVML_ERROR_GPU_IS_LOST
    NVML_DEVICE_MIG_ENABLE = NVML_DEVICE_MIG_ENABLE

    def __init__(self, gpus: list[FakeGpu], init_error: int | None = None):
        self.gpus = gpus
        self.init_error = init_error
        self.shutdowns = 0
        self.last_seen_asked: list[tuple[int, int]] = []  # (GPU index, lastSeenTimeStamp) of each call

    def _check(self, gpu: FakeGpu) -> FakeGpu:
        if gpu.lost:
            raise FakeNVMLError(NVML_ERROR_GPU_IS_LOST)
        return gpu

    def nvmlInit(self):
        if self.init_error is not None:
            raise FakeNVMLError(self.init_error)

    def nvmlShutdown(self):
        self.shutdowns += 1

    def nvmlDeviceGetCount(self):
        return len(self.gpus)

    def nvmlDeviceGetHandleByIndex(self, index):
        return self.gpus[index]

    def nvmlDeviceGetUUID(self, handle):
        return self._check(handle).uuid

    def nvmlDeviceGetName(self, handle):
        return self._check(handle).name

    def nvmlDeviceGetTotalEnergyConsumption(self, handle):
        if self._check(handle).energy_mj is None:
            raise FakeNVMLError(NVML_ERROR_NOT_SUPPORTED)
        return handle.energy_mj

    def nvmlDeviceGetPowerUsage(self, handle):
        return self._check(handle).power_mw

    def nvmlDeviceGetMigMode(self, handle):
        if self._check(handle).mig_current is None:
            raise FakeNVMLError(NVML_ERROR_NOT_SUPPORTED)
        return [handle.mig_current, handle.mig_current]

    def nvmlDeviceGetProcessUtilization(self, handle, timeStamp):
        """Samples newer than timeStamp; NOT_FOUND (or the SUCCESS quirk) when there are none."""
        self._check(handle)
        self.last_seen_asked.append((self.gpus.index(handle), timeStamp))
        if handle.process_samples is None:
            raise FakeNVMLError(NVML_ERROR_NOT_SUPPORTED)
        newer = [sample for sample in list(handle.process_samples) if sample.timeStamp > timeStamp]
        if not newer:
            raise FakeNVMLError(handle.empty_answer)
        return newer


UUIDS = [f"GPU-0000000{i}-1111-2222-3333-444444444444" for i in range(4)]


def four_gpus() -> list[FakeGpu]:
    return [
        FakeGpu(UUIDS[0].encode(), b"NVIDIA A100-SXM4-40GB", 250_000, 1_000_000, NVML_DEVICE_MIG_DISABLE),
        FakeGpu(UUIDS[1], "Tesla V100-SXM2-16GB", 180_500, 2_500_000),
        FakeGpu(UUIDS[2], "Tesla P100-PCIE-16GB", 95_250),
        FakeGpu(UUIDS[3], "NVIDIA H100 80GB HBM3", 400_000, 7_000_000, NVML_DEVICE_MIG_ENABLE),
    ]


@pytest.fixture
def fake_nvml():
    """A FakeNvml of the four GPUs of four_gpus()."""
    return FakeNvml(four_gpus())


class FakeProc:
    """A directory laid out like /proc: <pid>/cgroup for processes in pod containers or on the host."""

    def __init__(self, root: Path):
        self.root = root

    def add(self, pid: int, cgroup_text: str) -> None:
        folder = self.root / str(pid)
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "cgroup").write_text(cgroup_text)

    def add_in_pod(self, pid: int, pod_uid: str, container_id: str, qos: str = "burstable") -> None:
        """A cgroup v2 process in the systemd layout."""
        pod = f"kubepods-{qos}-pod{pod_uid.replace('-', '_')}.slice"
        path = f"/kubepods.slice/kubepods-{qos}.slice/{pod}/cri-containerd-{container_id}.scope"
        self.add(pid, f"0::{path}\n")

    def exit(self, pid: int) -> None:
        shutil.rmtree(self.root / str(pid))


@pytest.fixture
def fake_proc(tmp_path):
    return FakeProc(tmp_path / "proc")


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
