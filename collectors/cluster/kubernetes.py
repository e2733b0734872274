"""Kubernetes `PodList` / `NodeList` JSON -> task resource requests, device ids and `machines` rows.

Inputs are the dicts the API server returns (``kubectl get -o json`` or the kubernetes client's
``ApiClient().sanitize_for_serialization``), so recorded files and live responses share this code.
"""

from __future__ import annotations

import math
import re
from decimal import Decimal

import pyarrow as pa

import schemas

WORKFLOW_LABEL = "workflows.argoproj.io/workflow"
NODE_ID_ANNOTATION = "workflows.argoproj.io/node-id"
GPU_IDS_ANNOTATION = "jouletrace.io/gpu-ids"
FPGA_IDS_ANNOTATION = "jouletrace.io/fpga-ids"
CPU_MODEL_ANNOTATION = "jouletrace.io/cpu-model"
CPU_SOCKETS_ANNOTATION = "jouletrace.io/cpu-sockets"
CPU_SPEED_ANNOTATION = "jouletrace.io/cpu-speed-mhz"
FPGA_MODELS_ANNOTATION = "jouletrace.io/fpga-models"
GPU_PRODUCT_LABEL = "nvidia.com/gpu.product"
GPU_COUNT_LABEL = "nvidia.com/gpu.count"
NVIDIA_GPU_RESOURCE = "nvidia.com/gpu"
NFD_CPU_MODEL_LABEL = "feature.node.kubernetes.io/cpu-model."
UNKNOWN_GPU_MODEL = "unknown"

_MULTIPLIERS = {
    "Ki": Decimal(2) ** 10,
    "Mi": Decimal(2) ** 20,
    "Gi": Decimal(2) ** 30,
    "Ti": Decimal(2) ** 40,
    "Pi": Decimal(2) ** 50,
    "Ei": Decimal(2) ** 60,
    "n": Decimal("1e-9"),
    "u": Decimal("1e-6"),
    "m": Decimal("1e-3"),
    "": Decimal(1),
    "k": Decimal("1e3"),
    "M": Decimal("1e6"),
    "G": Decimal("1e9"),
    "T": Decimal("1e12"),
    "P": Decimal("1e15"),
    "E": Decimal("1e18"),
}
# Kubernetes quantity grammar: a signed decimal number, then a binary/decimal suffix or an exponent.
_QUANTITY = re.compile(r"^([+-]?(?:\d+\.?\d*|\.\d+))(?:[eE]([+-]?\d+)|(Ki|Mi|Gi|Ti|Pi|Ei|[numkMGTPE]))?$")


def parse_quantity(text: str | int | float) -> float:
    """A Kubernetes resource quantity ("500m", "4Gi", "1e3", "2") as a plain number."""
    if isinstance(text, bool):
        raise ValueError(f"{text!r} is not a Kubernetes quantity")
    if isinstance(text, int | float):
        return float(text)
    match = _QUANTITY.match(text.strip()) if isinstance(text, str) else None
    if match is None:
        raise ValueError(f"{text!r} is not a Kubernetes quantity")
    number, exponent, suffix = match.groups()
    value = Decimal(number)
    if exponent is not None:
        return float(value.scaleb(int(exponent)))
    return float(value * _MULTIPLIERS[suffix or ""])


def is_gpu_resource(name: str) -> bool:
    return name in (NVIDIA_GPU_RESOURCE, "amd.com/gpu") or name.startswith("nvidia.com/mig-")


def is_fpga_resource(name: str) -> bool:
    """FPGA device-plugin names vary per vendor, card and shell; all contain `fpga` or `xilinx`."""
    lowered = name.lower()
    return "fpga" in lowered or "xilinx" in lowered


def pods_to_table_rows(podlist: dict) -> list[dict]:
    """One dict per Argo workflow pod of a PodList; pods without the workflow label are skipped."""
    rows = []
    for pod in _items(podlist, "PodList"):
        metadata = pod.get("metadata") or {}
        workflow = (metadata.get("labels") or {}).get(WORKFLOW_LABEL)
        if not workflow:
            continue
        pod_name = metadata.get("name")
        if not pod_name:
            raise ValueError(f"pod of workflow {workflow} has no metadata.name")
        where = f"pod {metadata.get('namespace')}/{pod_name}"
        annotations = metadata.get("annotations") or {}
        containers = (pod.get("spec") or {}).get("containers") or []
        requests = [effective_requests(c, where) for c in containers]
        memory_bytes = sum_requests(requests, lambda name: name == "memory")
        statuses = (pod.get("status") or {}).get("containerStatuses") or []
        rows.append(
            {
                "workflow_name": workflow,
                "namespace": metadata.get("namespace"),
                # Argo: "if the node-id annotation does not exist, the node ID is the pod name".
                "node_id": annotations.get(NODE_ID_ANNOTATION) or pod_name,
                "pod_name": pod_name,
                "pod_uid": metadata.get("uid"),
                "host_node": (pod.get("spec") or {}).get("nodeName") or None,
                "cpu_request_cores": sum_requests(requests, lambda name: name == "cpu"),
                "memory_request_bytes": None if memory_bytes is None else math.ceil(memory_bytes),
                "gpu_ids": _split_ids(annotations.get(GPU_IDS_ANNOTATION)),
                "fpga_ids": _split_ids(annotations.get(FPGA_IDS_ANNOTATION)),
                "gpu_count_requested": int(sum_requests(requests, is_gpu_resource) or 0),
                "fpga_count_requested": int(sum_requests(requests, is_fpga_resource) or 0),
                # "<runtime>://<id>" -> "<id>", the form cgroup paths and Kepler use.
                "container_ids": [
                    s["containerID"].split("://")[-1] for s in statuses if s.get("containerID")
                ],
            }
        )
    return rows


def join_pods(tasks: pa.Table, pods: list[dict], workflow_names: dict[str, str]) -> pa.Table:
    """Fill task rows from their pods, matched by (workflow name, Argo node id).

    `workflow_names` maps workflow_uid -> workflow name. Argo's hostNodeName wins over the pod's
    nodeName, which only fills a missing host; a disagreement means a wrong match and is an error.
    """
    by_node: dict[tuple[str, str], dict] = {}
    for pod in pods:
        key = (pod["workflow_name"], pod["node_id"])
        if key in by_node:
            raise ValueError(
                f"pods {by_node[key]['namespace']}/{by_node[key]['pod_name']} and "
                f"{pod['namespace']}/{pod['pod_name']} both claim node {key[1]} of workflow {key[0]}"
            )
        by_node[key] = pod
    rows = tasks.to_pylist()
    for row in rows:
        pod = by_node.get((workflow_names.get(row["workflow_uid"]), row["task_id"]))
        if pod is None:
            continue
        if row["host_node"] is None:
            row["host_node"] = pod["host_node"]
        elif pod["host_node"] and pod["host_node"] != row["host_node"]:
            raise ValueError(
                f"task {row['task_id']}: Argo says it ran on {row['host_node']}, "
                f"its pod {pod['pod_name']} is on {pod['host_node']}"
            )
        row["pod_name"] = pod["pod_name"]
        row["pod_uid"] = pod["pod_uid"]
        row["cpu_request_cores"] = pod["cpu_request_cores"]
        row["memory_request_bytes"] = pod["memory_request_bytes"]
        row["gpu_ids"] = pod["gpu_ids"]
        row["fpga_ids"] = pod["fpga_ids"]
    return schemas.conform("tasks", rows)


def nodes_to_machines(nodelist: dict, provenance: str = "measured") -> pa.Table:
    """A NodeList -> validated `machines` table, one row per node, sorted by name."""
    rows = []
    for node in _items(nodelist, "NodeList"):
        metadata = node.get("metadata") or {}
        name = metadata.get("name")
        if not name:
            raise ValueError("Node has no metadata.name")
        where = f"node {name}"
        labels = metadata.get("labels") or {}
        annotations = metadata.get("annotations") or {}
        capacity = (node.get("status") or {}).get("capacity") or {}
        cores = _capacity(capacity, "cpu", where)
        memory_bytes = _capacity(capacity, "memory", where)
        sockets = _annotation_number(annotations, CPU_SOCKETS_ANNOTATION, where)
        gpu_count = _annotation_number(labels, GPU_COUNT_LABEL, where)
        if gpu_count is None:
            gpu_count = _capacity(capacity, NVIDIA_GPU_RESOURCE, where) or 0
        fpga_models = _split_ids(annotations.get(FPGA_MODELS_ANNOTATION))
        if not fpga_models:
            # Without the node agent's models, the device-plugin resource name (it names the shell) stands in.
            for resource in sorted(r for r in capacity if is_fpga_resource(r)):
                fpga_models += [resource] * int(_capacity(capacity, resource, where))
        rows.append(
            {
                "host_node": name,
                "cpu_model": annotations.get(CPU_MODEL_ANNOTATION) or _nfd_cpu_model(labels),
                "sockets": None if sockets is None else int(sockets),
                "cores": None if cores is None else round(cores),
                "cpu_speed_mhz": _annotation_number(annotations, CPU_SPEED_ANNOTATION, where),
                "memory_bytes": None if memory_bytes is None else math.ceil(memory_bytes),
                "gpu_models": [labels.get(GPU_PRODUCT_LABEL) or UNKNOWN_GPU_MODEL] * int(gpu_count),
                "fpga_models": fpga_models,
                "labels": dict(labels),
                "provenance": provenance,
            }
        )
    rows.sort(key=lambda row: row["host_node"])
    return schemas.validate("machines", schemas.conform("machines", rows), "<kubernetes nodes>")


def _items(obj: dict, kind: str) -> list[dict]:
    items = obj.get("items") if isinstance(obj, dict) else None
    if not isinstance(items, list):
        raise ValueError(f"not a {kind}: no `items` list")
    return items


def effective_requests(container: dict, where: str) -> dict[str, float]:
    """Requests as the scheduler sees them: a resource with only a limit requests its limit."""
    resources = container.get("resources") or {}
    merged = {**(resources.get("limits") or {}), **(resources.get("requests") or {})}
    try:
        return {name: parse_quantity(value) for name, value in merged.items()}
    except ValueError as exc:
        raise ValueError(f"{where}: container {container.get('name')}: {exc}") from None


def sum_requests(requests: list[dict[str, float]], wanted) -> float | None:
    """Sum over containers of the matching resources, None when no container requests any."""
    values = [value for request in requests for name, value in request.items() if wanted(name)]
    return sum(values) if values else None


def _capacity(capacity: dict, resource: str, where: str) -> float | None:
    if resource not in capacity:
        return None
    try:
        return parse_quantity(capacity[resource])
    except ValueError as exc:
        raise ValueError(f"{where}: status.capacity[{resource!r}]: {exc}") from None


def _annotation_number(values: dict, key: str, where: str) -> float | None:
    if values.get(key) in (None, ""):
        return None
    try:
        return float(values[key])
    except ValueError:
        raise ValueError(f"{where}: {key}={values[key]!r} is not a number") from None


def _nfd_cpu_model(labels: dict) -> str | None:
    """Node Feature Discovery's vendor/family/model id, e.g. "Intel family 6 model 143"."""
    vendor = labels.get(NFD_CPU_MODEL_LABEL + "vendor_id")
    family = labels.get(NFD_CPU_MODEL_LABEL + "family")
    model = labels.get(NFD_CPU_MODEL_LABEL + "id")
    parts = [vendor, family and f"family {family}", model and f"model {model}"]
    return " ".join(p for p in parts if p) or None


def _split_ids(text: str | None) -> list[str]:
    return [part.strip() for part in (text or "").split(",") if part.strip()]


def fill_gpu_ids(
    tasks: pa.Table, workflows: pa.Table, gpu_ids_by_pod: dict[tuple[str, str], list[str]]
) -> pa.Table:
    """GPU UUIDs of tasks whose pods carry none, from another source's pod labels (DCGM exporter).

    Pods record device ids only where the kubelet PodResources API was read; DCGM exporter's
    series say which pod held which GPU. Ids already on a task are kept as they are.
    """
    if not gpu_ids_by_pod:
        return tasks
    namespaces = dict(
        zip(workflows["workflow_uid"].to_pylist(), workflows["namespace"].to_pylist(), strict=True)
    )
    filled = [
        ids or sorted(gpu_ids_by_pod.get((namespaces.get(uid) or "", pod or ""), []))
        for uid, pod, ids in zip(
            tasks["workflow_uid"].to_pylist(),
            tasks["pod_name"].to_pylist(),
            tasks["gpu_ids"].to_pylist(),
            strict=True,
        )
    ]
    index = tasks.schema.get_field_index("gpu_ids")
    return tasks.set_column(
        index, tasks.schema.field(index), pa.array(filled, tasks.schema.field(index).type)
    )
