"""NVIDIA GPU power through NVML: the energy counter where a GPU has one, and power for every GPU.

Volta and newer GPUs count energy in millijoules since the driver was loaded, in 64 bits that never wrap,
so nothing between two reads is missed; older GPUs only report power, which the agent integrates. A GPU
with a counter therefore has two meters: a consumer takes energy from the counter and never adds the
gauge's integral to it. With MIG on, both are whole-board values: NVML gives no power per MIG instance.

``GpuProcessBusy`` reads NVML's per-process utilisation samples into SM-busy seconds per process and GPU,
so the agent can split a time-sliced GPU between the containers sharing it (its docstring has the rule).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from collectors.meters.source import Meter, ProbeLine, ReadError, Reading, ReadResult
from schemas.kinds import ENERGY_COUNTER, POWER_GAUGE

NO_DRIVER = "no NVIDIA driver"
READY = "ready"
JOULES_PER_MILLIJOULE = 1e-3
WATTS_PER_MILLIWATT = 1e-3
ENERGY_FUNCTION = "nvmlDeviceGetTotalEnergyConsumption"
POWER_FUNCTION = "nvmlDeviceGetPowerUsage"
PROCESS_UTILIZATION_FUNCTION = "nvmlDeviceGetProcessUtilization"
SECONDS_PER_MICROSECOND = 1e-6
# NVML samples utilisation every 1/6 s to 1 s; a process reading every second gets a sample per read while
# it is busy. A longer period means the GPU had no sample at all meanwhile (idle), so no more is credited.
DEFAULT_MAX_SAMPLE_PERIOD_SECONDS = 2.0


def _text(value: bytes | str) -> str:
    """Older pynvml releases return bytes for names and UUIDs, newer ones str."""
    return value.decode() if isinstance(value, bytes) else str(value)


@dataclass(frozen=True)
class _Gpu:
    index: int
    handle: Any
    uuid: str
    name: str
    no_counter_reason: str  # empty when the GPU has an energy counter
    mig: str  # "MIG enabled", "MIG disabled", "MIG not supported", or why the mode could not be read

    @property
    def label(self) -> str:
        return f"GPU {self.index} ({self.uuid})"


@dataclass(frozen=True)
class _Channel:
    """One meter and the NVML call, in its unit, that reads it."""

    meter: Meter
    gpu: _Gpu
    function: str
    si_per_unit: float


class NvmlSource:
    """Every GPU NVML sees; without a driver it has no meters and says why, instead of raising."""

    name = "nvml"

    def __init__(self, nvml: Any = None):
        """`nvml` is the pynvml module or a stand-in with the same names; None imports pynvml."""
        self.status = NO_DRIVER
        self._init_error = ""
        self._initialised = False
        self._channels: list[_Channel] = []
        self._gpus: list[_Gpu] = []
        self._problems: list[ProbeLine] = []
        if nvml is None:
            try:
                import pynvml as nvml
            except ImportError as error:
                self._init_error = f"the pynvml module is not installed ({error})"
                return
        self._nvml = nvml
        try:
            nvml.nvmlInit()
        except nvml.NVMLError as error:
            self._init_error = str(error)
            return
        self._initialised = True
        self.status = READY
        self._discover()

    def close(self) -> None:
        """Release NVML; a shutdown error changes nothing for a source that is done."""
        if self._initialised:
            self._initialised = False
            with contextlib.suppress(self._nvml.NVMLError):
                self._nvml.nvmlShutdown()

    def _discover(self) -> None:
        nvml = self._nvml
        try:
            count = nvml.nvmlDeviceGetCount()
        except nvml.NVMLError as error:
            self._problems.append(ProbeLine(self.name, "GPUs", False, f"nvmlDeviceGetCount failed: {error}"))
            return
        for index in range(count):
            try:
                handle = nvml.nvmlDeviceGetHandleByIndex(index)
                uuid = _text(nvml.nvmlDeviceGetUUID(handle))
                name = _text(nvml.nvmlDeviceGetName(handle))
            except nvml.NVMLError as error:
                detail = f"cannot identify it, so its power is not read: {error}"
                self._problems.append(ProbeLine(self.name, f"GPU {index}", False, detail))
                continue
            gpu = _Gpu(index, handle, uuid, name, self._no_counter_reason(handle), self._mig_mode(handle))
            self._gpus.append(gpu)
            description = f"{name}, GPU {index}" + (", MIG enabled" if gpu.mig == "MIG enabled" else "")
            common = {
                "device_kind": "gpu",
                "device_id": uuid,
                "source": self.name,
                "description": description,
            }
            if not gpu.no_counter_reason:
                meter = Meter(value_kind=ENERGY_COUNTER, path=f"{ENERGY_FUNCTION}(GPU {index})", **common)
                self._channels.append(_Channel(meter, gpu, ENERGY_FUNCTION, JOULES_PER_MILLIJOULE))
            meter = Meter(value_kind=POWER_GAUGE, path=f"{POWER_FUNCTION}(GPU {index})", **common)
            self._channels.append(_Channel(meter, gpu, POWER_FUNCTION, WATTS_PER_MILLIWATT))

    def _no_counter_reason(self, handle: Any) -> str:
        """The counter exists only from Volta on; older GPUs answer NOT_SUPPORTED."""
        try:
            self._nvml.nvmlDeviceGetTotalEnergyConsumption(handle)
        except self._nvml.NVMLError as error:
            if error.value == self._nvml.NVML_ERROR_NOT_SUPPORTED:
                return "not supported (before Volta)"
            return f"unreadable ({error})"
        return ""

    def _mig_mode(self, handle: Any) -> str:
        try:
            current, _pending = self._nvml.nvmlDeviceGetMigMode(handle)
        except self._nvml.NVMLError as error:
            if error.value == self._nvml.NVML_ERROR_NOT_SUPPORTED:
                return "MIG not supported"
            return f"MIG mode unreadable ({error})"
        return "MIG enabled" if current == self._nvml.NVML_DEVICE_MIG_ENABLE else "MIG disabled"

    def meters(self) -> list[Meter]:
        return [channel.meter for channel in self._channels]

    def read(self) -> ReadResult:
        """Joules for counters, watts for gauges; a GPU that fails (lost, reset) does not stop the others."""
        result = ReadResult()
        for channel in self._channels:
            try:
                raw = getattr(self._nvml, channel.function)(channel.gpu.handle)
            except self._nvml.NVMLError as error:
                message = f"{channel.gpu.label}: {channel.function} failed: {error}"
                result.errors.append(ReadError(self.name, channel.meter.path, message))
                continue
            result.readings.append(
                Reading(channel.meter, time.monotonic(), time.time(), raw * channel.si_per_unit)
            )
        return result

    def probe(self) -> list[ProbeLine]:
        """Per GPU: its name, whether the counter and power read, and its MIG mode."""
        if not self._initialised:
            return [ProbeLine(self.name, "NVIDIA driver", False, f"{self.status}: {self._init_error}")]
        result = self.read()
        values = {reading.meter: reading.value for reading in result.readings}
        failures = {error.path: error.message for error in result.errors}
        lines = list(self._problems)
        if not self._gpus and not lines:
            lines.append(ProbeLine(self.name, "GPUs", False, "NVML sees no GPU"))
        for gpu in self._gpus:
            parts = [gpu.name]
            for channel in self._channels:
                if channel.gpu is not gpu:
                    continue
                meter = channel.meter
                if meter in values:
                    unit = "J since the driver was loaded" if meter.value_kind == ENERGY_COUNTER else "W"
                    value_text = f"{values[meter]:.3f} {unit}"
                else:
                    value_text = f"unreadable: {failures[meter.path]}"
                kind = "energy counter" if meter.value_kind == ENERGY_COUNTER else "power"
                parts.append(f"{kind} {value_text}")
            if gpu.no_counter_reason:
                parts.append(f"energy counter {gpu.no_counter_reason}: the agent integrates power")
            parts.append(gpu.mig)
            readable = any(c.meter in values for c in self._channels if c.gpu is gpu)
            lines.append(ProbeLine(self.name, gpu.label, readable, "; ".join(parts)))
        return lines


@dataclass
class BusyRead:
    """SM-busy seconds new in one read, per (host pid, GPU UUID), and the GPUs that failed."""

    busy_seconds: dict[tuple[int, str], float] = field(default_factory=dict)
    errors: list[ReadError] = field(default_factory=list)


class GpuProcessBusy:
    """Seconds each process kept a GPU's SMs busy, from ``nvmlDeviceGetProcessUtilization``.

    NVML returns, for the processes that were busy, samples newer than the ``lastSeenTimeStamp`` passed in
    (``timeStamp`` in microseconds of CPU time, ``smUtil`` in percent). The rule: a sample's smUtil holds
    over the period since the previous sample of that GPU, i.e. since the newest timestamp the previous read
    returned (the lastSeenTimeStamp passed now) or, when one read holds several samples of the process,
    since its own previous one; busy seconds = smUtil / 100 x that period, the period capped at
    `max_period_seconds` so a process that starts after an idle pause (no samples at all) is not credited
    with the pause. The newest timestamp is kept per GPU and passed on, so no sample is counted twice.

    The first read of a GPU only finds where the driver's buffer ends and credits nothing (the buffer holds
    samples from before the agent started); if that buffer is empty every later sample is new. Samples with
    smUtil above 100 (drivers return such garbage for exited processes) are skipped and reported. A GPU
    answering NOT_SUPPORTED (before Maxwell; MIG instances on some drivers) is not asked again; any other
    failure is a ReadError for that GPU and the others are read.
    """

    def __init__(self, source: NvmlSource, max_period_seconds: float = DEFAULT_MAX_SAMPLE_PERIOD_SECONDS):
        if not max_period_seconds > 0:
            raise ValueError(f"max_period_seconds must be positive, got {max_period_seconds}")
        self.source = source
        self.max_period_seconds = max_period_seconds
        self._last_seen_us: dict[str, int] = {}  # by GPU UUID; absent until the GPU's first read
        self._unsupported: dict[str, str] = {}  # GPU UUID -> NVML's answer

    def _no_new_sample(self, error: Any) -> bool:
        """NOT_FOUND: nothing since lastSeenTimeStamp. pynvml raises NVMLError(SUCCESS) when NVML
        succeeds on its size query, which it does when there is no sample at all."""
        nvml = self.source._nvml
        return error.value in (nvml.NVML_ERROR_NOT_FOUND, getattr(nvml, "NVML_SUCCESS", 0))

    def read(self) -> BusyRead:
        result = BusyRead()
        if not self.source._initialised:
            return result
        nvml = self.source._nvml
        for gpu in self.source._gpus:
            if gpu.uuid in self._unsupported:
                continue
            path = f"{PROCESS_UTILIZATION_FUNCTION}(GPU {gpu.index})"
            last_seen = self._last_seen_us.get(gpu.uuid)
            try:
                samples = nvml.nvmlDeviceGetProcessUtilization(gpu.handle, last_seen or 0)
            except nvml.NVMLError as error:
                if self._no_new_sample(error):
                    self._last_seen_us.setdefault(gpu.uuid, 0)
                elif error.value == nvml.NVML_ERROR_NOT_SUPPORTED:
                    self._unsupported[gpu.uuid] = str(error)
                else:
                    message = f"{gpu.label}: {PROCESS_UTILIZATION_FUNCTION} failed: {error}"
                    result.errors.append(ReadError(self.source.name, path, message))
                continue
            skipped = self._credit(gpu, samples, last_seen, result.busy_seconds)
            if skipped:
                message = f"{gpu.label}: {skipped} per-process samples with smUtil above 100% skipped"
                result.errors.append(ReadError(self.source.name, path, message))
        return result

    def _credit(
        self, gpu: _Gpu, samples: Sequence[Any], last_seen: int | None, busy: dict[tuple[int, str], float]
    ) -> int:
        """Add one GPU's samples to `busy` (module rule); returns how many were skipped as invalid."""
        floor = last_seen or 0
        fresh = [sample for sample in samples if sample.timeStamp > floor]
        valid = sorted((s for s in fresh if s.smUtil <= 100), key=lambda s: (s.pid, s.timeStamp))
        if valid:
            self._last_seen_us[gpu.uuid] = max(s.timeStamp for s in valid)
        if last_seen is None:
            return len(fresh) - len(valid)
        previous: dict[int, int] = {}
        for sample in valid:
            period_us = sample.timeStamp - previous.get(sample.pid, last_seen)
            seconds = min(period_us * SECONDS_PER_MICROSECOND, self.max_period_seconds)
            key = (int(sample.pid), gpu.uuid)
            busy[key] = busy.get(key, 0.0) + sample.smUtil / 100.0 * seconds
            previous[sample.pid] = sample.timeStamp
        return len(fresh) - len(valid)

    def probe(self, describe_pids: Callable[[list[int]], str] | None = None) -> list[ProbeLine]:
        """Per GPU: whether per-process utilisation reads, and how many processes the driver holds samples
        of (`describe_pids` may say which pod containers they are in). Does not move the read position."""
        if not self.source._initialised:
            return []
        nvml = self.source._nvml
        lines = []
        for gpu in self.source._gpus:
            what = f"{gpu.label} per-process utilisation"
            try:
                samples = nvml.nvmlDeviceGetProcessUtilization(gpu.handle, 0)
            except nvml.NVMLError as error:
                if self._no_new_sample(error):
                    detail = "readable; no process has used the GPU recently"
                    lines.append(ProbeLine(self.source.name, what, True, detail))
                elif error.value == nvml.NVML_ERROR_NOT_SUPPORTED:
                    detail = (
                        f"not supported ({gpu.mig}): its energy cannot be split between the containers "
                        "sharing it by their GPU time"
                    )
                    lines.append(ProbeLine(self.source.name, what, False, detail))
                else:
                    detail = f"{PROCESS_UTILIZATION_FUNCTION} failed: {error}"
                    lines.append(ProbeLine(self.source.name, what, False, detail))
                continue
            pids = sorted({int(sample.pid) for sample in samples})
            detail = f"readable; samples of {len(pids)} processes"
            if describe_pids is not None and pids:
                detail += f": {describe_pids(pids)}"
            lines.append(ProbeLine(self.source.name, what, True, detail))
        return lines
