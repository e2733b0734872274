"""Argo `Workflow` objects -> `workflows` and `tasks` rows.

The input is the JSON dict the Argo Server returns (GET /api/v1/workflows/{ns}/{name}, or a Hera
model dumped with ``by_alias=True``), so recorded files and live responses share this parser.
Only Pod nodes (and Skipped nodes, kept to explain missing energy) become tasks; DAG, Steps,
StepGroup, Retry and other structural nodes are collapsed into task-to-task edges.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import UTC, datetime

import pyarrow as pa

import schemas
from schemas.tables import TASKS

POD_NAME_FORMAT_ANNOTATION = "workflows.argoproj.io/pod-name-format"
# Argo keeps 10 characters for the hash inside the 253-character resource-name limit
# (workflow/util/pod_name.go: ensurePodNamePrefixLength).
MAX_POD_NAME_PREFIX_CHARS = 253 - 10 - 1
ARGO_SECOND_RESOLUTION_SECONDS = 1.0
# The trace model stores microseconds; finer Argo times cannot be more precise than that.
FINEST_RESOLUTION_SECONDS = 1e-6

_RFC3339 = re.compile(r"^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(?:\.(\d+))?(?:[Zz]|[+-]\d{2}:\d{2})$")
_RETRY_SUFFIX = re.compile(r"\((\d+)\)$")


def fnv1a_32(text: str) -> int:
    """32-bit FNV-1a of the UTF-8 text: Argo's node-id and pod-name hash of a node name."""
    value = 0x811C9DC5
    for byte in text.encode():
        value = ((value ^ byte) * 0x01000193) & 0xFFFFFFFF
    return value


def workflow_uid(obj: dict) -> str:
    """The `workflow_uid` of an Argo Workflow object: metadata.uid, else namespace/name."""
    metadata = obj.get("metadata") or {}
    name, namespace = metadata.get("name"), metadata.get("namespace")
    return metadata.get("uid") or (f"{namespace}/{name}" if namespace else name)


def parse_workflow(obj: dict, cluster: str, provenance: str = "measured") -> tuple[dict, list[dict]]:
    """One Argo Workflow -> (its `workflows` row, its `tasks` rows), keys = schema column names."""
    metadata = obj.get("metadata") or {}
    name = metadata.get("name")
    if not name:
        raise ValueError("Argo object has no metadata.name; is it a Workflow?")
    namespace = metadata.get("namespace")
    label = f"workflow {namespace}/{name}" if namespace else f"workflow {name}"
    if obj.get("kind") not in (None, "Workflow"):
        raise ValueError(f"{label}: kind is {obj.get('kind')!r}, expected 'Workflow'")
    uid = workflow_uid(obj)
    status = obj.get("status") or {}
    nodes = status.get("nodes")
    if nodes is None and (status.get("compressedNodes") or status.get("offloadNodeStatusVersion")):
        raise ValueError(
            f"{label}: status.nodes is compressed or offloaded; fetch the workflow through the Argo Server, "
            "which fills status.nodes back in"
        )
    nodes = nodes or {}
    if not isinstance(nodes, dict):
        raise ValueError(f"{label}: status.nodes is a {type(nodes).__name__}, expected a mapping id -> node")
    for node_id, node in nodes.items():
        if not isinstance(node, dict) or node.get("id", node_id) != node_id:
            raise ValueError(f"{label}: status.nodes[{node_id!r}] is not a node with that id")

    annotations = metadata.get("annotations") or {}
    pod_name_format = annotations.get(POD_NAME_FORMAT_ANNOTATION, "v2")
    task_ids = {nid for nid, node in nodes.items() if node.get("type") in ("Pod", "Skipped")}
    retry_attempts = {
        cid for node in nodes.values() if node.get("type") == "Retry" for cid in node.get("children") or []
    }

    tasks = []
    for node_id in task_ids:
        row = _task_row(
            nodes[node_id], name, pod_name_format, node_id in retry_attempts, f"{label}: node {node_id}"
        )
        row["workflow_uid"] = uid
        row["provenance"] = provenance
        row["children"] = _successor_tasks(nodes, node_id, task_ids, label)
        tasks.append(row)
    tasks.sort(key=_start_order)
    parents: dict[str, list[str]] = {row["task_id"]: [] for row in tasks}
    for row in tasks:
        for child in row["children"]:
            parents[child].append(row["task_id"])
    for row in tasks:
        row["parents"] = parents[row["task_id"]]

    started_at, _ = _parse_time(status.get("startedAt"), f"{label}: status.startedAt")
    finished_at, _ = _parse_time(status.get("finishedAt"), f"{label}: status.finishedAt")
    workflow = {
        "workflow_uid": uid,
        "workflow_name": name,
        "namespace": namespace,
        "cluster": cluster,
        "phase": status.get("phase") or "Unknown",
        "started_at": started_at,
        "finished_at": finished_at,
        "makespan_seconds": _duration_seconds(started_at, finished_at, label),
        "task_count": len(tasks),
        "energy_joules": None,
        "provenance": provenance,
    }
    return workflow, tasks


def workflows_to_tables(
    objs: Iterable[dict], cluster: str, provenance: str = "measured"
) -> tuple[pa.Table, pa.Table]:
    """Many Argo Workflows -> validated (`workflows`, `tasks`) tables."""
    workflow_rows, task_rows = [], []
    for obj in objs:
        workflow, tasks = parse_workflow(obj, cluster, provenance)
        workflow_rows.append(workflow)
        task_rows.extend(tasks)
    workflows = schemas.validate("workflows", schemas.conform("workflows", workflow_rows), "<argo workflows>")
    tasks = schemas.validate("tasks", schemas.conform("tasks", task_rows), "<argo workflows>")
    return workflows, tasks


def _task_row(node: dict, workflow_name: str, pod_name_format: str, is_attempt: bool, where: str) -> dict:
    node_name = node.get("name")
    if not node_name:
        raise ValueError(f"{where}: node has no name")
    where = f"{where} ({node_name})"
    phase = node.get("phase") or "Unknown"
    display_name = node.get("displayName") or node_name.rsplit(".", 1)[-1]
    attempt = 0
    suffix = _RETRY_SUFFIX.search(node_name)
    if is_attempt and suffix:
        attempt = int(suffix.group(1))
        display_name = _RETRY_SUFFIX.sub("", display_name)
    template = node.get("templateName") or (node.get("templateRef") or {}).get("template")
    started, start_resolution = _parse_time(node.get("startedAt"), f"{where}: startedAt")
    finished, finish_resolution = _parse_time(node.get("finishedAt"), f"{where}: finishedAt")
    host = pod_name = reason = None
    if node["type"] == "Skipped":
        reason = f"skipped: {node.get('message') or phase}"
    else:
        host = node.get("hostNodeName") or None
        pod_name = _pod_name(workflow_name, node, template, pod_name_format)
        if host is None:
            reason = "never ran: no hostNodeName"
    row = dict.fromkeys(TASKS.names)
    row.update(
        task_id=node["id"],
        task_name=display_name,
        template_name=template,
        attempt=attempt,
        phase=phase,
        reason=reason,
        pod_name=pod_name,
        host_node=host,
        started_at=started,
        finished_at=finished,
        time_resolution_seconds=min(start_resolution, finish_resolution),
        runtime_seconds=_duration_seconds(started, finished, where),
        gpu_ids=[],
        fpga_ids=[],
    )
    return row


def _pod_name(workflow_name: str, node: dict, template: str | None, pod_name_format: str) -> str:
    """The pod Argo creates for a node (workflow/util/pod_name.go: GeneratePodName)."""
    if pod_name_format == "v1":
        return node["id"]
    if node["name"] == workflow_name:
        return workflow_name
    prefix = f"{workflow_name}-{template}" if template else workflow_name
    return f"{prefix[:MAX_POD_NAME_PREFIX_CHARS]}-{node['id'].rsplit('-', 1)[-1]}"


def _successor_tasks(nodes: dict, task_id: str, task_ids: set[str], label: str) -> list[str]:
    """Tasks reached from a task's children, passing through structural nodes (DAG, Steps, Retry...).

    A structural node stands for the tasks it starts with: its own children, recursively. That
    gives a DAG's entry tasks, a Steps node's first step group, and all attempts of a Retry.
    """
    found: list[str] = []
    seen: set[str] = set()
    stack = list(reversed(nodes[task_id].get("children") or []))
    while stack:
        node_id = stack.pop()
        if node_id in seen:
            continue
        seen.add(node_id)
        if node_id not in nodes:
            raise ValueError(f"{label}: node {task_id}: child {node_id!r} is not in status.nodes")
        if node_id in task_ids:
            found.append(node_id)
        else:
            stack.extend(reversed(nodes[node_id].get("children") or []))
    return found


def _parse_time(value: str | None, where: str) -> tuple[datetime | None, float]:
    """An RFC 3339 time as UTC, and its resolution in seconds (Argo writes whole seconds)."""
    if value is None or value == "":
        return None, ARGO_SECOND_RESOLUTION_SECONDS
    match = _RFC3339.match(value) if isinstance(value, str) else None
    if match is None:
        raise ValueError(f"{where}: {value!r} is not an RFC 3339 time")
    fraction = match.group(1)
    resolution = (
        max(10.0 ** -len(fraction), FINEST_RESOLUTION_SECONDS) if fraction else ARGO_SECOND_RESOLUTION_SECONDS
    )
    try:
        parsed = datetime.fromisoformat(value.replace("z", "Z").replace("t", "T"))
    except ValueError as exc:
        raise ValueError(f"{where}: {value!r} is not an RFC 3339 time ({exc})") from None
    return parsed.astimezone(UTC), resolution


def _duration_seconds(start: datetime | None, end: datetime | None, where: str) -> float | None:
    if start is None or end is None:
        return None
    if end < start:
        raise ValueError(f"{where}: finishedAt {end.isoformat()} is before startedAt {start.isoformat()}")
    return (end - start).total_seconds()


def _start_order(row: dict) -> tuple:
    """Tasks in start order (unstarted last), ties by id, so tables are reproducible."""
    started = row["started_at"]
    return (started is None, started or datetime.min.replace(tzinfo=UTC), row["task_id"])
