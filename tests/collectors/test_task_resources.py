"""Tasks whose pods are gone or were never read take what Argo recorded; GPUs without ids are unmapped."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from collectors.cluster.argo import workflows_to_tables
from collectors.cluster.kubernetes import GPU_IDS_ANNOTATION, pods_to_table_rows
from collectors.cluster.recorded import RecordedSources
from collectors.cluster.task_resources import POD_DELETED, UNMAPPED_DEVICE, complete_tasks, mark_unmapped
from datasets.sample_world import generate


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> Path:
    directory = tmp_path_factory.mktemp("world")
    generate(directory, n_workflows=6, seed=3)
    return directory


def pod_rows(sources: RecordedSources) -> list[dict]:
    return [row for podlist in sources.pod_lists() for row in pods_to_table_rows(podlist)]


def test_without_kubernetes_argos_own_workflow_keeps_hosts_and_says_what_is_missing(shared_data):
    obj = json.loads((shared_data / "argo" / "dagDiamondRetry.workflow.json").read_text())
    workflows, tasks = workflows_to_tables([obj], cluster="k3d")
    filled, requested, gaps = complete_tasks(tasks, workflows, [obj], None, "--kubernetes none")
    rows = filled.to_pylist()
    assert {row["host_node"] for row in rows} == {"k3d-k3s-default-server-0"}
    assert {row["reason"] for row in rows} == {
        "pod not read (--kubernetes none); requests from spec.templates[echo] (no cpu request)"
    }
    assert all(
        row["pod_uid"] is None and row["pod_name"].startswith("dag-diamond-82q7s-echo-") for row in rows
    )
    assert requested == {(row["workflow_uid"], row["task_id"]): {"gpu": 0, "fpga": 0} for row in rows}
    assert gaps.summary() == (
        "4 of 4 tasks without their pod (--kubernetes none): requests from Argo's templates; "
        "4 tasks with no requests recorded"
    )


def test_no_kubernetes_gives_the_requests_the_pods_had(world):
    sources = RecordedSources(world)
    workflows, with_pods = sources.workflows_and_tasks()
    _, tasks = workflows_to_tables(sources.workflow_objects(), "sample", "synthetic")
    filled, requested, gaps = complete_tasks(tasks, workflows, sources.workflow_objects(), None, "no access")
    ran = [row for row in with_pods.to_pylist() if row["reason"] is None]
    by_key = {(row["workflow_uid"], row["task_id"]): row for row in filled.to_pylist()}
    for row in ran:
        got = by_key[(row["workflow_uid"], row["task_id"])]
        assert got["cpu_request_cores"] == row["cpu_request_cores"]
        assert got["memory_request_bytes"] == row["memory_request_bytes"]
        assert got["reason"].startswith("pod not read (no access); requests from spec.templates[")
        assert requested[(row["workflow_uid"], row["task_id"])]["gpu"] == len(row["gpu_ids"])
    assert gaps.tasks_ran == len(ran) and gaps.pods_unread == {"no access": len(ran)}


def test_pods_deleted_by_pod_gc_are_marked_and_the_rest_joined(world, tmp_path):
    folder = tmp_path / "world"
    shutil.copytree(world, folder)
    gone = sorted((folder / "kubernetes" / "pods").glob("*/*.json"))[0]
    gone.unlink()
    sources = RecordedSources(folder)
    workflows, _ = sources.workflows_and_tasks()
    _, tasks = workflows_to_tables(sources.workflow_objects(), "sample", "synthetic")
    _, reference = RecordedSources(world).workflows_and_tasks()
    filled, _, gaps = complete_tasks(tasks, workflows, sources.workflow_objects(), pod_rows(sources))
    names = dict(
        zip(workflows["workflow_uid"].to_pylist(), workflows["workflow_name"].to_pylist(), strict=True)
    )
    want = {(row["workflow_uid"], row["task_id"]): row for row in reference.to_pylist()}
    deleted = 0
    for row in filled.to_pylist():
        before = want[(row["workflow_uid"], row["task_id"])]
        if names[row["workflow_uid"]] == gone.stem and before["reason"] is None:
            deleted += 1
            assert row["reason"].startswith(f"pod not read ({POD_DELETED}); requests from spec.templates[")
            assert row["pod_uid"] is None and row["cpu_request_cores"] == before["cpu_request_cores"]
        else:
            assert row == before
    assert deleted and gaps.pods_unread == {POD_DELETED: deleted}


def test_gpu_requests_without_ids_become_unmapped_devices(world, tmp_path):
    folder = tmp_path / "world"
    shutil.copytree(world, folder)
    for path in (folder / "kubernetes" / "pods").glob("*/*.json"):
        podlist = json.loads(path.read_text())
        for pod in podlist["items"]:
            pod["metadata"]["annotations"].pop(GPU_IDS_ANNOTATION, None)
        path.write_text(json.dumps(podlist))
    _, reference = RecordedSources(world).workflows_and_tasks()
    sources = RecordedSources(folder)
    workflows, _ = sources.workflows_and_tasks()
    _, tasks = workflows_to_tables(sources.workflow_objects(), "sample", "synthetic")
    filled, requested, gaps = complete_tasks(tasks, workflows, sources.workflow_objects(), pod_rows(sources))
    marked = mark_unmapped(filled, requested, gaps)
    want = {(r["workflow_uid"], r["task_id"]): r["gpu_ids"] for r in reference.to_pylist()}
    holders = 0
    for row in marked.to_pylist():
        ids = want[(row["workflow_uid"], row["task_id"])]
        assert row["gpu_ids"] == [UNMAPPED_DEVICE] * len(ids)
        holders += bool(ids)
    assert holders and gaps.unmapped == {"gpu": holders}
    assert gaps.summary() == (
        f"GPU ids not read for {holders} tasks: their node's devices split by request where holders "
        "overlapped (split=unmapped-by-request)"
    )
    # Ids a source did give are kept.
    assert mark_unmapped(reference, requested).equals(reference)
