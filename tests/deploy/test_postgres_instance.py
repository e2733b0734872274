"""The deployment's Dagster instance (deploy/dagster.yaml) on a real PostgreSQL: two runs, as two pods would
make them, share run/event/schedule storage in Postgres and asset values in object storage."""

import uuid
from pathlib import Path

import dagster as dg
import fsspec
import pyarrow as pa
import pyarrow.compute as pc
import pytest
import yaml
from dagster_k8s import K8sRunLauncher
from dagster_postgres import PostgresEventLogStorage, PostgresRunStorage, PostgresScheduleStorage

from pipelines.io import ParquetTableIOManager

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"

KUBECONFIG = """apiVersion: v1
kind: Config
clusters: [{name: test, cluster: {server: "https://127.0.0.1:6443"}}]
users: [{name: test, user: {token: not-a-secret}}]
contexts: [{name: test, context: {cluster: test, user: test, namespace: jouletrace}}]
current-context: test
"""


@dg.asset
def node_readings() -> pa.Table:
    return pa.table({"node": ["n1", "n1", "n2"], "joules": [1.5, 2.5, 4.0]})


@dg.asset
def node_energy(node_readings: pa.Table) -> pa.Table:
    return node_readings.group_by("node").aggregate([("joules", "sum")]).sort_by("node")


def deployment_home(tmp_path):
    """DAGSTER_HOME holding deploy/dagster.yaml as it is, except that the K8sRunLauncher's client reads a
    kubeconfig (never contacted) instead of the in-cluster service account this machine does not have."""
    home = tmp_path / "dagster_home"
    home.mkdir()
    config = yaml.safe_load((DEPLOY / "dagster.yaml").read_text())
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(KUBECONFIG)
    config["run_launcher"]["config"].update(load_incluster_config=False, kubeconfig_file=str(kubeconfig))
    (home / "dagster.yaml").write_text(yaml.safe_dump(config))
    return home


@pytest.fixture
def object_storage():
    """A prefix on fsspec's in-memory filesystem, the stand-in for s3://: the same code path, no rename."""
    url = f"memory://jouletrace-{uuid.uuid4().hex}/assets"
    yield url
    fs = fsspec.filesystem("memory")
    root = url.split("://", 1)[1].split("/", 1)[0]
    if fs.exists(f"/{root}"):
        fs.rm(f"/{root}", recursive=True)


def test_two_runs_share_postgres_storage_and_object_storage(postgres, tmp_path, monkeypatch, object_storage):
    database = f"dagster_{uuid.uuid4().hex[:8]}"
    postgres.create_database(database)
    for name, value in postgres.env(database).items():
        monkeypatch.setenv(name, value)
    home = deployment_home(tmp_path)
    resources = {"io_manager": ParquetTableIOManager(base_dir=object_storage)}

    # First pod: materialize the readings.
    with dg.DagsterInstance.from_config(str(home)) as first:
        assert isinstance(first.run_storage, PostgresRunStorage)
        assert isinstance(first.event_log_storage, PostgresEventLogStorage)
        assert isinstance(first.schedule_storage, PostgresScheduleStorage)
        launcher = first.run_launcher
        assert isinstance(launcher, K8sRunLauncher)
        assert launcher.instance_config_map == "jouletrace-dagster-instance"
        assert launcher.postgres_password_secret == "jouletrace-postgresql"
        readings_run = dg.materialize([node_readings], instance=first, resources=resources)
        assert readings_run.success

    # Second pod: a fresh instance from the same dagster.yaml sees the first run and reads its output.
    with dg.DagsterInstance.from_config(str(home)) as second:
        assert second.get_run_by_id(readings_run.run_id).status == dg.DagsterRunStatus.SUCCESS
        latest = second.get_latest_materialization_event(dg.AssetKey("node_readings"))
        assert latest is not None and latest.run_id == readings_run.run_id
        energy_run = dg.materialize(
            [node_energy, node_readings.to_source_asset()], instance=second, resources=resources
        )
        assert energy_run.success
        energy = energy_run.output_for_node("node_energy")
        assert energy["node"].to_pylist() == ["n1", "n2"]
        assert pc.sum(energy["joules_sum"]).as_py() == pytest.approx(8.0)
        assert second.schedule_storage.all_instigator_state() == []

    # And it is all in Postgres, in the tables Dagster's own storage classes wrote.
    connection = postgres.connect(database)
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT run_id, status FROM runs ORDER BY create_timestamp")
            assert cursor.fetchall() == [(readings_run.run_id, "SUCCESS"), (energy_run.run_id, "SUCCESS")]
            cursor.execute(
                "SELECT run_id, asset_key FROM event_logs WHERE dagster_event_type = 'ASSET_MATERIALIZATION' "
                "ORDER BY id"
            )
            assert cursor.fetchall() == [
                (readings_run.run_id, '["node_readings"]'),
                (energy_run.run_id, '["node_energy"]'),
            ]
            cursor.execute("SELECT count(*) FROM event_logs WHERE run_id = %s", (energy_run.run_id,))
            assert cursor.fetchone()[0] >= 10
            cursor.execute("SELECT to_regclass('jobs'), to_regclass('job_ticks')")
            assert cursor.fetchone() == ("jobs", "job_ticks")
    finally:
        connection.close()
    stored = fsspec.filesystem("memory").find(object_storage.split("://", 1)[1])
    assert sorted(path.rsplit("/", 1)[-1] for path in stored) == [
        "node_energy.parquet",
        "node_readings.parquet",
    ]
