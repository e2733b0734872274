"""Assemble the Dagster definitions for a given set of paths."""

from __future__ import annotations

import dagster as dg

from pipelines.collect.assets import machines, power_samples, task_runs
from pipelines.collect.resources import RecordedArgoRuns, RecordedKubernetes, RecordedPowerReadings
from pipelines.io import ParquetTableIOManager
from pipelines.settings import Settings
from pipelines.traces.assets import TraceDatasetResource, energy_traces, task_energy
from pipelines.traces.checks import checks

ASSETS = [task_runs, machines, power_samples, task_energy, energy_traces]


def build_definitions(settings: Settings) -> dg.Definitions:
    recorded = {
        "directory": str(settings.recorded_dir),
        "sample_world_seed": settings.sample_world_seed,
        "sample_world_workflows": settings.sample_world_workflows,
    }
    return dg.Definitions(
        assets=ASSETS,
        asset_checks=checks,
        resources={
            "argo": RecordedArgoRuns(**recorded),
            "kubernetes": RecordedKubernetes(**recorded),
            "power": RecordedPowerReadings(**recorded),
            "dataset": TraceDatasetResource(root=str(settings.dataset_dir)),
            "io_manager": ParquetTableIOManager(base_dir=str(settings.asset_dir)),
        },
    )
