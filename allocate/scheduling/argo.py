"""Argo placement: an Argo ``Workflow`` manifest, built with Hera, running a WF.json where an S.json puts it.

Design (docs/scheduling.md):

* **One container template per task.** ``nodeSelector``, resources and pod metadata are fields of an Argo
  *template*, not of a DAG task, so every task gets its own template; the entrypoint is one DAG template
  (``schedule``) whose tasks carry the dependencies of WF.json's edges (``dependencies`` lists, which Argo
  reads as "after these succeeded"). Its tasks are listed in planned start order.
* **Names.** Argo wants template and DAG task names of letters, digits and ``-`` that do not start with a
  digit when dependencies are used, and pod names (made from template names) must be lower case. A task id
  is lower-cased, every other run of characters becomes ``-``, ``t-`` is put before a leading digit; when
  two ids give the same name, or a name is over 63 characters, or it is ``schedule``, the name ends with
  ``-`` and ten hex digits of the id's SHA-1. The template and its DAG task share the name.
* **What the manifest keeps.** Each template's pod metadata annotations hold the original task id
  (``jouletrace.io/task-id``), the machine (``jouletrace.io/machine-id``), the planned start and end
  seconds, the task's device and its priority, so ``parse_manifest`` gives back the DAG and placement and
  the running pods carry the task id (also in the ``JOULETRACE_TASK_ID`` variable of the container). The
  workflow is annotated with WF.json's name and S.json's algorithm only; it has no labels.
* **Placement.** ``nodeSelector`` is the machine's ``labels`` from P.json when it has some, otherwise
  ``kubernetes.io/hostname: <machine id>`` (the machine id is then taken to be the node name).
* **Resources.** The scheduling model runs one task per core, so each container requests one CPU (no
  limit: the model says nothing about throttling). A task whose device is ``gpu`` also has a limit of one
  ``nvidia.com/gpu`` (NVIDIA's device plugin); an ``fpga`` task one of the ``fpga_resource`` extended
  resource. AMD/Xilinx's Kubernetes FPGA device plugin registers one resource per board shell, named
  ``amd.com/<shell>-<timestamp>`` (``xilinx.com/fpga-<shell>-<timestamp>`` before plugin 1.1.0), so there
  is no generic name: the default is the example of the plugin's quick start,
  ``amd.com/xilinx_u200_xdma_201830_1-1542252769`` (an Alveo U200); read yours from
  ``kubectl describe node`` and pass it.
* **Start order.** Argo 4 has no per-template priority (``Template.priority`` was removed together with
  ``podPriority``, argo-workflows PR 14277; neither the v4.1.2 JSON Schema nor Hera 7.1's ``Template`` has
  it) and pod priority needs ``PriorityClass`` objects the cluster must define. So by default the order is
  recorded, not imposed: the ``jouletrace.io/priority`` annotation is a dense rank of planned start times
  (the earliest start gets the highest number, the last gets 1; tasks planned to start at exactly the same
  time share a priority) and the DAG lists tasks in that order. With ``keep_machine_order`` it is imposed:
  every task also waits for the task planned before it on the same core of its machine (in planned start
  order, each task takes the core of its machine that became free last before it starts); such an added
  dependency is named in the ``jouletrace.io/waits-for`` annotation, so parsing still gives WF.json's edges.
* **What runs.** WF.json does not model what a task runs (a WfInstances ``command`` is not carried over), so
  each container runs ``image`` with the image's own entrypoint and no command: users bring an image that
  does a task's work, telling tasks apart by ``JOULETRACE_TASK_ID``.

Workflows with OR-split/OR-join vertices are refused: an Argo DAG runs every task once.
"""

from __future__ import annotations

import hashlib
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import yaml
from hera.workflows import DAG, Container, Env, Task, Workflow
from hera.workflows.models import Quantity, ResourceRequirements

from allocate.model import Workflow as WorkflowModel
from allocate.scheduling.platform import Platform
from allocate.scheduling.schedule import Assignment, Schedule
from datasets.store import write_bytes_atomic

PREFIX = "jouletrace.io/"
TASK_ID, MACHINE_ID, DEVICE = PREFIX + "task-id", PREFIX + "machine-id", PREFIX + "device"
PLANNED_START, PLANNED_END = PREFIX + "planned-start-seconds", PREFIX + "planned-end-seconds"
PRIORITY, WAITS_FOR = PREFIX + "priority", PREFIX + "waits-for"
WORKFLOW_NAME, SCHEDULE_ALGORITHM = PREFIX + "workflow-name", PREFIX + "schedule-algorithm"
TASK_ID_ENV = "JOULETRACE_TASK_ID"
DAG_TEMPLATE = "schedule"
HOSTNAME_LABEL = "kubernetes.io/hostname"
GPU_RESOURCE = "nvidia.com/gpu"
DEFAULT_FPGA_RESOURCE = "amd.com/xilinx_u200_xdma_201830_1-1542252769"
NAME_LIMIT = 63  # a DNS label: Argo allows 128, pod and host names are made from it
DIGEST_LENGTH = 10
TIME_TOLERANCE = 1e-6  # seconds of rounding allowed between a parent's end and its child's start

_DNS_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")
_LABEL_NAME = re.compile(r"([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]")
_DNS_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")


@dataclass(frozen=True)
class InputFiles:
    """How error messages name the three inputs (the CLI passes the paths it read)."""

    workflow: str = "WF.json"
    schedule: str = "S.json"
    platform: str = "P.json"


@dataclass(frozen=True)
class ParsedPlacement:
    """What a manifest written by ``workflow_manifest`` says, in WF.json's and S.json's ids."""

    workflow_name: str | None
    algorithm: str | None
    task_ids: tuple[str, ...]  # in the DAG's order (planned start order)
    edges: tuple[tuple[str, str], ...]  # (parent, child) of WF.json, sorted
    placement: dict[str, str]  # task id -> machine id
    node_selectors: dict[str, dict[str, str]]
    priorities: dict[str, int]
    planned: dict[str, tuple[float, float]]  # task id -> (start, end) seconds
    devices: dict[str, str]
    waits_for: dict[str, str]  # task id -> task it waits for on its machine (keep_machine_order)


# ---------------------------------------------------------------------------------------------- names


def _digest(text: str, length: int) -> str:
    return hashlib.sha1(text.encode()).hexdigest()[:length]


def _base_name(task_id: str) -> str:
    name = re.sub(r"[^a-z0-9]+", "-", task_id.lower()).strip("-")
    return name if name[:1].isalpha() else ("t-" + name if name else "t")


def argo_names(task_ids: Iterable[str], reserved: Iterable[str] = (DAG_TEMPLATE,)) -> dict[str, str]:
    """Task id -> a unique Argo template/DAG task name (see the module docstring)."""
    ids = sorted(set(task_ids))
    bases = {i: _base_name(i) for i in ids}
    counts = Counter(bases.values())
    taken = set(reserved)
    names: dict[str, str] = {}
    for i in ids:
        base = bases[i]
        if counts[base] == 1 and len(base) <= NAME_LIMIT and base not in taken:
            names[i] = base
    taken |= set(names.values())
    for i in ids:
        if i in names:
            continue
        for length in range(DIGEST_LENGTH, 41):
            digest = _digest(i, length)
            name = f"{bases[i][: NAME_LIMIT - length - 1].rstrip('-')}-{digest}"
            if name not in taken:
                break
        else:  # every digest length collided: short of a SHA-1 collision this cannot happen
            raise ValueError(f"cannot name task {i!r} uniquely")
        names[i] = name
        taken.add(name)
    return names


def _is_label_key(key: str, prefix_required: bool = False) -> bool:
    prefix, slash, name = key.rpartition("/")
    if (slash and (not prefix or len(prefix) > 253 or not _DNS_SUBDOMAIN.fullmatch(prefix))) or (
        prefix_required and not slash
    ):
        return False
    return len(name) <= 63 and bool(_LABEL_NAME.fullmatch(name))


def _is_label_value(value: str) -> bool:
    return value == "" or (len(value) <= 63 and bool(_LABEL_NAME.fullmatch(value)))


# ------------------------------------------------------------------------------------------- checks


def _edges(workflow: WorkflowModel, files: InputFiles) -> list[tuple[str, str]]:
    """WF.json's task edges without repeats, refused when they have a cycle."""
    if workflow.controls:
        shown = ", ".join(sorted(workflow.controls)[:3])
        raise ValueError(
            f"{files.workflow}: workflow {workflow.name!r} has OR-split/OR-join vertices ({shown}); an Argo "
            "DAG runs every task once, so only workflows without them can be placed"
        )
    edges = list(dict.fromkeys((e.source, e.target) for e in workflow.edges))
    parents: dict[str, list[str]] = {t: [] for t in workflow.tasks}
    children: dict[str, list[str]] = {t: [] for t in workflow.tasks}
    for source, target in edges:
        parents[target].append(source)
        children[source].append(target)
    indegree = {t: len(p) for t, p in parents.items()}
    ready = [t for t, d in indegree.items() if d == 0]
    while ready:
        for child in children[ready.pop()]:
            indegree[child] -= 1
            if indegree[child] == 0:
                ready.append(child)
    left = [t for t, d in indegree.items() if d > 0]
    if left:  # every task left has a parent left: walk up parents until one repeats
        path, seen, task = [], set(), left[0]
        while task not in seen:
            seen.add(task)
            path.append(task)
            task = next(p for p in parents[task] if indegree[p] > 0)
        cycle = [*path[path.index(task) :], task][::-1]
        raise ValueError(f"{files.workflow}: the tasks have a cycle: {' -> '.join(cycle)}")
    return edges


def _assignments(
    workflow: WorkflowModel, schedule: Schedule, platform: Platform | None, files: InputFiles
) -> dict[str, Assignment]:
    machines = {m.id: m for m in platform.machines} if platform is not None else None
    placed: dict[str, tuple[int, Assignment]] = {}
    for k, a in enumerate(schedule.assignments):
        where = f"{files.schedule}: assignments[{k}]"
        task = workflow.tasks.get(a.task_id)
        if task is None:
            raise ValueError(f"{where} names task {a.task_id!r}, which {files.workflow} does not have")
        if a.task_id in placed:
            first = placed[a.task_id][0]
            raise ValueError(f"{where} assigns task {a.task_id!r} again (first in assignments[{first}])")
        if not a.end_seconds >= a.start_seconds:
            raise ValueError(f"{where} ({a.task_id}): end_seconds {a.end_seconds} is before start_seconds")
        if machines is not None:
            machine = machines.get(a.machine_id)
            if machine is None:
                raise ValueError(
                    f"{where} puts task {a.task_id!r} on machine {a.machine_id!r}, which {files.platform} "
                    "does not have"
                )
            if not machine.has(task.device):
                raise ValueError(
                    f"{where} puts {task.device.upper()} task {a.task_id!r} on machine {a.machine_id!r}, "
                    f"which has no {task.device.upper()} in {files.platform}"
                )
        placed[a.task_id] = (k, a)
    missing = [t for t in workflow.tasks if t not in placed]
    if missing:
        more = f" and {len(missing) - 1} more" if len(missing) > 1 else ""
        raise ValueError(f"{files.schedule}: no assignment for task {missing[0]!r}{more} of {files.workflow}")
    return {t: a for t, (_, a) in placed.items()}


def _check_precedence(
    edges: Sequence[tuple[str, str]], assigned: dict[str, Assignment], files: InputFiles
) -> None:
    for parent, child in edges:
        end, start = assigned[parent].end_seconds, assigned[child].start_seconds
        if start < end - TIME_TOLERANCE * max(1.0, abs(end)):
            raise ValueError(
                f"{files.schedule}: task {child!r} starts at {start:g} s, before its parent {parent!r} "
                f"(an edge of {files.workflow}) ends at {end:g} s"
            )


def _node_selector(machine_id: str, platform: Platform | None, files: InputFiles) -> dict[str, str]:
    machine = next((m for m in platform.machines if m.id == machine_id), None) if platform else None
    if machine is not None and machine.labels:
        for key, value in machine.labels.items():
            if not _is_label_key(key) or not _is_label_value(value):
                raise ValueError(
                    f"{files.platform}: machine {machine_id!r} label {key}={value!r} is not a valid "
                    "Kubernetes label"
                )
        return dict(machine.labels)
    if not _is_label_value(machine_id) or not machine_id:
        raise ValueError(
            f"{files.schedule}: machine id {machine_id!r} is not a valid Kubernetes node name label value; "
            f"give the machine labels in {files.platform} (--platform)"
        )
    return {HOSTNAME_LABEL: machine_id}


def _check_options(image: str, namespace: str | None, name: str | None, fpga_resource: str) -> None:
    if not image or any(c.isspace() for c in image):
        raise ValueError(f"--image {image!r}: give a container image reference without spaces")
    for option, value in (("--namespace", namespace), ("--name", name)):
        if value is not None and (len(value) > 63 or not _DNS_LABEL.fullmatch(value)):
            raise ValueError(
                f"{option} {value!r}: use at most 63 lower-case letters, digits and '-', starting and "
                "ending with a letter or digit"
            )
    if not _is_label_key(fpga_resource, prefix_required=True):
        raise ValueError(
            f"--fpga-resource {fpga_resource!r}: an extended resource name is DOMAIN/NAME, e.g. "
            f"{DEFAULT_FPGA_RESOURCE}"
        )


# ------------------------------------------------------------------------------------------ ordering


def start_priorities(assigned: dict[str, Assignment]) -> dict[str, int]:
    """Dense rank of planned starts: the earliest start gets the highest number, the latest 1; equal
    starts share a priority."""
    starts = sorted({a.start_seconds for a in assigned.values()}, reverse=True)
    rank = {s: k + 1 for k, s in enumerate(starts)}
    return {t: rank[a.start_seconds] for t, a in assigned.items()}


def _start_order(
    task_ids: Sequence[str], edges: Sequence[tuple[str, str]], assigned: dict[str, Assignment]
) -> list[str]:
    """Tasks by planned start, ties in topological order, and every parent before its children (a child
    planned to start within rounding of its parent's end counts as starting no earlier than the parent)."""
    parents: dict[str, list[str]] = {t: [] for t in task_ids}
    children: dict[str, list[str]] = {t: [] for t in task_ids}
    for source, target in edges:
        parents[target].append(source)
        children[source].append(target)
    indegree = {t: len(p) for t, p in parents.items()}
    topological = [t for t in task_ids if indegree[t] == 0]
    for task in topological:  # grows while it is walked: Kahn's algorithm, input order kept
        for child in children[task]:
            indegree[child] -= 1
            if indegree[child] == 0:
                topological.append(child)
    start: dict[str, float] = {}
    for task in topological:
        start[task] = max([assigned[task].start_seconds, *(start[p] for p in parents[task])])
    rank = {t: k for k, t in enumerate(topological)}
    return sorted(task_ids, key=lambda t: (start[t], rank[t]))


def _machine_order(order: Sequence[str], assigned: dict[str, Assignment]) -> dict[str, str]:
    """Task -> the task before it on the same core of its machine: in ``order``, each task takes the core
    of its machine that became free last before its planned start (a new core when none is free)."""
    cores: dict[str, list[tuple[float, str]]] = {}  # machine -> (end of the core's last task, that task)
    before: dict[str, str] = {}
    for task in order:
        a = assigned[task]
        slots = cores.setdefault(a.machine_id, [])
        free = [k for k, (end, _) in enumerate(slots) if end <= a.start_seconds + TIME_TOLERANCE]
        if free:
            k = min(free, key=lambda k: (-slots[k][0], k))  # the core that became free last
            before[task] = slots[k][1]
            slots[k] = (a.end_seconds, task)
        else:
            slots.append((a.end_seconds, task))
    return before


# ---------------------------------------------------------------------------------------- manifest


def workflow_manifest(
    workflow: WorkflowModel,
    schedule: Schedule,
    image: str,
    platform: Platform | None = None,
    namespace: str | None = None,
    name: str | None = None,
    fpga_resource: str = DEFAULT_FPGA_RESOURCE,
    *,
    keep_machine_order: bool = False,
    files: InputFiles = InputFiles(),
) -> dict:
    """The Argo ``Workflow`` (as Hera's ``Workflow.to_dict()``) running ``workflow`` as ``schedule`` places
    it; raises ValueError naming the input and entry when they do not fit together."""
    _check_options(image, namespace, name, fpga_resource)
    edges = _edges(workflow, files)
    assigned = _assignments(workflow, schedule, platform, files)
    _check_precedence(edges, assigned, files)
    order = _start_order(list(workflow.tasks), edges, assigned)
    position = {t: k for k, t in enumerate(order)}
    priorities = start_priorities(assigned)
    names = argo_names(workflow.tasks)
    parents: dict[str, list[str]] = {t: [] for t in workflow.tasks}
    for source, target in edges:
        parents[target].append(source)
    waits = _machine_order(order, assigned) if keep_machine_order else {}
    waits = {t: w for t, w in waits.items() if w not in parents[t]}
    selectors: dict[str, dict[str, str]] = {}
    templates, dag_tasks = [], []
    for task_id in order:
        a = assigned[task_id]
        if a.machine_id not in selectors:
            selectors[a.machine_id] = _node_selector(a.machine_id, platform, files)
        templates.append(
            _container(
                names[task_id],
                image,
                workflow.tasks[task_id].device,
                a,
                priorities[task_id],
                selectors[a.machine_id],
                fpga_resource,
                waits.get(task_id),
            )
        )
        needs = sorted(parents[task_id], key=position.get) + ([waits[task_id]] if task_id in waits else [])
        dag_tasks.append(
            Task(name=names[task_id], template=names[task_id], dependencies=[names[p] for p in needs] or None)
        )
    hera_workflow = Workflow(
        name=name,
        generate_name=None if name else _generate_name(workflow.name),
        namespace=namespace,
        entrypoint=DAG_TEMPLATE,
        annotations={WORKFLOW_NAME: workflow.name, SCHEDULE_ALGORITHM: schedule.algorithm},
        templates=[DAG(name=DAG_TEMPLATE, tasks=dag_tasks), *templates],
    )
    return hera_workflow.to_dict()


def _generate_name(workflow_name: str) -> str:
    """A ``generateName`` from WF.json's name: Kubernetes adds 5 characters, Argo allows 63 in all."""
    base = re.sub(r"[^a-z0-9]+", "-", workflow_name.lower()).strip("-")[:57].rstrip("-")
    return f"{base or 'workflow'}-"


def _container(
    name: str,
    image: str,
    device: str,
    assignment: Assignment,
    priority: int,
    node_selector: dict[str, str],
    fpga_resource: str,
    waits_for: str | None,
) -> Container:
    limits = {}
    if device == "gpu":
        limits[GPU_RESOURCE] = Quantity("1")
    elif device == "fpga":
        limits[fpga_resource] = Quantity("1")
    annotations = {
        TASK_ID: assignment.task_id,
        MACHINE_ID: assignment.machine_id,
        PLANNED_START: repr(assignment.start_seconds),
        PLANNED_END: repr(assignment.end_seconds),
        DEVICE: device,
        PRIORITY: str(priority),
    }
    if waits_for is not None:
        annotations[WAITS_FOR] = waits_for
    return Container(
        name=name,
        image=image,
        env=[Env(name=TASK_ID_ENV, value=assignment.task_id)],
        node_selector=node_selector,
        annotations=annotations,
        resources=ResourceRequirements(requests={"cpu": Quantity("1")}, limits=limits or None),
    )


# ------------------------------------------------------------------------------------------- reading


def parse_manifest(manifest: dict) -> ParsedPlacement:
    """The DAG, placement, node selectors and priorities of a manifest ``workflow_manifest`` wrote (also
    after a trip through YAML), in the original task and machine ids."""
    try:
        spec = manifest["spec"]
        templates = {t["name"]: t for t in spec["templates"]}
        entry = templates[spec["entrypoint"]]
        dag_tasks = entry["dag"]["tasks"]
    except (KeyError, TypeError) as exc:
        raise ValueError(f"not an Argo Workflow with a DAG entrypoint (missing {exc})") from None
    by_name: dict[str, str] = {}
    placement, selectors, priorities, planned, devices, waits = {}, {}, {}, {}, {}, {}
    for dag_task in dag_tasks:
        template = templates.get(dag_task.get("template"))
        annotations = ((template or {}).get("metadata") or {}).get("annotations") or {}
        absent = [
            k for k in (TASK_ID, MACHINE_ID, PRIORITY, PLANNED_START, PLANNED_END) if k not in annotations
        ]
        if absent:
            raise ValueError(
                f"DAG task {dag_task.get('name')!r}: its template has no {absent[0]} annotation (not written "
                "by jouletrace argo-workflow)"
            )
        task_id = annotations[TASK_ID]
        if task_id in placement:
            raise ValueError(f"DAG task {dag_task.get('name')!r}: task {task_id!r} appears twice")
        by_name[dag_task["name"]] = task_id
        placement[task_id] = annotations[MACHINE_ID]
        selectors[task_id] = dict(template.get("nodeSelector") or {})
        priorities[task_id] = int(annotations[PRIORITY])
        planned[task_id] = (float(annotations[PLANNED_START]), float(annotations[PLANNED_END]))
        devices[task_id] = annotations.get(DEVICE, "cpu")
        if WAITS_FOR in annotations:
            waits[task_id] = annotations[WAITS_FOR]
    edges = set()
    for dag_task in dag_tasks:
        if dag_task.get("depends"):
            raise ValueError(f"DAG task {dag_task['name']!r} uses `depends`; this reads `dependencies` only")
        child = by_name[dag_task["name"]]
        for parent_name in dag_task.get("dependencies") or []:
            if parent_name not in by_name:
                raise ValueError(f"DAG task {dag_task['name']!r} depends on unknown task {parent_name!r}")
            if by_name[parent_name] != waits.get(child):
                edges.add((by_name[parent_name], child))
    annotations = (manifest.get("metadata") or {}).get("annotations") or {}
    return ParsedPlacement(
        workflow_name=annotations.get(WORKFLOW_NAME),
        algorithm=annotations.get(SCHEDULE_ALGORITHM),
        task_ids=tuple(by_name.values()),
        edges=tuple(sorted(edges)),
        placement=placement,
        node_selectors=selectors,
        priorities=priorities,
        planned=planned,
        devices=devices,
        waits_for=waits,
    )


def write_manifest_yaml(manifest: dict, path: str | Path) -> Path:
    """Write the manifest as YAML (``kubectl create -f`` / ``argo submit``), atomically."""
    text = yaml.safe_dump(manifest, sort_keys=False, allow_unicode=True, default_flow_style=False)
    return write_bytes_atomic(text.encode(), Path(path))
