"""Kubernetes Pod/Node parsing and the pod join, on small realistic API objects."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import schemas
from collectors.cluster.argo import workflows_to_tables
from collectors.cluster.kubernetes import join_pods, nodes_to_machines, parse_quantity, pods_to_table_rows

ARGO_DIR = Path(__file__).resolve().parents[2] / ".." / "shared" / "data" / "argo"
DIAMOND = "dag-diamond-82q7s"
HOST = "k3d-k3s-default-server-0"
GPU_UUID = "GPU-5e3a8c1d-7f2b-4c9e-a1d0-3b6f9e2c4a71"


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("500m", 0.5),
        ("4Gi", 4 * 2**30),
        ("263754892Ki", 263754892 * 1024),
        ("1e3", 1000.0),
        ("2", 2.0),
        ("1.5", 1.5),
        ("128Mi", 128 * 2**20),
        ("100M", 1e8),
        ("250u", 250e-6),
        ("1E", 1e18),
        ("1Ei", 2.0**60),
        ("2.5E-3", 0.0025),
        (".5", 0.5),
        (3, 3.0),
        (0.25, 0.25),
    ],
)
def test_parse_quantity(text, value):
    assert parse_quantity(text) == pytest.approx(value)


@pytest.mark.parametrize("text", ["", "abc", "5 Gi", "1.2.3", "4GB", "Gi", True, None])
def test_parse_quantity_rejects_non_quantities(text):
    with pytest.raises(ValueError, match="is not a Kubernetes quantity"):
        parse_quantity(text)


def container(name: str, requests: dict | None = None, limits: dict | None = None) -> dict:
    resources = {k: v for k, v in (("requests", requests), ("limits", limits)) if v}
    return {"name": name, "image": "busybox", "resources": resources}


def argo_pod(
    node_id: str,
    pod_name: str,
    main: dict,
    annotations: dict | None = None,
    host: str = HOST,
    workflow: str = DIAMOND,
) -> dict:
    """A pod as the API server returns it for an Argo task: init, wait and main containers."""
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": pod_name,
            "namespace": "argo",
            "uid": f"uid-{pod_name}",
            "labels": {"workflows.argoproj.io/workflow": workflow, "workflows.argoproj.io/completed": "true"},
            "annotations": {
                "workflows.argoproj.io/node-id": node_id,
                "workflows.argoproj.io/node-name": f"{workflow}.X",
                "kubectl.kubernetes.io/default-container": "main",
                **(annotations or {}),
            },
        },
        "spec": {
            "nodeName": host,
            "initContainers": [container("init", {"cpu": "4", "memory": "8Gi"})],
            "containers": [container("wait", {"cpu": "10m", "memory": "64Mi"}), main],
        },
        "status": {
            "phase": "Succeeded",
            "qosClass": "Burstable",
            "containerStatuses": [
                {"name": "main", "containerID": f"containerd://{'a' * 63}1"},
                {"name": "wait", "containerID": f"cri-o://{'b' * 63}2"},
            ],
        },
    }


def pod_list(*pods: dict) -> dict:
    return {
        "apiVersion": "v1",
        "kind": "PodList",
        "metadata": {"resourceVersion": "4700"},
        "items": list(pods),
    }


def test_pod_rows_sum_requests_and_read_devices():
    gpu_pod = argo_pod(
        f"{DIAMOND}-1310542453",
        f"{DIAMOND}-echo-1310542453",
        container("main", {"cpu": "1500m", "memory": "2Gi", "nvidia.com/gpu": "1"}, {"nvidia.com/gpu": "1"}),
        annotations={"jouletrace.io/gpu-ids": f" {GPU_UUID} "},
    )
    fpga_pod = argo_pod(
        f"{DIAMOND}-1260209596",
        f"{DIAMOND}-echo-1260209596",
        container(
            "main",
            {"cpu": "2", "memory": "512Mi", "amd.com/xilinx_u55c_gen3x16_xdma_base_3-0": "1"},
            # Only a limit: Kubernetes makes the request equal to it.
            {
                "xilinx.com/fpga-xilinx_u250_gen3x16_xdma_shell_2_1-0": "1",
                "fpga.intel.com/af-695.d84.aVKNtusxV3qMNmj5": "1",
            },
        ),
        annotations={"jouletrace.io/fpga-ids": "0000:af:00.0,0000:d8:00.0"},
    )
    not_argo = argo_pod("x", "coredns-5d78c9869d-abcde", container("main", {"cpu": "100m"}))
    del not_argo["metadata"]["labels"]["workflows.argoproj.io/workflow"]
    rows = pods_to_table_rows(pod_list(gpu_pod, fpga_pod, not_argo))
    assert len(rows) == 2
    gpu, fpga = rows
    assert gpu == {
        "workflow_name": DIAMOND,
        "namespace": "argo",
        "node_id": f"{DIAMOND}-1310542453",
        "pod_name": f"{DIAMOND}-echo-1310542453",
        "pod_uid": f"uid-{DIAMOND}-echo-1310542453",
        "host_node": HOST,
        "cpu_request_cores": pytest.approx(1.51),  # main + wait; the init container is not counted
        "memory_request_bytes": 2 * 2**30 + 64 * 2**20,
        "gpu_ids": [GPU_UUID],
        "fpga_ids": [],
        "gpu_count_requested": 1,
        "fpga_count_requested": 0,
        "container_ids": ["a" * 63 + "1", "b" * 63 + "2"],
    }
    assert fpga["fpga_count_requested"] == 3
    assert fpga["gpu_count_requested"] == 0
    assert fpga["fpga_ids"] == ["0000:af:00.0", "0000:d8:00.0"]
    assert fpga["cpu_request_cores"] == pytest.approx(2.01)


def test_pod_without_requests_or_node_id_annotation():
    pod = argo_pod("ignored", f"{DIAMOND}-1226654358", container("main"))
    del pod["metadata"]["annotations"]["workflows.argoproj.io/node-id"]
    pod["spec"]["containers"] = [container("main")]
    pod["status"] = {"phase": "Pending"}
    del pod["spec"]["nodeName"]
    (row,) = pods_to_table_rows(pod_list(pod))
    assert row["node_id"] == row["pod_name"] == f"{DIAMOND}-1226654358"
    assert row["cpu_request_cores"] is None and row["memory_request_bytes"] is None
    assert row["host_node"] is None and row["container_ids"] == []


def test_bad_pod_quantity_names_pod_and_container():
    pod = argo_pod("n", "p-1", container("main", {"cpu": "lots"}))
    with pytest.raises(
        ValueError, match=r"pod argo/p-1: container main: 'lots' is not a Kubernetes quantity"
    ):
        pods_to_table_rows(pod_list(pod))
    with pytest.raises(ValueError, match="not a PodList"):
        pods_to_table_rows({"kind": "Pod"})


def diamond_tables():
    obj = json.loads((ARGO_DIR / "dagDiamondRetry.workflow.json").read_text())
    return workflows_to_tables([obj], cluster="k3d")


def test_join_pods_fills_task_rows():
    workflows, tasks = diamond_tables()
    names = {workflows["workflow_uid"][0].as_py(): DIAMOND}
    gpu_task = f"{DIAMOND}-1310542453"
    pods = pods_to_table_rows(
        pod_list(
            argo_pod(
                gpu_task,
                f"{DIAMOND}-echo-1310542453",
                container("main", {"cpu": "1", "memory": "1Gi", "nvidia.com/gpu": "1"}),
                annotations={"jouletrace.io/gpu-ids": GPU_UUID},
            ),
            argo_pod(
                f"{DIAMOND}-1226654358",
                f"{DIAMOND}-echo-1226654358",
                container("main", {"cpu": "250m", "memory": "256Mi"}),
                annotations={"jouletrace.io/fpga-ids": "0000:af:00.0"},
            ),
            # A pod of another workflow with the same node id must not be joined.
            argo_pod(gpu_task, "other-echo-1", container("main", {"cpu": "8"}), workflow="other"),
        )
    )
    joined = join_pods(tasks, pods, names)
    schemas.validate("tasks", joined)
    assert joined.schema.equals(schemas.TASKS)
    rows = {row["task_id"]: row for row in joined.to_pylist()}
    a, d = rows[gpu_task], rows[f"{DIAMOND}-1226654358"]
    assert (a["cpu_request_cores"], a["memory_request_bytes"], a["gpu_ids"]) == (
        1.01,
        2**30 + 64 * 2**20,
        [GPU_UUID],
    )
    assert (d["cpu_request_cores"], d["fpga_ids"]) == (0.26, ["0000:af:00.0"])
    untouched = rows[f"{DIAMOND}-1260209596"]
    assert untouched["cpu_request_cores"] is None and untouched["gpu_ids"] == []
    assert untouched["pod_name"] == f"{DIAMOND}-echo-1260209596"
    assert a["pod_uid"] == f"uid-{DIAMOND}-echo-1310542453"
    assert joined.drop_columns(
        ["pod_uid", "cpu_request_cores", "memory_request_bytes", "gpu_ids", "fpga_ids"]
    ).equals(
        tasks.drop_columns(["pod_uid", "cpu_request_cores", "memory_request_bytes", "gpu_ids", "fpga_ids"])
    )


def test_join_pods_takes_real_pod_name_and_fills_missing_host():
    workflows, tasks = diamond_tables()
    rows = tasks.to_pylist()
    rows[0]["host_node"] = None
    tasks = schemas.conform("tasks", rows)
    # A v1-named pod: the real name replaces the derived one.
    pods = pods_to_table_rows(pod_list(argo_pod(rows[0]["task_id"], rows[0]["task_id"], container("main"))))
    joined = join_pods(tasks, pods, {workflows["workflow_uid"][0].as_py(): DIAMOND}).to_pylist()
    assert joined[0]["host_node"] == HOST
    assert joined[0]["pod_name"] == rows[0]["task_id"]


def test_join_pods_rejects_conflicts():
    workflows, tasks = diamond_tables()
    names = {workflows["workflow_uid"][0].as_py(): DIAMOND}
    task_id = f"{DIAMOND}-1310542453"
    elsewhere = pods_to_table_rows(pod_list(argo_pod(task_id, "p", container("main"), host="gpu-node-7")))
    with pytest.raises(
        ValueError, match=f"task {task_id}: Argo says it ran on {HOST}, its pod p is on gpu-node-7"
    ):
        join_pods(tasks, elsewhere, names)
    twice = pods_to_table_rows(
        pod_list(argo_pod(task_id, "p1", container("main")), argo_pod(task_id, "p2", container("main")))
    )
    with pytest.raises(ValueError, match="pods argo/p1 and argo/p2 both claim node"):
        join_pods(tasks, twice, names)


def k8s_node(name: str, labels: dict, annotations: dict, capacity: dict) -> dict:
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": name,
            "labels": {"kubernetes.io/hostname": name, "kubernetes.io/arch": "amd64", **labels},
            "annotations": {"node.alpha.kubernetes.io/ttl": "0", **annotations},
        },
        "status": {
            "capacity": {"ephemeral-storage": "959786032Ki", "pods": "110", **capacity},
            "allocatable": capacity,
            "nodeInfo": {"architecture": "amd64", "kernelVersion": "6.8.0-45-generic"},
        },
    }


def node_list(*nodes: dict) -> dict:
    return {"apiVersion": "v1", "kind": "NodeList", "items": list(nodes)}


def test_nodes_to_machines():
    gpu_node = k8s_node(
        "gpu-node-7",
        {
            "nvidia.com/gpu.product": "NVIDIA-H100-80GB-HBM3",
            "nvidia.com/gpu.count": "4",
            "feature.node.kubernetes.io/cpu-model.vendor_id": "Intel",
        },
        {
            "jouletrace.io/cpu-model": "Intel(R) Xeon(R) Platinum 8480+",
            "jouletrace.io/cpu-sockets": "2",
            "jouletrace.io/cpu-speed-mhz": "2000",
        },
        {"cpu": "112", "memory": "2113412404Ki", "nvidia.com/gpu": "4"},
    )
    cpu_node = k8s_node(
        "cpu-node-1",
        {
            "feature.node.kubernetes.io/cpu-model.vendor_id": "AMD",
            "feature.node.kubernetes.io/cpu-model.family": "25",
            "feature.node.kubernetes.io/cpu-model.id": "17",
        },
        {},
        {"cpu": "64", "memory": "263754892Ki"},
    )
    fpga_node = k8s_node(
        "fpga-node-2",
        {},
        {"jouletrace.io/fpga-models": "AMD Alveo U55C, AMD Alveo U55C"},
        {"cpu": "32", "memory": "128Gi", "amd.com/xilinx_u55c_gen3x16_xdma_base_3-0": "2"},
    )
    plugin_only = k8s_node(
        "fpga-node-3", {}, {}, {"cpu": "16", "xilinx.com/fpga-xilinx_u250_gen3x16_xdma_shell_2_1-0": "1"}
    )
    table = nodes_to_machines(node_list(gpu_node, cpu_node, fpga_node, plugin_only), provenance="synthetic")
    schemas.validate("machines", table)
    rows = {row["host_node"]: row for row in table.to_pylist()}
    assert list(rows) == ["cpu-node-1", "fpga-node-2", "fpga-node-3", "gpu-node-7"]
    gpu = rows["gpu-node-7"]
    assert gpu["cpu_model"] == "Intel(R) Xeon(R) Platinum 8480+"
    assert (gpu["sockets"], gpu["cores"], gpu["cpu_speed_mhz"]) == (2, 112, 2000.0)
    assert gpu["memory_bytes"] == 2113412404 * 1024
    assert gpu["gpu_models"] == ["NVIDIA-H100-80GB-HBM3"] * 4
    assert dict(gpu["labels"])["nvidia.com/gpu.count"] == "4"
    assert gpu["provenance"] == "synthetic"
    cpu = rows["cpu-node-1"]
    assert cpu["cpu_model"] == "AMD family 25 model 17"
    assert (cpu["sockets"], cpu["cpu_speed_mhz"], cpu["gpu_models"], cpu["fpga_models"]) == (
        None,
        None,
        [],
        [],
    )
    assert dict(cpu["labels"])["kubernetes.io/hostname"] == "cpu-node-1"
    assert rows["fpga-node-2"]["fpga_models"] == ["AMD Alveo U55C"] * 2
    assert rows["fpga-node-2"]["memory_bytes"] == 128 * 2**30
    assert rows["fpga-node-3"]["fpga_models"] == ["xilinx.com/fpga-xilinx_u250_gen3x16_xdma_shell_2_1-0"]
    assert rows["fpga-node-3"]["memory_bytes"] is None and rows["fpga-node-3"]["cpu_model"] is None


def test_gpu_count_from_capacity_when_gfd_is_absent():
    node = k8s_node(
        "g", {"nvidia.com/gpu.product": "NVIDIA-A100-SXM4-40GB"}, {}, {"cpu": "8", "nvidia.com/gpu": "2"}
    )
    (row,) = nodes_to_machines(node_list(node)).to_pylist()
    assert row["gpu_models"] == ["NVIDIA-A100-SXM4-40GB"] * 2
    assert row["provenance"] == "measured"


def test_bad_nodes_raise_naming_the_node():
    bad_memory = k8s_node("n1", {}, {}, {"cpu": "8", "memory": "lots"})
    with pytest.raises(ValueError, match=r"node n1: status.capacity\['memory'\]: 'lots' is not"):
        nodes_to_machines(node_list(bad_memory))
    bad_sockets = k8s_node("n2", {}, {"jouletrace.io/cpu-sockets": "two"}, {"cpu": "8"})
    with pytest.raises(ValueError, match="node n2: jouletrace.io/cpu-sockets='two' is not a number"):
        nodes_to_machines(node_list(bad_sockets))
    with pytest.raises(schemas.SchemaError, match="duplicated keys"):
        nodes_to_machines(node_list(k8s_node("n3", {}, {}, {}), k8s_node("n3", {}, {}, {})))
