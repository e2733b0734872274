"""deploy/dagster.yaml against Dagster's own config schemas: the instance schema, then each configured class
(Postgres storage, K8sRunLauncher, queued run coordinator, compute logs) resolved and its config processed
by that class's own config type, exactly as `DagsterInstance` does before instantiating it."""

import importlib
import re
from pathlib import Path

import pytest
import yaml
from dagster._config import process_config
from dagster._core.errors import DagsterInvalidConfigError
from dagster._core.instance.config import dagster_instance_config
from dagster._core.instance.ref import InstanceRef
from dagster._serdes.config_class import ConfigurableClassData

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
PG_ENV = {
    "DAGSTER_PG_HOST": "postgres.jouletrace.svc.cluster.local",
    "DAGSTER_PG_PORT": "5432",
    "DAGSTER_PG_DB": "dagster",
    "DAGSTER_PG_USERNAME": "dagster",
    "DAGSTER_PG_PASSWORD": "only-in-the-environment",
}
KUBECONFIG = """apiVersion: v1
kind: Config
clusters: [{name: test, cluster: {server: "https://127.0.0.1:6443"}}]
users: [{name: test, user: {token: not-a-secret}}]
contexts: [{name: test, context: {cluster: test, user: test}}]
current-context: test
"""


@pytest.fixture
def pg_env(monkeypatch):
    for name, value in PG_ENV.items():
        monkeypatch.setenv(name, value)


def deployment_config() -> dict:
    return yaml.safe_load((DEPLOY / "dagster.yaml").read_text())


def home_with(tmp_path: Path, config: dict) -> Path:
    home = tmp_path / "home"
    home.mkdir(exist_ok=True)
    (home / "dagster.yaml").write_text(yaml.safe_dump(config))
    return home


def processed(data: ConfigurableClassData):
    """The class named by `data` and its config processed by the class's config type (env resolved)."""
    klass = getattr(importlib.import_module(data.module_name), data.class_name)
    result = process_config(klass.config_type(), yaml.safe_load(data.config_yaml) or {})
    return klass, result


def test_instance_config_passes_dagsters_schema_and_every_class_config_type(pg_env):
    config, custom_instance_class = dagster_instance_config(str(DEPLOY))
    assert custom_instance_class is None
    assert {"storage", "run_launcher", "run_coordinator", "compute_logs"} <= set(config)
    ref = InstanceRef.from_dir(str(DEPLOY))
    classes = {}
    for part in ("storage_data", "run_launcher_data", "run_coordinator_data", "compute_logs_data"):
        klass, result = processed(getattr(ref, part))
        assert result.success, (part, [error.message for error in result.errors])
        classes[part] = (klass.__module__.split(".")[0], klass.__name__, result.value)
    # dagster-postgres for runs, event logs and schedules; dagster-k8s for launching.
    assert classes["storage_data"][:2] == ("dagster_postgres", "DagsterPostgresStorage")
    assert ref.run_storage_data.class_name == "PostgresRunStorage"
    assert ref.event_storage_data.class_name == "PostgresEventLogStorage"
    assert ref.schedule_storage_data.class_name == "PostgresScheduleStorage"
    assert classes["run_launcher_data"][:2] == ("dagster_k8s", "K8sRunLauncher")
    assert classes["run_coordinator_data"][1] == "QueuedRunCoordinator"
    postgres = classes["storage_data"][2]["postgres_db"]
    assert postgres["port"] == 5432 and postgres["hostname"] == PG_ENV["DAGSTER_PG_HOST"]
    assert postgres["password"] == PG_ENV["DAGSTER_PG_PASSWORD"]  # read from the environment
    launcher = classes["run_launcher_data"][2]
    assert launcher["instance_config_map"] == "jouletrace-dagster-instance"
    assert launcher["load_incluster_config"] is True


def test_the_k8s_run_launcher_is_built_from_the_deployment_config(pg_env, tmp_path):
    """Instantiated for real (class resolved, config processed, constructor run); only its Kubernetes
    client reads a kubeconfig, never contacted, instead of the in-cluster service account."""
    config = deployment_config()
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(KUBECONFIG)
    config["run_launcher"]["config"].update(load_incluster_config=False, kubeconfig_file=str(kubeconfig))
    launcher = InstanceRef.from_dir(str(home_with(tmp_path, config))).run_launcher
    assert type(launcher).__name__ == "K8sRunLauncher"
    assert launcher.job_namespace == "jouletrace"
    assert launcher.env_secrets == ["jouletrace-object-storage"]
    assert launcher.env_config_maps == ["jouletrace-settings"]
    assert launcher.postgres_password_secret == "jouletrace-postgresql"
    assert launcher.resources["limits"]["memory"] == "8Gi"


def test_a_misspelt_key_is_refused_by_dagsters_schema(pg_env, tmp_path):
    """The checks above would catch a mistake: Dagster's schema refuses unknown keys."""
    config = deployment_config()
    postgres = config["storage"]["postgres"]["postgres_db"]
    postgres["hostnme"] = postgres.pop("hostname")
    with pytest.raises(DagsterInvalidConfigError, match="hostnme"):
        dagster_instance_config(str(home_with(tmp_path, config)))
    config = deployment_config()
    config["run_launcher"]["config"]["env_secret"] = config["run_launcher"]["config"].pop("env_secrets")
    klass, result = processed(InstanceRef.from_dir(str(home_with(tmp_path, config))).run_launcher_data)
    assert not result.success
    assert "env_secret" in " ".join(error.message for error in result.errors)


def test_a_missing_secret_variable_fails_loudly_without_a_default(monkeypatch):
    for name in PG_ENV:
        monkeypatch.delenv(name, raising=False)
    klass, result = processed(InstanceRef.from_dir(str(DEPLOY)).storage_data)
    assert not result.success
    assert "DAGSTER_PG_PASSWORD" in " ".join(error.message for error in result.errors)


def _keys_and_values(node, path=()):
    if isinstance(node, dict):
        for key, value in node.items():
            yield (*path, str(key)), value
            yield from _keys_and_values(value, (*path, str(key)))
    elif isinstance(node, list):
        for item in node:
            yield from _keys_and_values(item, path)


def test_no_secret_is_written_in_the_deployment_files():
    """Passwords, keys and tokens appear only as references: `env:` in dagster.yaml, Kubernetes Secret
    names elsewhere (keys naming a secret end in "secret" or "secretName")."""
    postgres = deployment_config()["storage"]["postgres"]["postgres_db"]
    for key in ("password", "username", "hostname", "db_name", "port"):
        assert set(postgres[key]) == {"env"}, key
    secretish = re.compile(r"password|secret_?access_?key|secretkey|^token$|api_?key", re.IGNORECASE)
    names_a_secret = re.compile(r"secret(name)?$", re.IGNORECASE)
    checked = 0
    for path in sorted(DEPLOY.glob("*.yaml")):
        for document in yaml.safe_load_all(path.read_text()):
            for keys, value in _keys_and_values(document):
                key = keys[-1]
                if not secretish.search(key) or names_a_secret.search(key):
                    continue
                checked += 1
                assert isinstance(value, dict) and set(value) == {"env"}, f"{path.name}: {'.'.join(keys)}"
    assert checked >= 1
    dockerfile = (DEPLOY / "Dockerfile").read_text()
    assert not re.search(r"^\s*(ENV|ARG)\b.*(PASSWORD|SECRET|TOKEN|ACCESS_KEY)", dockerfile, re.M | re.I)
    for path in sorted(DEPLOY.iterdir()):
        assert not re.search(r"AKIA[0-9A-Z]{16}", path.read_text()), path.name
