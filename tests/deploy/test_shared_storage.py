"""Asset values and the dataset on object storage, through the same code as local folders: what lets run pods
launched separately by the K8sRunLauncher read each other's outputs."""

import uuid
from pathlib import Path

import dagster as dg
import fsspec
import pyarrow as pa
import pytest
from fsspec.implementations.memory import MemoryFileSystem
from upath import UPath

from pipelines.build import build_definitions
from pipelines.io import ParquetTableIOManager
from pipelines.settings import Settings, sample_world_cache


@pytest.fixture
def bucket():
    """A fresh prefix on fsspec's in-memory filesystem, which like S3 has no rename."""
    name = f"bucket-{uuid.uuid4().hex}"
    yield f"memory://{name}"
    fs = fsspec.filesystem("memory")
    if fs.exists(f"/{name}"):
        fs.rm(f"/{name}", recursive=True)


@dg.asset
def machines() -> pa.Table:
    return pa.table({"node": ["n1", "n2"], "tdp_watts": [205.0, 350.0]})


@dg.asset
def total_tdp(machines: pa.Table) -> pa.Table:
    return pa.table({"tdp_watts": [sum(machines["tdp_watts"].to_pylist())]})


def test_an_asset_written_by_one_run_is_read_by_another_from_object_storage(bucket, monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("no rename on an object store")

    monkeypatch.setattr(MemoryFileSystem, "mv", refuse)
    io_manager = ParquetTableIOManager(base_dir=f"{bucket}/assets")
    first = dg.materialize([machines], resources={"io_manager": io_manager})
    assert first.success
    (event,) = first.get_asset_materialization_events()
    metadata = event.materialization.metadata
    assert metadata["path"].value == f"{bucket}/assets/machines.parquet"
    assert metadata["dagster/row_count"].value == 2
    # Another run (another pod: its own instance, nothing in memory from the first) loads the input.
    second = dg.materialize(
        [total_tdp, machines.to_source_asset()],
        resources={"io_manager": ParquetTableIOManager(base_dir=f"{bucket}/assets")},
    )
    assert second.output_for_node("total_tdp")["tdp_watts"].to_pylist() == [555.0]
    assert sorted(p.name for p in UPath(f"{bucket}/assets").iterdir()) == [
        "machines.parquet",
        "total_tdp.parquet",
    ]


def test_a_missing_asset_on_object_storage_says_so(bucket):
    with pytest.raises(FileNotFoundError, match="asset machines was never materialized") as raised:
        dg.materialize(
            [total_tdp, machines.to_source_asset()],
            resources={"io_manager": ParquetTableIOManager(base_dir=f"{bucket}/assets")},
        )
    assert str(raised.value).startswith(f"{bucket}/assets/machines.parquet: ")


def test_settings_put_assets_dataset_and_models_under_an_object_store_prefix(monkeypatch):
    monkeypatch.setenv("JOULETRACE_DATA", "s3://jouletrace/data")
    monkeypatch.delenv("JOULETRACE_RECORDED", raising=False)
    settings = Settings.from_env()
    assert [str(settings.asset_dir), str(settings.dataset_dir), str(settings.models_dir)] == [
        "s3://jouletrace/data/assets",
        "s3://jouletrace/data/dataset",
        "s3://jouletrace/data/models",
    ]
    # The sample world is generated from its seed on local disk in each pod, not on object storage.
    assert settings.recorded_dir == sample_world_cache(
        settings.sample_world_seed, settings.sample_world_workflows
    )
    resources = build_definitions(settings).resources
    assert resources["io_manager"].base_dir == "s3://jouletrace/data/assets"
    assert resources["dataset"].root == "s3://jouletrace/data/dataset"
    assert resources["model_store"].root == "s3://jouletrace/data/models"


def test_local_settings_are_unchanged(tmp_path):
    settings = Settings.under(tmp_path)
    assert settings.asset_dir == tmp_path / "assets" and type(settings.asset_dir) is type(tmp_path)
    assert settings.recorded_dir == tmp_path / "sample-world"
    assert Settings.under(f"file://{tmp_path}").recorded_dir == tmp_path / "sample-world"
    with pytest.raises(ValueError, match="read from local disk"):
        Settings.under("s3://jouletrace/data", recorded_dir="s3://jouletrace/recorded")
    assert Settings.under(tmp_path, recorded_dir=f"file://{tmp_path}/rec").recorded_dir == Path(
        tmp_path, "rec"
    )


AFTER_THE_DATASET = [
    "wfinstances_export",
    "wta_export",
    "training_set",
    "energy_regressor",
    "power_regressor",
    "runtime_regressor",
    "model_evaluation",
    "allocation_evaluation",
    "scheduling_evaluation",
]


def test_collection_and_everything_after_it_run_in_separate_pods_on_object_storage(bucket, monkeypatch):
    """Two runs with nothing shared but the bucket (own instances, as two K8sRunLauncher pods): the first
    collects the sample world's day into the dataset on the bucket, the second trains, exports and
    evaluates from it and leaves its outputs there."""
    from datasets.store import read_table
    from pipelines.collect.partitions import range_tags
    from pipelines.collect.sensors import COLLECTION_JOB
    from pipelines.models.assets import ModelStoreResource
    from pipelines.run import recorded_days, run_config

    def refuse(*args, **kwargs):
        raise AssertionError("no rename on an object store")

    monkeypatch.setattr(MemoryFileSystem, "mv", refuse)
    settings = Settings.under(bucket, seed=3, workflows=4)
    defs = build_definitions(settings)
    days = range_tags(recorded_days(settings))
    collect = defs.resolve_job_def(COLLECTION_JOB).execute_in_process(
        instance=dg.DagsterInstance.ephemeral(), run_config=run_config(log_level="WARNING"), tags=days
    )
    assert collect.success
    assert read_table(f"{bucket}/dataset", "workflows").num_rows == 4

    cheap = {"config": {"model": "linear", "evaluate": False}}
    config = {
        "ops": {
            **{name: cheap for name in ("energy_regressor", "power_regressor", "runtime_regressor")},
            "allocation_evaluation": {"config": {"workloads": [], "budgets": "1,3"}},
            "scheduling_evaluation": {"config": {"workloads": []}},
        },
        "loggers": {"console": {"config": {"log_level": "WARNING"}}},
    }
    after = (
        build_definitions(settings)
        .resolve_implicit_global_asset_job_def()
        .execute_in_process(
            instance=dg.DagsterInstance.ephemeral(),
            run_config=config,
            asset_selection=[dg.AssetKey(name) for name in AFTER_THE_DATASET],
            raise_on_error=False,
        )
    )
    assert after.success, [e.event_specific_data.error.message for e in after.get_step_failure_events()]
    store = ModelStoreResource(root=f"{bucket}/models")
    assert store.metrics("energy_joules")["model"] == "linear"
    assert UPath(f"{bucket}/models/summary.md").read_text().startswith("# Regressors")
    wta = UPath(f"{bucket}/exports/wta")
    assert any(p.name == "workflows" for p in wta.rglob("*")), "no WTA workflows table on the bucket"
    assert any(p.suffix == ".json" for p in UPath(f"{bucket}/exports/wfinstances").rglob("*"))
    (event,) = after.asset_materializations_for_node("energy_regressor")
    assert event.metadata["model_dir"].value == f"{bucket}/models/energy_joules"
