"""Assemble the Dagster definitions for a given set of sources and paths."""

import os
from datetime import date

import dagster as dg

from pipelines.allocate.assets import allocation_evaluation
from pipelines.collect.assets import container_samples, machines, power_samples, task_runs
from pipelines.collect.partitions import collection_backfill_policy, collection_days
from pipelines.collect.resources import (
    ArgoServerRuns,
    KubernetesApi,
    PrometheusPowerReadings,
    RecordedArgoRuns,
    RecordedKubernetes,
    RecordedPowerReadings,
)
from pipelines.collect.sensors import collection_job, collection_schedule, finished_runs_sensor
from pipelines.export.assets import export_assets
from pipelines.io import ParquetTableIOManager
from pipelines.models.assets import ModelStoreResource, model_assets
from pipelines.models.checks import model_checks
from pipelines.policy.assets import policy_assets
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
    *policy_assets,
]
CHECKS = [*checks, *model_checks]
# What `jouletrace collect` materializes: the trace dataset, not the publication bundles nor the models.
TRACE_GROUPS = ("collect", "traces")
# Everything after the dataset (exports, training, evaluations) updates when the dataset does: when any
# day of it is written again and nothing it reads is missing, running or failed a blocking check. The
# dataset is only written after the blocking checks of its tables passed in the same run (schema,
# non-negative energy, closed balance), so a bad day never reaches training.
DOWNSTREAM_AUTOMATION = (
    dg.AutomationCondition.eager().without(~dg.AutomationCondition.any_deps_missing())
    & dg.AutomationCondition.all_deps_blocking_checks_passed()
)


def _partitioned_by_day(asset: dg.AssetsDefinition, days: dg.PartitionsDefinition) -> dg.AssetsDefinition:
    by_day = asset.map_asset_specs(lambda spec: spec.replace_attributes(partitions_def=days))
    return by_day.with_attributes(backfill_policy=collection_backfill_policy())


def pipeline_assets(days: dg.PartitionsDefinition) -> list[dg.AssetsDefinition]:
    """The collection and trace assets by day; the rest unpartitioned and automated."""
    assets = []
    for asset in ASSETS:
        groups = {asset.group_names_by_key[key] for key in asset.keys}
        if groups <= set(TRACE_GROUPS):
            assets.append(_partitioned_by_day(asset, days))
        else:
            assets.append(asset.with_attributes(automation_condition=DOWNSTREAM_AUTOMATION))
    return assets


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
    days = collection_days(settings.collection_start)
    job = collection_job()
    first_day = date.fromisoformat(settings.collection_start)
    return dg.Definitions(
        assets=pipeline_assets(days),
        asset_checks=CHECKS,
        jobs=[job],
        schedules=[collection_schedule(job, settings.collection_cron, first_day)],
        sensors=[
            finished_runs_sensor(job, first_day),
            dg.AutomationConditionSensorDefinition(
                "downstream_automation",
                target=dg.AssetSelection.all() - dg.AssetSelection.groups(*TRACE_GROUPS),
                default_status=dg.DefaultSensorStatus.RUNNING,
                description="Exports, training and evaluations follow the dataset (DOWNSTREAM_AUTOMATION).",
            ),
        ],
        executor=EXECUTOR,
        resources={
            **source_resources(settings),
            "dataset": TraceDatasetResource(root=str(settings.dataset_dir)),
            "model_store": ModelStoreResource(root=str(settings.models_dir)),
            "io_manager": ParquetTableIOManager(base_dir=str(settings.asset_dir)),
        },
    )
