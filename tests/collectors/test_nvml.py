"""NvmlSource and GpuProcessBusy against a stand-in for pynvml (conftest.py; four GPUs: two with counters, one
pre-Volta, one in MIG mode)."""

from __future__ import annotations

from pathlib import Path

import pynvml
import pytest

from collectors.meters.nvml import NO_DRIVER, READY, GpuProcessBusy, NvmlSource
from schemas.kinds import ENERGY_COUNTER, POWER_GAUGE

from .conftest import (
    MESSAGES,
    NVML_DEVICE_MIG_DISABLE,
    NVML_ERROR_LIBRARY_NOT_FOUND,
    NVML_SUCCESS,
    UUIDS,
    FakeNvml,
    four_gpus,
)


def by_kind(readings) -> dict[tuple[str, str], float]:
    return {(r.meter.device_id, r.meter.value_kind): r.value for r in readings}


def test_fake_mirrors_pynvml_names_and_values():
    """The stand-in must not drift from pynvml: same constants, and every function exists there."""
    for constant in (
        "NVML_SUCCESS",
        "NVML_ERROR_NOT_SUPPORTED",
        "NVML_ERROR_NOT_FOUND",
        "NVML_ERROR_LIBRARY_NOT_FOUND",
        "NVML_ERROR_GPU_IS_LOST",
    ):
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


# --------------------------------------------------------------------------- per-process GPU busy time

T0_US = 1_700_000_000_000_000  # NVML timestamps: microseconds of CPU time


def busy_reader(gpus, max_period_seconds: float = 2.0) -> tuple[FakeNvml, GpuProcessBusy]:
    nvml = FakeNvml(gpus)
    return nvml, GpuProcessBusy(NvmlSource(nvml), max_period_seconds)


def test_busy_seconds_per_process_and_gpu_and_nothing_counted_twice():
    gpus = four_gpus()
    gpus[3].process_samples = None  # MIG enabled: no per-process utilisation
    gpus[0].add_sample(101, T0_US, 90)  # in the driver's buffer before the agent started
    gpus[1].add_sample(201, T0_US + 200_000, 10)
    nvml, busy = busy_reader(gpus)

    first = busy.read()
    assert (first.busy_seconds, first.errors) == ({}, [])  # the first read only finds the buffer's end

    gpus[0].add_sample(101, T0_US + 500_000, 80)  # pid 101 twice in one read: each since its previous
    gpus[0].add_sample(101, T0_US + 1_000_000, 40)
    gpus[0].add_sample(102, T0_US + 1_000_000, 30)
    gpus[1].add_sample(201, T0_US + 450_000, 70)
    second = busy.read()
    assert second.errors == []
    assert second.busy_seconds == pytest.approx(
        {
            (101, UUIDS[0]): 0.80 * 0.5 + 0.40 * 0.5,
            (102, UUIDS[0]): 0.30 * 1.0,
            (201, UUIDS[1]): 0.70 * 0.25,
        }
    )

    nvml.last_seen_asked.clear()
    third = busy.read()
    assert (third.busy_seconds, third.errors) == ({}, [])
    # The newest timestamp of each GPU is passed on; GPU 2's buffer was empty (0: all is new); GPU 3 said
    # NOT_SUPPORTED once and is not asked again.
    assert nvml.last_seen_asked == [(0, T0_US + 1_000_000), (1, T0_US + 450_000), (2, 0)]


def test_a_period_after_a_pause_is_capped_and_garbage_samples_are_skipped():
    gpus = four_gpus()
    gpus[0].add_sample(101, T0_US, 50)
    nvml, busy = busy_reader(gpus, max_period_seconds=2.0)
    busy.read()
    assert busy.read().busy_seconds == {}  # NOT_FOUND: nothing new

    gpus[0].add_sample(101, T0_US + 10_000_000, 50)  # busy again after 10 s without a sample
    gpus[0].add_sample(999, T0_US + 10_000_000, 255)  # an exited process's garbage value
    gpus[2].add_sample(301, T0_US + 5_000_000, 60)  # GPU 2's buffer was empty at the first read
    result = busy.read()
    assert result.busy_seconds == pytest.approx({(101, UUIDS[0]): 0.5 * 2.0, (301, UUIDS[2]): 0.6 * 2.0})
    [error] = result.errors
    assert error.path == "nvmlDeviceGetProcessUtilization(GPU 0)"
    assert "1 per-process samples with smUtil above 100% skipped" in error.message

    gpus[0].add_sample(101, T0_US + 10_300_000, 100)
    assert busy.read().busy_seconds == pytest.approx({(101, UUIDS[0]): 1.0 * 0.3})


def test_a_failing_gpu_is_an_error_while_the_others_are_credited():
    gpus = four_gpus()
    for gpu in gpus:
        gpu.add_sample(7, T0_US, 10)
    nvml, busy = busy_reader(gpus)
    busy.read()
    gpus[1].lost = True
    for gpu in gpus:
        gpu.add_sample(7, T0_US + 100_000, 50)
    result = busy.read()
    assert result.busy_seconds == pytest.approx({(7, UUIDS[i]): 0.5 * 0.1 for i in (0, 2, 3)})
    [error] = result.errors
    assert error.source == "nvml" and error.path == "nvmlDeviceGetProcessUtilization(GPU 1)"
    assert f"GPU 1 ({UUIDS[1]})" in error.message and "GPU is lost" in error.message

    gpus[1].lost = False  # back: its samples since the last good read are credited, none twice
    result = busy.read()
    assert result.busy_seconds == pytest.approx({(7, UUIDS[1]): 0.5 * 0.1})


def test_pynvml_success_quirk_means_no_sample():
    gpus = four_gpus()
    for gpu in gpus:
        gpu.empty_answer = NVML_SUCCESS
    nvml, busy = busy_reader(gpus)
    assert busy.read().errors == []
    gpus[0].add_sample(5, T0_US, 25)
    assert busy.read().busy_seconds == pytest.approx({(5, UUIDS[0]): 0.25 * 2.0})  # capped: after no sample


def test_probe_says_per_gpu_whether_per_process_utilisation_reads_without_moving_the_reads():
    gpus = four_gpus()
    gpus[0].add_sample(101, T0_US, 50)
    gpus[0].add_sample(102, T0_US, 50)
    gpus[3].process_samples = None
    nvml, busy = busy_reader(gpus)
    busy.read()
    gpus[1].lost = True
    asked = []

    def describe(pids):
        asked.append(pids)
        return "2 in pod containers"

    lines = {line.what: line for line in busy.probe(describe)}
    assert asked == [[101, 102]]
    assert lines[f"GPU 0 ({UUIDS[0]}) per-process utilisation"].readable
    assert lines[f"GPU 0 ({UUIDS[0]}) per-process utilisation"].detail == (
        "readable; samples of 2 processes: 2 in pod containers"
    )
    assert not lines[f"GPU 1 ({UUIDS[1]}) per-process utilisation"].readable
    assert "GPU is lost" in lines[f"GPU 1 ({UUIDS[1]}) per-process utilisation"].detail
    idle = lines[f"GPU 2 ({UUIDS[2]}) per-process utilisation"]
    assert idle.readable and "no process has used the GPU recently" in idle.detail
    mig = lines[f"GPU 3 ({UUIDS[3]}) per-process utilisation"]
    assert not mig.readable and mig.detail.startswith("not supported (MIG enabled)")

    gpus[1].lost = False
    gpus[0].add_sample(101, T0_US + 400_000, 100)
    assert busy.read().busy_seconds == pytest.approx({(101, UUIDS[0]): 0.4})  # the probe read from 0


def test_busy_time_without_a_driver_is_empty():
    busy = GpuProcessBusy(NvmlSource(FakeNvml(four_gpus(), init_error=NVML_ERROR_LIBRARY_NOT_FOUND)))
    result = busy.read()
    assert (result.busy_seconds, result.errors, busy.probe()) == ({}, [], [])
    with pytest.raises(ValueError, match="positive"):
        GpuProcessBusy(NvmlSource(FakeNvml(four_gpus())), max_period_seconds=0)
