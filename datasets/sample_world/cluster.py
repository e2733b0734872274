"""The sample cluster: three CPU nodes, one GPU node, one FPGA node, and their idle powers.

Idle powers are fixed constants here (not drawn from the seed) so that whoever checks an attribution
against the ground truth can find the model's baseline in one place.

The GPU node's two GPUs are time-sliced as the NVIDIA device plugin configures it for a whole node
(`sharing.timeSlicing.resources: [{name: nvidia.com/gpu, replicas: 2}]`, renameByDefault false): GPU Feature
Discovery labels the node `nvidia.com/gpu.replicas=2` and `nvidia.com/gpu.sharing-strategy=time-slicing`,
appends `-SHARED` to the product, keeps `nvidia.com/gpu.count` at the physical count, and the node
advertises GPUs x replicas `nvidia.com/gpu`. Two replicas per GPU keep most GPU time exclusive (a GPU is
shared only while more GPU pods run than there are GPUs) and never put more than two pods on one GPU.
FPGAs are not shared.

The three CPU models differ in how fast a core runs and what a busy core draws (`CpuModel`); both are
relative to the CPU nodes' Xeon Gold 6346, so CPU-only tasks that spill onto the accelerator nodes run longer
(scheduler.py) and draw less package power per CPU-second (power.py) there.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

import numpy as np

GPU_RESOURCE = "nvidia.com/gpu"
FPGA_RESOURCE = "xilinx.com/fpga-xilinx_u250_gen3x16_xdma_shell_4_1-0"
RAPL_COUNTER_MAX_JOULES = 262143.328850
# kubelet's default hard eviction threshold, kept out of allocatable memory.
_EVICTION_RESERVE_KIB = 100 * 1024


# The all-core turbo frequency of the Xeon Gold 6346, the reference of `CpuModel.relative_throughput`.
_REFERENCE_ALL_CORE_MHZ = 3500


@dataclass(frozen=True)
class CpuModel:
    """One Xeon model: what the node agent reports (name, family, model, cores, base speed), and how fast and
    how power-hungry a busy core is relative to the Gold 6346.

    Approximate Intel ARK figures (base / all-core turbo / TDP / cores per socket; the all-core turbo is Intel's
    per-SKU turbo table value, rounded): Gold 6346 3.1 / ~3.5 GHz / 205 W / 16; Gold 6338 2.0 / ~2.6 GHz /
    205 W / 32; Silver 4316 2.3 / ~2.8 GHz / 150 W / 20. All three are Ice Lake-SP (family 6, model 106), so
    work per clock is taken as equal and per-core throughput as the all-core turbo ratio: 1.0, 0.743, 0.8.

    `dynamic_power_factor` scales a task's package dynamic watts per busy core (its type's joules per
    CPU-second). TDP per core at all-core load is 12.8 W (6346), 6.4 W (6338) and 7.5 W (4316), ratios 0.5
    and 0.59; the factors are 1.0, 0.55 and 0.62, a little above those ratios, because part of a busy core's
    package power is uncore (mesh, LLC, memory controllers) and memory traffic that grows with the work done,
    not with the core's clock or with how many cores share the TDP. DRAM power is not scaled.
    """

    name: str
    family: int
    model_id: int
    cores_per_socket: int
    speed_mhz: int
    all_core_turbo_mhz: int
    dynamic_power_factor: float

    @property
    def relative_throughput(self) -> float:
        """Work per second of one busy core relative to a Gold 6346 core (all-core turbo ratio)."""
        return self.all_core_turbo_mhz / _REFERENCE_ALL_CORE_MHZ


@dataclass(frozen=True)
class NodeSpec:
    """One Kubernetes node: hardware, how often its agent reads the meters, and its idle powers."""

    name: str
    internal_ip: str
    cpu: CpuModel
    sockets: int
    memory_kib: int
    reading_interval_seconds: float
    package_idle_watts: float
    dram_idle_watts: float
    gpu_product: str | None = None
    gpu_memory_mib: int = 0
    gpu_ids: tuple[str, ...] = ()
    gpu_idle_watts: float = 0.0
    # Pods the device plugin lets run on one GPU at once (time-slicing replicas); 1 is exclusive.
    gpu_replicas: int = 1
    fpga_model: str | None = None
    fpga_ids: tuple[str, ...] = ()
    fpga_idle_watts: float = 0.0

    @property
    def cpu_cores(self) -> int:
        return self.cpu.cores_per_socket * self.sockets

    @property
    def allocatable_memory_bytes(self) -> int:
        return (self.memory_kib - _EVICTION_RESERVE_KIB) * 1024

    @property
    def has_accelerators(self) -> bool:
        return bool(self.gpu_ids or self.fpga_ids)

    def idle_power_watts(self) -> dict[str, float]:
        """Idle power of every metered device of the node, by device id."""
        idle = {f"package-{p}": self.package_idle_watts for p in range(self.sockets)}
        idle |= {f"dram-{p}": self.dram_idle_watts for p in range(self.sockets)}
        idle |= {gpu: self.gpu_idle_watts for gpu in self.gpu_ids}
        idle |= {fpga: self.fpga_idle_watts for fpga in self.fpga_ids}
        return idle


_XEON_6346 = CpuModel("Intel(R) Xeon(R) Gold 6346 CPU @ 3.10GHz", 6, 106, 16, 3100, 3500, 1.0)
_XEON_6338 = CpuModel("Intel(R) Xeon(R) Gold 6338 CPU @ 2.00GHz", 6, 106, 32, 2000, 2600, 0.55)
_XEON_4316 = CpuModel("Intel(R) Xeon(R) Silver 4316 CPU @ 2.30GHz", 6, 106, 20, 2300, 2800, 0.62)


def build_cluster(rng: np.random.Generator) -> tuple[NodeSpec, ...]:
    """The five nodes; only the GPU UUIDs come from the seed."""
    gpu_ids = tuple(f"GPU-{_uuid(rng)}" for _ in range(2))
    cpu_nodes = [
        NodeSpec(f"cpu-node-{i}", f"10.0.0.{10 + i}", _XEON_6346, 2, 263754892, interval, package, dram)
        for i, interval, package, dram in ((1, 1.0, 38.5, 5.2), (2, 5.0, 41.0, 6.3), (3, 15.0, 36.2, 4.7))
    ]
    gpu_node = NodeSpec(
        "gpu-node-1",
        "10.0.0.21",
        _XEON_6338,
        2,
        527866468,
        1.0,
        47.5,
        7.8,
        gpu_product="NVIDIA-A100-PCIE-40GB",
        gpu_memory_mib=40960,
        gpu_ids=gpu_ids,
        gpu_idle_watts=54.0,
        gpu_replicas=2,
    )
    fpga_node = NodeSpec(
        "fpga-node-1",
        "10.0.0.31",
        _XEON_4316,
        2,
        197754236,
        1.0,
        44.0,
        5.9,
        fpga_model="Xilinx Alveo U250",
        fpga_ids=("0000:af:00.0",),
        fpga_idle_watts=25.0,
    )
    return (*cpu_nodes, gpu_node, fpga_node)


def _uuid(rng: np.random.Generator) -> str:
    return str(uuid.UUID(bytes=rng.bytes(16), version=4))


def node_list(cluster: tuple[NodeSpec, ...], rng: np.random.Generator) -> dict:
    """The cluster as `GET /api/v1/nodes` returns it."""
    return {
        "apiVersion": "v1",
        "kind": "NodeList",
        "metadata": {"resourceVersion": str(int(rng.integers(10**6, 10**7)))},
        "items": [_node(spec, rng) for spec in cluster],
    }


def _node(spec: NodeSpec, rng: np.random.Generator) -> dict:
    labels = {
        "beta.kubernetes.io/arch": "amd64",
        "beta.kubernetes.io/os": "linux",
        "kubernetes.io/arch": "amd64",
        "kubernetes.io/hostname": spec.name,
        "kubernetes.io/os": "linux",
        "feature.node.kubernetes.io/cpu-model.vendor_id": "Intel",
        "feature.node.kubernetes.io/cpu-model.family": str(spec.cpu.family),
        "feature.node.kubernetes.io/cpu-model.id": str(spec.cpu.model_id),
        "feature.node.kubernetes.io/cpu-cpuid.AVX512F": "true",
        "feature.node.kubernetes.io/cpu-rdt.RDTMON": "true",
    }
    annotations = {
        "jouletrace.io/cpu-model": spec.cpu.name,
        "jouletrace.io/cpu-sockets": str(spec.sockets),
        "jouletrace.io/cpu-speed-mhz": str(spec.cpu.speed_mhz),
        "node.alpha.kubernetes.io/ttl": "0",
        "volumes.kubernetes.io/controller-managed-attach-detach": "true",
    }
    capacity = {
        "cpu": str(spec.cpu_cores),
        "ephemeral-storage": "937367304Ki",
        "hugepages-1Gi": "0",
        "hugepages-2Mi": "0",
        "memory": f"{spec.memory_kib}Ki",
        "pods": "110",
    }
    if spec.gpu_ids:
        shared = spec.gpu_replicas > 1
        labels |= {
            "feature.node.kubernetes.io/pci-10de.present": "true",
            "nvidia.com/gpu.present": "true",
            "nvidia.com/gpu.product": spec.gpu_product + ("-SHARED" if shared else ""),
            "nvidia.com/gpu.count": str(len(spec.gpu_ids)),
            "nvidia.com/gpu.memory": str(spec.gpu_memory_mib),
            "nvidia.com/gpu.family": "ampere",
        }
        if shared:
            labels["nvidia.com/gpu.replicas"] = str(spec.gpu_replicas)
            labels["nvidia.com/gpu.sharing-strategy"] = "time-slicing"
        capacity[GPU_RESOURCE] = str(len(spec.gpu_ids) * spec.gpu_replicas)
    if spec.fpga_ids:
        labels["feature.node.kubernetes.io/pci-10ee.present"] = "true"
        annotations["jouletrace.io/fpga-models"] = ",".join(spec.fpga_model for _ in spec.fpga_ids)
        capacity[FPGA_RESOURCE] = str(len(spec.fpga_ids))
    allocatable = capacity | {"memory": f"{spec.memory_kib - _EVICTION_RESERVE_KIB}Ki"}
    ready_at = "2026-10-19T06:41:07Z"
    return {
        "metadata": {
            "name": spec.name,
            "uid": _uuid(rng),
            "resourceVersion": str(int(rng.integers(10**6, 10**7))),
            "creationTimestamp": "2026-06-15T09:12:44Z",
            "labels": labels,
            "annotations": annotations,
        },
        "spec": {"podCIDR": f"10.244.{spec.internal_ip.rsplit('.', 1)[1]}.0/24"},
        "status": {
            "addresses": [
                {"type": "InternalIP", "address": spec.internal_ip},
                {"type": "Hostname", "address": spec.name},
            ],
            "allocatable": allocatable,
            "capacity": capacity,
            "conditions": [
                {
                    "type": "Ready",
                    "status": "True",
                    "reason": "KubeletReady",
                    "message": "kubelet is posting ready status",
                    "lastTransitionTime": ready_at,
                    "lastHeartbeatTime": ready_at,
                }
            ],
            "daemonEndpoints": {"kubeletEndpoint": {"Port": 10250}},
            "nodeInfo": {
                "architecture": "amd64",
                "bootID": _uuid(rng),
                "containerRuntimeVersion": "containerd://1.7.13",
                "kernelVersion": "5.15.0-105-generic",
                "kubeProxyVersion": "v1.29.4",
                "kubeletVersion": "v1.29.4",
                "machineID": rng.bytes(16).hex(),
                "operatingSystem": "linux",
                "osImage": "Ubuntu 22.04.4 LTS",
                "systemUUID": _uuid(rng),
            },
        },
    }
