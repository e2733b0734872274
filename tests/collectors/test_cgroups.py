"""Container CPU time from cgroup v2 trees laid out by the systemd and cgroupfs kubelet drivers, and the
container of a process from /proc/<pid>/cgroup."""

from __future__ import annotations

from pathlib import Path

from collectors.meters.cgroups import (
    ContainerCpu,
    PidContainers,
    cgroup_ids,
    cgroup_root,
    read_usage_seconds,
    scan_containers,
)

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


def test_cgroup_paths_give_pod_uid_and_container_id():
    pod_slice = f"kubepods-besteffort-pod{POD_A.replace('-', '_')}.slice"
    systemd = f"/kubepods.slice/kubepods-besteffort.slice/{pod_slice}/crio-{CONTAINER_1}.scope"
    assert cgroup_ids(systemd) == (POD_A, CONTAINER_1)
    assert cgroup_ids(f"{systemd}/init.scope") == (POD_A, CONTAINER_1)  # the container's own sub-cgroup
    assert cgroup_ids(f"/kubepods/burstable/pod{POD_A}/{CONTAINER_1}") == (POD_A, CONTAINER_1)
    assert cgroup_ids(f"/kubepods/burstable/pod{POD_A}") == (POD_A, None)
    kind = f"/kubelet.slice/kubelet-kubepods.slice/kubelet-kubepods-besteffort-pod{POD_A.replace('-', '_')}.slice"
    assert cgroup_ids(f"{kind}/cri-containerd-{CONTAINER_2}.scope") == (POD_A, CONTAINER_2)
    assert cgroup_ids("/system.slice/containerd.service") == (None, None)
    assert cgroup_ids("") == (None, None)


def test_pids_map_to_their_pod_containers(fake_proc):
    fake_proc.add_in_pod(100, POD_A, CONTAINER_1)
    fake_proc.add(200, f"0::/kubepods/besteffort/pod{POD_B}/{CONTAINER_2}\n")  # cgroupfs driver
    # Seen from inside the agent's own cgroup namespace the path is relative to the agent's cgroup.
    relative = f"0::/../../kubepods-besteffort-pod{POD_B.replace('-', '_')}.slice/crio-{CONTAINER_3}.scope\n"
    fake_proc.add(300, relative)
    # A hybrid (cgroup v1 + v2) node: the pod is on the v1 lines, the unified line is the root.
    hybrid = f"12:memory:/kubepods/burstable/pod{POD_A}/{CONTAINER_3}\n1:name=systemd:/\n0::/\n"
    fake_proc.add(400, hybrid)
    fake_proc.add(500, "0::/system.slice/nvidia-persistenced.service\n")  # a host process
    fake_proc.add(
        600, f"0::/kubepods.slice/kubepods-pod{POD_A.replace('-', '_')}.slice\n"
    )  # pod, no container

    found = PidContainers(fake_proc.root).lookup([100, 200, 300, 400, 500, 600, 700])
    assert found == {
        100: (POD_A, CONTAINER_1),
        200: (POD_B, CONTAINER_2),
        300: (POD_B, CONTAINER_3),
        400: (POD_A, CONTAINER_3),
        500: None,
        600: None,
        700: None,  # no such process
    }


def test_an_exited_process_keeps_its_container_while_asked_for_and_a_reused_pid_is_read_again(fake_proc):
    pids = PidContainers(fake_proc.root)
    fake_proc.add_in_pod(100, POD_A, CONTAINER_1)
    assert pids.lookup([100]) == {100: (POD_A, CONTAINER_1)}
    fake_proc.exit(100)
    assert pids.lookup([100]) == {100: (POD_A, CONTAINER_1)}  # its last samples still belong to it
    assert pids.lookup([100]) == {100: (POD_A, CONTAINER_1)}
    assert pids.lookup([]) == {}
    assert pids.lookup([100]) == {100: None}  # forgotten once a lookup did not ask for it
    fake_proc.add_in_pod(100, POD_B, CONTAINER_2)
    assert pids.lookup([100]) == {100: (POD_B, CONTAINER_2)}
    fake_proc.exit(100)
    fake_proc.add(100, "0::/user.slice\n")  # reused by a host process
    assert pids.lookup([100]) == {100: None}
