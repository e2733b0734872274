"""NVIDIA GPU power through NVML: the energy counter where a GPU has one, and power for every GPU.

Volta and newer GPUs count energy in millijoules since the driver was loaded, in 64 bits that never wrap,
so nothing between two reads is missed; older GPUs only report power, which the agent integrates. A GPU
with a counter therefore has two meters: a consumer takes energy from the counter and never adds the
gauge's integral to it. With MIG on, both are whole-board values: NVML gives no power per MIG instance.
"""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass
from typing import Any

from collectors.sources import ENERGY_COUNTER, POWER_GAUGE, Meter, ProbeLine, ReadError, Reading, ReadResult

NO_DRIVER = "no NVIDIA driver"
READY = "ready"
JOULES_PER_MILLIJOULE = 1e-3
WATTS_PER_MILLIWATT = 1e-3
ENERGY_FUNCTION = "nvmlDeviceGetTotalEnergyConsumption"
POWER_FUNCTION = "nvmlDeviceGetPowerUsage"


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
