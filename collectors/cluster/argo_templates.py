"""What each Pod node of an Argo `Workflow` asked Kubernetes for, from the workflow object alone.

When the pods are gone (Argo's podGC, the workflow archive) or the Kubernetes API cannot be read, Argo's own
record still says which template ran each node, and the template says the container's resource requests.
A node's template is found the way the controller stores it (pkg/apis/workflow/v1alpha1/workflow_types.go,
resolveTemplateReference):

- `templateRef` {name, template, clusterScope}: ``status.storedTemplates["namespaced|cluster/<name>/<template>"]``;
- a `templateScope` other than ``local/...`` (a WorkflowTemplate calling its own template):
  ``status.storedTemplates["<templateScope>/<templateName>"]``;
- else `templateName` in ``spec.templates``, then in ``status.storedWorkflowTemplateSpec.templates`` (a
  workflow run from a `workflowTemplateRef`); a template that only refers on (`templateRef`, `template`)
  is followed.

Requests are those of the template's `container` or `script`, each container of a `containerSet`, and its
`sidecars`, with ``spec.templateDefaults`` under them; a resource given only as a limit requests its limit
(as the scheduler sees it). ``{{inputs.parameters.X}}`` takes the node's own input value and
``{{workflow.parameters.X}}`` the workflow's argument; a `podSpecPatch` (template's, then the workflow's)
that sets a container's resources is applied. Argo's `wait` sidecar is not in the record (its requests come
from the controller's configuration), so a pod's total can be a little above the template's.
"""

from __future__ import annotations

import copy
import json
import math
import re
from dataclasses import dataclass

import yaml

from collectors.cluster.kubernetes import effective_requests, is_fpga_resource, is_gpu_resource, sum_requests

# Templates referring to templates: deeper chains than this are taken for a loop.
MAX_REFERENCE_DEPTH = 10
_PARAMETER = re.compile(r"\{\{\s*(inputs|workflow)\.parameters\.([A-Za-z0-9_.-]+)\s*\}\}")
_UNRESOLVED = re.compile(r"\{\{[^}]*\}\}")


@dataclass(frozen=True)
class TemplateRequests:
    """A node's requests from its template; `problem` says why they are missing or partial, else None."""

    cpu_cores: float | None
    memory_bytes: int | None
    gpus: int
    fpgas: int
    source: str  # where the template was found, e.g. "spec.templates[echo]"
    problem: str | None = None


def template_requests(obj: dict) -> dict[str, TemplateRequests]:
    """Node id -> what its template requested, for every Pod node of one Argo Workflow object."""
    status = obj.get("status") or {}
    nodes = status.get("nodes") or {}
    spec = obj.get("spec") or {}
    arguments = _parameter_values((spec.get("arguments") or {}).get("parameters"))
    found = {}
    for node_id, node in nodes.items():
        if not isinstance(node, dict) or node.get("type") != "Pod":
            continue
        template, source = _node_template(obj, node)
        if template is None:
            found[node_id] = TemplateRequests(None, None, 0, 0, source, f"template not found ({source})")
            continue
        values = {
            "inputs": _parameter_values((node.get("inputs") or {}).get("parameters")),
            "workflow": arguments,
        }
        found[node_id] = _requests(template, spec, values, source)
    return found


def _parameter_values(parameters) -> dict[str, str]:
    return {
        p["name"]: str(p["value"])
        for p in parameters or []
        if isinstance(p, dict) and p.get("name") and p.get("value") is not None
    }


def _by_name(templates, name: str) -> dict | None:
    return next((t for t in templates or [] if isinstance(t, dict) and t.get("name") == name), None)


def _stored_key(ref: dict) -> str:
    scope = "cluster" if ref.get("clusterScope") else "namespaced"
    return f"{scope}/{ref.get('name')}/{ref.get('template')}"


def _node_template(obj: dict, node: dict) -> tuple[dict | None, str]:
    """The template a Pod node ran, and where it was found (or looked for)."""
    status, spec = obj.get("status") or {}, obj.get("spec") or {}
    stored = status.get("storedTemplates") or {}
    local = [
        ("spec.templates", spec.get("templates")),
        (
            "status.storedWorkflowTemplateSpec.templates",
            (status.get("storedWorkflowTemplateSpec") or {}).get("templates"),
        ),
    ]
    ref, name = node.get("templateRef"), node.get("templateName")
    scope = node.get("templateScope") or ""
    if ref:
        key = _stored_key(ref)
        template, source = stored.get(key), f"status.storedTemplates[{key}]"
    elif name and scope and not scope.startswith("local/"):
        key = f"{scope}/{name}"
        template, source = stored.get(key), f"status.storedTemplates[{key}]"
    elif name:
        template, source = None, f"spec.templates[{name}]"
        for where, templates in local:
            template = _by_name(templates, name)
            if template is not None:
                source = f"{where}[{name}]"
                break
    else:
        return None, "the node names no template"
    for _ in range(MAX_REFERENCE_DEPTH):
        if template is None or _has_containers(template):
            return template, source
        if template.get("templateRef"):
            key = _stored_key(template["templateRef"])
            template, source = stored.get(key), f"status.storedTemplates[{key}]"
        elif template.get("template"):
            name = template["template"]
            template = next((t for _, ts in local if (t := _by_name(ts, name)) is not None), None)
            source = f"spec.templates[{name}]"
        else:
            return template, source
    return None, f"{source}: templates refer to each other more than {MAX_REFERENCE_DEPTH} deep"


def _has_containers(template: dict) -> bool:
    return any(template.get(key) for key in ("container", "script", "containerSet"))


def _merged(defaults, value):
    """`value` over `defaults`, maps merged key by key (Argo merges templateDefaults into each template)."""
    if isinstance(defaults, dict) and isinstance(value, dict):
        merged = dict(defaults)
        for key, item in value.items():
            merged[key] = _merged(defaults.get(key), item)
        return merged
    return copy.deepcopy(value if value is not None else defaults)


def _containers(template: dict, defaults: dict) -> list[dict]:
    """The pod's containers the template declares (not Argo's own init/wait), defaults merged in."""
    containers = []
    for key in ("container", "script"):
        if template.get(key):
            containers.append({**_merged(defaults.get(key) or {}, template[key]), "name": "main"})
    for container in (template.get("containerSet") or {}).get("containers") or []:
        containers.append(_merged(defaults.get("container") or {}, container))
    containers += [dict(sidecar) for sidecar in template.get("sidecars") or []]
    return containers


def _patch_resources(containers: list[dict], patch, where: str) -> str | None:
    """Apply the container resources a podSpecPatch sets; returns a problem, or None."""
    if not patch:
        return None
    try:
        parsed = yaml.safe_load(patch) if isinstance(patch, str) else patch
    except yaml.YAMLError as exc:
        return f"{where} is not YAML/JSON ({str(exc).splitlines()[0]})"
    if not isinstance(parsed, dict):
        return None
    for patched in parsed.get("containers") or []:
        if not isinstance(patched, dict) or "resources" not in patched:
            continue
        target = next((c for c in containers if c.get("name") == patched.get("name")), None)
        if target is None:
            continue
        target["resources"] = _merged(target.get("resources") or {}, patched["resources"])
    return None


def _substitute(resources: dict, values: dict[str, dict[str, str]]) -> tuple[dict, str | None]:
    """Resource values with the parameters Argo would substitute; the first expression it cannot resolve."""
    text = json.dumps(resources)

    def value(match: re.Match) -> str:
        known = values.get(match.group(1), {})
        return known.get(match.group(2), match.group(0))

    text = _PARAMETER.sub(value, text)
    left = _UNRESOLVED.search(text)
    return json.loads(text), left.group(0) if left else None


def _requests(template: dict, spec: dict, values: dict[str, dict[str, str]], source: str) -> TemplateRequests:
    if not _has_containers(template):
        return TemplateRequests(None, None, 0, 0, source, f"{source} runs no container of its own")
    containers = _containers(template, spec.get("templateDefaults") or {})
    problem = _patch_resources(containers, template.get("podSpecPatch"), f"{source}.podSpecPatch")
    problem = problem or _patch_resources(containers, spec.get("podSpecPatch"), "spec.podSpecPatch")
    requests = []
    for container in containers:
        resources, unresolved = _substitute(container.get("resources") or {}, values)
        if unresolved:
            return TemplateRequests(None, None, 0, 0, source, f"{source}: cannot resolve {unresolved}")
        try:
            requests.append(effective_requests({**container, "resources": resources}, source))
        except ValueError as exc:
            return TemplateRequests(None, None, 0, 0, source, str(exc))
    memory = sum_requests(requests, lambda name: name == "memory")
    return TemplateRequests(
        cpu_cores=sum_requests(requests, lambda name: name == "cpu"),
        memory_bytes=None if memory is None else math.ceil(memory),
        gpus=int(sum_requests(requests, is_gpu_resource) or 0),
        fpgas=int(sum_requests(requests, is_fpga_resource) or 0),
        source=source,
        problem=problem,
    )
