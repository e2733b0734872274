"""Requests from Argo's own record, on Argo's recorded workflows (../shared/data/argo) and edited copies that
use the template forms the controller stores: spec.templates, status.storedTemplates (templateRef and
WorkflowTemplate scopes), status.storedWorkflowTemplateSpec, parameters, podSpecPatch, containerSet."""

from __future__ import annotations

import copy
import json

import pytest

from collectors.cluster.argo_templates import template_requests

GIB = 2**30


@pytest.fixture
def diamond(shared_data) -> dict:
    return json.loads((shared_data / "argo" / "dagDiamondRetry.workflow.json").read_text())


def pod_nodes(obj: dict) -> dict[str, dict]:
    """Pod nodes by display name (A, B, C, D)."""
    return {n["displayName"]: n for n in obj["status"]["nodes"].values() if n["type"] == "Pod"}


def echo(obj: dict) -> dict:
    return next(t for t in obj["spec"]["templates"] if t["name"] == "echo")


@pytest.mark.parametrize(
    "name",
    [
        "dagDiamondRetry.workflow.json",
        "nestedDAG.workflow.json",
        "stepsRetryFormulate.workflow.json",
        "dag-exhausted-retries-xfail.workflow.json",
    ],
)
def test_every_pod_node_of_argos_own_workflows_finds_its_template(shared_data, name):
    obj = json.loads((shared_data / "argo" / name).read_text())
    found = template_requests(obj)
    pods = {node_id for node_id, n in obj["status"]["nodes"].items() if n["type"] == "Pod"}
    assert set(found) == pods
    for node_id, requests in found.items():
        template = obj["status"]["nodes"][node_id]["templateName"]
        # Their containers ask for nothing ("resources": {}): known to be empty, not unknown.
        assert requests.source == f"spec.templates[{template}]" and requests.problem is None
        assert (requests.cpu_cores, requests.memory_bytes, requests.gpus, requests.fpgas) == (
            None,
            None,
            0,
            0,
        )


def test_container_requests_limits_and_gpus(diamond):
    echo(diamond)["container"]["resources"] = {
        "requests": {"cpu": "500m", "memory": "1Gi"},
        "limits": {"nvidia.com/gpu": "2", "memory": "2Gi"},
    }
    got = template_requests(diamond)[pod_nodes(diamond)["A"]["id"]]
    assert (got.cpu_cores, got.memory_bytes, got.gpus, got.fpgas) == (0.5, GIB, 2, 0)


def test_stored_template_of_a_template_ref(diamond):
    node = pod_nodes(diamond)["B"]
    node["templateRef"] = {"name": "gpu-library", "template": "train"}
    node.pop("templateName")
    diamond["status"]["storedTemplates"] = {
        "namespaced/gpu-library/train": {
            "name": "train",
            "container": {
                "image": "trainer:1",
                "resources": {"limits": {"nvidia.com/gpu": "1", "cpu": "4"}},
            },
        }
    }
    got = template_requests(diamond)[node["id"]]
    assert got.source == "status.storedTemplates[namespaced/gpu-library/train]"
    assert (got.cpu_cores, got.gpus) == (4.0, 1)
    node["templateRef"]["clusterScope"] = True
    assert template_requests(diamond)[node["id"]].problem == (
        "template not found (status.storedTemplates[cluster/gpu-library/train])"
    )


def test_a_workflow_template_calling_its_own_template(diamond):
    node = pod_nodes(diamond)["C"]
    node["templateScope"] = "namespaced/pipeline-v3"
    diamond["status"]["storedTemplates"] = {
        "namespaced/pipeline-v3/echo": {
            "name": "echo",
            "script": {"image": "python:3.12", "source": "print(1)", "resources": {"requests": {"cpu": 2}}},
        }
    }
    got = template_requests(diamond)[node["id"]]
    assert got.source == "status.storedTemplates[namespaced/pipeline-v3/echo]" and got.cpu_cores == 2.0


def test_a_run_of_a_workflow_template_ref_keeps_its_templates_in_status(diamond):
    templates = diamond["spec"].pop("templates")
    echo_template = next(t for t in templates if t["name"] == "echo")
    echo_template["container"]["resources"] = {"requests": {"cpu": "250m"}}
    diamond["spec"]["workflowTemplateRef"] = {"name": "diamond"}
    diamond["status"]["storedWorkflowTemplateSpec"] = {"templates": templates}
    got = template_requests(diamond)[pod_nodes(diamond)["D"]["id"]]
    assert got.source == "status.storedWorkflowTemplateSpec.templates[echo]" and got.cpu_cores == 0.25


def test_parameters_are_substituted_and_unresolvable_ones_said(diamond):
    echo(diamond)["inputs"]["parameters"].append({"name": "cores"})
    echo(diamond)["container"]["resources"] = {
        "requests": {"cpu": "{{inputs.parameters.cores}}", "memory": "{{workflow.parameters.memory}}"}
    }
    diamond["spec"]["arguments"] = {"parameters": [{"name": "memory", "value": "512Mi"}]}
    a, b = pod_nodes(diamond)["A"], pod_nodes(diamond)["B"]
    a["inputs"]["parameters"].append({"name": "cores", "value": "3"})
    found = template_requests(diamond)
    assert (found[a["id"]].cpu_cores, found[a["id"]].memory_bytes) == (3.0, GIB // 2)
    assert found[b["id"]].cpu_cores is None
    assert found[b["id"]].problem == "spec.templates[echo]: cannot resolve {{inputs.parameters.cores}}"


def test_pod_spec_patch_and_template_defaults(diamond):
    diamond["spec"]["templateDefaults"] = {"container": {"resources": {"requests": {"memory": "64Mi"}}}}
    echo(diamond)["container"]["resources"] = {"requests": {"cpu": "1"}}
    # The workflow's patch, as Argo's docs write it: JSON in a string, for a container field that is not a string.
    diamond["spec"]["podSpecPatch"] = json.dumps(
        {"containers": [{"name": "main", "resources": {"limits": {"nvidia.com/gpu": "1"}}}]}
    )
    got = template_requests(diamond)[pod_nodes(diamond)["A"]["id"]]
    assert (got.cpu_cores, got.memory_bytes, got.gpus, got.problem) == (1.0, 64 * 2**20, 1, None)


def test_container_sets_and_sidecars_add_up(diamond):
    template = echo(diamond)
    container = template.pop("container")
    template["containerSet"] = {
        "containers": [
            {**copy.deepcopy(container), "name": "a", "resources": {"requests": {"cpu": "1"}}},
            {**copy.deepcopy(container), "name": "main", "resources": {"requests": {"cpu": "1500m"}}},
        ]
    }
    template["sidecars"] = [{"name": "proxy", "image": "envoy", "resources": {"requests": {"cpu": "100m"}}}]
    got = template_requests(diamond)[pod_nodes(diamond)["A"]["id"]]
    assert got.cpu_cores == pytest.approx(2.6)


def test_what_cannot_be_found_is_said(diamond):
    node = pod_nodes(diamond)["A"]
    node["templateName"] = "renamed-since"
    assert (
        template_requests(diamond)[node["id"]].problem == "template not found (spec.templates[renamed-since])"
    )
    del node["templateName"]
    assert template_requests(diamond)[node["id"]].problem.startswith("template not found (the node names no")
    echo(diamond)["container"]["resources"] = {"requests": {"cpu": "lots"}}
    got = template_requests(diamond)[pod_nodes(diamond)["B"]["id"]]
    assert got.cpu_cores is None and "'lots' is not a Kubernetes quantity" in got.problem
