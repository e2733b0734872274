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


# Every run (the UI's "Materialize all" included) executes its steps in the run worker's own process, as
# `jouletrace demo` does. Dagster's default starts a process per step, and each one imports the code
# location again (6-16 s here, dagster + pandas + scikit-learn + XGBoost + numba): about 20 steps took
# 4x the demo's time on 2 cores, while in one process a materialize-all takes about the demo's time
# (benchmarks/ui.py). The graph is mostly one chain, so running steps side by side gains little.
EXECUTOR = dg.in_process_executor


def build_definitions(settings: Settings) -> dg.Definitions:
    return dg.Definitions(
        assets=ASSETS,
        asset_checks=CHECKS,
        executor=EXECUTOR,
        resources={
            **source_resources(settings),
            "dataset": TraceDatasetResource(root=str(settings.dataset_dir)),
            "model_store": ModelStoreResource(root=str(settings.models_dir)),
            "io_manager": ParquetTableIOManager(base_dir=str(settings.asset_dir)),
        },
    )
