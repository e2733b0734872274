"""Container CPU time from cgroup v2 trees laid out by the systemd and cgroupfs kubelet drivers."""

from __future__ import annotations

from pathlib import Path

from collectors.cgroups import ContainerCpu, cgroup_root, read_usage_seconds, scan_containers

POD_A = "0f3c2b7e-1111-4a2b-9c3d-5e6f7a8b9c0d"
POD_B = "aa11bb22-3333-4444-5555-666677778888"
CONTAINER_1 = "1" * 64
CONTAINER_2 = "2" * 64
CONTAINER_3 = "3" * 64


def cpu_stat(folder: Path, usage_usec: int) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "cpu.stat").write_text(
        f"usage_usec {usage_usec}\nuser_usec {usage_usec // 2}\nsystem_usec {usage_usec // 2}\n"
    )


def systemd_pod(root: Path, qos: str | None, uid: str) -> Path:
    """kubepods.slice[/kubepods-<qos>.slice]/kubepods[-<qos>]-pod<uid with underscores>.slice."""
    base = root / "kubepods.slice"
    if qos is None:
        return base / f"kubepods-pod{uid.replace('-', '_')}.slice"
    return base / f"kubepods-{qos}.slice" / f"kubepods-{qos}-pod{uid.replace('-', '_')}.slice"


def test_systemd_layout_with_every_runtime_prefix(tmp_path):
    root = cgroup_root(tmp_path)
    pod_a = systemd_pod(root, "burstable", POD_A)
    cpu_stat(pod_a / f"cri-containerd-{CONTAINER_1}.scope", 1_500_000)
    cpu_stat(pod_a / f"crio-{CONTAINER_2}.scope", 250_000)
    cpu_stat(pod_a / f"crio-conmon-{CONTAINER_2}.scope", 9_999)  # CRI-O's monitor, not a container
    cpu_stat(pod_a, 1_760_000)  # the pod's own total is not a container
    pod_b = systemd_pod(root, None, POD_B)  # guaranteed
    cpu_stat(pod_b / f"docker-{CONTAINER_3}.scope", 42)
    cpu_stat(root / "system.slice" / "containerd.service", 7)  # outside kubepods

    assert scan_containers(root) == [
        ContainerCpu(CONTAINER_1, POD_A, 1.5, str(pod_a / f"cri-containerd-{CONTAINER_1}.scope/cpu.stat")),
        ContainerCpu(CONTAINER_2, POD_A, 0.25, str(pod_a / f"crio-{CONTAINER_2}.scope/cpu.stat")),
        ContainerCpu(CONTAINER_3, POD_B, 42e-6, str(pod_b / f"docker-{CONTAINER_3}.scope/cpu.stat")),
    ]


def test_cgroupfs_layout(tmp_path):
    root = cgroup_root(tmp_path)
    cpu_stat(root / "kubepods" / "besteffort" / f"pod{POD_A}" / CONTAINER_1, 3_000_000)
    cpu_stat(root / "kubepods" / f"pod{POD_B}" / CONTAINER_2, 10)  # guaranteed

    found = {(c.pod_uid, c.container_id): c.cpu_seconds for c in scan_containers(root)}
    assert found == {(POD_A, CONTAINER_1): 3.0, (POD_B, CONTAINER_2): 10e-6}


def test_kind_node_nesting_under_kubelet_slice(tmp_path):
    root = cgroup_root(tmp_path)
    pods = root / "kubelet.slice" / "kubelet-kubepods.slice"
    pod = pods / "kubepods-besteffort.slice" / f"kubepods-besteffort-pod{POD_A.replace('-', '_')}.slice"
    cpu_stat(pod / f"cri-containerd-{CONTAINER_1}.scope", 5)

    assert [(c.pod_uid, c.container_id) for c in scan_containers(root)] == [(POD_A, CONTAINER_1)]


def test_absent_root_and_vanished_or_odd_cpu_stat(tmp_path):
    assert scan_containers(tmp_path / "no-such-cgroup-root") == []
    assert read_usage_seconds(tmp_path / "missing" / "cpu.stat") is None
    odd = tmp_path / "odd"
    odd.mkdir()
    (odd / "cpu.stat").write_text("user_usec 5\n")
    assert read_usage_seconds(odd / "cpu.stat") is None
    root = cgroup_root(tmp_path)
    (systemd_pod(root, "burstable", POD_A) / f"cri-containerd-{CONTAINER_1}.scope").mkdir(parents=True)
    assert scan_containers(root) == []  # a container folder whose cpu.stat is gone (it just exited)
