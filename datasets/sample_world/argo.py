"""Argo `Workflow` objects and the workflow's `PodList`, shaped like what the Argo and Kubernetes APIs return.

Node ids, pod names, node types and the children/outboundNodes links follow the Argo controller
(v3.5, pod-name-format v2); times are truncated to the second, as Argo and Kubernetes record them.
"""

from __future__ import annotations

import hashlib
import math
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import numpy as np

from datasets.sample_world.cluster import FPGA_RESOURCE, GPU_RESOURCE, NodeSpec
from datasets.sample_world.plan import NAMESPACE, PodTask, WorkflowPlan
from datasets.sample_world.recipes import Call, DagTemplate, StepsTemplate, TaskType
from datasets.sample_world.scheduler import Attempt, Outcome

ARGOEXEC_IMAGE = "quay.io/argoproj/argoexec:v3.5.8"
_OMITTED_MESSAGE = "omitted: depends condition not met"


def fnv1a32(text: str) -> int:
    """32-bit FNV-1a, the hash Argo uses for node ids and v2 pod names."""
    h = 0x811C9DC5
    for byte in text.encode():
        h = ((h ^ byte) * 0x01000193) & 0xFFFFFFFF
    return h


def node_id(workflow_name: str, node_name: str) -> str:
    return workflow_name if node_name == workflow_name else f"{workflow_name}-{fnv1a32(node_name)}"


def pod_name(workflow_name: str, template: str, node_name: str) -> str:
    return f"{workflow_name}-{template}-{fnv1a32(node_name)}"


def rfc3339(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def cpu_quantity(cores: float) -> str:
    return str(int(cores)) if float(cores).is_integer() else f"{round(cores * 1000)}m"


def memory_quantity(gib: float) -> str:
    return f"{int(gib)}Gi" if float(gib).is_integer() else f"{round(gib * 1024)}Mi"


def resource_requests(task_type: TaskType) -> tuple[dict[str, str], dict[str, str]]:
    """Container requests and limits; device-plugin resources must be in both."""
    requests = {
        "cpu": cpu_quantity(task_type.cpu_request_cores),
        "memory": memory_quantity(task_type.memory_request_gib),
    }
    limits = {}
    if task_type.gpus:
        limits[GPU_RESOURCE] = str(task_type.gpus)
    if task_type.fpgas:
        limits[FPGA_RESOURCE] = str(task_type.fpgas)
    return requests | limits, limits


@dataclass
class _Part:
    """A rendered call, as its dependents and enclosing node see it."""

    head: str
    tails: list[str]
    phase: str
    started_seconds: float
    finished_seconds: float
    succeeded_pods: int
    total_pods: int
    resources: dict[str, int] = field(default_factory=dict)


class WorkflowRenderer:
    """Renders one simulated workflow into its Argo `Workflow` object and its `PodList`."""

    def __init__(
        self,
        rng: np.random.Generator,
        plan: WorkflowPlan,
        pods: list[PodTask],
        outcomes: list[Outcome],
        cluster: tuple[NodeSpec, ...],
        world_start: datetime,
    ):
        self.rng = rng
        self.plan = plan
        self.by_name = {pod.node_name: (pod, outcome) for pod, outcome in zip(pods, outcomes, strict=True)}
        self.hosts = {node.name: node for node in cluster}
        self.world_start = world_start
        self.nodes: dict[str, dict] = {}
        self.pod_objects: list[dict] = []

    def _time(self, seconds: float) -> str:
        return rfc3339(self.world_start + timedelta(seconds=math.floor(seconds)))

    def _id(self, node_name: str) -> str:
        return node_id(self.plan.name, node_name)

    def render(self) -> tuple[dict, dict]:
        plan = self.plan
        root = self._call(plan.recipe.entrypoint, plan.name, plan.name, None)
        self.nodes[plan.name]["startedAt"] = self._time(plan.submitted_seconds)
        for node in self.nodes.values():
            if not node["children"]:
                del node["children"]
        status = {
            "phase": root.phase,
            "startedAt": self._time(plan.submitted_seconds),
            "finishedAt": self._time(root.finished_seconds),
            "progress": f"{root.succeeded_pods}/{root.total_pods}",
            "resourcesDuration": root.resources,
            "conditions": [
                {"status": "False", "type": "PodRunning"},
                {"status": "True", "type": "Completed"},
            ],
            "nodes": self.nodes,
            "taskResultsCompletionStatus": {n["id"]: True for n in self.nodes.values() if n["type"] == "Pod"},
        }
        if "message" in self.nodes[plan.name]:
            status["message"] = self.nodes[plan.name]["message"]
        workflow = {
            "apiVersion": "argoproj.io/v1alpha1",
            "kind": "Workflow",
            "metadata": {
                "name": plan.name,
                "generateName": f"{plan.app}-",
                "namespace": NAMESPACE,
                "uid": plan.uid,
                "resourceVersion": str(int(self.rng.integers(10**6, 10**7))),
                "generation": int(self.rng.integers(5, 60)),
                "creationTimestamp": self._time(plan.submitted_seconds),
                "labels": {
                    "workflows.argoproj.io/completed": "true",
                    "workflows.argoproj.io/phase": root.phase,
                },
                "annotations": {"workflows.argoproj.io/pod-name-format": "v2"},
            },
            "spec": self._spec(),
            "status": status,
        }
        pod_list = {
            "apiVersion": "v1",
            "kind": "PodList",
            "metadata": {"resourceVersion": str(int(self.rng.integers(10**6, 10**7)))},
            "items": sorted(self.pod_objects, key=lambda pod: pod["metadata"]["name"]),
        }
        return workflow, pod_list

    def _spec(self) -> dict:
        recipe = self.plan.recipe
        templates = []
        for composite in recipe.composites.values():
            template = {"name": composite.name, "inputs": {}, "metadata": {}, "outputs": {}}
            if isinstance(composite, DagTemplate):
                template["dag"] = {"tasks": [_dag_task(call) for call in composite.tasks]}
                if not self.plan.fail_fast:
                    template["dag"]["failFast"] = False
            else:
                template["steps"] = [[_dag_task(call) for call in group] for group in composite.groups]
            templates.append(template)
        for task_type in recipe.task_types.values():
            requests, limits = resource_requests(task_type)
            resources = {"requests": requests} | ({"limits": limits} if limits else {})
            template = {
                "name": task_type.template,
                "container": {
                    "name": "",
                    "image": task_type.image,
                    "command": [task_type.command],
                    "resources": resources,
                },
                "inputs": {},
                "metadata": {},
                "outputs": {},
            }
            if self.plan.retry_limit is not None:
                template["retryStrategy"] = {"limit": self.plan.retry_limit}
            templates.append(template)
        return {
            "arguments": {},
            "entrypoint": recipe.entrypoint,
            "serviceAccountName": "workflow-runner",
            "templates": templates,
        }

    def _base(self, name: str, display: str, kind: str, template: str | None, boundary: str | None) -> dict:
        node = {
            "id": self._id(name),
            "name": name,
            "displayName": display,
            "type": kind,
            "templateScope": f"local/{self.plan.name}",
            "children": [],
        }
        if template is not None:
            node["templateName"] = template
        if boundary is not None:
            node["boundaryID"] = boundary
        self.nodes[node["id"]] = node
        return node

    def _link(self, tail: str, head: str) -> None:
        if head not in self.nodes[tail]["children"]:
            self.nodes[tail]["children"].append(head)

    def _pods_under(self, name: str) -> list[tuple[PodTask, Outcome]]:
        return [v for k, v in self.by_name.items() if k == name or k.startswith((f"{name}.", f"{name}["))]

    def _call(self, template: str, name: str, display: str, boundary: str | None) -> _Part:
        under = self._pods_under(name)
        if all(outcome.omitted_seconds is not None for _, outcome in under):
            return self._skipped(template, name, display, boundary, min(o.omitted_seconds for _, o in under))
        if template in self.plan.recipe.task_types:
            return self._task(template, name, display, boundary)
        composite = self.plan.recipe.composites[template]
        if isinstance(composite, DagTemplate):
            return self._dag(composite, name, display, boundary)
        return self._steps(composite, name, display, boundary)

    def _skipped(self, template: str, name: str, display: str, boundary: str | None, at: float) -> _Part:
        node = self._base(name, display, "Skipped", template, boundary)
        node |= {
            "phase": "Omitted",
            "message": _OMITTED_MESSAGE,
            "startedAt": self._time(at),
            "finishedAt": self._time(at),
        }
        return _Part(node["id"], [node["id"]], "Omitted", at, at, 0, 0)

    def _task(self, template: str, name: str, display: str, boundary: str | None) -> _Part:
        pod, outcome = self.by_name[name]
        if pod.retry_limit is None:
            return self._pod(pod, outcome.attempts[0], name, display, boundary)
        attempts = [
            self._pod(pod, a, pod.attempt_node_name(a.number), f"{display}({a.number})", boundary)
            for a in outcome.attempts
        ]
        last = attempts[-1]
        node = self._base(name, display, "Retry", template, boundary)
        finished = last.finished_seconds + self.rng.uniform(0.2, 1.5)
        node |= {
            "phase": last.phase,
            "children": [a.head for a in attempts],
            "startedAt": self._time(attempts[0].started_seconds),
            "finishedAt": self._time(finished),
            "progress": f"{sum(a.succeeded_pods for a in attempts)}/{len(attempts)}",
            "resourcesDuration": _sum_resources(attempts),
            "outputs": dict(self.nodes[last.head]["outputs"]),
        }
        if last.phase == "Failed":
            node["message"] = "No more retries left"
        return _Part(
            node["id"],
            [last.head],
            last.phase,
            attempts[0].started_seconds,
            finished,
            sum(a.succeeded_pods for a in attempts),
            len(attempts),
            node["resourcesDuration"],
        )

    def _pod(self, pod: PodTask, attempt: Attempt, name: str, display: str, boundary: str | None) -> _Part:
        t = pod.task_type
        node = self._base(name, display, "Pod", t.template, boundary)
        phase = "Succeeded" if attempt.succeeded else "Failed"
        runtime = attempt.runtime_seconds
        resources = {
            "cpu": round(t.cpu_request_cores * runtime),
            "memory": round(t.memory_request_gib * runtime),
        }
        if t.gpus:
            resources[GPU_RESOURCE] = round(t.gpus * runtime)
        if t.fpgas:
            resources[FPGA_RESOURCE] = round(t.fpgas * runtime)
        node |= {
            "phase": phase,
            "hostNodeName": attempt.host_node,
            "startedAt": self._time(attempt.start_seconds),
            "finishedAt": self._time(attempt.end_seconds),
            "progress": f"{int(attempt.succeeded)}/1",
            "resourcesDuration": resources,
            "outputs": {"exitCode": "0" if attempt.succeeded else "1"},
        }
        if pod.retry_limit is not None:
            node["nodeFlag"] = {"retried": True}
        if not attempt.succeeded:
            node["message"] = "Error (exit code 1)"
        self.pod_objects.append(self._pod_object(pod, attempt, name, node["id"]))
        return _Part(
            node["id"],
            [node["id"]],
            phase,
            attempt.start_seconds,
            attempt.end_seconds,
            int(attempt.succeeded),
            1,
            resources,
        )

    def _dag(self, dag: DagTemplate, name: str, display: str, boundary: str | None) -> _Part:
        own_id = self._id(name)
        parts = {
            call.name: self._call(call.template, f"{name}.{call.name}", call.name, own_id)
            for call in dag.tasks
        }
        for call in dag.tasks:
            for dependency in call.depends:
                for tail in parts[dependency].tails:
                    self._link(tail, parts[call.name].head)
        depended = {d for call in dag.tasks for d in call.depends}
        entries = [parts[call.name].head for call in dag.tasks if not call.depends]
        outbound = [
            tail for call in dag.tasks if call.name not in depended for tail in parts[call.name].tails
        ]
        return self._composite(
            name, display, "DAG", dag.name, boundary, list(parts.values()), entries, outbound
        )

    def _steps(self, steps: StepsTemplate, name: str, display: str, boundary: str | None) -> _Part:
        own_id = self._id(name)
        groups: list[_Part] = []
        tails: list[str] = []
        for i, group in enumerate(steps.groups):
            group_name = f"{name}[{i}]"
            for tail in tails:
                self._link(tail, self._id(group_name))
            parts = [
                self._call(call.template, f"{group_name}.{call.name}", call.name, own_id) for call in group
            ]
            groups.append(
                self._composite(
                    group_name, f"[{i}]", "StepGroup", None, own_id, parts, [p.head for p in parts], None
                )
            )
            tails = [tail for part in parts for tail in part.tails]
        return self._composite(name, display, "Steps", steps.name, boundary, groups, [groups[0].head], tails)

    def _composite(
        self,
        name: str,
        display: str,
        kind: str,
        template: str | None,
        boundary: str | None,
        parts: list[_Part],
        children: list[str],
        outbound: list[str] | None,
    ) -> _Part:
        """A DAG, Steps or StepGroup node: fails if a child failed, spans its children."""
        node = self._base(name, display, kind, template, boundary)
        ran = [p for p in parts if p.phase != "Omitted"]
        failed = [p for p in ran if p.phase == "Failed"]
        phase = "Failed" if failed else "Succeeded"
        started = min(p.started_seconds for p in ran)
        finished = max(p.finished_seconds for p in parts) + self.rng.uniform(0.3, 2.0)
        succeeded, total = sum(p.succeeded_pods for p in parts), sum(p.total_pods for p in parts)
        node |= {
            "phase": phase,
            "children": children,
            "startedAt": self._time(started),
            "finishedAt": self._time(finished),
            "progress": f"{succeeded}/{total}",
            "resourcesDuration": _sum_resources(parts),
        }
        if outbound is None:
            node["nodeFlag"] = {}
        else:
            node["outboundNodes"] = outbound
        if failed:
            node["message"] = f"child '{failed[0].head}' failed"
        return _Part(
            node["id"],
            outbound or [node["id"]],
            phase,
            started,
            finished,
            succeeded,
            total,
            node["resourcesDuration"],
        )

    def _pod_object(self, pod: PodTask, attempt: Attempt, name: str, nid: str) -> dict:
        """The Pod as the API server keeps it after the run (`kubectl get pod -o json`)."""
        t = pod.task_type
        rng = self.rng
        pname = pod_name(self.plan.name, t.template, name)
        host = self.hosts[attempt.host_node]
        requests, limits = resource_requests(t)
        annotations = {
            "kubectl.kubernetes.io/default-container": "main",
            "workflows.argoproj.io/node-id": nid,
            "workflows.argoproj.io/node-name": name,
        }
        if attempt.gpu_ids:
            annotations["jouletrace.io/gpu-ids"] = ",".join(attempt.gpu_ids)
        if attempt.fpga_ids:
            annotations["jouletrace.io/fpga-ids"] = ",".join(attempt.fpga_ids)
        main_resources = {"requests": requests} | ({"limits": limits} if limits else {})
        exit_code = 0 if attempt.succeeded else 1
        wait_started = attempt.start_seconds - rng.uniform(0.2, 1.0)
        wait_finished = attempt.end_seconds + rng.uniform(0.3, 1.5)
        statuses = [
            self._container_status("main", t.image, attempt.start_seconds, attempt.end_seconds, exit_code),
            self._container_status("wait", ARGOEXEC_IMAGE, wait_started, wait_finished, 0),
        ]
        pod_ip = f"10.244.{host.internal_ip.rsplit('.', 1)[1]}.{int(rng.integers(2, 255))}"
        scheduled = self._time(attempt.scheduled_seconds)
        return {
            "metadata": {
                "name": pname,
                "namespace": NAMESPACE,
                "uid": str(uuid.UUID(bytes=rng.bytes(16), version=4)),
                "resourceVersion": str(int(rng.integers(10**6, 10**7))),
                "creationTimestamp": scheduled,
                "labels": {
                    "workflows.argoproj.io/completed": "true",
                    "workflows.argoproj.io/workflow": self.plan.name,
                },
                "annotations": annotations,
                "ownerReferences": [
                    {
                        "apiVersion": "argoproj.io/v1alpha1",
                        "kind": "Workflow",
                        "name": self.plan.name,
                        "uid": self.plan.uid,
                        "controller": True,
                        "blockOwnerDeletion": True,
                    }
                ],
            },
            "spec": {
                "nodeName": attempt.host_node,
                "containers": [
                    {
                        "name": "wait",
                        "image": ARGOEXEC_IMAGE,
                        "command": ["argoexec", "wait", "--loglevel", "info", "--log-format", "text"],
                        "resources": {},
                    },
                    {"name": "main", "image": t.image, "command": [t.command], "resources": main_resources},
                ],
                "restartPolicy": "Never",
                "schedulerName": "default-scheduler",
                "serviceAccountName": "workflow-runner",
                "terminationGracePeriodSeconds": 30,
            },
            "status": {
                "phase": "Succeeded" if attempt.succeeded else "Failed",
                "conditions": [
                    {"type": "PodScheduled", "status": "True", "lastTransitionTime": scheduled},
                    {
                        "type": "Ready",
                        "status": "False",
                        "reason": "PodCompleted",
                        "lastTransitionTime": self._time(wait_finished),
                    },
                ],
                "hostIP": host.internal_ip,
                "podIP": pod_ip,
                "podIPs": [{"ip": pod_ip}],
                "startTime": scheduled,
                "qosClass": "Burstable",
                "containerStatuses": statuses,
            },
        }

    def _container_status(
        self, name: str, image: str, started: float, finished: float, exit_code: int
    ) -> dict:
        container_id = f"containerd://{self.rng.bytes(32).hex()}"
        digest = hashlib.sha256(image.encode()).hexdigest()
        return {
            "name": name,
            "image": image,
            "imageID": f"{image.rsplit(':', 1)[0]}@sha256:{digest}",
            "containerID": container_id,
            "ready": False,
            "restartCount": 0,
            "started": False,
            "lastState": {},
            "state": {
                "terminated": {
                    "containerID": container_id,
                    "exitCode": exit_code,
                    "reason": "Completed" if exit_code == 0 else "Error",
                    "startedAt": self._time(started),
                    "finishedAt": self._time(finished),
                }
            },
        }


def _dag_task(call: Call) -> dict:
    task = {"name": call.name, "template": call.template}
    if call.depends:
        task["depends"] = " && ".join(call.depends)
    return task


def _sum_resources(parts: list[_Part]) -> dict[str, int]:
    total: dict[str, int] = {}
    for part in parts:
        for key, value in part.resources.items():
            total[key] = total.get(key, 0) + value
    return total
