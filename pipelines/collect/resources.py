"""Where runs, pods, nodes and power readings come from: one interface per source, live or recorded.

Each source is an abstract resource with a live implementation (Argo Server through Hera, the
Kubernetes API, Prometheus) and a recorded one that reads a folder of saved responses
(docs/recorded-sources.md). A recorded folder that does not exist yet is filled with the sample
world when `sample_world_seed` is set, so the pipeline runs with no cluster. Tokens come from the
environment (ARGO_TOKEN, KUBERNETES_TOKEN) through Dagster's EnvVar and are never logged.
"""

from abc import ABC, abstractmethod
from datetime import datetime
from pathlib import Path

import dagster as dg
import pyarrow as pa

import schemas
from collectors.cluster.argo_live import (
    argo_service,
    finished_summary_page,
    finished_workflows,
    workflow_summary,
)
from collectors.cluster.kubernetes_live import KubernetesReadError, core_v1, node_list, workflow_pod_list
from collectors.cluster.prometheus import connect, gpu_ids_by_pod, read_container_samples, read_power_samples
from collectors.cluster.prometheus_machines import read_machines
from collectors.cluster.recorded import RecordedSources
from datasets.sample_world import generate


def recorded_sources(
    directory: str, sample_world_seed: int | None, sample_world_workflows: int
) -> RecordedSources:
    """The recorded folder, generating the sample world into it first when it is empty and allowed."""
    folder = Path(directory)
    if not (folder / "manifest.json").exists():
        if sample_world_seed is None:
            raise FileNotFoundError(
                f"{folder}: no recorded sources (manifest.json missing); "
                "run `jouletrace sample --out DIR` or point the resource at a recorded folder"
            )
        generate(folder, n_workflows=sample_world_workflows, seed=sample_world_seed)
    return RecordedSources(folder)


def finished_between(obj: dict, since: datetime | None, until: datetime | None) -> bool:
    """Whether a workflow finished in [since, until); no bound means no limit on that side."""
    finished = obj.get("status", {}).get("finishedAt")
    if finished is None:
        return since is None and until is None
    at = datetime.fromisoformat(finished)
    return (since is None or at >= since) and (until is None or at < until)


class ArgoRunsResource(dg.ConfigurableResource, ABC):
    """Finished Argo workflow runs, as Argo Server `Workflow` objects with status.nodes."""

    @abstractmethod
    def workflow_objects(self, since: datetime | None, until: datetime | None) -> list[dict]: ...

    @abstractmethod
    def finished_page(self, token: str | None, page_size: int) -> tuple[list[dict], str | None]:
        """One page of finished runs as (uid, namespace, name, started_at, finished_at) dicts and the
        token of the next page (None after the last): what the finished-run sensor walks."""

    @abstractmethod
    def cluster(self) -> str: ...

    @abstractmethod
    def provenance(self) -> str: ...


# `--kubernetes none` / JOULETRACE_KUBERNETES_URL=none: collect without reading the Kubernetes API.
NO_KUBERNETES = "none"


class KubernetesUnavailable(RuntimeError):
    """The Kubernetes API was not read (by choice, no configuration, no access, or a failure); the message
    says why. Collection goes on from what Argo recorded."""


class KubernetesResource(dg.ConfigurableResource, ABC):
    """Pods of the workflows (requests, devices) and the nodes they ran on. Either method raises
    KubernetesUnavailable when the API cannot be read."""

    @abstractmethod
    def pod_lists(self, workflows: list[tuple[str | None, str]]) -> list[dict]:
        """PodList JSON of each (namespace, workflow name)."""

    @abstractmethod
    def node_list(self) -> dict: ...


class PowerReadingsResource(dg.ConfigurableResource, ABC):
    """Raw power readings (`power_samples` rows) of some nodes over a time window."""

    @abstractmethod
    def power_samples(self, host_nodes: list[str], start: datetime, end: datetime) -> pa.Table: ...

    @abstractmethod
    def container_samples(self, host_nodes: list[str], start: datetime, end: datetime) -> pa.Table:
        """Per-container CPU seconds (and per-pod joules where an exporter gives them): `container_samples`."""

    def gpu_ids_by_pod(self, start: datetime, end: datetime) -> dict[tuple[str, str], list[str]]:
        """GPU UUIDs each (namespace, pod) held, where the readings' source says (DCGM); else none."""
        return {}

    def machines(self, host_nodes: list[str], start: datetime, end: datetime, provenance: str) -> list[dict]:
        """`machines` rows of the hosts the readings' exporters describe (node_exporter, DCGM); else none."""
        return []


class RecordedFolder(dg.ConfigurableResource):
    """A folder of recorded responses; the sample world is generated into it when empty and seeded."""

    directory: str
    sample_world_seed: int | None = None
    sample_world_workflows: int = 24

    def sources(self) -> RecordedSources:
        return recorded_sources(self.directory, self.sample_world_seed, self.sample_world_workflows)


class RecordedArgoRuns(RecordedFolder, ArgoRunsResource):
    def workflow_objects(self, since: datetime | None, until: datetime | None) -> list[dict]:
        return [obj for obj in self.sources().workflow_objects() if finished_between(obj, since, until)]

    def finished_page(self, token: str | None, page_size: int) -> tuple[list[dict], str | None]:
        """Pages of the recorded runs in path order; the token is the offset of the next page."""
        start = int(token or 0)
        objects = self.sources().workflow_objects()
        page = [workflow_summary(obj) for obj in objects[start : start + page_size]]
        following = start + page_size
        return [p for p in page if p], (str(following) if following < len(objects) else None)

    def cluster(self) -> str:
        return self.sources().manifest["cluster"]

    def provenance(self) -> str:
        return self.sources().manifest["provenance"]


class RecordedKubernetes(RecordedFolder, KubernetesResource):
    """A recorded folder without a kubernetes/ folder is a cluster whose API was not read."""

    def _recorded(self) -> RecordedSources:
        sources = self.sources()
        if not (sources.directory / "kubernetes").is_dir():
            raise KubernetesUnavailable(f"no kubernetes/ folder in {sources.directory}")
        return sources

    def pod_lists(self, workflows: list[tuple[str | None, str]]) -> list[dict]:
        return self._recorded().pod_lists()

    def node_list(self) -> dict:
        return self._recorded().node_list()


class RecordedPowerReadings(RecordedFolder, PowerReadingsResource):
    def power_samples(self, host_nodes: list[str], start: datetime, end: datetime) -> pa.Table:
        return self.sources().power_samples(host_nodes=host_nodes, start=start, end=end)

    def container_samples(self, host_nodes: list[str], start: datetime, end: datetime) -> pa.Table:
        return self.sources().container_samples(host_nodes=host_nodes, start=start, end=end)


class ArgoServerRuns(ArgoRunsResource):
    """Finished runs from a live Argo Server (live and archived lists), read through Hera."""

    url: str
    namespace: str | None = None
    cluster_name: str = "default"
    token: str | None = None
    verify_ssl: bool = True

    def workflow_objects(self, since: datetime | None, until: datetime | None) -> list[dict]:
        if since is None or until is None:
            raise ValueError("reading a live Argo Server needs a time window: set `since` and `until`")
        service = argo_service(self.url, self.namespace, self.token, self.verify_ssl)
        return finished_workflows(service, self.namespace, since, until)

    def finished_page(self, token: str | None, page_size: int) -> tuple[list[dict], str | None]:
        service = argo_service(self.url, self.namespace, self.token, self.verify_ssl)
        return finished_summary_page(service, self.namespace, token, page_size)

    def cluster(self) -> str:
        return self.cluster_name

    def provenance(self) -> str:
        return "measured"


class KubernetesApi(KubernetesResource):
    """Pods and nodes from the Kubernetes API (a given URL, a kubeconfig, or the in-cluster account); url
    "none" reads nothing. Any failure to read (no configuration, 401/403, unreachable, server errors) is
    KubernetesUnavailable with the client's message."""

    url: str | None = None
    kubeconfig: str | None = None
    token: str | None = None
    verify_ssl: bool = True

    def _read(self, read):
        if self.url == NO_KUBERNETES:
            raise KubernetesUnavailable("--kubernetes none")
        try:
            return read(core_v1(self.url, self.token, self.kubeconfig, self.verify_ssl))
        except KubernetesReadError as exc:
            raise KubernetesUnavailable(f"Kubernetes API not read: {exc}") from exc

    def pod_lists(self, workflows: list[tuple[str | None, str]]) -> list[dict]:
        return self._read(
            lambda api: [
                workflow_pod_list(api, namespace or "default", name) for namespace, name in workflows
            ]
        )

    def node_list(self) -> dict:
        return self._read(node_list)


class PrometheusPowerReadings(PowerReadingsResource):
    """Raw readings from Prometheus in the configured dialects (agent, kepler, node-exporter, dcgm), and
    per-container usage from `usage_dialects` (agent's cgroup counters, cadvisor, kepler pods); none by
    default, so a cluster without them is not an error."""

    url: str
    dialects: list[str] = ["agent"]
    usage_dialects: list[str] = []

    def _client(self):
        return connect(self.url)

    def power_samples(self, host_nodes: list[str], start: datetime, end: datetime) -> pa.Table:
        return read_power_samples(self._client(), self.dialects, start, end, host_nodes=host_nodes)

    def container_samples(self, host_nodes: list[str], start: datetime, end: datetime) -> pa.Table:
        if not self.usage_dialects:
            return schemas.empty("container_samples")
        return read_container_samples(self._client(), self.usage_dialects, start, end, host_nodes=host_nodes)

    def gpu_ids_by_pod(self, start: datetime, end: datetime) -> dict[tuple[str, str], list[str]]:
        if "dcgm" not in self.dialects:
            return {}
        return gpu_ids_by_pod(self._client(), start, end)

    def machines(self, host_nodes: list[str], start: datetime, end: datetime, provenance: str) -> list[dict]:
        return read_machines(self._client(), host_nodes, start, end, provenance)
