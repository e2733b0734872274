"""Raw PodList / NodeList JSON read through the kubernetes client, over HTTP to a replay of a sample world."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import pytest

from collectors.cluster.kubernetes_live import KubernetesReadError, core_v1, node_list, workflow_pod_list
from datasets.sample_world import generate
from tests.support.replay import ReplayServer

TOKEN = "kube-s3cret"
NAMESPACE = "science"
PODS_PATH = "/api/v1/namespaces/science/pods"


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> Path:
    directory = tmp_path_factory.mktemp("world")
    generate(directory, n_workflows=6, seed=3)
    return directory


@pytest.fixture
def server(world):
    with ReplayServer(world) as replay:
        yield replay


@pytest.fixture
def workflow(world) -> str:
    return sorted(path.stem for path in (world / "kubernetes" / "pods" / NAMESPACE).glob("*.json"))[0]


def test_pod_list_is_the_recorded_one_selected_by_the_workflow_label(server, world, workflow):
    podlist = workflow_pod_list(core_v1(host=server.url), NAMESPACE, workflow)
    recorded = json.loads((world / "kubernetes" / "pods" / NAMESPACE / f"{workflow}.json").read_text())
    assert podlist["kind"] == "PodList"
    assert podlist["items"] == recorded["items"]
    assert server.requests[-1].path == PODS_PATH
    assert server.requests[-1].query["labelSelector"] == f"workflows.argoproj.io/workflow={workflow}"


def test_node_list_is_the_recorded_json_as_sent(server, world):
    assert node_list(core_v1(host=server.url)) == json.loads(
        (world / "kubernetes" / "nodes.json").read_text()
    )


def test_unknown_workflow_has_no_pods(server):
    assert workflow_pod_list(core_v1(host=server.url), NAMESPACE, "no-such-workflow")["items"] == []


@pytest.mark.parametrize("token", [TOKEN, f"Bearer {TOKEN}"])
def test_bearer_token_with_or_without_prefix(world, token):
    with ReplayServer(world, token=TOKEN) as replay:
        assert node_list(core_v1(host=replay.url, token=token))["items"]


def test_missing_or_wrong_token_is_401(world):
    with ReplayServer(world, token=TOKEN) as replay:
        with pytest.raises(
            KubernetesReadError, match=r"^GET /api/v1/nodes: 401 Unauthorized: no bearer token"
        ):
            node_list(core_v1(host=replay.url))
        with pytest.raises(KubernetesReadError, match=r"^GET /api/v1/nodes: 401 Unauthorized") as raised:
            node_list(core_v1(host=replay.url, token="wrong-one"))
    assert "wrong-one" not in str(raised.value)


def test_kubeconfig_is_loaded(world, tmp_path, monkeypatch):
    with ReplayServer(world, token=TOKEN) as replay:
        kubeconfig = tmp_path / "config"
        kubeconfig.write_text(
            json.dumps(
                {
                    "apiVersion": "v1",
                    "kind": "Config",
                    "clusters": [{"name": "replay", "cluster": {"server": replay.url}}],
                    "users": [{"name": "reader", "user": {"token": TOKEN}}],
                    "contexts": [{"name": "replay", "context": {"cluster": "replay", "user": "reader"}}],
                    "current-context": "replay",
                }
            )
        )
        assert node_list(core_v1(kubeconfig=str(kubeconfig)))["items"]
        monkeypatch.setenv("KUBECONFIG", str(kubeconfig))
        assert node_list(core_v1())["items"]


def test_no_configuration_at_all_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.delenv("KUBECONFIG", raising=False)
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    with pytest.raises(KubernetesReadError, match="no usable Kubernetes configuration"):
        core_v1()


@pytest.mark.parametrize(
    ("status", "reason"), [(403, "Forbidden"), (404, "Not Found"), (500, "Internal Server Error")]
)
def test_http_errors_name_the_path(server, workflow, status, reason):
    server.add_fault(PODS_PATH, status=status)
    with pytest.raises(KubernetesReadError, match=rf"^GET {PODS_PATH}\?labelSelector=.*: {status} {reason}"):
        workflow_pod_list(core_v1(host=server.url), NAMESPACE, workflow)


def test_malformed_json(server):
    server.add_fault("/api/v1/nodes", body='{"kind": "NodeList", "items": [')
    with pytest.raises(KubernetesReadError, match=r"^GET /api/v1/nodes: malformed JSON"):
        node_list(core_v1(host=server.url))


def test_json_of_another_kind(server):
    server.add_fault("/api/v1/nodes", body='{"kind": "Status", "items": []}')
    with pytest.raises(KubernetesReadError, match=r"^GET /api/v1/nodes: the response is not a NodeList"):
        node_list(core_v1(host=server.url))


def test_a_delay_beyond_the_timeout(server):
    server.add_fault("/api/v1/nodes", delay=10)
    with pytest.raises(KubernetesReadError, match=r"^GET /api/v1/nodes: no answer in time"):
        node_list(core_v1(host=server.url), timeout=0.2)


def test_connection_refused():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(KubernetesReadError, match=r"^GET /api/v1/nodes: cannot connect"):
        node_list(core_v1(host=f"http://127.0.0.1:{port}"))
