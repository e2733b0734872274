"""Argo Workflow parsing, checked on Argo's own recorded workflows and small edited copies."""

from __future__ import annotations

import copy
import json
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import pytest

import schemas
from collectors.cluster.argo import fnv1a_32, parse_workflow, workflows_to_tables

ARGO_DIR = Path(__file__).resolve().parents[2] / ".." / "shared" / "data" / "argo"
TASK_COUNTS = {
    "dag-exhausted-retries-xfail.workflow.json": 4,
    "dagDiamondRetry.workflow.json": 4,
    "nestedDAG.workflow.json": 16,
    "stepsRetryFormulate.workflow.json": 3,
}


def load(name: str) -> dict:
    return json.loads((ARGO_DIR / name).read_text())


def by_path(tasks: list[dict], obj: dict) -> dict[str, dict]:
    """Task rows keyed by Argo node name without the workflow prefix, e.g. "sub-dag1.fail(1)"."""
    nodes = obj["status"]["nodes"]
    prefix = obj["metadata"]["name"]
    return {nodes[row["task_id"]]["name"].removeprefix(prefix).lstrip("."): row for row in tasks}


def edges(tasks: list[dict], obj: dict) -> set[tuple[str, str]]:
    named = by_path(tasks, obj)
    ids = {row["task_id"]: path for path, row in named.items()}
    return {(path, ids[child]) for path, row in named.items() for child in row["children"]}


def test_real_examples_are_all_present():
    assert sorted(p.name for p in ARGO_DIR.glob("*.json")) == sorted(TASK_COUNTS)


@pytest.mark.parametrize("file_name", sorted(TASK_COUNTS))
def test_real_workflow_parses_into_valid_tables(file_name):
    obj = load(file_name)
    workflow, tasks = parse_workflow(obj, cluster="k3d")
    assert len(tasks) == TASK_COUNTS[file_name] == workflow["task_count"]
    assert set(workflow) == set(schemas.WORKFLOWS.names)
    assert all(set(row) == set(schemas.TASKS.names) for row in tasks)
    schemas.validate("workflows", schemas.conform("workflows", [workflow]))
    schemas.validate("tasks", schemas.conform("tasks", tasks))
    # parents is exactly the inverse of children, and edges stay inside the task set.
    ids = {row["task_id"] for row in tasks}
    child_edges = {(row["task_id"], c) for row in tasks for c in row["children"]}
    parent_edges = {(p, row["task_id"]) for row in tasks for p in row["parents"]}
    assert child_edges == parent_edges
    assert {node for edge in child_edges for node in edge} <= ids


@pytest.mark.parametrize("file_name", sorted(TASK_COUNTS))
def test_node_ids_are_workflow_name_and_fnv1a_of_node_name(file_name):
    obj = load(file_name)
    workflow_name = obj["metadata"]["name"]
    for node_id, node in obj["status"]["nodes"].items():
        expected = (
            workflow_name if node["name"] == workflow_name else f"{workflow_name}-{fnv1a_32(node['name'])}"
        )
        assert node_id == expected


def test_fnv1a_32_known_value():
    assert fnv1a_32("dag-diamond-82q7s.D") == 1226654358
    assert fnv1a_32("") == 0x811C9DC5


def test_all_real_workflows_to_tables():
    objs = [load(name) for name in sorted(TASK_COUNTS)]
    workflows, tasks = workflows_to_tables(objs, cluster="k3d", provenance="measured")
    assert workflows.num_rows == 4
    assert tasks.num_rows == sum(TASK_COUNTS.values())
    assert workflows.schema.equals(schemas.WORKFLOWS)
    assert tasks.schema.equals(schemas.TASKS)
    rows_per_uid = Counter(tasks["workflow_uid"].to_pylist())
    assert {row["workflow_uid"]: row["task_count"] for row in workflows.to_pylist()} == rows_per_uid
    assert set(workflows["cluster"].to_pylist()) == {"k3d"}


def test_diamond_edges_times_and_pod_names():
    obj = load("dagDiamondRetry.workflow.json")
    workflow, tasks = parse_workflow(obj, cluster="k3d")
    assert edges(tasks, obj) == {("A", "B"), ("A", "C"), ("B", "D"), ("C", "D")}
    named = by_path(tasks, obj)
    assert named["A"]["parents"] == [] and named["D"]["children"] == []
    d = named["D"]
    assert d["task_id"] == "dag-diamond-82q7s-1226654358"
    assert d["pod_name"] == "dag-diamond-82q7s-echo-1226654358"
    assert d["template_name"] == "echo"
    assert d["host_node"] == "k3d-k3s-default-server-0"
    assert d["started_at"] == datetime(2024, 10, 1, 4, 27, 36, tzinfo=UTC)
    assert d["runtime_seconds"] == 3.0
    assert d["time_resolution_seconds"] == 1.0
    assert [row["task_name"] for row in tasks] == ["A", "B", "C", "D"]  # start order, then id
    assert workflow["workflow_uid"] == "dd3d2674-43d8-446a-afdf-17ec95afade2"
    assert workflow["namespace"] == "argo"
    assert workflow["phase"] == "Succeeded"
    assert workflow["makespan_seconds"] == 19.0
    assert workflow["energy_joules"] is None


@pytest.mark.parametrize(
    "file_name",
    ["dagDiamondRetry.workflow.json", "nestedDAG.workflow.json", "stepsRetryFormulate.workflow.json"],
)
def test_v2_pod_names_match_the_pods_argo_logged(file_name):
    obj = load(file_name)
    _, tasks = parse_workflow(obj, cluster="k3d")
    for row in tasks:
        node = obj["status"]["nodes"][row["task_id"]]
        log_key = next(a["s3"]["key"] for a in node["outputs"]["artifacts"] if a["name"] == "main-logs")
        assert log_key == f"{obj['metadata']['name']}/{row['pod_name']}/main.log"


def test_steps_edges_collapse_step_groups():
    obj = load("stepsRetryFormulate.workflow.json")
    _, tasks = parse_workflow(obj, cluster="k3d")
    assert edges(tasks, obj) == {("[0].hello1", "[1].hello2a"), ("[0].hello1", "[1].hello2b")}
    assert {row["template_name"] for row in tasks} == {"whalesay"}


def test_nested_dag_edges_go_through_sub_dags():
    obj = load("nestedDAG.workflow.json")
    _, tasks = parse_workflow(obj, cluster="k3d")
    inner = {("A", "B"), ("A", "C"), ("B", "D"), ("C", "D")}
    expected = {(f"{outer}.{a}", f"{outer}.{b}") for outer in "ABCD" for a, b in inner}
    # Outer diamond: the exit pod of sub-DAG X feeds the entry pod of each sub-DAG depending on X.
    expected |= {("A.D", "B.A"), ("A.D", "C.A"), ("B.D", "D.A"), ("C.D", "D.A")}
    assert edges(tasks, obj) == expected
    roots = [path for path, row in by_path(tasks, obj).items() if not row["parents"]]
    assert roots == ["A.A"]


def test_exhausted_retries_attempts_skipped_node_and_failed_sub_dag():
    obj = load("dag-exhausted-retries-xfail.workflow.json")
    workflow, tasks = parse_workflow(obj, cluster="minikube")
    named = by_path(tasks, obj)
    assert set(named) == {"success1(0)", "sub-dag1.fail(0)", "sub-dag1.fail(1)", "success2"}
    assert edges(tasks, obj) == {
        ("success1(0)", "sub-dag1.fail(0)"),
        ("success1(0)", "sub-dag1.fail(1)"),
        ("sub-dag1.fail(1)", "success2"),
    }
    success1 = named["success1(0)"]
    assert (success1["task_name"], success1["attempt"], success1["phase"]) == ("success1", 0, "Succeeded")
    fails = [named["sub-dag1.fail(0)"], named["sub-dag1.fail(1)"]]
    assert [(r["task_name"], r["attempt"], r["phase"], r["reason"]) for r in fails] == [
        ("fail", 0, "Failed", None),
        ("fail", 1, "Failed", None),
    ]
    assert all(r["host_node"] == "minikube" for r in fails)
    skipped = named["success2"]
    assert skipped["phase"] == "Omitted"
    assert skipped["reason"] == "skipped: omitted: depends condition not met"
    assert skipped["host_node"] is None and skipped["pod_name"] is None
    assert skipped["parents"] == [named["sub-dag1.fail(1)"]["task_id"]]
    # No uid and no namespace in this capture: the uid falls back to the name.
    assert workflow["workflow_uid"] == "retry-with-dags"
    assert workflow["namespace"] is None
    assert workflow["phase"] == "Running"
    assert workflow["finished_at"] is None and workflow["makespan_seconds"] is None
    # No pod-name-format annotation: the v2 default applies (this 2020 capture predates v2,
    # so its real pods had v1 names; joining the pods replaces the derived name).
    assert success1["pod_name"] == "retry-with-dags-success-731586981"


def test_uid_fallback_uses_namespace_when_present():
    obj = load("dag-exhausted-retries-xfail.workflow.json")
    obj["metadata"]["namespace"] = "science"
    workflow, tasks = parse_workflow(obj, cluster="c")
    assert workflow["workflow_uid"] == "science/retry-with-dags"
    assert {row["workflow_uid"] for row in tasks} == {"science/retry-with-dags"}


def test_v1_pod_names_are_node_ids():
    obj = load("dagDiamondRetry.workflow.json")
    obj["metadata"]["annotations"]["workflows.argoproj.io/pod-name-format"] = "v1"
    _, tasks = parse_workflow(obj, cluster="k3d")
    assert all(row["pod_name"] == row["task_id"] for row in tasks)


def single_pod_workflow() -> dict:
    """A workflow whose entry template is a container: the root node is the pod."""
    return {
        "kind": "Workflow",
        "metadata": {"name": "hello-x7k2p", "namespace": "argo", "uid": "u-1"},
        "status": {
            "phase": "Succeeded",
            "startedAt": "2024-10-01T04:27:23Z",
            "finishedAt": "2024-10-01T04:27:30Z",
            "nodes": {
                "hello-x7k2p": {
                    "id": "hello-x7k2p",
                    "name": "hello-x7k2p",
                    "displayName": "hello-x7k2p",
                    "type": "Pod",
                    "templateRef": {"name": "shared-templates", "template": "say"},
                    "phase": "Succeeded",
                    "hostNodeName": "worker-1",
                    "startedAt": "2024-10-01T06:27:23.250+02:00",
                    "finishedAt": "2024-10-01T04:27:29.5Z",
                }
            },
        },
    }


def test_root_pod_name_template_ref_and_fractional_times():
    workflow, tasks = parse_workflow(single_pod_workflow(), cluster="c", provenance="synthetic")
    (row,) = tasks
    assert row["pod_name"] == "hello-x7k2p"
    assert row["template_name"] == "say"
    assert row["started_at"] == datetime(2024, 10, 1, 4, 27, 23, 250000, tzinfo=UTC)
    assert row["runtime_seconds"] == pytest.approx(6.25)
    assert row["time_resolution_seconds"] == pytest.approx(0.001)
    assert row["provenance"] == workflow["provenance"] == "synthetic"


def test_unstarted_pod_and_structural_nodes_between_pods():
    """A -> Suspend -> B, B never ran: the suspend node is collapsed, B is kept with a reason."""
    obj = single_pod_workflow()
    wf = "hello-x7k2p"
    nodes = {
        wf: {"id": wf, "name": wf, "type": "DAG", "phase": "Running", "children": [f"{wf}-1"]},
        f"{wf}-1": {
            "id": f"{wf}-1",
            "name": f"{wf}.a",
            "displayName": "a",
            "type": "Pod",
            "templateName": "t",
            "phase": "Succeeded",
            "hostNodeName": "worker-1",
            "children": [f"{wf}-2"],
            "startedAt": "2024-10-01T04:27:23Z",
            "finishedAt": "2024-10-01T04:27:25Z",
        },
        f"{wf}-2": {
            "id": f"{wf}-2",
            "name": f"{wf}.approve",
            "type": "Suspend",
            "phase": "Succeeded",
            "children": [f"{wf}-3"],
        },
        f"{wf}-3": {
            "id": f"{wf}-3",
            "name": f"{wf}.b",
            "displayName": "b",
            "type": "Pod",
            "templateName": "t",
            "phase": "Pending",
            "startedAt": "2024-10-01T04:27:26Z",
        },
    }
    obj["status"]["nodes"] = nodes
    workflow, tasks = parse_workflow(obj, cluster="c")
    assert [row["task_name"] for row in tasks] == ["a", "b"]
    a, b = tasks
    assert a["children"] == [b["task_id"]] and b["parents"] == [a["task_id"]]
    assert b["reason"] == "never ran: no hostNodeName"
    assert b["host_node"] is None and b["pod_name"] == f"{wf}-t-3"
    assert b["finished_at"] is None and b["runtime_seconds"] is None
    assert workflow["task_count"] == 2


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (
            lambda n: n.update(startedAt="yesterday"),
            r"node hello-x7k2p.*startedAt: 'yesterday' is not an RFC 3339",
        ),
        (
            lambda n: n.update(finishedAt="2024-10-01T04:27:29"),
            r"finishedAt: '2024-10-01T04:27:29' is not an RFC 3339",
        ),
        (lambda n: n.update(finishedAt="2024-10-01T00:00:00Z"), r"node hello-x7k2p.*finishedAt .* before"),
        (lambda n: n.update(children=["hello-x7k2p-404"]), r"child 'hello-x7k2p-404' is not in status.nodes"),
        (lambda n: n.pop("name"), r"node hello-x7k2p: node has no name"),
    ],
)
def test_bad_node_fields_raise_naming_workflow_and_node(edit, message):
    obj = single_pod_workflow()
    edit(obj["status"]["nodes"]["hello-x7k2p"])
    with pytest.raises(ValueError, match=message):
        parse_workflow(obj, cluster="c")


def test_bad_workflow_objects_raise():
    obj = single_pod_workflow()
    compressed = copy.deepcopy(obj)
    compressed["status"]["compressedNodes"] = compressed["status"].pop("nodes")
    with pytest.raises(ValueError, match="argo/hello-x7k2p: status.nodes is compressed"):
        parse_workflow(compressed, cluster="c")
    with pytest.raises(ValueError, match="no metadata.name"):
        parse_workflow({"metadata": {}}, cluster="c")
    with pytest.raises(ValueError, match="kind is 'Pod'"):
        parse_workflow({**obj, "kind": "Pod"}, cluster="c")
    with pytest.raises(schemas.SchemaError, match="provenance"):
        workflows_to_tables([obj], cluster="c", provenance="guessed")
