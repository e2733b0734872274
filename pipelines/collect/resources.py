"""Where runs, pods, nodes and power readings come from: one interface per source.

Each source is an abstract resource with a recorded implementation that reads a folder of
saved responses (docs/recorded-sources.md); live Argo/Kubernetes/Prometheus implementations
come later behind the same interfaces. A recorded folder that does not exist yet is filled
with the sample world when `sample_world_seed` is set, so the pipeline runs with no cluster.
"""

from abc import ABC, abstractmethod
from datetime import datetime
from pathlib import Path

import dagster as dg
import pyarrow as pa

from collectors.recorded import RecordedSources
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


class ArgoRunsResource(dg.ConfigurableResource, ABC):
    """Finished Argo workflow runs, as Argo Server `Workflow` objects with status.nodes."""

    @abstractmethod
    def workflow_objects(self) -> list[dict]: ...

    @abstractmethod
    def cluster(self) -> str: ...

    @abstractmethod
    def provenance(self) -> str: ...


class KubernetesResource(dg.ConfigurableResource, ABC):
    """Pods of the workflows (requests, devices) and the nodes they ran on."""

    @abstractmethod
    def pod_lists(self) -> list[dict]: ...

    @abstractmethod
    def node_list(self) -> dict: ...


class PowerReadingsResource(dg.ConfigurableResource, ABC):
    """Raw power readings (`power_samples` rows) of some nodes over a time window."""

    @abstractmethod
    def power_samples(self, host_nodes: list[str], start: datetime, end: datetime) -> pa.Table: ...


class RecordedFolder(dg.ConfigurableResource):
    """A folder of recorded responses; the sample world is generated into it when empty and seeded."""

    directory: str
    sample_world_seed: int | None = None
    sample_world_workflows: int = 24

    def sources(self) -> RecordedSources:
        return recorded_sources(self.directory, self.sample_world_seed, self.sample_world_workflows)


class RecordedArgoRuns(RecordedFolder, ArgoRunsResource):
    def workflow_objects(self) -> list[dict]:
        return self.sources().workflow_objects()

    def cluster(self) -> str:
        return self.sources().manifest["cluster"]

    def provenance(self) -> str:
        return self.sources().manifest["provenance"]


class RecordedKubernetes(RecordedFolder, KubernetesResource):
    def pod_lists(self) -> list[dict]:
        return self.sources().pod_lists()

    def node_list(self) -> dict:
        return self.sources().node_list()


class RecordedPowerReadings(RecordedFolder, PowerReadingsResource):
    def power_samples(self, host_nodes: list[str], start: datetime, end: datetime) -> pa.Table:
        return self.sources().power_samples(host_nodes=host_nodes, start=start, end=end)
