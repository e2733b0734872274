"""Per-container CPU time from the cgroup v2 tree, for splitting a node's energy between co-located pods.

The kubelet puts every pod container in its own cgroup, named after the pod uid and the container id.
Two layouts exist, depending on the kubelet's cgroup driver:

* systemd: ``kubepods.slice/kubepods-<qos>.slice/kubepods-<qos>-pod<uid>.slice/<runtime>-<id>.scope``
  (guaranteed pods sit directly under ``kubepods.slice``; the uid's dashes are written as underscores,
  and the runtime prefix is ``cri-containerd``, ``crio`` or ``docker``);
* cgroupfs: ``kubepods/<qos>/pod<uid>/<id>`` (guaranteed pods directly under ``kubepods``).

Only cgroup v2 is read (``cpu.stat`` ``usage_usec``). The pod sandbox ("pause") container looks like any
other container here; its CPU time is tiny and the join to pod specs tells it apart.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

# Folders that lead from the cgroup root to the pods: kubepods.slice, kubepods-burstable.slice, kubepods,
# burstable, besteffort; kubelet.slice/kubelet-kubepods.slice on kind-like nodes.
_PATH_TO_PODS = re.compile(r"^(kubepods|kubelet)[\w.-]*$|^(burstable|besteffort|guaranteed)$")
_SYSTEMD_POD = re.compile(r"^kubepods(?:-[a-z]+)?-pod([0-9a-fA-F_]+)\.slice$")
_CGROUPFS_POD = re.compile(r"^pod([0-9a-fA-F-]+)$")
_SYSTEMD_CONTAINER = re.compile(r"^(?:cri-containerd|crio|docker)-([0-9a-f]{12,})\.scope$")
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
