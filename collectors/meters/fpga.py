"""FPGA board power: AMD/Xilinx Alveo and Intel MAX 10 BMC boards through hwmon, or Alveo through xbutil.

No FPGA board has an energy counter, so both sources return power gauges that the agent integrates.
hwmon costs one file read and needs no XRT userland; xbutil is for cards whose driver shows no hwmon
power. Both measure the same board, so run one of them per board, never both.
"""

from __future__ import annotations

import json
import math
import re
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from collectors.meters.source import Meter, ProbeLine, ReadError, Reading, ReadResult
from schemas.kinds import POWER_GAUGE

# Substrings of hwmon `name`s (lowercased, "-" read as "_") that belong to FPGA boards:
FPGA_HWMON_NAME_MARKERS = (
    # AMD/Xilinx Alveo under XRT's xocl/xclmgmt drivers: "xclmgmt_microblaze" (XMC firmware, management
    # function), "xclmgmt_sysmon" (temperatures only), "<shell VBNV>_hwmon_sdm_mgmt" and "..._hwmon_sdm_user"
    # (cards with data-driven sensors).
    "xclmgmt",
    "xocl",
    "xmc",
    "xrt",
    "hwmon_sdm",
    # Intel PAC/IPU boards under the kernel's intel-m10-bmc-hwmon driver: "n3000bmc_hwmon", "d5005bmc_hwmon",
    # "n5010bmc_hwmon", "n6000bmc_hwmon" (kernels before the name was sanitised show "-" for "_").
    "m10bmc",
    "n3000bmc",
    "d5005bmc",
    "n5010bmc",
    "n6000bmc",
)
# Labels of the whole-board channel: XMC "POWER", data-driven Alveo "Total Power", MAX 10 BMC "Board Power".
BOARD_POWER_LABELS = ("power", "total power", "board power")
PCI_ADDRESS = re.compile(r"^[0-9a-f]{4,}:[0-9a-f]{2}:[0-9a-f]{2}\.[0-7]$")
POWER_INPUT = re.compile(r"^power(\d+)_input$")
WATTS_PER_MICROWATT = 1e-6
READY = "ready"
XBUTIL_NOT_FOUND = "xbutil not found"
XRT_BIN_DIR = "/opt/xilinx/xrt/bin"  # where XRT packages install xbutil; only its setup.sh puts it on PATH
XBUTIL_TIMEOUT_SECONDS = 30.0
XBUTIL_POWER_FIELD = "electrical.power_consumption_watts"


def is_fpga_hwmon(name: str) -> bool:
    normalised = name.lower().replace("-", "_")
    return any(marker in normalised for marker in FPGA_HWMON_NAME_MARKERS)


def _channel_number(path: Path) -> int:
    match = POWER_INPUT.match(path.name)
    return int(match.group(1)) if match else 0


def _hwmon_number(folder: Path) -> int:
    suffix = folder.name.removeprefix("hwmon")
    return int(suffix) if suffix.isdigit() else -1


def _read_optional(path: Path) -> str:
    """A label or name that may be absent: absent and unreadable both read as empty."""
    try:
        return path.read_text().strip()
    except OSError:
        return ""


def _board_power_channel(folder: Path) -> tuple[Path, str]:
    """The labelled whole-board channel, or power1_input where no channel has a label; ValueError if neither."""
    inputs = sorted(
        (p for p in folder.glob("power*_input") if POWER_INPUT.match(p.name)), key=_channel_number
    )
    if not inputs:
        raise ValueError("FPGA board without a power*_input channel")
    labels = {path: _read_optional(folder / f"power{_channel_number(path)}_label") for path in inputs}
    for path, label in labels.items():
        if label.lower() in BOARD_POWER_LABELS:
            return path, label
    if any(labels.values()):
        found = ", ".join(repr(label) for label in labels.values() if label)
        raise ValueError(f"no whole-board power channel among the labels {found}")
    first = folder / "power1_input"
    if first not in labels:
        raise ValueError("unlabelled channels without power1_input")
    return first, "power1"


def _watts_per_unit(input_path: Path) -> float:
    """hwmon power is in microwatts, except XRT's data-driven sensors: value x 10^power<N>_unitm watts."""
    unitm_path = input_path.with_name(f"power{_channel_number(input_path)}_unitm")
    if not unitm_path.exists():
        return WATTS_PER_MICROWATT
    return 10.0 ** int(unitm_path.read_text().strip())


def _pci_address(folder: Path) -> str | None:
    """The nearest PCI function above the hwmon's device (a MAX 10 BMC hangs off SPI below its card)."""
    link = folder / "device"
    if not link.exists():
        return None
    return next((part for part in reversed(link.resolve().parts) if PCI_ADDRESS.match(part)), None)


@dataclass(frozen=True)
class _Board:
    meter: Meter
    input_path: Path
    watts_per_unit: float
    hwmon: str  # e.g. "hwmon3 (xclmgmt_microblaze)"
    label: str
    pci_address: str | None


class HwmonFpgaSource:
    """Board power of every FPGA hwmon under <root>/class/hwmon; other hwmons are listed in probe only."""

    name = "hwmon"

    def __init__(self, sysfs_root: str | Path = "/sys"):
        self.hwmon_dir = Path(sysfs_root) / "class" / "hwmon"
        self._boards: list[_Board] = []
        self._ignored: list[ProbeLine] = []
        self._scan()

    def _scan(self) -> None:
        folders = sorted(self.hwmon_dir.glob("hwmon*"), key=_hwmon_number)
        if not folders:
            self._ignored.append(ProbeLine(self.name, str(self.hwmon_dir), False, "no hwmon devices"))
        found: list[_Board] = []
        for folder in folders:
            name = _read_optional(folder / "name")
            what = f"{folder.name} ({name or 'no name'})"
            if not is_fpga_hwmon(name):
                self._ignored.append(ProbeLine(self.name, what, False, "not an FPGA board, ignored"))
                continue
            try:
                input_path, label = _board_power_channel(folder)
                watts_per_unit = _watts_per_unit(input_path)
            except (OSError, ValueError) as error:
                self._ignored.append(ProbeLine(self.name, what, False, str(error)))
                continue
            pci_address = _pci_address(folder)
            device_id = pci_address or name
            description = f"{name} {label} ({folder.name})"
            meter = Meter("fpga", device_id, self.name, POWER_GAUGE, None, str(input_path), description)
            found.append(_Board(meter, input_path, watts_per_unit, what, label, pci_address))
        # An Alveo card's management and user functions (0000:af:00.0 and .1) may both show its power: count
        # each slot once, from its lowest function.
        by_slot: dict[str, _Board] = {}
        for board in sorted(found, key=lambda b: b.meter.device_id):
            slot = board.pci_address.rsplit(".", 1)[0] if board.pci_address else board.hwmon
            if slot in by_slot:
                kept = by_slot[slot]
                detail = f"same board as {kept.meter.device_id} {kept.hwmon}, not counted twice"
                self._ignored.append(ProbeLine(self.name, board.hwmon, False, detail))
            else:
                by_slot[slot] = board
        self._boards = list(by_slot.values())

    def meters(self) -> list[Meter]:
        return [board.meter for board in self._boards]

    def read(self) -> ReadResult:
        result = ReadResult()
        for board in self._boards:
            path = board.input_path
            try:
                text = path.read_text().strip()
            except OSError as error:
                fix = ": run the agent as root" if isinstance(error, PermissionError) else ""
                result.errors.append(ReadError(self.name, str(path), f"{path}: {error.strerror}{fix}"))
                continue
            try:
                raw = int(text)
            except ValueError:
                result.errors.append(ReadError(self.name, str(path), f"{path}: not a number: {text!r}"))
                continue
            watts = raw * board.watts_per_unit
            result.readings.append(Reading(board.meter, time.monotonic(), time.time(), watts))
        return result

    def probe(self) -> list[ProbeLine]:
        result = self.read()
        watts = {reading.meter.path: reading.value for reading in result.readings}
        failures = {error.path: error.message for error in result.errors}
        lines = []
        for board in self._boards:
            path = board.meter.path
            what = f"{board.meter.device_id} {board.hwmon}"
            if path in watts:
                detail = f"{watts[path]:.3f} W from {path} ({board.label})"
                lines.append(ProbeLine(self.name, what, True, detail))
            else:
                lines.append(ProbeLine(self.name, what, False, failures[path]))
        return lines + self._ignored


def parse_xbutil_electrical(report: str | dict) -> float:
    """Board watts from `xbutil examine -r electrical -f JSON` output, as text or parsed.

    xbutil nests each device's report under `devices[]`; a bare report has `electrical` at its root. XRT
    writes numbers as strings, and "N/A" where the card gives no power reading.
    """
    tree = json.loads(report) if isinstance(report, str) else report
    if not isinstance(tree, dict):
        raise ValueError(f"{XBUTIL_POWER_FIELD}: the report is not a JSON object")
    if "electrical" in tree:
        electrical = tree["electrical"]
    else:
        devices = tree.get("devices")
        found = [d["electrical"] for d in devices or [] if isinstance(d, dict) and "electrical" in d]
        if len(found) != 1:
            raise ValueError(f"{XBUTIL_POWER_FIELD}: expected one device's report, found {len(found)}")
        electrical = found[0]
    value = electrical.get("power_consumption_watts") if isinstance(electrical, dict) else None
    if value is None:
        raise ValueError(f"{XBUTIL_POWER_FIELD} is missing")
    try:
        watts = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{XBUTIL_POWER_FIELD} is {value!r}, not a number of watts") from None
    if not math.isfinite(watts):
        raise ValueError(f"{XBUTIL_POWER_FIELD} is {value!r}, not a number of watts")
    return watts


def _run_xbutil(args: list[str]) -> subprocess.CompletedProcess:
    return subprocess.run(args, capture_output=True, text=True, timeout=XBUTIL_TIMEOUT_SECONDS, check=False)


class XrtFpgaSource:
    """Alveo board power from one `xbutil examine` per card (user function BDF) and read."""

    name = "xrt"

    def __init__(
        self,
        devices: list[str],
        run: Callable[[list[str]], Any] | None = None,
        xbutil: str = "xbutil",
    ):
        """`run(args)` returns an object with returncode/stdout/stderr (tests fake it); xbutil is looked up
        on PATH, then in XRT's install folder."""
        self.devices = list(devices)
        self._run = run or _run_xbutil
        self._xbutil = shutil.which(xbutil) or shutil.which(xbutil, path=XRT_BIN_DIR)
        self.status = READY if self._xbutil else XBUTIL_NOT_FOUND
        self._meters = [
            Meter(
                "fpga",
                bdf,
                self.name,
                POWER_GAUGE,
                None,
                f"xbutil examine -d {bdf} -r electrical -f JSON",
                f"Alveo {bdf} via xbutil",
            )
            for bdf in self.devices
        ]

    def meters(self) -> list[Meter]:
        return list(self._meters)

    def read(self) -> ReadResult:
        result = ReadResult()
        for meter in self._meters:
            outcome = self._examine(meter)
            if isinstance(outcome, Reading):
                result.readings.append(outcome)
            else:
                result.errors.append(outcome)
        return result

    def _examine(self, meter: Meter) -> Reading | ReadError:
        """One xbutil run, time-stamped at its midpoint: the card sampled its power somewhere within it."""
        bdf = meter.device_id
        if self._xbutil is None:
            message = f"{bdf}: {XBUTIL_NOT_FOUND} on PATH or in {XRT_BIN_DIR}: install XRT"
            return ReadError(self.name, meter.path, message)
        with tempfile.TemporaryDirectory(prefix="jouletrace-xbutil-") as folder:
            output = Path(folder) / "electrical.json"
            args = [self._xbutil, "examine", "-d", bdf, "-r", "electrical", "-f", "JSON", "-o", str(output)]
            started_monotonic, started_unix = time.monotonic(), time.time()
            try:
                completed = self._run(args)
            except (OSError, subprocess.TimeoutExpired) as error:
                return ReadError(self.name, meter.path, f"{bdf}: running xbutil failed: {error}")
            monotonic_seconds = (started_monotonic + time.monotonic()) / 2
            unix_seconds = (started_unix + time.time()) / 2
            if completed.returncode != 0:
                said = (completed.stderr or completed.stdout or "").strip().splitlines()
                message = (
                    f"{bdf}: xbutil exited with {completed.returncode}: {said[-1] if said else 'no message'}"
                )
                return ReadError(self.name, meter.path, message)
            try:
                watts = parse_xbutil_electrical(output.read_text())
            except (OSError, ValueError) as error:
                return ReadError(self.name, meter.path, f"{bdf}: xbutil report: {error}")
        return Reading(meter, monotonic_seconds, unix_seconds, watts)

    def probe(self) -> list[ProbeLine]:
        if self._xbutil is None:
            return [ProbeLine(self.name, "xbutil", False, f"{XBUTIL_NOT_FOUND} on PATH or in {XRT_BIN_DIR}")]
        if not self._meters:
            return [ProbeLine(self.name, "xbutil", False, "no Alveo device (PCI BDF) configured")]
        lines = []
        for meter in self._meters:
            outcome = self._examine(meter)
            if isinstance(outcome, Reading):
                lines.append(ProbeLine(self.name, meter.device_id, True, f"{outcome.value:.3f} W"))
            else:
                lines.append(ProbeLine(self.name, meter.device_id, False, outcome.message))
        return lines
