"""Raw `PodList` / `NodeList` JSON from a live Kubernetes API, for collectors/cluster/kubernetes.py to parse.

Bodies are kept exactly as the API server sent them (`_preload_content=False`), not turned into the
client's models, so recorded files and live reads share one parser. Failures raise
KubernetesReadError naming the request.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable
from pathlib import Path

import urllib3
from kubernetes import client, config
from kubernetes.client.exceptions import ApiException

from collectors.cluster.kubernetes import WORKFLOW_LABEL

DEFAULT_TIMEOUT_SECONDS = 30.0
DEFAULT_KUBECONFIG = "~/.kube/config"
SERVER_MESSAGE_CHARS = 300
_BEARER = re.compile(r"^\s*bearer\s+", re.IGNORECASE)


class KubernetesReadError(RuntimeError):
    """Reading the Kubernetes API failed; the message names the request and what went wrong."""


def core_v1(
    host: str | None = None,
    token: str | None = None,
    kubeconfig: str | None = None,
    verify_ssl: bool = True,
) -> client.CoreV1Api:
    """A CoreV1Api with its own configuration (the package's global default is left alone).

    With `host`, talk to it directly (with `token` as bearer token, if given). Otherwise load
    `kubeconfig`, $KUBECONFIG or ~/.kube/config, or, when none exists, the in-cluster service account.
    `token` and `verify_ssl=False` override what the loaded configuration says.
    """
    configuration = client.Configuration()
    if host is not None:
        configuration.host = host.rstrip("/")
    else:
        path = kubeconfig or os.environ.get("KUBECONFIG") or DEFAULT_KUBECONFIG
        try:
            if kubeconfig or os.environ.get("KUBECONFIG") or Path(path).expanduser().exists():
                config.load_kube_config(config_file=path, client_configuration=configuration)
            else:
                config.load_incluster_config(client_configuration=configuration)
        except config.ConfigException as exc:
            raise KubernetesReadError(
                f"no usable Kubernetes configuration (kubeconfig {path} or in-cluster): {exc}"
            ) from exc
    if token:
        # The whole header value, prefix included: kubernetes 36 looks the prefix up under another key
        # ("BearerToken") than earlier releases ("authorization"), the value under either.
        configuration.api_key = {"authorization": f"Bearer {_BEARER.sub('', token).strip()}"}
        configuration.api_key_prefix = {}
    if not verify_ssl:
        configuration.verify_ssl = False
    return client.CoreV1Api(client.ApiClient(configuration))


def workflow_pod_list(
    api: client.CoreV1Api, namespace: str, workflow_name: str, *, timeout: float = DEFAULT_TIMEOUT_SECONDS
) -> dict:
    """The PodList of one Argo workflow's pods, selected by the label Argo puts on them."""
    selector = f"{WORKFLOW_LABEL}={workflow_name}"
    return _read(
        f"/api/v1/namespaces/{namespace}/pods?labelSelector={selector}",
        "PodList",
        lambda: api.list_namespaced_pod(
            namespace, label_selector=selector, _preload_content=False, _request_timeout=timeout
        ),
    )


def node_list(api: client.CoreV1Api, *, timeout: float = DEFAULT_TIMEOUT_SECONDS) -> dict:
    return _read(
        "/api/v1/nodes", "NodeList", lambda: api.list_node(_preload_content=False, _request_timeout=timeout)
    )


def _read(path: str, kind: str, call: Callable[[], urllib3.BaseHTTPResponse]) -> dict:
    try:
        response = call()
        try:
            body = response.data
        finally:
            response.release_conn()
    except ApiException as exc:
        raise KubernetesReadError(
            f"GET {path}: {exc.status} {exc.reason}{_server_message(exc.body)}"
        ) from exc
    except urllib3.exceptions.HTTPError as exc:
        raise KubernetesReadError(f"GET {path}: {_transport_failure(exc)}") from exc
    try:
        obj = json.loads(body)
    except (UnicodeDecodeError, ValueError) as exc:
        raise KubernetesReadError(f"GET {path}: malformed JSON in the response ({exc})") from exc
    if not isinstance(obj, dict) or not isinstance(obj.get("items"), list) or obj.get("kind", kind) != kind:
        raise KubernetesReadError(f"GET {path}: the response is not a {kind}")
    return obj


def _transport_failure(exc: urllib3.exceptions.HTTPError) -> str:
    """What went wrong below HTTP; urllib3 wraps the last error of its retries in MaxRetryError."""
    reason = exc.reason if isinstance(exc, urllib3.exceptions.MaxRetryError) and exc.reason else exc
    # NewConnectionError subclasses ConnectTimeoutError in urllib3, so it is tested first.
    if isinstance(reason, urllib3.exceptions.NewConnectionError):
        return f"cannot connect ({reason})"
    if isinstance(reason, urllib3.exceptions.TimeoutError):
        return f"no answer in time ({reason})"
    return f"{type(reason).__name__}: {reason}"


def _server_message(body: str | None) -> str:
    """The `message` of the API server's `Status` body, else the raw text."""
    try:
        message = json.loads(body).get("message")
    except (TypeError, ValueError, AttributeError):
        message = body
    return f": {str(message)[:SERVER_MESSAGE_CHARS]}" if message else ""
