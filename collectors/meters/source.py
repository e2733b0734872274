"""One small interface for every power source the node agent reads (RAPL, NVML, FPGA).

A source lists its meters, reads them all at once, and explains in a probe what it can and cannot read.
Reading never raises for one bad meter: the error is returned beside the readings that worked, so the
agent keeps serving every source it can read. Sources hold no global state; the agent is handed them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol


@dataclass(frozen=True)
class Meter:
    """One device quantity a source can read: an energy counter (may wrap) or a power gauge."""

    device_kind: str  # one of schemas.DEVICE_KINDS
    device_id: str  # package-0, dram-0, core-0, psys-0, GPU UUID, FPGA PCI address
    source: str  # rapl, nvml, hwmon, xrt
    value_kind: str  # ENERGY_COUNTER or POWER_GAUGE
    counter_max_joules: float | None = None  # wrap point of a counter, None when it does not wrap
    path: str = ""  # file, device handle or command the value comes from (for probes and errors)
    description: str = ""  # e.g. "package-0 (intel-rapl:0)", "NVIDIA A100-SXM4-40GB"


@dataclass(frozen=True)
class Reading:
    meter: Meter
    monotonic_seconds: float  # time.monotonic() when read: intervals between reads come from this
    unix_seconds: float  # time.time() when read: the timestamp written out (UTC)
    value: float  # joules for a counter (raw, wraps at counter_max_joules), watts for a gauge


@dataclass(frozen=True)
class ReadError:
    source: str
    path: str
    message: str  # names the file and, where there is one, the fix


@dataclass
class ReadResult:
    readings: list[Reading] = field(default_factory=list)
    errors: list[ReadError] = field(default_factory=list)


@dataclass(frozen=True)
class ProbeLine:
    source: str
    what: str  # zone, device or file probed
    readable: bool
    detail: str  # the value read, or why not and how to fix it


class PowerSource(Protocol):
    name: str

    def meters(self) -> list[Meter]: ...

    def read(self) -> ReadResult: ...

    def probe(self) -> list[ProbeLine]: ...
