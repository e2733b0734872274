"""RAPL energy counters from Linux powercap (<sysfs root>/class/powercap), one meter per real domain.

Zone hierarchy. Overlapping zones are never summed:
    psys (platform)  contains  package-N  contains  core, uncore
    dram             a sub-zone of package-N in sysfs, yet NOT inside it: memory energy is separate
Meters: package -> cpu_package "package-<socket>", core -> cpu_core "core-<socket>", dram -> dram
"dram-<socket>", psys -> psys "psys-<n>". Only cpu_package and dram add up (schemas' ADDITIVE_DEVICE_KINDS).
core and psys are reported for themselves. uncore has no device kind and would only re-count package
joules, so it is skipped, and the probe says so. A sub-zone inherits its parent's socket.

Duplicates are dropped so that nothing counts twice:
  - intel-rapl-mmio:N reads the package domain through MMIO. It is skipped when an MSR zone
    (intel-rapl:N) has the same name, and kept when it is the only one.
  - AMD Zen1/Zen2 Threadripper/EPYC show one package zone per die, each mirroring the socket's single
    counter. Topology decides first, deterministically: when devices/system/cpu/cpu*/topology/
    physical_package_id exists and there are more package zones than physical packages, the zones are
    per die. All but the first zone of each socket are then mirrors. The exception is Intel (cpu modalias
    vendor 0000), whose per-die zones (Cascade Lake-AP) are separate counters, so they stay meters.
    Without topology, identical energy_uj values decide. A zone that reads the same non-zero microjoules
    as an earlier zone at construction is a suspected mirror and not a meter. A later read() confirms it when
    both are still identical after the counter advanced. It is cleared, and becomes a meter, after three
    reads in a row that differ. Two live reads of one mirrored counter differ only when its ~1 ms update
    falls between them, so construction compares three times and clearing waits for three differences.
  - A sub-zone of a skipped or mirrored package zone is skipped with it.

counter_max_joules is max_energy_range_uj / 1e6. The hardware counter wraps one energy unit (15-61 uJ)
above that, so each corrected wrap is off by at most one unit (< 1e-9 of the range).

Permissions: energy_uj is root-only since the CVE-2020-8694 fix. A refused file becomes a ReadError that
names the file and the fix, and the other meters still read.

Cost: on sysfs, os.pread(fd, 64, 0) on a held descriptor returns the live value in ~1 us per file,
against ~7 us for open/read/close (measured on sysfs attribute files). It is used when the zones are on a
sysfs mount. Elsewhere open/read/close is used: fixture trees replace their files, so a held descriptor
would read a stale inode. A failing pread re-opens the file once. close() releases the descriptors.
"""

from __future__ import annotations

import os
import re
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from collectors.meters.source import Meter, ProbeLine, ReadError, Reading, ReadResult
from schemas.kinds import ADDITIVE_DEVICE_KINDS, ENERGY_COUNTER

SOURCE = "rapl"
# Device kind -> the kinds whose joules it already contains. Summing a kind with one it contains counts the
# same joules twice. psys covers the platform it is wired to measure (the package and usually more).
OVERLAPS: dict[str, tuple[str, ...]] = {
    "psys": ("cpu_package", "cpu_core", "dram"),
    "cpu_package": ("cpu_core",),
}
PERMISSION_FIX = (
    "energy_uj is root-only since the CVE-2020-8694 fix (Linux 5.10, Ubuntu 5.4.0-53): run the agent as "
    "uid 0 (as deploy/daemonset.yaml does, with no capabilities: the owner reads its 0400 file) or grant "
    "read access (e.g. a udev rule running chmod a+r on energy_uj)"
)
NO_ZONES = (
    "no RAPL zones: not an x86 host with the intel_rapl powercap driver, a VM without RAPL, or a container "
    "runtime masking powercap (mount the host /sys read-only into the agent)"
)

_ZONE_ID = re.compile(r"intel-rapl(-mmio)?:(\d+)(?::(\d+))?")
_CONTROL_TYPES = ("intel-rapl", "intel-rapl-mmio")
_PACKAGE_NAME = re.compile(r"package-(\d+)(?:-die-(\d+))?")
_SUB_ZONE_METERS = {
    "core": ("cpu_core", "core"),
    "dram": ("dram", "dram"),
}  # name -> (device kind, id prefix)
_MIRROR_CLEARING_READS = 3  # reads in a row that differ before a suspected mirror becomes a meter
_MIRROR_COMPARISONS = 3  # back-to-back comparisons at construction


def is_additive(device_kind: str) -> bool:
    """Whether this kind's joules add to other additive kinds' without counting any joule twice."""
    return device_kind in ADDITIVE_DEVICE_KINDS


@dataclass(eq=False)
class _Zone:
    zone_id: str  # intel-rapl:0:2
    folder: Path
    mmio: bool
    top: int
    sub: int  # -1 for a top-level zone
    name: str = ""  # package-0, psys, core, uncore, dram
    max_uj: int | None = None
    parent: _Zone | None = None
    skip: str = ""  # why the zone is never a meter
    socket: int | None = None  # package zones only
    die: int | None = None
    unit: str | None = None  # "0" or "0-die-1": the suffix of its meters' device ids
    meter: Meter | None = None
    mirror_of: _Zone | None = None  # the package zone it (is suspected to) mirror
    mirror_confirmed: bool = False
    mirror_rule: str = ""
    compared_uj: int | None = None
    differing_reads: int = 0
    fd: int | None = None

    @property
    def energy_path(self) -> Path:
        return self.folder / "energy_uj"

    @property
    def parent_id(self) -> str:
        return f"intel-rapl{'-mmio' if self.mmio else ''}:{self.top}"


class RaplSource:
    """The RAPL zones under <sysfs_root>/class/powercap, read as energy counters (PowerSource "rapl")."""

    name = SOURCE

    def __init__(self, sysfs_root: str | Path = "/sys"):
        self.sysfs_root = Path(sysfs_root)
        self.powercap = self.sysfs_root / "class" / "powercap"
        self._keep_open = _on_sysfs(self.powercap)
        self._zones = [_load_zone(zone_id, folder) for zone_id, folder in _zone_folders(self.powercap)]
        self._skip_duplicates_and_overlaps()
        self._suspects: list[_Zone] = []
        self._find_mirrors()
        self._meter_zones: list[_Zone] = []
        self._assign_meters()

    def meters(self) -> list[Meter]:
        return [zone.meter for zone in self._meter_zones]

    def read(self) -> ReadResult:
        result = ReadResult()
        cleared = False
        for zone in self._meter_zones:
            try:
                value_uj = self._read_uj(zone)
            except (OSError, ValueError) as error:
                path = str(zone.energy_path)
                result.errors.append(ReadError(SOURCE, path, _read_error(path, error)))
                continue
            result.readings.append(Reading(zone.meter, time.monotonic(), time.time(), value_uj / 1e6))
            for suspect in [s for s in self._suspects if s.mirror_of is zone]:
                cleared |= self._check_suspect(suspect, value_uj)
        if cleared:
            self._assign_meters()
        return result

    def probe(self) -> list[ProbeLine]:
        if not self._zones:
            return [ProbeLine(SOURCE, str(self.powercap), False, NO_ZONES)]
        lines = []
        for zone in self._zones:
            what, role = f"{zone.zone_id} ({zone.name or '?'})", self._role(zone)
            try:
                value_uj = self._read_uj(zone)
            except (OSError, ValueError) as error:
                lines.append(
                    ProbeLine(SOURCE, what, False, f"{role}; {_read_error(str(zone.energy_path), error)}")
                )
                continue
            wraps_at = (
                f"{zone.max_uj / 1e6:.6f} J"
                if zone.max_uj
                else "unknown (max_energy_range_uj unreadable: a decrease counts as a reset)"
            )
            lines.append(
                ProbeLine(SOURCE, what, True, f"{role}: {value_uj / 1e6:.6f} J, wraps at {wraps_at}")
            )
        return lines

    def close(self) -> None:
        """Release held descriptors (sysfs only); reading afterwards re-opens the files."""
        for zone in self._zones:
            if zone.fd is not None:
                os.close(zone.fd)
                zone.fd = None

    def _read_uj(self, zone: _Zone) -> int:
        """energy_uj in microjoules: pread on a held descriptor on sysfs, else open/read/close."""
        if zone.fd is not None:
            try:
                return int(os.pread(zone.fd, 64, 0))
            except OSError:  # zone unregistered or re-created (ENODEV): open the path afresh below
                os.close(zone.fd)
                zone.fd = None
        fd = os.open(zone.energy_path, os.O_RDONLY)
        if self._keep_open:
            zone.fd = fd
            return int(os.pread(fd, 64, 0))
        try:
            return int(os.read(fd, 64))
        finally:
            os.close(fd)

    def _skip_duplicates_and_overlaps(self) -> None:
        """Mark zones that are never meters: MMIO duplicates, uncore, unknown names, orphans."""
        by_id = {zone.zone_id: zone for zone in self._zones}
        for zone in self._zones:
            if zone.sub >= 0:
                zone.parent = by_id.get(zone.parent_id)
        msr_zones = {_duplicate_key(zone): zone for zone in self._zones if not zone.mmio and not zone.skip}
        for zone in self._zones:  # parents come before their sub-zones
            package = _PACKAGE_NAME.fullmatch(zone.name)
            msr_twin = msr_zones.get(_duplicate_key(zone)) if zone.mmio else None
            if zone.skip:
                continue
            if zone.sub >= 0 and zone.parent is None:
                zone.skip = f"sub-zone of missing {zone.parent_id}: socket unknown, skipped"
            elif zone.parent is not None and zone.parent.skip:
                zone.skip = f"inside {zone.parent.zone_id}, which is skipped"
            elif msr_twin is not None:
                zone.skip = f"MMIO duplicate of {msr_twin.zone_id} ({zone.name}): skipped"
            elif zone.sub >= 0 and zone.name == "uncore":
                zone.skip = (
                    "uncore lies inside cpu_package and has no device kind: skipped (would count twice)"
                )
            elif zone.sub >= 0 and zone.name not in _SUB_ZONE_METERS:
                zone.skip = f"unknown sub-zone {zone.name!r}: skipped"
            elif zone.sub < 0 and package is None and zone.name != "psys":
                zone.skip = f"unknown top-level zone {zone.name!r}: skipped"
            elif package is not None:
                zone.socket = int(package[1])
                zone.die = int(package[2]) if package[2] is not None else None

    def _find_mirrors(self) -> None:
        """Mark AMD per-die package zones that mirror their socket's counter (rules in the module docstring)."""
        packages = [zone for zone in self._zones if zone.socket is not None and not zone.skip]
        physical = _physical_packages(self.sysfs_root)
        if physical:
            if len(packages) <= len(physical) or _is_intel(self.sysfs_root):
                return
            rule = f"topology: {len(physical)} physical package(s), {len(packages)} package zones"
            ordered = sorted(physical)
            kept: dict[int, _Zone] = {}
            for index, zone in enumerate(packages):
                if zone.die is None:  # per-die zones named without their die: place them in order
                    zone.socket = ordered[index * len(ordered) // len(packages)]
                first = kept.setdefault(zone.socket, zone)
                if first is not zone:
                    zone.mirror_of, zone.mirror_confirmed, zone.mirror_rule = first, True, rule
            return
        for _ in range(_MIRROR_COMPARISONS):
            first_with_value: dict[int, _Zone] = {}
            for zone in packages:
                if zone.mirror_of is not None:
                    continue
                try:
                    value_uj = self._read_uj(zone)
                except (OSError, ValueError):
                    continue
                if value_uj == 0:  # counters that are not running read 0: no evidence
                    continue
                first = first_with_value.setdefault(value_uj, zone)
                if first is not zone:
                    zone.mirror_of, zone.compared_uj = first, value_uj
                    self._suspects.append(zone)

    def _check_suspect(self, suspect: _Zone, kept_uj: int) -> bool:
        """Confirm or count against a suspected mirror; True when it is cleared and must become a meter."""
        try:
            value_uj = self._read_uj(suspect)
        except (OSError, ValueError):
            return False
        if value_uj == kept_uj:
            suspect.differing_reads = 0
            if kept_uj != suspect.compared_uj:
                suspect.mirror_confirmed = True
                suspect.mirror_rule = "identical energy_uj on consecutive reads while advancing"
                self._suspects.remove(suspect)
            return False
        suspect.differing_reads += 1
        if suspect.differing_reads < _MIRROR_CLEARING_READS:
            return False
        suspect.mirror_of = None
        self._suspects.remove(suspect)
        return True

    def _assign_meters(self) -> None:
        """Give a meter to each zone that is read; device ids once given never change."""
        active = [z for z in self._zones if z.socket is not None and not z.skip and z.mirror_of is None]
        shared_sockets = {socket for socket, count in Counter(z.socket for z in active).items() if count > 1}
        taken = {zone.meter.device_id for zone in self._zones if zone.meter is not None}
        for zone in self._zones:  # parents come before their sub-zones
            if zone.meter is not None or zone.skip or zone.mirror_of is not None:
                continue
            if zone.parent is not None:
                if zone.parent.unit is None:  # inside a mirror
                    continue
                kind, prefix = _SUB_ZONE_METERS[zone.name]
                zone.unit = zone.parent.unit
            elif zone.name == "psys":
                kind, prefix = "psys", "psys"
                zone.unit = str(sum(device_id.startswith("psys-") for device_id in taken))
            else:
                kind, prefix = "cpu_package", "package"
                zone.unit = str(zone.socket)
                if zone.socket in shared_sockets or f"package-{zone.unit}" in taken:
                    zone.unit = f"{zone.socket}-die-{zone.die if zone.die is not None else zone.top}"
            device_id = f"{prefix}-{zone.unit}"
            zone.meter = Meter(
                device_kind=kind,
                device_id=device_id,
                source=SOURCE,
                value_kind=ENERGY_COUNTER,
                counter_max_joules=zone.max_uj / 1e6 if zone.max_uj else None,
                path=str(zone.energy_path),
                description=f"{device_id} ({zone.zone_id})",
            )
            taken.add(device_id)
        self._meter_zones = [zone for zone in self._zones if zone.meter is not None]

    def _role(self, zone: _Zone) -> str:
        """What the probe says a zone is used for."""
        if zone.meter is not None:
            return f"{zone.meter.device_kind} {zone.meter.device_id}"
        if zone.skip:
            return zone.skip
        if zone.mirror_of is not None:
            kept = zone.mirror_of.meter.device_id
            if zone.mirror_confirmed:
                return f"mirror of {kept}: not summed ({zone.mirror_rule})"
            return f"suspected mirror of {kept} (identical energy_uj): not summed until reads confirm or clear it"
        return (
            f"inside {zone.parent.zone_id}, a mirror of {zone.parent.mirror_of.meter.device_id}: not summed"
        )


def _zone_folders(powercap: Path) -> list[tuple[str, Path]]:
    """(zone id, folder) of every zone, listed at top level or only nested in its parent or control type.

    A zone shown in both places keeps its top-level folder. Only zone and control-type names are entered,
    so the kernel's subsystem/device links back up the tree are never followed.
    """
    found: dict[str, Path] = {}
    level, depth = [powercap], 0
    while level:
        deeper = []
        for folder in level:
            try:
                names = sorted(entry.name for entry in os.scandir(folder) if entry.is_dir())
            except OSError:
                continue
            for name in names:
                if _ZONE_ID.fullmatch(name) and name not in found:
                    found[name] = folder / name
                    deeper.append(folder / name)
                elif depth == 0 and name in _CONTROL_TYPES:
                    deeper.append(folder / name)
        level, depth = deeper, depth + 1
    return sorted(found.items(), key=lambda item: _zone_order(item[0]))


def _zone_order(zone_id: str) -> tuple[bool, int, int]:
    match = _ZONE_ID.fullmatch(zone_id)
    return bool(match[1]), int(match[2]), int(match[3]) if match[3] is not None else -1


def _load_zone(zone_id: str, folder: Path) -> _Zone:
    mmio, top, sub = _zone_order(zone_id)
    zone = _Zone(zone_id, folder, mmio, top, sub)
    try:
        zone.name = (folder / "name").read_text().strip()
    except OSError as error:
        zone.skip = f"name unreadable ({error.strerror}): skipped"
    try:
        zone.max_uj = int((folder / "max_energy_range_uj").read_text())
    except (OSError, ValueError):
        zone.max_uj = None
    return zone


def _duplicate_key(zone: _Zone) -> tuple[str | None, str]:
    """Zones with equal keys measure the same domain (an MSR zone and its MMIO copy)."""
    return (zone.parent.name if zone.parent is not None else None, zone.name)


def _read_error(path: str, error: Exception) -> str:
    if isinstance(error, PermissionError):
        return f"{path}: permission denied; {PERMISSION_FIX}"
    if isinstance(error, OSError):
        return f"{path}: {error.strerror or error}"
    return f"{path}: not a microjoule count ({error})"


def _physical_packages(sysfs_root: Path) -> set[int]:
    """Distinct physical_package_id of the CPUs, empty when the topology files are missing."""
    packages = set()
    for path in (sysfs_root / "devices" / "system" / "cpu").glob("cpu[0-9]*/topology/physical_package_id"):
        try:
            packages.add(int(path.read_text()))
        except (OSError, ValueError):
            continue
    return packages


def _is_intel(sysfs_root: Path) -> bool:
    """Vendor 0000 in the CPU modalias (cpu:type:x86,ven0000fam0006...) is Intel."""
    try:
        return "x86,ven0000" in (sysfs_root / "devices" / "system" / "cpu" / "modalias").read_text()
    except OSError:
        return False


def _on_sysfs(path: Path) -> bool:
    """Whether path lies on a sysfs mount, where pread at offset 0 on a held descriptor re-reads the live value."""
    target = os.path.realpath(path)
    fs_type, longest = "", -1
    try:
        with open("/proc/self/mountinfo", encoding="utf-8", errors="replace") as mounts:
            for line in mounts:
                before, _, after = line.partition(" - ")
                mount_point = re.sub(r"\\([0-7]{3})", lambda m: chr(int(m[1], 8)), before.split()[4])
                inside = target == mount_point or target.startswith(mount_point.rstrip("/") + "/")
                if (
                    inside and len(mount_point) >= longest
                ):  # a later mount on the same point hides earlier ones
                    fs_type, longest = after.split()[0], len(mount_point)
    except (OSError, IndexError):
        return False
    return fs_type == "sysfs"
