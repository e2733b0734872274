"""Assemble the Dagster definitions for a given set of sources and paths."""

import os

import dagster as dg

from pipelines.allocate.assets import allocation_evaluation
from pipelines.collect.assets import container_samples, machines, power_samples, task_runs
from pipelines.collect.resources import (
    ArgoServerRuns,
    KubernetesApi,
    PrometheusPowerReadings,
    RecordedArgoRuns,
    RecordedKubernetes,
    RecordedPowerReadings,
)
from pipelines.export.assets import export_assets
from pipelines.io import ParquetTableIOManager
from pipelines.models.assets import ModelStoreResource, model_assets
from pipelines.models.checks import model_checks
from pipelines.scheduling.assets import scheduling_evaluation
from pipelines.settings import Settings
from pipelines.traces.assets import TraceDatasetResource, energy_traces, task_energy
from pipelines.traces.checks import checks

ASSETS = [
    task_runs,
    machines,
    power_samples,
    container_samples,
    task_energy,
    energy_traces,
    *export_assets,
    allocation_evaluation,
    scheduling_evaluation,
    *model_assets,
]
CHECKS = [*checks, *model_checks]
# What `jouletrace collect` materializes: the trace dataset, not the publication bundles nor the models.
TRACE_GROUPS = ("collect", "traces")


def _secret(name: str) -> dg.EnvVar | None:
    """A token read from the environment at run time (never stored in config or logged), if it is set."""
    return dg.EnvVar(name) if os.environ.get(name) else None


def source_resources(settings: Settings) -> dict[str, dg.ConfigurableResource]:
    """Live resources for the servers that are configured, the recorded folder for the rest."""
    live = settings.live
    recorded = {
        "directory": str(settings.recorded_dir),
        "sample_world_seed": settings.sample_world_seed,
        "sample_world_workflows": settings.sample_world_workflows,
    }
    if live.argo_url:
        argo = ArgoServerRuns(url=live.argo_url, namespace=live.namespace, token=_secret("ARGO_TOKEN"))
    else:
        argo = RecordedArgoRuns(**recorded)
    if live.kubernetes_is_live:
        kubernetes = KubernetesApi(
            url=live.kubernetes_url, kubeconfig=live.kubeconfig, token=_secret("KUBERNETES_TOKEN")
        )
    else:
        kubernetes = RecordedKubernetes(**recorded)
    if live.prometheus_url:
        power = PrometheusPowerReadings(
            url=live.prometheus_url, dialects=list(live.dialects), usage_dialects=list(live.usage_dialects)
        )
    else:
        power = RecordedPowerReadings(**recorded)
    return {"argo": argo, "kubernetes": kubernetes, "power": power}


def build_definitions(settings: Settings) -> dg.Definitions:
    return dg.Definitions(
        assets=ASSETS,
        asset_checks=CHECKS,
        resources={
            **source_resources(settings),
            "dataset": TraceDatasetResource(root=str(settings.dataset_dir)),
            "model_store": ModelStoreResource(root=str(settings.models_dir)),
            "io_manager": ParquetTableIOManager(base_dir=str(settings.asset_dir)),
        },
    )
