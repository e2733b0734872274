"""Reading finished workflows from an Argo Server, through Hera, over HTTP to a replay of Argo's own objects."""

from __future__ import annotations

import copy
import json
import socket
from datetime import UTC, datetime
from pathlib import Path

import pytest
from hera.workflows import WorkflowsService

from collectors.cluster.argo import workflows_to_tables
from collectors.cluster.argo_live import (
    COMPLETED_SELECTOR,
    WITHOUT_NODES,
    ArgoReadError,
    argo_service,
    finished_summary_page,
    finished_workflows,
)
from tests.support.replay import ReplayServer

ARGO_DIR = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "argo"
SINCE = datetime(2020, 1, 1, tzinfo=UTC)
UNTIL = datetime(2030, 1, 1, tzinfo=UTC)
DIAMOND_UID = "dd3d2674-43d8-446a-afdf-17ec95afade2"
NESTED_UID = "402ed1f0-0dbf-42fd-92b8-b7858ba2979c"
STEPS_UID = "0e7608c7-4555-46a4-8697-3be04eec428b"
XFAIL_UID = "5b0e6c1e-8a65-4d0c-9a51-0c8f2f1e7a01"
TOKEN = "s3cret-token"


def load(name: str) -> dict:
    return json.loads((ARGO_DIR / name).read_text())


def completed_xfail() -> dict:
    """The example captured mid-run, as it would look once finished (it lacks namespace, uid and labels)."""
    obj = copy.deepcopy(load("dag-exhausted-retries-xfail.workflow.json"))
    obj["metadata"].update(
        namespace="argo",
        uid=XFAIL_UID,
        labels={"workflows.argoproj.io/completed": "true", "workflows.argoproj.io/phase": "Failed"},
    )
    obj["status"].update(phase="Failed", finishedAt="2020-06-02T00:26:50Z")
    return obj


@pytest.fixture(scope="module")
def real() -> dict[str, dict]:
    """The four real Argo examples by uid, all finished."""
    objs = [
        load("dagDiamondRetry.workflow.json"),
        load("nestedDAG.workflow.json"),
        load("stepsRetryFormulate.workflow.json"),
        completed_xfail(),
    ]
    return {obj["metadata"]["uid"]: obj for obj in objs}


@pytest.fixture
def server(real):
    """nestedDAG is both live and archived (Argo keeps it live until its TTL), xfail only archived."""
    with ReplayServer(
        workflows=list(real.values()),
        archived_uids=[NESTED_UID, XFAIL_UID],
        live_uids=[DIAMOND_UID, NESTED_UID, STEPS_UID],
    ) as replay:
        yield replay


def sorted_tables(objs: list[dict]):
    workflows, tasks = workflows_to_tables(objs, cluster="k3d")
    return workflows.sort_by("workflow_uid"), tasks.sort_by(
        [("workflow_uid", "ascending"), ("task_id", "ascending")]
    )


def paths(replay: ReplayServer) -> list[str]:
    return [request.path for request in replay.requests]


def test_live_and_archived_workflows_come_back_once_with_nodes_and_parse_as_the_files(server, real):
    got = finished_workflows(argo_service(server.url), "argo", SINCE, UNTIL)
    assert sorted(obj["metadata"]["uid"] for obj in got) == sorted(real)
    # The exact JSON of the files, nodes included, after the Hera round trip.
    assert {obj["metadata"]["uid"]: obj for obj in got} == real
    assert all(obj["status"]["nodes"] for obj in got)
    got_workflows, got_tasks = sorted_tables(got)
    want_workflows, want_tasks = sorted_tables(list(real.values()))
    assert got_workflows.equals(want_workflows)
    assert got_tasks.equals(want_tasks)
    # Oldest first; the live copy of nestedDAG is used, only xfail is fetched from the archive.
    finished = [obj["status"]["finishedAt"] for obj in got]
    assert finished == sorted(finished)
    assert f"/api/v1/archived-workflows/{XFAIL_UID}" in paths(server)
    assert f"/api/v1/archived-workflows/{NESTED_UID}" not in paths(server)


def test_page_size_one_returns_everything_once(server, real):
    got = finished_workflows(argo_service(server.url), "argo", SINCE, UNTIL, page_size=1)
    assert {obj["metadata"]["uid"]: obj for obj in got} == real
    assert len(got) == len(real)
    lists = [r for r in server.requests if r.path in ("/api/v1/workflows/argo", "/api/v1/archived-workflows")]
    assert all(r.query["listOptions.limit"] == "1" for r in lists)
    assert paths(server).count("/api/v1/workflows/argo") == 3  # three live workflows, one per page
    assert paths(server).count("/api/v1/archived-workflows") == 2
    assert sum("listOptions.continue" in r.query for r in lists) == 3


def test_summary_pages_walk_the_live_list_then_the_archive_asking_only_for_times(server, real):
    """What the finished-run sensor reads: one page per call, live then archived, small items."""
    service, token, pages, summaries = argo_service(server.url), None, 0, []
    while True:
        page, token = finished_summary_page(service, "argo", token, page_size=1)
        pages, summaries = pages + 1, summaries + page
        if token is None:
            break
    assert pages == 5  # three live workflows, then two archived, one per page
    assert sorted({s["uid"] for s in summaries}) == sorted(real)
    assert [s["uid"] for s in summaries].count(NESTED_UID) == 2  # live and archived: the sensor dedupes
    for summary in summaries:
        status = real[summary["uid"]]["status"]
        assert (summary["started_at"], summary["finished_at"]) == (status["startedAt"], status["finishedAt"])
    live = [r for r in server.requests if r.path == "/api/v1/workflows/argo"]
    assert all(r.query["listOptions.labelSelector"] == COMPLETED_SELECTOR for r in live)
    assert all("items.status.nodes" not in r.query["fields"] for r in live)
    assert not any(p.startswith("/api/v1/archived-workflows/") for p in paths(server))


def test_window_filters_by_finished_at_since_inclusive_until_exclusive(server):
    since = datetime(2024, 10, 1, 4, 27, 42, tzinfo=UTC)  # dagDiamondRetry's finishedAt
    until = datetime(2024, 10, 16, 4, 13, 49, tzinfo=UTC)  # nestedDAG's finishedAt
    got = finished_workflows(argo_service(server.url), "argo", since, until)
    assert [obj["metadata"]["uid"] for obj in got] == [DIAMOND_UID]
    # Archived workflows outside the window are not fetched.
    assert not any(p.startswith("/api/v1/archived-workflows/") for p in paths(server))


def test_the_completed_label_selector_is_sent_and_running_workflows_stay_out(real):
    running = copy.deepcopy(load("dag-exhausted-retries-xfail.workflow.json"))
    running["metadata"]["namespace"] = "argo"
    finished = [obj for uid, obj in real.items() if uid != XFAIL_UID]
    with ReplayServer(workflows=[*finished, running]) as replay:
        got = finished_workflows(argo_service(replay.url), "argo", SINCE, UNTIL, include_archived=False)
        lists = [r for r in replay.requests if r.path == "/api/v1/workflows/argo"]
    assert sorted(obj["metadata"]["name"] for obj in got) == sorted(o["metadata"]["name"] for o in finished)
    assert lists and all(r.query["listOptions.labelSelector"] == COMPLETED_SELECTOR for r in lists)
    assert not any(p.startswith("/api/v1/archived-workflows") for p in [r.path for r in replay.requests])


def test_list_pages_without_nodes_then_each_workflow_is_fetched_by_name(server, real):
    got = finished_workflows(argo_service(server.url), "argo", SINCE, UNTIL, list_nodes=False)
    assert {obj["metadata"]["uid"]: obj for obj in got} == real
    lists = [r for r in server.requests if r.path == "/api/v1/workflows/argo"]
    assert all(r.query["fields"] == WITHOUT_NODES for r in lists)
    live_names = {real[uid]["metadata"]["name"] for uid in (DIAMOND_UID, NESTED_UID, STEPS_UID)}
    assert {
        p.rsplit("/", 1)[1] for p in paths(server) if p.startswith("/api/v1/workflows/argo/")
    } == live_names


def test_no_namespace_reads_every_namespace(real):
    moved = copy.deepcopy(real[XFAIL_UID])
    moved["metadata"]["namespace"] = "other"
    workflows = [obj for uid, obj in real.items() if uid != XFAIL_UID] + [moved]
    with ReplayServer(workflows=workflows, archived_uids=[STEPS_UID]) as replay:
        got = finished_workflows(argo_service(replay.url), None, SINCE, UNTIL)
        archive_lists = [r for r in replay.requests if r.path == "/api/v1/archived-workflows"]
    assert {obj["metadata"]["namespace"] for obj in got} == {"argo", "other"}
    assert len(got) == 4
    assert "/api/v1/workflows/" in [r.path for r in replay.requests]
    assert all("namespace" not in r.query for r in archive_lists)


def test_compressed_nodes_the_server_did_not_fill_in_are_an_error(real):
    obj = copy.deepcopy(real[DIAMOND_UID])
    del obj["status"]["nodes"]
    obj["status"]["compressedNodes"] = "H4sIAAAAAAAA/6quBQQAAP//"
    with ReplayServer(workflows=[obj]) as replay, pytest.raises(ArgoReadError) as raised:
        finished_workflows(argo_service(replay.url), "argo", SINCE, UNTIL)
    message = str(raised.value)
    assert "GET /api/v1/workflows/argo/dag-diamond-82q7s" in message
    assert "compressed or offloaded" in message and "Argo Server" in message


def test_argo_service_keeps_a_base_path_and_wants_a_scheme():
    assert argo_service("https://example.org/argo", token="t").host == "https://example.org/argo/"
    with pytest.raises(ValueError, match="http"):
        argo_service("argo-server:2746")


@pytest.fixture
def guarded(real, monkeypatch):
    monkeypatch.delenv("ARGO_TOKEN", raising=False)
    with ReplayServer(workflows=list(real.values()), archived_uids=[XFAIL_UID], token=TOKEN) as replay:
        yield replay


def test_no_token_is_401(guarded):
    with pytest.raises(ArgoReadError, match=r"^GET /api/v1/workflows/argo: 401 Unauthorized"):
        finished_workflows(argo_service(guarded.url), "argo", SINCE, UNTIL)


def test_wrong_token_is_401_and_never_echoed(guarded):
    with pytest.raises(ArgoReadError, match=r"^GET /api/v1/workflows/argo: 401 Unauthorized") as raised:
        finished_workflows(argo_service(guarded.url, token="not-the-token"), "argo", SINCE, UNTIL)
    assert "not-the-token" not in str(raised.value)


@pytest.mark.parametrize("value", [TOKEN, f"Bearer {TOKEN}"])
def test_token_from_argo_token_with_or_without_bearer_prefix(guarded, real, monkeypatch, value):
    monkeypatch.setenv("ARGO_TOKEN", value)
    got = finished_workflows(argo_service(guarded.url), "argo", SINCE, UNTIL)
    assert {obj["metadata"]["uid"] for obj in got} == set(real)


def test_404_on_an_archived_uid(server):
    server.add_fault(rf"/api/v1/archived-workflows/{XFAIL_UID}$", status=404)
    with pytest.raises(ArgoReadError, match=rf"^GET /api/v1/archived-workflows/{XFAIL_UID}: 404 Not Found"):
        finished_workflows(argo_service(server.url), "argo", SINCE, UNTIL)


def test_500_on_the_list(server):
    server.add_fault(r"^/api/v1/workflows/argo$", status=500)
    with pytest.raises(ArgoReadError, match=r"^GET /api/v1/workflows/argo: 500 Internal Server Error"):
        finished_workflows(argo_service(server.url), "argo", SINCE, UNTIL)


def test_500_through_a_plain_hera_service_still_names_the_path(server):
    server.add_fault(r"^/api/v1/archived-workflows$", status=500)
    service = WorkflowsService(host=server.url)
    with pytest.raises(ArgoReadError, match=r"^GET /api/v1/archived-workflows: .*500"):
        finished_workflows(service, "argo", SINCE, UNTIL)


def test_malformed_json(server):
    server.add_fault(r"^/api/v1/archived-workflows$", body='{"metadata": {}, "items": [')
    with pytest.raises(ArgoReadError, match=r"^GET /api/v1/archived-workflows: malformed JSON"):
        finished_workflows(argo_service(server.url), "argo", SINCE, UNTIL)


def test_json_that_is_not_a_workflow(server):
    server.add_fault(rf"/api/v1/archived-workflows/{XFAIL_UID}$", body="[1, 2]")
    with pytest.raises(
        ArgoReadError, match=rf"^GET /api/v1/archived-workflows/{XFAIL_UID}: the response is not"
    ):
        finished_workflows(argo_service(server.url), "argo", SINCE, UNTIL)


def test_a_delay_beyond_the_timeout(server):
    server.add_fault(rf"/api/v1/archived-workflows/{XFAIL_UID}$", delay=10)
    with pytest.raises(
        ArgoReadError, match=rf"^GET /api/v1/archived-workflows/{XFAIL_UID}: no answer in time"
    ):
        finished_workflows(argo_service(server.url, timeout=0.3), "argo", SINCE, UNTIL)


def test_connection_refused():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(ArgoReadError, match=r"^GET /api/v1/workflows/argo: cannot connect"):
        finished_workflows(argo_service(f"http://127.0.0.1:{port}"), "argo", SINCE, UNTIL)


def test_window_and_page_size_are_checked(server):
    service = argo_service(server.url)
    with pytest.raises(ValueError, match="time zone"):
        finished_workflows(service, "argo", datetime(2024, 1, 1), UNTIL)
    with pytest.raises(ValueError, match="empty window"):
        finished_workflows(service, "argo", UNTIL, SINCE)
    with pytest.raises(ValueError, match="page_size"):
        finished_workflows(service, "argo", SINCE, UNTIL, page_size=0)
