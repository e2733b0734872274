"""A local HTTP server answering like the Argo Server and the Kubernetes API, from recorded objects.

The live collectors (collectors/cluster/argo_live.py, collectors/cluster/kubernetes_live.py) run through their real
clients (Hera, the kubernetes package) against it, at the real REST paths, so tests exercise the code
that reads a cluster. Bearer-token auth and faults (status codes, malformed bodies, delays) can be
switched on to check that failures surface as clear errors.
"""

from __future__ import annotations

import base64
import binascii
import copy
import json
import re
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qsl, unquote, urlsplit

from collectors.cluster.recorded import RecordedSources

# What the archive's list query selects (persist/sqldb/workflow_archive.go::ListWorkflows): no nodes.
# Go always marshals `spec` (no omitempty), so a summary has one even when it is empty.
ARCHIVED_SUMMARY_METADATA = ("name", "namespace", "uid", "labels", "annotations", "creationTimestamp")
ARCHIVED_SUMMARY_SPEC = ("suspend", "arguments")
ARCHIVED_SUMMARY_STATUS = (
    "phase",
    "startedAt",
    "finishedAt",
    "progress",
    "message",
    "estimatedDuration",
    "resourcesDuration",
)
# The Argo Server's grpc-gateway answers errors as {"code": <gRPC code>, "message": ...}.
GRPC_CODES = {400: 3, 401: 16, 403: 7, 404: 5, 409: 6, 500: 13, 501: 12, 503: 14, 504: 4}
GRPC_UNKNOWN = 2
KUBERNETES_PATH = re.compile(r"^/api/v1/(?:namespaces/[^/]+/pods|pods|nodes)$")
# serve_forever notices shutdown() only between polls; its 0.5 s default would slow every test.
SHUTDOWN_POLL_SECONDS = 0.02
_SELECTOR_TERM = re.compile(r"^([^=!\s]+)\s*(==|=|!=)\s*([^=!\s]*)$")


@dataclass
class Fault:
    """What happens to requests whose path matches `pattern` (re.search): a delay, then an error status
    (with `body`, or an error body in the API's shape), or a 200 with `body` (e.g. malformed JSON)."""

    pattern: str
    status: int | None = None
    body: bytes | None = None
    delay: float = 0.0


@dataclass(frozen=True)
class RecordedRequest:
    """A request as the server saw it, so tests can check what a client sent (never its headers)."""

    path: str
    query: dict[str, str]


class _HttpError(Exception):
    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status
        self.message = message


class _Server(ThreadingHTTPServer):
    # A handler stuck in a delay must not keep the test process alive.
    daemon_threads = True


class ReplayServer:
    """Recorded Argo workflows, pods and nodes served at the Argo Server's and the Kubernetes API's paths.

    `directory` is a recorded folder (docs/recorded-sources.md); `workflows` adds Workflow objects. A
    workflow whose uid is in `archived_uids` is in the workflow archive; it is also live when its uid is
    in `live_uids` (None: every workflow not archived is live), as Argo keeps a finished workflow live
    until its TTL deletes it. `token`, when set, must come as "Authorization: Bearer <token>".
    """

    def __init__(
        self,
        directory: Path | None = None,
        workflows: list[dict] | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        archived_uids: Iterable[str] = (),
        live_uids: Iterable[str] | None = None,
        token: str | None = None,
    ):
        self.host, self.port, self.token = host, port, token
        self.requests: list[RecordedRequest] = []
        self._faults: list[Fault] = []
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

        objs: list[dict] = []
        self._pods: list[dict] = []
        self._nodes: dict = {"kind": "NodeList", "apiVersion": "v1", "metadata": {}, "items": []}
        if directory is not None:
            recorded = RecordedSources(directory)
            objs += recorded.workflow_objects()
            self._pods = [pod for podlist in recorded.pod_lists() for pod in podlist.get("items") or []]
            if (recorded.directory / "kubernetes" / "nodes.json").exists():
                self._nodes = recorded.node_list()
        objs += copy.deepcopy(list(workflows or []))
        for obj in objs:
            if not _meta(obj).get("name"):
                raise ValueError("every workflow needs metadata.name to be served")

        archived = set(archived_uids)
        live = None if live_uids is None else set(live_uids)
        unknown = (archived | (live or set())) - {_meta(obj).get("uid") for obj in objs}
        if unknown:
            raise ValueError(f"no workflow has uid {sorted(unknown)}")

        def is_live(obj: dict) -> bool:
            uid = _meta(obj).get("uid")
            return uid in live if live is not None else uid not in archived

        self._live = sorted(
            filter(is_live, objs), key=lambda obj: (_meta(obj).get("namespace") or "", _meta(obj)["name"])
        )
        # The archive lists newest first (ORDER BY startedAt DESC).
        self._archived = sorted(
            (obj for obj in objs if _meta(obj).get("uid") in archived),
            key=lambda obj: ((obj.get("status") or {}).get("startedAt") or "", _meta(obj)["uid"]),
            reverse=True,
        )

    @property
    def url(self) -> str:
        if self._server is None:
            raise RuntimeError("ReplayServer is not started")
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> ReplayServer:
        replay = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                replay._handle(self)

            def log_message(self, format, *args):
                """Quiet: tests read failures from assertions, not from a request log on stderr."""

        self._stopping.clear()
        self._server = _Server((self.host, self.port), Handler)
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            args=(SHUTDOWN_POLL_SECONDS,),
            name="replay-server",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is None:
            return
        self._stopping.set()  # wakes handlers sleeping in a delay fault
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()
        self._server = self._thread = None

    def __enter__(self) -> ReplayServer:
        return self.start()

    def __exit__(self, *_) -> None:
        self.stop()

    def add_fault(
        self, pattern: str, *, status: int | None = None, body: bytes | str | None = None, delay: float = 0.0
    ) -> None:
        """Apply a fault to every later request whose path matches `pattern`; the first match wins."""
        fault = Fault(pattern, status, body.encode() if isinstance(body, str) else body, delay)
        with self._lock:
            self._faults.append(fault)

    def clear_faults(self) -> None:
        with self._lock:
            self._faults.clear()

    def _handle(self, request: BaseHTTPRequestHandler) -> None:
        parts = urlsplit(request.path)
        path = parts.path
        query = dict(parse_qsl(parts.query, keep_blank_values=True))
        kubernetes = bool(KUBERNETES_PATH.match(path))
        with self._lock:
            self.requests.append(RecordedRequest(path, query))
            fault = next((f for f in self._faults if re.search(f.pattern, path)), None)
        if fault is not None and fault.delay and self._stopping.wait(fault.delay):
            return
        if self.token is not None:
            sent = request.headers.get("Authorization")
            if sent != f"Bearer {self.token}":
                message = "no bearer token sent" if sent is None else "token not valid"
                return _send_error(request, 401, message, kubernetes)
        if fault is not None and fault.status is not None:
            if fault.body is not None:
                return _send(request, fault.status, fault.body)
            return _send_error(request, fault.status, f"injected fault on {path}", kubernetes)
        if fault is not None and fault.body is not None:
            return _send(request, 200, fault.body)
        try:
            answer = self._route(path, query)
        except _HttpError as exc:
            return _send_error(request, exc.status, exc.message, kubernetes)
        _send(request, 200, json.dumps(answer).encode())

    def _route(self, path: str, query: dict[str, str]) -> dict:
        segments = [unquote(part) for part in path.split("/")]
        if segments[:3] != ["", "api", "v1"]:
            raise _HttpError(404, f"no route for {path}")
        match segments[3:]:
            case ["workflows"]:
                return self._list_workflows("", query)
            case ["workflows", namespace]:
                return self._list_workflows(namespace, query)
            case ["workflows", namespace, name]:
                return self._get_workflow(namespace, name, query)
            case ["archived-workflows"]:
                return self._list_archived(query)
            case ["archived-workflows", uid]:
                return self._get_archived(uid)
            case ["namespaces", namespace, "pods"]:
                return self._pod_list(namespace, query)
            case ["pods"]:
                return self._pod_list("", query)
            case ["nodes"]:
                selector = _parse_selector(query.get("labelSelector", ""))
                return {**self._nodes, "items": [n for n in self._nodes["items"] if _matches(n, selector)]}
        raise _HttpError(404, f"no route for {path}")

    def _list_workflows(self, namespace: str, query: dict[str, str]) -> dict:
        """An empty namespace lists every namespace, as the Argo Server does."""
        selector = _parse_selector(query.get("listOptions.labelSelector", ""))
        items = [
            obj
            for obj in self._live
            if (not namespace or _meta(obj).get("namespace") == namespace) and _matches(obj, selector)
        ]
        page = _page(items, query.get("listOptions.limit"), query.get("listOptions.continue"))
        return _select_fields(page, query.get("fields"))

    def _get_workflow(self, namespace: str, name: str, query: dict[str, str]) -> dict:
        for obj in self._live:
            if _meta(obj).get("namespace") == namespace and _meta(obj)["name"] == name:
                return _select_fields(obj, query.get("fields"))
        raise _HttpError(404, f'workflows.argoproj.io "{name}" not found')

    def _list_archived(self, query: dict[str, str]) -> dict:
        namespace = query.get("namespace")
        selector = _parse_selector(query.get("listOptions.labelSelector", ""))
        items = [
            _summary(obj)
            for obj in self._archived
            if (not namespace or _meta(obj).get("namespace") == namespace) and _matches(obj, selector)
        ]
        return _page(items, query.get("listOptions.limit"), query.get("listOptions.continue"))

    def _get_archived(self, uid: str) -> dict:
        for obj in self._archived:
            if _meta(obj)["uid"] == uid:
                return obj
        raise _HttpError(404, f"archived workflow {uid} not found")

    def _pod_list(self, namespace: str, query: dict[str, str]) -> dict:
        selector = _parse_selector(query.get("labelSelector", ""))
        items = [
            pod
            for pod in self._pods
            if (not namespace or _meta(pod).get("namespace") == namespace) and _matches(pod, selector)
        ]
        return {"kind": "PodList", "apiVersion": "v1", "metadata": {}, "items": items}


def _meta(obj: dict) -> dict:
    return obj.get("metadata") or {}


def _summary(obj: dict) -> dict:
    metadata, spec, status = _meta(obj), obj.get("spec") or {}, obj.get("status") or {}
    return {
        "metadata": {key: metadata[key] for key in ARCHIVED_SUMMARY_METADATA if key in metadata},
        "spec": {key: spec[key] for key in ARCHIVED_SUMMARY_SPEC if key in spec},
        "status": {key: status[key] for key in ARCHIVED_SUMMARY_STATUS if key in status},
    }


def _page(items: list[dict], limit: str | None, token: str | None) -> dict:
    """A WorkflowList page; the continue token is opaque to clients, as Kubernetes' is."""
    start = _decode_continue(token) if token else 0
    if limit in (None, "", "0"):
        end = len(items)
    elif limit.isdigit():
        end = start + int(limit)
    else:
        raise _HttpError(400, f"listOptions.limit {limit!r} is not a non-negative integer")
    metadata = {"continue": _encode_continue(end)} if end < len(items) else {}
    # Go marshals an empty slice of the WorkflowList as null.
    return {"metadata": metadata, "items": items[start:end] or None}


def _encode_continue(offset: int) -> str:
    return base64.urlsafe_b64encode(json.dumps({"offset": offset}).encode()).decode()


def _decode_continue(token: str) -> int:
    try:
        offset = json.loads(base64.urlsafe_b64decode(token.encode()))["offset"]
    except (binascii.Error, ValueError, TypeError, KeyError):
        raise _HttpError(400, f"continue token {token!r} is not valid") from None
    if not isinstance(offset, int) or offset < 0:
        raise _HttpError(400, f"continue token {token!r} is not valid")
    return offset


def _parse_selector(text: str) -> list[tuple[str, bool, str]]:
    """Equality-based selectors (key=value, key==value, key!=value), comma-separated, as (key, equal, value)."""
    requirements = []
    for term in (part.strip() for part in text.split(",")):
        if not term:
            continue
        match = _SELECTOR_TERM.match(term)
        if match is None:
            raise _HttpError(400, f"label selector term {term!r} is not supported (only =, ==, !=)")
        key, operator, value = match.groups()
        requirements.append((key, operator != "!=", value))
    return requirements


def _matches(obj: dict, requirements: list[tuple[str, bool, str]]) -> bool:
    """Kubernetes semantics: key!=value also matches objects without the label."""
    labels = _meta(obj).get("labels") or {}
    return all((labels.get(key) == value) == equal for key, equal, value in requirements)


def _select_fields(obj: dict, fields: str | None) -> dict:
    """Argo's `fields`: dotted paths to keep, or to drop when the list starts with "-"; lists are crossed."""
    if not fields:
        return obj
    paths = [path.strip().split(".") for path in fields.removeprefix("-").split(",") if path.strip()]
    return _drop(obj, paths) if fields.startswith("-") else _keep(obj, paths)


def _drop(value, paths: list[list[str]]):
    if isinstance(value, list):
        return [_drop(item, paths) for item in value]
    if not isinstance(value, dict):
        return value
    kept = {}
    for key, child in value.items():
        rest = [path[1:] for path in paths if path[0] == key]
        if [] not in rest:
            kept[key] = _drop(child, rest) if rest else child
    return kept


def _keep(value, paths: list[list[str]]):
    if isinstance(value, list):
        return [_keep(item, paths) for item in value]
    if not isinstance(value, dict):
        return value
    kept = {}
    for key, child in value.items():
        rest = [path[1:] for path in paths if path[0] == key]
        if rest:
            kept[key] = child if [] in rest else _keep(child, rest)
    return kept


def _send_error(request: BaseHTTPRequestHandler, status: int, message: str, kubernetes: bool) -> None:
    """An error body in the shape each API uses: a Kubernetes `Status`, or grpc-gateway's {code, message}."""
    if kubernetes:
        body = {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": message,
            "reason": HTTPStatus(status).phrase.replace(" ", ""),
            "code": status,
        }
    else:
        body = {"code": GRPC_CODES.get(status, GRPC_UNKNOWN), "message": message}
    _send(request, status, json.dumps(body).encode())


def _send(request: BaseHTTPRequestHandler, status: int, body: bytes) -> None:
    try:
        request.send_response(status)
        request.send_header("Content-Type", "application/json")
        request.send_header("Content-Length", str(len(body)))
        request.end_headers()
        request.wfile.write(body)
    except ConnectionError:
        pass  # the client stopped waiting (a timeout under test): nobody is left to answer
