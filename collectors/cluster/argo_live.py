"""Finished Argo workflows read from a live Argo Server through Hera, as the JSON the recorded files hold.

The Argo Server, not the Kubernetes API, is the source: it serves both the live and the archived
workflows and fills offloaded or compressed `status.nodes` back in. Any failure raises ArgoReadError
naming the request, so a read returns every workflow of the window or nothing.

Authentication: a bearer token, from the `token` argument or the ARGO_TOKEN environment variable
(e.g. `export ARGO_TOKEN="$(argo auth token)"`; with or without the "Bearer " prefix). It only ever
goes into the Authorization header, never into a message or a log.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterator
from datetime import datetime
from typing import TypeVar
from urllib.parse import urlsplit

import requests
from hera.exceptions import HeraException
from hera.workflows import WorkflowsService

ARGO_TOKEN_ENV = "ARGO_TOKEN"
COMPLETED_SELECTOR = "workflows.argoproj.io/completed=true"
WITHOUT_NODES = "-items.status.nodes"
DEFAULT_TIMEOUT_SECONDS = 30.0
SERVER_MESSAGE_CHARS = 300
_BEARER = re.compile(r"^\s*bearer\s+", re.IGNORECASE)

T = TypeVar("T")


class ArgoReadError(RuntimeError):
    """Reading the Argo Server failed; the message names the request and what went wrong."""


class _ArgoSession(requests.Session):
    """Hera sends requests without a timeout, so a stalled server would hang a read forever; and its
    exceptions name neither the path nor the HTTP reason. This session adds both."""

    def __init__(self, timeout: float):
        super().__init__()
        self.timeout = timeout

    def request(self, method, url, **kwargs):
        kwargs.setdefault("timeout", self.timeout)
        response = super().request(method, url, **kwargs)
        if not response.ok:
            raise ArgoReadError(
                f"{method.upper()} {urlsplit(url).path}: {response.status_code} {response.reason}"
                f"{_server_message(response)}"
            )
        return response


def argo_service(
    url: str,
    namespace: str | None = None,
    token: str | None = None,
    verify_ssl: bool = True,
    *,
    timeout: float = DEFAULT_TIMEOUT_SECONDS,
) -> WorkflowsService:
    """A Hera client of the Argo Server at `url` (e.g. https://argo-server.argo:2746).

    `token` None reads ARGO_TOKEN. Hera 7 adds "Bearer " only to a one-word token and older Hera
    always adds it, so the token is passed bare. `timeout` bounds each request, in seconds.
    """
    if not url.startswith(("http://", "https://")):
        raise ValueError(f"Argo Server URL {url!r} must start with http:// or https://")
    if token is None:
        token = os.environ.get(ARGO_TOKEN_ENV)
    bare = _BEARER.sub("", token).strip() if token else None
    return WorkflowsService(
        # Hera joins paths with urljoin, which would drop a base path without the trailing slash.
        host=url if url.endswith("/") else url + "/",
        verify_ssl=verify_ssl,
        token=bare or None,
        namespace=namespace,
        session=_ArgoSession(timeout),
    )


def finished_workflows(
    service: WorkflowsService,
    namespace: str | None,
    since: datetime,
    until: datetime,
    *,
    page_size: int = 50,
    include_archived: bool = True,
    list_nodes: bool = True,
) -> list[dict]:
    """Full Workflow dicts (status.nodes filled) that finished in [since, until), oldest first.

    Live workflows labelled completed come first; then, with `include_archived`, archived workflows
    not already seen live (same uid), each fetched by uid since archive listings carry no nodes.
    `namespace` None means the service's namespace, or every namespace when it has none ("" too).
    `list_nodes` False asks for list pages without nodes and fetches each workflow in the window by
    name: lighter pages when workflows are large.
    """
    for name, value in (("since", since), ("until", until)):
        if value.tzinfo is None:
            raise ValueError(f"{name} {value.isoformat()} has no time zone")
    if until <= since:
        raise ValueError(f"empty window: until {until.isoformat()} is not after since {since.isoformat()}")
    if page_size < 1:
        raise ValueError(f"page_size must be at least 1, not {page_size}")
    if namespace is None:
        namespace = service.namespace or ""

    found: dict[str, dict] = {}
    list_path = f"/api/v1/workflows/{namespace}"
    live_pages = _pages(
        list_path,
        lambda token: service.list_workflows(
            namespace=namespace,
            label_selector=COMPLETED_SELECTOR,
            limit=str(page_size),
            continue_=token,
            fields=None if list_nodes else WITHOUT_NODES,
        ),
    )
    for item in live_pages:
        metadata = item.get("metadata") or {}
        key = metadata.get("uid") or f"{metadata.get('namespace')}/{metadata.get('name')}"
        if key in found or not _finished_within(item, since, until, list_path):
            continue
        path = list_path
        if "nodes" not in (item.get("status") or {}):
            path = f"/api/v1/workflows/{metadata.get('namespace')}/{metadata.get('name')}"
            item = _as_json(
                _read(path, service.get_workflow, metadata.get("name"), metadata.get("namespace"))
            )
        found[key] = _hydrated(item, path)

    if include_archived:
        archive_path = "/api/v1/archived-workflows"
        archive_pages = _pages(
            archive_path,
            lambda token: service.list_archived_workflows(
                namespace=namespace or None, limit=str(page_size), continue_=token
            ),
        )
        for summary in archive_pages:
            metadata = summary.get("metadata") or {}
            uid = metadata.get("uid")
            if not uid:
                raise ArgoReadError(f"GET {archive_path}: an archived workflow has no metadata.uid")
            if uid in found or not _finished_within(summary, since, until, archive_path):
                continue
            path = f"{archive_path}/{uid}"
            obj = _read(
                path, service.get_archived_workflow, uid, metadata.get("namespace"), metadata.get("name")
            )
            found[uid] = _hydrated(_as_json(obj), path)

    return sorted(found.values(), key=_finish_order)


# What a summary page asks for: enough to know which runs finished and which days they belong to, without
# status.nodes (the bulk of a workflow). Hera's WorkflowList model requires each item's spec.
SUMMARY_FIELDS = (
    "metadata.continue,items.metadata.uid,items.metadata.name,items.metadata.namespace,items.spec,"
    "items.status.startedAt,items.status.finishedAt"
)
# A page token names the listing it continues: the live workflows first, then the archive.
LIVE, ARCHIVED = "live", "archived"


def finished_summary_page(
    service: WorkflowsService, namespace: str | None, token: str | None, page_size: int = 200
) -> tuple[list[dict], str | None]:
    """One page of the finished workflows (live, labelled completed, then archived), as small dicts
    (uid, namespace, name, started_at, finished_at; times RFC 3339), and the token of the next page
    (None after the last). A finished-run sensor walks these a few pages per tick."""
    if namespace is None:
        namespace = service.namespace or ""
    listing, _, inner = (token or f"{LIVE}:").partition(":")
    if listing == LIVE:
        path = f"/api/v1/workflows/{namespace}"
        page = _read(
            path,
            lambda: service.list_workflows(
                namespace=namespace,
                label_selector=COMPLETED_SELECTOR,
                limit=str(page_size),
                continue_=inner or None,
                fields=SUMMARY_FIELDS,
            ),
        )
    elif listing == ARCHIVED:
        path = "/api/v1/archived-workflows"
        page = _read(
            path,
            lambda: service.list_archived_workflows(
                namespace=namespace or None, limit=str(page_size), continue_=inner or None
            ),
        )
    else:
        raise ValueError(f"page token {token!r} names no listing (expected {LIVE}:... or {ARCHIVED}:...)")
    items = [_summary(_as_json(item), path) for item in page.items or []]
    following = page.metadata.continue_ if page.metadata is not None else None
    if following:
        return [i for i in items if i], f"{listing}:{following}"
    return [i for i in items if i], (f"{ARCHIVED}:" if listing == LIVE else None)


def _summary(obj: dict, path: str) -> dict | None:
    if (obj.get("status") or {}).get("finishedAt"):
        _finished_at(obj, path)
    return workflow_summary(obj)


def workflow_summary(obj: dict) -> dict | None:
    """A Workflow object as the summary of a finished run (None if it has not finished)."""
    metadata, status = obj.get("metadata") or {}, obj.get("status") or {}
    if not status.get("finishedAt"):
        return None
    return {
        "uid": metadata.get("uid") or f"{metadata.get('namespace')}/{metadata.get('name')}",
        "namespace": metadata.get("namespace"),
        "name": metadata.get("name"),
        "started_at": status.get("startedAt"),
        "finished_at": status["finishedAt"],
    }


def _pages(path: str, list_page: Callable[[str | None], object]) -> Iterator[dict]:
    """Items of every page of a list call, following continue tokens."""
    token, seen = None, set()
    while True:
        page = _read(path, list_page, token)
        yield from (_as_json(item) for item in page.items or [])
        token = page.metadata.continue_ if page.metadata is not None else None
        if not token:
            return
        if token in seen:
            raise ArgoReadError(f"GET {path}: the server repeats a continue token; the list would never end")
        seen.add(token)


def _read(path: str, call: Callable[..., T], *args) -> T:
    """One Hera call; any failure becomes an ArgoReadError naming `path`."""
    try:
        return call(*args)
    except HeraException as exc:
        raise ArgoReadError(f"GET {path}: {exc}") from exc
    except requests.Timeout as exc:
        raise ArgoReadError(f"GET {path}: no answer in time ({exc})") from exc
    except requests.ConnectionError as exc:
        raise ArgoReadError(f"GET {path}: cannot connect ({exc})") from exc
    except requests.JSONDecodeError as exc:
        raise ArgoReadError(f"GET {path}: malformed JSON in the response ({exc})") from exc
    except (ValueError, TypeError) as exc:
        # pydantic's ValidationError is a ValueError: the JSON is not the Argo object Hera expects.
        raise ArgoReadError(f"GET {path}: the response is not the expected Argo object ({exc})") from exc
    except requests.RequestException as exc:
        raise ArgoReadError(f"GET {path}: {exc}") from exc


def _as_json(model) -> dict:
    """Argo's JSON back from a Hera model: camelCase names, times as RFC 3339 strings, no nulls."""
    return model.model_dump(mode="json", by_alias=True, exclude_none=True)


def _hydrated(obj: dict, path: str) -> dict:
    status = obj.get("status") or {}
    if "nodes" not in status and (status.get("compressedNodes") or status.get("offloadNodeStatusVersion")):
        metadata = obj.get("metadata") or {}
        raise ArgoReadError(
            f"GET {path}: workflow {metadata.get('namespace')}/{metadata.get('name')} has compressed or "
            "offloaded status.nodes; read it through the Argo Server, which fills status.nodes back in "
            "(not the Kubernetes API), and check the server can reach its offload database"
        )
    return obj


def _finished_within(obj: dict, since: datetime, until: datetime, path: str) -> bool:
    finished = _finished_at(obj, path)
    return finished is not None and since <= finished < until


def _finished_at(obj: dict, path: str) -> datetime | None:
    value = (obj.get("status") or {}).get("finishedAt")
    if not value:
        return None
    try:
        finished = datetime.fromisoformat(value)
    except (TypeError, ValueError):
        finished = None
    if finished is None or finished.tzinfo is None:
        metadata = obj.get("metadata") or {}
        raise ArgoReadError(
            f"GET {path}: workflow {metadata.get('namespace')}/{metadata.get('name')}: "
            f"status.finishedAt {value!r} is not an RFC 3339 time"
        )
    return finished


def _finish_order(obj: dict) -> tuple:
    metadata = obj.get("metadata") or {}
    return (_finished_at(obj, ""), metadata.get("namespace") or "", metadata.get("name") or "")


def _server_message(response: requests.Response) -> str:
    """The server's own explanation: `message` of Argo's and Kubernetes' error bodies, else the text."""
    try:
        message = response.json().get("message")
    except (ValueError, AttributeError):
        message = response.text
    return f": {str(message)[:SERVER_MESSAGE_CHARS]}" if message else ""
