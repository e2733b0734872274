"""The replay server: a sample world read over HTTP gives the folder's tables, and it answers like the real APIs."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest
import requests

import schemas
from collectors.cluster.argo import workflows_to_tables
from collectors.cluster.argo_live import argo_service, finished_workflows
from collectors.cluster.kubernetes import join_pods, nodes_to_machines, pods_to_table_rows
from collectors.cluster.kubernetes_live import core_v1, node_list, workflow_pod_list
from collectors.cluster.recorded import RecordedSources
from datasets.sample_world import generate
from tests.support.replay import ReplayServer

SINCE = datetime(2000, 1, 1, tzinfo=UTC)
UNTIL = datetime(2100, 1, 1, tzinfo=UTC)
COMPLETED = "workflows.argoproj.io/completed=true"


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> Path:
    directory = tmp_path_factory.mktemp("world")
    generate(directory, n_workflows=6, seed=3)
    return directory


@pytest.fixture(scope="module")
def uids(world) -> list[str]:
    """The world's workflow uids, in file order."""
    return [obj["metadata"]["uid"] for obj in RecordedSources(world).workflow_objects()]


def get(replay: ReplayServer, path: str, **params) -> requests.Response:
    return requests.get(replay.url + path, params=params, timeout=5)


def by_key(table, *keys):
    return table.sort_by([(key, "ascending") for key in keys])


def test_sample_world_over_http_gives_the_recorded_tables(world, uids):
    recorded = RecordedSources(world)
    cluster, provenance = recorded.manifest["cluster"], recorded.manifest["provenance"]
    # Half archived, one of those still live as well.
    with ReplayServer(world, archived_uids=uids[::2], live_uids=[*uids[1::2], uids[0]]) as replay:
        objs = finished_workflows(argo_service(replay.url), "science", SINCE, UNTIL, page_size=2)
        api = core_v1(host=replay.url)
        pods = [
            row
            for obj in objs
            for row in pods_to_table_rows(
                workflow_pod_list(api, obj["metadata"]["namespace"], obj["metadata"]["name"])
            )
        ]
        machines = nodes_to_machines(node_list(api), provenance)
    workflows, tasks = workflows_to_tables(objs, cluster, provenance)
    names = {obj["metadata"]["uid"]: obj["metadata"]["name"] for obj in objs}
    tasks = schemas.validate("tasks", join_pods(tasks, pods, names))

    want_workflows, want_tasks = recorded.workflows_and_tasks()
    assert sorted(names) == sorted(uids)
    assert by_key(workflows, "workflow_uid").equals(by_key(want_workflows, "workflow_uid"))
    assert by_key(tasks, "workflow_uid", "task_id").equals(by_key(want_tasks, "workflow_uid", "task_id"))
    assert machines.equals(recorded.machines())
    # The pods really were joined: requests come only from them.
    assert tasks["cpu_request_cores"].null_count < tasks.num_rows


def test_pagination_with_an_opaque_continue_token(world):
    with ReplayServer(world) as replay:
        names, token, pages = [], None, 0
        while True:
            params = {"listOptions.limit": "4"} | ({"listOptions.continue": token} if token else {})
            page = get(replay, "/api/v1/workflows/science", **params).json()
            names += [item["metadata"]["name"] for item in page["items"]]
            pages += 1
            token = page["metadata"].get("continue")
            if not token:
                break
        bad = get(replay, "/api/v1/workflows/science", **{"listOptions.continue": "not-a-token"})
    assert pages == 2 and len(names) == 6 == len(set(names))
    assert bad.status_code == 400 and bad.json()["code"] == 3


def test_label_selectors(world):
    phases = {
        obj["metadata"]["name"]: obj["metadata"]["labels"]["workflows.argoproj.io/phase"]
        for obj in RecordedSources(world).workflow_objects()
    }
    succeeded = sorted(name for name, phase in phases.items() if phase == "Succeeded")
    assert 0 < len(succeeded) < len(phases)
    with ReplayServer(world) as replay:

        def names(selector: str) -> list[str]:
            page = get(replay, "/api/v1/workflows/", **{"listOptions.labelSelector": selector}).json()
            return sorted(item["metadata"]["name"] for item in page["items"] or [])

        everything = names("")
        assert len(everything) == 6
        assert names(COMPLETED) == everything
        assert names(f"{COMPLETED},workflows.argoproj.io/phase=Succeeded") == succeeded
        assert (
            names("workflows.argoproj.io/completed==true,workflows.argoproj.io/phase==Succeeded") == succeeded
        )
        assert names("workflows.argoproj.io/phase!=Succeeded") == sorted(set(everything) - set(succeeded))
        assert names("workflows.argoproj.io/completed!=true") == []
        assert names("no-such-label!=x") == everything
        assert names("workflows.argoproj.io/completed=false") == []
        unsupported = get(replay, "/api/v1/workflows/", **{"listOptions.labelSelector": "env in (a,b)"})
        assert unsupported.status_code == 400


def test_fields_exclude_and_include(world):
    with ReplayServer(world) as replay:
        light = get(replay, "/api/v1/workflows/science", fields="-items.status.nodes").json()
        names = get(replay, "/api/v1/workflows/science", fields="items.metadata.name").json()
        one = light["items"][0]["metadata"]["name"]
        full = get(replay, f"/api/v1/workflows/science/{one}").json()
    assert all("nodes" not in item["status"] and item["status"]["finishedAt"] for item in light["items"])
    assert [set(item) for item in names["items"]] == [{"metadata"}] * 6
    assert all(item["metadata"] == {"name": item["metadata"]["name"]} for item in names["items"])
    assert full["status"]["nodes"]


def test_archive_lists_summaries_without_nodes_and_gets_full_workflows(world, uids):
    with ReplayServer(world, archived_uids=uids) as replay:
        summaries = get(replay, "/api/v1/archived-workflows", namespace="science").json()["items"]
        elsewhere = get(replay, "/api/v1/archived-workflows", namespace="elsewhere").json()["items"]
        full = get(replay, f"/api/v1/archived-workflows/{uids[0]}").json()
        live = get(replay, "/api/v1/workflows/science").json()["items"]
        missing = get(replay, "/api/v1/archived-workflows/no-such-uid")
    assert len(summaries) == 6 and elsewhere is None and live is None
    assert all("nodes" not in item["status"] and item["status"]["finishedAt"] for item in summaries)
    assert all(set(item) == {"metadata", "spec", "status"} for item in summaries)
    started = [item["status"]["startedAt"] for item in summaries]
    assert started == sorted(started, reverse=True)
    assert full == RecordedSources(world).workflow_objects()[0]
    assert missing.status_code == 404 and missing.json()["code"] == 5


def test_kubernetes_paths(world):
    recorded = RecordedSources(world)
    with ReplayServer(world) as replay:
        all_pods = get(replay, "/api/v1/pods").json()
        elsewhere = get(replay, "/api/v1/namespaces/elsewhere/pods").json()
        nodes = get(replay, "/api/v1/nodes", labelSelector="no-such-label=x").json()
        missing = get(replay, "/api/v1/namespaces/science/services")
    assert all_pods["kind"] == "PodList"
    assert len(all_pods["items"]) == sum(len(podlist["items"]) for podlist in recorded.pod_lists())
    assert elsewhere["items"] == [] and nodes["kind"] == "NodeList" and nodes["items"] == []
    assert missing.status_code == 404
    assert missing.json()["code"] == 5  # not a Kubernetes route, so answered as the Argo Server would


def test_auth_and_error_bodies_follow_each_api(world):
    with ReplayServer(world, token="t0k") as replay:
        argo = get(replay, "/api/v1/workflows/science")
        kube = get(replay, "/api/v1/nodes")
        wrong = requests.get(
            replay.url + "/api/v1/nodes", headers={"Authorization": "Bearer nope"}, timeout=5
        )
        right = requests.get(replay.url + "/api/v1/nodes", headers={"Authorization": "Bearer t0k"}, timeout=5)
    assert argo.status_code == 401 and argo.json() == {"code": 16, "message": "no bearer token sent"}
    assert kube.status_code == 401
    assert kube.json() | {"message": None} == {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": None,
        "reason": "Unauthorized",
        "code": 401,
    }
    assert wrong.json()["message"] == "token not valid" and right.status_code == 200


def test_faults_first_match_wins_and_can_be_cleared(world):
    with ReplayServer(world) as replay:
        replay.add_fault(r"/api/v1/nodes$", status=503, body="upstream down")
        replay.add_fault(r"/api/v1/", status=500)
        replay.add_fault(r"/api/v1/pods$", delay=0.05, body="{broken")
        first = get(replay, "/api/v1/nodes")
        second = get(replay, "/api/v1/pods")
        replay.clear_faults()
        replay.add_fault(r"/api/v1/pods$", delay=0.05, body="{broken")
        delayed = get(replay, "/api/v1/pods")
        replay.clear_faults()
        healthy = get(replay, "/api/v1/pods")
    assert (first.status_code, first.text) == (503, "upstream down")
    assert second.status_code == 500 and second.json()["reason"] == "InternalServerError"
    assert (delayed.status_code, delayed.text) == (200, "{broken")
    assert healthy.status_code == 200 and healthy.json()["kind"] == "PodList"


def test_stop_does_not_wait_for_a_delayed_answer(world):
    replay = ReplayServer(world).start()
    replay.add_fault(r"/api/v1/nodes$", delay=30)
    with pytest.raises(requests.Timeout):
        requests.get(replay.url + "/api/v1/nodes", timeout=0.1)
    began = time.monotonic()
    replay.stop()
    assert time.monotonic() - began < 2


def test_explicit_workflows_and_configuration_errors(world):
    obj = RecordedSources(world).workflow_objects()[0]
    with ReplayServer(workflows=[obj]) as replay:
        listed = get(replay, "/api/v1/workflows/science").json()["items"]
        nodes = get(replay, "/api/v1/nodes").json()
    assert listed == [obj] and nodes["items"] == []
    with pytest.raises(ValueError, match="no workflow has uid"):
        ReplayServer(workflows=[obj], archived_uids=["nope"])
    with pytest.raises(ValueError, match="metadata.name"):
        ReplayServer(workflows=[{"metadata": {}}])
    with pytest.raises(RuntimeError, match="not started"):
        _ = ReplayServer(workflows=[obj]).url


def test_recorded_request_log_holds_paths_and_queries_only(world):
    with ReplayServer(world, token="t0k") as replay:
        requests.get(
            replay.url + "/api/v1/pods?labelSelector=a%3Db", headers={"Authorization": "x"}, timeout=5
        )
    assert [(r.path, r.query) for r in replay.requests] == [("/api/v1/pods", {"labelSelector": "a=b"})]
    assert "t0k" not in json.dumps([vars(r) for r in replay.requests])
