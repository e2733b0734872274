"""Per-container CPU time from the cgroup v2 tree, for splitting a node's energy between co-located pods.

The kubelet puts every pod container in its own cgroup, named after the pod uid and the container id.
Two layouts exist, depending on the kubelet's cgroup driver:

* systemd: ``kubepods.slice/kubepods-<qos>.slice/kubepods-<qos>-pod<uid>.slice/<runtime>-<id>.scope``
  (guaranteed pods sit directly under ``kubepods.slice``; the uid's dashes are written as underscores,
  and the runtime prefix is ``cri-containerd``, ``crio`` or ``docker``);
* cgroupfs: ``kubepods/<qos>/pod<uid>/<id>`` (guaranteed pods directly under ``kubepods``).

Only cgroup v2 is read (``cpu.stat`` ``usage_usec``). The pod sandbox ("pause") container looks like any
other container here; its CPU time is tiny and the join to pod specs tells it apart.

The same folder names identify a process's container from ``/proc/<pid>/cgroup`` (``PidContainers``, for
NVML's per-process GPU time) and a cgroup path in cAdvisor's ``id`` label (``cgroup_ids``): one parser for all.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

# Folders that lead from the cgroup root to the pods: kubepods.slice, kubepods-burstable.slice, kubepods,
# burstable, besteffort; kubelet.slice/kubelet-kubepods.slice on kind-like nodes.
_PATH_TO_PODS = re.compile(r"^(kubepods|kubelet)[\w.-]*$|^(burstable|besteffort|guaranteed)$")
# Under kind's kubelet.slice the slices carry their parents' names: kubelet-kubepods-besteffort-pod<uid>.slice.
_SYSTEMD_POD = re.compile(r"^(?:kubelet-)?kubepods(?:-[a-z]+)?-pod([0-9a-fA-F_]+)\.slice$")
_CGROUPFS_POD = re.compile(r"^pod([0-9a-fA-F-]+)$")
_SYSTEMD_CONTAINER = re.compile(r"^(?:cri-containerd|crio|cri-o|containerd|docker)-([0-9a-f]{12,})\.scope$")
_CGROUPFS_CONTAINER = re.compile(r"^([0-9a-f]{12,})$")
# A walk never needs to go deeper than this to reach the pods (kubelet.slice/kubelet-kubepods.slice/
# kubepods-burstable.slice is three), so a strange tree cannot make a sample slow.
_MAX_DEPTH_TO_PODS = 4


@dataclass(frozen=True)
class ContainerCpu:
    container_id: str  # as the runtime names it, without the runtime prefix
    pod_uid: str  # with dashes, as the Kubernetes API writes it
    cpu_seconds: float  # cpu.stat usage_usec / 1e6, since the container started
    path: str  # the cpu.stat file read


def cgroup_root(sysfs_root: str | Path) -> Path:
    """Where the cgroup v2 hierarchy is mounted under a sysfs root (``/sys/fs/cgroup``)."""
    return Path(sysfs_root) / "fs" / "cgroup"


def read_usage_seconds(cpu_stat: Path) -> float | None:
    """``usage_usec`` of one cpu.stat in seconds, None if the cgroup vanished or the line is missing."""
    try:
        text = cpu_stat.read_text()
    except OSError:
        return None
    for line in text.splitlines():
        key, _, value = line.partition(" ")
        if key == "usage_usec":
            return int(value) / 1e6
    return None


def _subdirs(folder: str) -> list[os.DirEntry]:
    try:
        with os.scandir(folder) as entries:
            return [e for e in entries if e.is_dir(follow_symlinks=False)]
    except OSError:
        return []


def _pod_uid(name: str) -> str | None:
    match = _SYSTEMD_POD.match(name)
    if match:
        return match.group(1).replace("_", "-")
    match = _CGROUPFS_POD.match(name)
    return match.group(1) if match else None


def _container_id(name: str) -> str | None:
    match = _SYSTEMD_CONTAINER.match(name) or _CGROUPFS_CONTAINER.match(name)
    return match.group(1) if match else None


def _pod_containers(pod_dir: str, pod_uid: str) -> list[ContainerCpu]:
    found = []
    for entry in _subdirs(pod_dir):
        container_id = _container_id(entry.name)
        if container_id is None:
            continue
        cpu_stat = Path(entry.path) / "cpu.stat"
        seconds = read_usage_seconds(cpu_stat)
        if seconds is not None:
            found.append(ContainerCpu(container_id, pod_uid, seconds, str(cpu_stat)))
    return found


def _walk(folder: str, depth: int) -> list[ContainerCpu]:
    found = []
    for entry in _subdirs(folder):
        pod_uid = _pod_uid(entry.name)
        if pod_uid is not None:
            found.extend(_pod_containers(entry.path, pod_uid))
        elif depth < _MAX_DEPTH_TO_PODS and _PATH_TO_PODS.match(entry.name):
            found.extend(_walk(entry.path, depth + 1))
    return found


def scan_containers(root: str | Path) -> list[ContainerCpu]:
    """Every pod container's CPU time under a cgroup v2 root; an absent or unreadable root gives none."""
    return sorted(_walk(str(root), 0), key=lambda c: (c.pod_uid, c.container_id))


def cgroup_ids(cgroup_path: str) -> tuple[str | None, str | None]:
    """(pod uid, container id) of a cgroup path, either layout, runtime prefix removed; None where absent.

    The pod folder may sit anywhere in the path (a path relative to a cgroup namespace starts with ``..``);
    the container is the folder right below it, so the container's own sub-cgroups still name it.
    """
    parts = [part for part in cgroup_path.split("/") if part]
    for i, name in enumerate(parts):
        pod_uid = _pod_uid(name)
        if pod_uid is not None:
            return pod_uid, _container_id(parts[i + 1]) if i + 1 < len(parts) else None
    return None, None


def _pod_container(proc_cgroup: str) -> tuple[str, str] | None:
    """The pod container a ``/proc/<pid>/cgroup`` text names: the cgroup v2 line (``0::<path>``) first, then
    any v1 hierarchy line (hybrid nodes), whichever gives both a pod and a container."""
    lines = [line.split(":", 2) for line in proc_cgroup.splitlines()]
    paths = [fields[2] for fields in lines if len(fields) == 3]
    v2 = [fields[2] for fields in lines if len(fields) == 3 and fields[0] == "0" and fields[1] == ""]
    for path in v2 + paths:
        pod_uid, container_id = cgroup_ids(path)
        if pod_uid is not None and container_id is not None:
            return pod_uid, container_id
    return None


class PidContainers:
    """Process id -> (pod uid, container id) from ``<proc_root>/<pid>/cgroup``; None for a process in no pod
    container (a host process, the driver's own) or one that is gone.

    The pids must be in the proc root's PID namespace: NVML reports host PIDs, so the agent reads the host's
    /proc (``hostPID: true``). A process that has exited keeps the container last found for it as long as
    each lookup asks for it (its last GPU samples still belong to it); a pid reused by a new process has a
    /proc entry again, which is read afresh.
    """

    def __init__(self, proc_root: str | Path = "/proc"):
        self.proc_root = Path(proc_root)
        self._previous: dict[int, tuple[str, str]] = {}

    def lookup(self, pids: Iterable[int]) -> dict[int, tuple[str, str] | None]:
        found: dict[int, tuple[str, str] | None] = {}
        for pid in set(pids):
            try:
                text = (self.proc_root / str(int(pid)) / "cgroup").read_text()
            except OSError:
                found[pid] = self._previous.get(pid)
                continue
            found[pid] = _pod_container(text)
        self._previous = {pid: ids for pid, ids in found.items() if ids is not None}
        return found
