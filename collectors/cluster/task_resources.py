"""Fill each task's requests and devices from its pod where it was read, else from Argo's own record.

Pods of finished runs are often gone (Argo's podGC, the workflow archive) and some users cannot read the
Kubernetes API at all. A task whose pod was not read keeps what Argo recorded (its node, `hostNodeName`,
and its pod name) and takes its requests from its template (collectors/cluster/argo_templates.py); its `reason`
says so: ``pod not read (<why>); requests from <where the template was>`` (or why they are unknown).
It has no pod uid, so per-container usage joins it by pod name only.

Accelerators: a task that requested GPUs (FPGAs) but whose device ids no source gave (no PodResources
annotation, no DCGM pod labels) holds ``UNMAPPED_DEVICE`` once per requested device. The attribution then
splits the node's devices among such tasks by request (datasets/attribution/split.py, docs/attribution.md).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

import pyarrow as pa

import schemas
from collectors.cluster.argo import workflow_uid
from collectors.cluster.argo_templates import template_requests
from collectors.cluster.kubernetes import join_pods

# The same token as datasets.attribution.UNMAPPED_DEVICE (a test checks it): one requested device of the
# node whose id was not read.
UNMAPPED_DEVICE = "unmapped"
POD_DELETED = "pod not found (deleted, e.g. by Argo's podGC)"


@dataclass
class TaskGaps:
    """What could not be read for the tasks, counted for the one-line summary."""

    tasks_ran: int = 0
    pods_unread: Counter = field(default_factory=Counter)  # why -> tasks
    without_requests: int = 0  # of those: no requests in (or no) template
    unmapped: Counter = field(default_factory=Counter)  # "gpu"/"fpga" -> tasks holding unmapped devices

    def summary(self) -> str | None:
        parts = [
            f"{count} of {self.tasks_ran} tasks without their pod ({why}): requests from Argo's templates"
            for why, count in sorted(self.pods_unread.items())
        ]
        if self.without_requests:
            parts.append(f"{self.without_requests} tasks with no requests recorded")
        if self.unmapped:
            kinds = sorted(self.unmapped, key=lambda kind: kind != "gpu")
            held = ", ".join(
                f"{kind.upper()} ids not read for {self.unmapped[kind]} tasks"
                if i == 0
                else f"{kind.upper()} ids for {self.unmapped[kind]}"
                for i, kind in enumerate(kinds)
            )
            parts.append(
                f"{held}: their node's devices split by request where holders overlapped "
                "(split=unmapped-by-request)"
            )
        return "; ".join(parts) or None


def complete_tasks(
    tasks: pa.Table,
    workflows: pa.Table,
    objects: list[dict],
    pods: list[dict] | None,
    pods_unread: str | None = None,
) -> tuple[pa.Table, dict[tuple[str, str], dict[str, int]], TaskGaps]:
    """Tasks joined with their pods, and from their templates where a pod was not read.

    `pods` are `pods_to_table_rows` dicts, None when Kubernetes was not read (`pods_unread` says why).
    Returns the tasks, each task's requested accelerators ((workflow_uid, task_id) -> {"gpu": n, "fpga": m})
    for `mark_unmapped`, and the gaps.
    """
    names = dict(
        zip(workflows["workflow_uid"].to_pylist(), workflows["workflow_name"].to_pylist(), strict=True)
    )
    by_node = {}
    if pods is not None:
        tasks = join_pods(tasks, pods, names)
        by_node = {(pod["workflow_name"], pod["node_id"]): pod for pod in pods}
    templates = {workflow_uid(obj): template_requests(obj) for obj in objects}
    gaps = TaskGaps()
    requested: dict[tuple[str, str], dict[str, int]] = {}
    rows = tasks.to_pylist()
    for row in rows:
        if row["host_node"] is None or row["reason"] is not None:
            continue  # never ran, or skipped: nothing to draw energy on
        gaps.tasks_ran += 1
        key = (row["workflow_uid"], row["task_id"])
        pod = by_node.get((names.get(row["workflow_uid"]), row["task_id"]))
        if pod is not None:
            requested[key] = {"gpu": pod["gpu_count_requested"], "fpga": pod["fpga_count_requested"]}
            continue
        why = pods_unread or POD_DELETED
        gaps.pods_unread[why] += 1
        template = templates.get(row["workflow_uid"], {}).get(row["task_id"])
        if template is None or template.cpu_cores is None and template.problem is not None:
            gaps.without_requests += 1
            detail = template.problem if template is not None else "the workflow records no such node"
            row["reason"] = f"pod not read ({why}); no requests: {detail}"
            continue
        row["cpu_request_cores"] = template.cpu_cores
        row["memory_request_bytes"] = template.memory_bytes
        requested[key] = {"gpu": template.gpus, "fpga": template.fpgas}
        notes = [template.problem] if template.problem else []
        if template.cpu_cores is None:
            gaps.without_requests += 1
            notes.append("no cpu request")
        row["reason"] = f"pod not read ({why}); requests from {template.source}" + (
            f" ({'; '.join(notes)})" if notes else ""
        )
    table = schemas.validate("tasks", schemas.conform("tasks", rows), "<argo workflows and pods>")
    return table, requested, gaps


def mark_unmapped(
    tasks: pa.Table, requested: dict[tuple[str, str], dict[str, int]], gaps: TaskGaps | None = None
) -> pa.Table:
    """Give a task that requested accelerators but holds no device ids one UNMAPPED_DEVICE per request."""
    columns = {"gpu": "gpu_ids", "fpga": "fpga_ids"}
    keys = list(zip(tasks["workflow_uid"].to_pylist(), tasks["task_id"].to_pylist(), strict=True))
    for kind, column in columns.items():
        ids = tasks[column].to_pylist()
        changed = False
        for i, key in enumerate(keys):
            count = requested.get(key, {}).get(kind, 0)
            if count > 0 and not ids[i]:
                ids[i] = [UNMAPPED_DEVICE] * count
                changed = True
                if gaps is not None:
                    gaps.unmapped[kind] += 1
        if changed:
            index = tasks.schema.get_field_index(column)
            tasks = tasks.set_column(
                index, tasks.schema.field(index), pa.array(ids, tasks.schema.field(index).type)
            )
    return tasks
