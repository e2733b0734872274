"""Heterogeneous platforms (P.json): machines with speed, cores, power, price and devices, and the network.

A machine runs at most ``cores`` tasks at once, and at most ``gpus`` (``fpgas``) tasks that need a GPU
(an FPGA) at once. Its power is ``idle_watts`` whenever it is powered and rises linearly with busy cores
to ``busy_watts`` with every core busy, so a task running on one core adds
``(busy_watts - idle_watts) / cores`` watts unless the workflow gives its energy on that machine. A
machine that runs any task is powered, and paid for at ``cost_per_hour`` per second, from the start of
the run until its last task ends (it is then released); a machine that runs nothing is off and free.

Data moves between two machines at the bandwidth of their link (``links``, symmetric, or the platform's
``bandwidth_bytes_per_second`` for pairs without one); on one machine it costs nothing. The format is
documented in docs/scheduling.md.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

PLATFORM_FORMAT = "jouletrace.platform/1"
SECONDS_PER_HOUR = 3600.0


class PlatformError(ValueError):
    """A P.json that cannot describe a platform; the message names the field and what to write."""


@dataclass(frozen=True)
class Machine:
    id: str
    speed: float = 1.0  # relative to the reference machine work_seconds are measured on
    cores: int = 1
    idle_watts: float = 0.0
    busy_watts: float = 0.0
    cost_per_hour: float = 0.0
    gpus: int = 0
    fpgas: int = 0
    labels: dict[str, str] = field(default_factory=dict, hash=False)

    @property
    def dynamic_watts_per_core(self) -> float:
        """What one task on one core adds to the idle power."""
        return (self.busy_watts - self.idle_watts) / self.cores

    def has(self, device: str) -> bool:
        return device == "cpu" or (device == "gpu" and self.gpus > 0) or (device == "fpga" and self.fpgas > 0)

    def slots(self, device: str) -> int:
        """How many tasks needing ``device`` the machine runs at once (cores bound them all)."""
        return {"cpu": self.cores, "gpu": self.gpus, "fpga": self.fpgas}[device]


@dataclass(frozen=True)
class Platform:
    name: str
    machines: tuple[Machine, ...]
    bandwidth_bytes_per_second: float | None = None
    links: tuple[tuple[str, str, float], ...] = ()

    def __post_init__(self):
        if not self.machines:
            raise PlatformError("machines: a platform needs at least one machine")
        ids = [m.id for m in self.machines]
        repeated = sorted({i for i in ids if ids.count(i) > 1})
        if repeated:
            raise PlatformError(f"machines: id {repeated[0]!r} is repeated")
        known = set(ids)
        for source, target, rate in self.links:
            for end in (source, target):
                if end not in known:
                    raise PlatformError(f"links: {source} -> {target} names unknown machine {end!r}")
            if not rate > 0:
                raise PlatformError(f"links: {source} -> {target} needs bytes_per_second > 0")
        if self.bandwidth_bytes_per_second is not None and not self.bandwidth_bytes_per_second > 0:
            raise PlatformError("bandwidth_bytes_per_second must be > 0")
        self.bandwidth_matrix()  # every pair of machines must have a bandwidth

    @property
    def ids(self) -> tuple[str, ...]:
        return tuple(m.id for m in self.machines)

    def bandwidth_matrix(self) -> np.ndarray:
        """Bytes per second between machines i and j (inf on the diagonal: no transfer)."""
        n = len(self.machines)
        default = self.bandwidth_bytes_per_second
        matrix = np.full((n, n), np.nan if default is None else default, dtype=float)
        index = {m.id: i for i, m in enumerate(self.machines)}
        for source, target, rate in self.links:
            i, j = index[source], index[target]
            matrix[i, j] = matrix[j, i] = rate
        np.fill_diagonal(matrix, np.inf)
        missing = np.argwhere(np.isnan(matrix))
        if len(missing):
            i, j = missing[0]
            raise PlatformError(
                f"links: no link between {self.machines[i].id} and {self.machines[j].id}; add one or set "
                "bandwidth_bytes_per_second for pairs without a link"
            )
        return matrix


def _number(entry: dict, key: str, default, where: str, minimum: float = 0.0, strict: bool = False):
    value = entry.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise PlatformError(f"{where}: {key} must be a number, not {value!r}")
    if value < minimum or (strict and value <= minimum):
        raise PlatformError(f"{where}: {key} must be {'>' if strict else '>='} {minimum}, not {value}")
    return value


def _device_count(entry: dict, key: str, where: str) -> int:
    """gpus/fpgas as a count or as a list of models (one entry per device)."""
    value = entry.get(key, 0)
    if isinstance(value, list):
        return len(value)
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise PlatformError(f"{where}: {key} must be a count >= 0 or a list of models, not {value!r}")
    return value


def machine_from_json(entry: dict, position: int) -> Machine:
    where = f"machines[{position}]"
    if not isinstance(entry, dict) or not isinstance(entry.get("id"), str) or not entry["id"]:
        raise PlatformError(f"{where}: every machine needs a string id")
    where = f"machines[{position}] ({entry['id']})"
    cores = _number(entry, "cores", 1, where, minimum=1)
    if int(cores) != cores:
        raise PlatformError(f"{where}: cores must be a whole number, not {cores}")
    idle = _number(entry, "idle_watts", 0.0, where)
    busy = _number(entry, "busy_watts", idle, where)
    if busy < idle:
        raise PlatformError(f"{where}: busy_watts ({busy}) must be >= idle_watts ({idle})")
    labels = entry.get("labels") or {}
    if not isinstance(labels, dict):
        raise PlatformError(f"{where}: labels must be an object of strings")
    return Machine(
        id=entry["id"],
        speed=float(_number(entry, "speed", 1.0, where, strict=True)),
        cores=int(cores),
        idle_watts=float(idle),
        busy_watts=float(busy),
        cost_per_hour=float(_number(entry, "cost_per_hour", 0.0, where)),
        gpus=_device_count(entry, "gpus", where),
        fpgas=_device_count(entry, "fpgas", where),
        labels={str(k): str(v) for k, v in labels.items()},
    )


def platform_from_json(data: dict) -> Platform:
    if not isinstance(data, dict) or not isinstance(data.get("machines"), list):
        raise PlatformError("a platform file needs a `machines` list at its top level")
    fmt = data.get("format", PLATFORM_FORMAT)
    if fmt != PLATFORM_FORMAT:
        raise PlatformError(f"format is {fmt!r}; this version reads {PLATFORM_FORMAT}")
    bandwidth = data.get("bandwidth_bytes_per_second")
    if bandwidth is not None:
        bandwidth = float(_number(data, "bandwidth_bytes_per_second", None, "platform", strict=True))
    links = []
    for k, link in enumerate(data.get("links") or []):
        if not isinstance(link, dict) or not {"source", "target", "bytes_per_second"} <= link.keys():
            raise PlatformError(f"links[{k}]: needs source, target and bytes_per_second")
        rate = _number(link, "bytes_per_second", None, f"links[{k}]", strict=True)
        links.append((str(link["source"]), str(link["target"]), float(rate)))
    if bandwidth is None and not links:
        raise PlatformError("set bandwidth_bytes_per_second or links (how fast data moves between machines)")
    machines = tuple(machine_from_json(m, i) for i, m in enumerate(data["machines"]))
    return Platform(str(data.get("name", "platform")), machines, bandwidth, tuple(links))


def platform_to_json(platform: Platform) -> dict:
    data: dict = {"format": PLATFORM_FORMAT, "name": platform.name, "machines": []}
    for m in platform.machines:
        data["machines"].append(
            {
                "id": m.id,
                "speed": m.speed,
                "cores": m.cores,
                "idle_watts": m.idle_watts,
                "busy_watts": m.busy_watts,
                "cost_per_hour": m.cost_per_hour,
                "gpus": m.gpus,
                "fpgas": m.fpgas,
                "labels": dict(m.labels),
            }
        )
    if platform.bandwidth_bytes_per_second is not None:
        data["bandwidth_bytes_per_second"] = platform.bandwidth_bytes_per_second
    if platform.links:
        data["links"] = [{"source": s, "target": t, "bytes_per_second": r} for s, t, r in platform.links]
    return data
