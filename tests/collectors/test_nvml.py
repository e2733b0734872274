"""NvmlSource against a stand-in for pynvml (four GPUs: two with counters, one pre-Volta, one in MIG mode)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pynvml
import pytest

from collectors.nvml import NO_DRIVER, READY, NvmlSource
from collectors.sources import ENERGY_COUNTER, POWER_GAUGE

# Error codes and constants with pynvml's names and values (checked against pynvml below).
NVML_ERROR_NOT_SUPPORTED = 3
NVML_ERROR_LIBRARY_NOT_FOUND = 12
NVML_ERROR_GPU_IS_LOST = 15
NVML_DEVICE_MIG_ENABLE = 1
NVML_DEVICE_MIG_DISABLE = 0
MESSAGES = {
    NVML_ERROR_NOT_SUPPORTED: "Not Supported",
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


class FakeNvml:
    """The pynvml functions NvmlSource calls; a device handle is the FakeGpu itself."""

    NVMLError = FakeNVMLError
    NVML_ERROR_NOT_SUPPORTED = NVML_ERROR_NOT_SUPPORTED
    NVML_ERROR_LIBRARY_NOT_FOUND = NVML_ERROR_LIBRARY_NOT_FOUND
    NVML_ERROR_GPU_IS_LOST = NVML_ERROR_GPU_IS_LOST
    NVML_DEVICE_MIG_ENABLE = NVML_DEVICE_MIG_ENABLE

    def __init__(self, gpus: list[FakeGpu], init_error: int | None = None):
        self.gpus = gpus
        self.init_error = init_error
        self.shutdowns = 0

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


UUIDS = [f"GPU-0000000{i}-1111-2222-3333-444444444444" for i in range(4)]


def four_gpus() -> list[FakeGpu]:
    return [
        FakeGpu(UUIDS[0].encode(), b"NVIDIA A100-SXM4-40GB", 250_000, 1_000_000, NVML_DEVICE_MIG_DISABLE),
        FakeGpu(UUIDS[1], "Tesla V100-SXM2-16GB", 180_500, 2_500_000),
        FakeGpu(UUIDS[2], "Tesla P100-PCIE-16GB", 95_250),
        FakeGpu(UUIDS[3], "NVIDIA H100 80GB HBM3", 400_000, 7_000_000, NVML_DEVICE_MIG_ENABLE),
    ]


def by_kind(readings) -> dict[tuple[str, str], float]:
    return {(r.meter.device_id, r.meter.value_kind): r.value for r in readings}


def test_fake_mirrors_pynvml_names_and_values():
    """The stand-in must not drift from pynvml: same constants, and every function exists there."""
    for constant in ("NVML_ERROR_NOT_SUPPORTED", "NVML_ERROR_LIBRARY_NOT_FOUND", "NVML_ERROR_GPU_IS_LOST"):
        assert getattr(FakeNvml, constant) == getattr(pynvml, constant)
    assert FakeNvml.NVML_DEVICE_MIG_ENABLE == pynvml.NVML_DEVICE_MIG_ENABLE
    assert NVML_DEVICE_MIG_DISABLE == pynvml.NVML_DEVICE_MIG_DISABLE
    for function in (name for name in vars(FakeNvml) if name.startswith("nvml")):
        assert callable(getattr(pynvml, function)), function
    for code, message in MESSAGES.items():
        assert str(pynvml.NVMLError(code)) == message


def test_meters_counter_where_supported_and_power_for_every_gpu():
    source = NvmlSource(FakeNvml(four_gpus()))
    assert source.status == READY
    kinds = [(m.device_id, m.value_kind) for m in source.meters()]
    assert kinds == [
        (UUIDS[0], ENERGY_COUNTER),
        (UUIDS[0], POWER_GAUGE),
        (UUIDS[1], ENERGY_COUNTER),
        (UUIDS[1], POWER_GAUGE),
        (UUIDS[2], POWER_GAUGE),
        (UUIDS[3], ENERGY_COUNTER),
        (UUIDS[3], POWER_GAUGE),
    ]
    for meter in source.meters():
        assert (meter.device_kind, meter.source, meter.counter_max_joules) == ("gpu", "nvml", None)
    descriptions = {m.device_id: m.description for m in source.meters()}
    assert descriptions[UUIDS[0]] == "NVIDIA A100-SXM4-40GB, GPU 0"
    assert descriptions[UUIDS[3]] == "NVIDIA H100 80GB HBM3, GPU 3, MIG enabled"


def test_read_converts_millijoules_and_milliwatts_and_follows_the_counter():
    nvml = FakeNvml(four_gpus())
    source = NvmlSource(nvml)
    first = source.read()
    assert first.errors == []
    values = by_kind(first.readings)
    assert values[(UUIDS[0], ENERGY_COUNTER)] == pytest.approx(1_000.0)
    assert values[(UUIDS[0], POWER_GAUGE)] == pytest.approx(250.0)
    assert values[(UUIDS[1], POWER_GAUGE)] == pytest.approx(180.5)
    assert values[(UUIDS[2], POWER_GAUGE)] == pytest.approx(95.25)
    assert (UUIDS[2], ENERGY_COUNTER) not in values
    nvml.gpus[0].energy_mj += 2_500  # 2.5 J more
    nvml.gpus[1].energy_mj += 123_456
    second = by_kind(source.read().readings)
    assert second[(UUIDS[0], ENERGY_COUNTER)] - values[(UUIDS[0], ENERGY_COUNTER)] == pytest.approx(2.5)
    assert second[(UUIDS[1], ENERGY_COUNTER)] - values[(UUIDS[1], ENERGY_COUNTER)] == pytest.approx(123.456)
    later = source.read().readings[0]
    assert later.monotonic_seconds >= first.readings[0].monotonic_seconds
    assert later.unix_seconds > 1e9


def test_probe_names_each_gpu_counter_power_and_mig():
    lines = {line.what: line for line in NvmlSource(FakeNvml(four_gpus())).probe()}
    assert set(lines) == {f"GPU {i} ({uuid})" for i, uuid in enumerate(UUIDS)}
    a100 = lines[f"GPU 0 ({UUIDS[0]})"]
    assert a100.readable
    assert a100.detail == (
        "NVIDIA A100-SXM4-40GB; energy counter 1000.000 J since the driver was loaded; power 250.000 W; MIG disabled"
    )
    p100 = lines[f"GPU 2 ({UUIDS[2]})"]
    assert p100.readable
    assert "energy counter not supported (before Volta): the agent integrates power" in p100.detail
    assert "MIG not supported" in p100.detail
    assert "MIG enabled" in lines[f"GPU 3 ({UUIDS[3]})"].detail


def test_library_not_found_means_no_driver_and_nothing_raises():
    nvml = FakeNvml(four_gpus(), init_error=NVML_ERROR_LIBRARY_NOT_FOUND)
    source = NvmlSource(nvml)
    assert source.status == NO_DRIVER
    assert source.meters() == []
    result = source.read()
    assert (result.readings, result.errors) == ([], [])
    [line] = source.probe()
    assert not line.readable
    assert line.detail == "no NVIDIA driver: NVML Shared Library Not Found"
    source.close()
    assert nvml.shutdowns == 0


def test_lost_gpu_is_an_error_naming_it_while_the_others_read():
    nvml = FakeNvml(four_gpus())
    source = NvmlSource(nvml)
    nvml.gpus[1].lost = True
    result = source.read()
    assert {r.meter.device_id for r in result.readings} == {UUIDS[0], UUIDS[2], UUIDS[3]}
    assert len(result.errors) == 2  # its counter and its power
    for error in result.errors:
        assert error.source == "nvml"
        assert f"GPU 1 ({UUIDS[1]})" in error.message
        assert "GPU is lost" in error.message
    assert {e.path for e in result.errors} == {
        "nvmlDeviceGetTotalEnergyConsumption(GPU 1)",
        "nvmlDeviceGetPowerUsage(GPU 1)",
    }
    lost = next(line for line in source.probe() if line.what.startswith("GPU 1"))
    assert not lost.readable
    assert "GPU is lost" in lost.detail


def test_a_gpu_lost_before_start_is_reported_and_skipped():
    gpus = four_gpus()
    gpus[2].lost = True
    source = NvmlSource(FakeNvml(gpus))
    assert UUIDS[2] not in {m.device_id for m in source.meters()}
    line = next(line for line in source.probe() if line.what == "GPU 2")
    assert not line.readable
    assert "GPU is lost" in line.detail


def test_close_shuts_nvml_down_once():
    nvml = FakeNvml(four_gpus())
    source = NvmlSource(nvml)
    source.close()
    source.close()
    assert nvml.shutdowns == 1


@pytest.mark.skipif(Path("/proc/driver/nvidia").exists(), reason="an NVIDIA driver is loaded here")
def test_real_pynvml_without_a_driver_says_so():
    source = NvmlSource()
    assert source.status == NO_DRIVER
    assert source.meters() == []
    [line] = source.probe()
    assert line.detail.startswith("no NVIDIA driver: ")
    assert not line.readable
