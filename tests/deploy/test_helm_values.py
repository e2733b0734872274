"""deploy/helm-values.yaml against the keys of Dagster's official Helm chart, and against the other deployment
files (instance config, user-code image, workspace, pinned dagster version)."""

import re
import tomllib
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"

# Keys of the chart's values.schema.json (helm/dagster/values.schema.json in dagster-io/dagster, the
# version generated from helm/dagster/schema at commit bdb8547f), for the sections these values set.
# ANY: a Kubernetes object or a free-form map, whose contents the chart passes through.
ANY = object()


def free_keys(names: str) -> dict:
    """Keys whose values are not checked further."""
    return dict.fromkeys(names.split(), ANY)


IMAGE = {"repository": ANY, "tag": ANY, "pullPolicy": {"Always", "IfNotPresent", "Never"}}
K8S_RUN_LAUNCHER = {
    "image": IMAGE,
    "imagePullPolicy": IMAGE["pullPolicy"],
    "jobNamespace": ANY,
    "loadInclusterConfig": ANY,
    "kubeconfigFile": ANY,
    "envConfigMaps": ANY,
    "envSecrets": ANY,
    "envVars": ANY,
    "volumeMounts": ANY,
    "volumes": ANY,
    "labels": ANY,
    "failPodOnRunFailure": ANY,
    "resources": ANY,
    "schedulerName": ANY,
    "securityContext": ANY,
    "runK8sConfig": dict.fromkeys(
        ("containerConfig", "podSpecConfig", "podTemplateSpecMetadata", "jobSpecConfig", "jobMetadata"), ANY
    ),
}
USER_DEPLOYMENT = {
    "name": ANY,
    "image": IMAGE,
    "dagsterApiGrpcArgs": ANY,
    "codeServerArgs": ANY,
    "includeConfigInLaunchedRuns": {"enabled": ANY},
    "deploymentNamespace": ANY,
    "port": ANY,
    **free_keys(
        "env envConfigMaps envSecrets annotations nodeSelector affinity tolerations podSecurityContext "
        "securityContext resources livenessProbe readinessProbe startupProbe labels volumeMounts volumes "
        "schedulerName initContainers sidecarContainers"
    ),
}
QUEUED_RUN_COORDINATOR = free_keys(
    "maxConcurrentRuns tagConcurrencyLimits dequeueIntervalSeconds dequeueNumWorkers dequeueUseThreads "
    "blockOpConcurrencyLimitedRuns"
)
DAEMON = {
    **free_keys(
        "enabled image heartbeatTolerance env envConfigMaps envSecrets deploymentLabels labels nodeSelector "
        "affinity tolerations podSecurityContext securityContext resources livenessProbe readinessProbe "
        "startupProbe annotations runMonitoring runRetries sensors schedules schedulerName volumeMounts "
        "volumes initContainerResources"
    ),
    "runCoordinator": {
        "enabled": ANY,
        "type": {"QueuedRunCoordinator", "CustomRunCoordinator"},
        "config": {"queuedRunCoordinator": QUEUED_RUN_COORDINATOR, "customRunCoordinator": ANY},
    },
}
CHART = {
    # Sections these values do not set: only their names are checked.
    **free_keys(
        "dagsterWebserver generateCeleryConfigSecret rabbitmq redis flower ingress imagePullSecrets scheduler "
        "pythonLogs busybox migrate serviceAccount retention additionalInstanceConfig"
    ),
    "global": dict.fromkeys(
        ("postgresqlSecretName", "dagsterHome", "serviceAccountName", "celeryConfigSecretName"), ANY
    ),
    "generatePostgresqlPasswordSecret": ANY,
    "postgresql": {
        "image": IMAGE,
        "service": {"port": ANY},
        **free_keys(
            "enabled postgresqlHost postgresqlUsername postgresqlPassword postgresqlDatabase postgresqlParams "
            "postgresqlScheme"
        ),
    },
    "dagster-user-deployments": {
        "enabled": ANY,
        "enableSubchart": ANY,
        "imagePullSecrets": ANY,
        "deployments": [USER_DEPLOYMENT],
    },
    "runLauncher": {
        "type": {"CeleryK8sRunLauncher", "K8sRunLauncher", "CustomRunLauncher"},
        "config": {"celeryK8sRunLauncher": ANY, "k8sRunLauncher": K8S_RUN_LAUNCHER, "customRunLauncher": ANY},
    },
    "dagsterDaemon": DAEMON,
    "computeLogManager": {
        "type": {
            "NoOpComputeLogManager",
            "AzureBlobComputeLogManager",
            "GCSComputeLogManager",
            "S3ComputeLogManager",
            "CustomComputeLogManager",
        },
        "config": ANY,
    },
    "telemetry": {"enabled": ANY},
}


def unknown_keys(values, schema, path="") -> list[str]:
    """Paths in `values` that `schema` does not have, and values outside an enumeration (a set)."""
    if schema is ANY:
        return []
    if isinstance(schema, set):
        return [] if values in schema else [f"{path} = {values!r} (one of {sorted(schema)})"]
    if isinstance(schema, list):
        if not isinstance(values, list):
            return [f"{path}: a list expected"]
        return [
            problem
            for i, item in enumerate(values)
            for problem in unknown_keys(item, schema[0], f"{path}[{i}]")
        ]
    if not isinstance(values, dict):
        return [f"{path}: a mapping expected"]
    problems = []
    for key, value in values.items():
        where = f"{path}.{key}" if path else key
        if key not in schema:
            problems.append(where)
        else:
            problems.extend(unknown_keys(value, schema[key], where))
    return problems


def values() -> dict:
    return yaml.safe_load((DEPLOY / "helm-values.yaml").read_text())


def instance() -> dict:
    return yaml.safe_load((DEPLOY / "dagster.yaml").read_text())


def test_values_use_only_keys_of_the_official_chart():
    assert unknown_keys(values(), CHART) == []


def test_the_key_check_catches_a_wrong_key():
    wrong = values()
    wrong["runLauncher"]["config"]["k8sRunLauncher"]["envSecret"] = []
    wrong["runLauncher"]["type"] = "K8sRunlauncher"
    assert unknown_keys(wrong, CHART) == [
        "runLauncher.type = 'K8sRunlauncher' (one of ['CeleryK8sRunLauncher', 'CustomRunLauncher', 'K8sRunLauncher'])",
        "runLauncher.config.k8sRunLauncher.envSecret",
    ]


def test_values_and_the_instance_config_describe_the_same_deployment():
    chart, dagster = values(), instance()
    launcher = dagster["run_launcher"]["config"]
    k8s = chart["runLauncher"]["config"]["k8sRunLauncher"]
    assert chart["runLauncher"]["type"] == dagster["run_launcher"]["class"] == "K8sRunLauncher"
    assert k8s["resources"] == launcher["resources"]
    assert k8s["imagePullPolicy"] == launcher["image_pull_policy"]
    assert k8s["failPodOnRunFailure"] == launcher["fail_pod_on_run_failure"]
    assert chart["global"]["postgresqlSecretName"] == launcher["postgres_password_secret"]
    assert chart["global"]["serviceAccountName"] == launcher["service_account_name"]
    assert chart["postgresql"]["postgresqlScheme"] == dagster["storage"]["postgres"]["postgres_db"]["scheme"]
    assert chart["postgresql"]["enabled"] is False and chart["generatePostgresqlPasswordSecret"] is False
    queued = chart["dagsterDaemon"]["runCoordinator"]
    assert queued["type"] == dagster["run_coordinator"]["class"]
    assert (
        queued["config"]["queuedRunCoordinator"]["maxConcurrentRuns"]
        == (dagster["run_coordinator"]["config"]["max_concurrent_runs"])
    )
    assert chart["computeLogManager"]["type"] == dagster["compute_logs"]["class"]
    # The run pods get the object-store credentials in both: from the code location through
    # includeConfigInLaunchedRuns with Helm, from the launcher's env_secrets without it.
    (deployment,) = chart["dagster-user-deployments"]["deployments"]
    assert deployment["includeConfigInLaunchedRuns"]["enabled"] is True
    assert [secret["name"] for secret in deployment["envSecrets"]] == launcher["env_secrets"]
    # A map, so that the chart hands it on to the run pods (a list only reaches the code server).
    assert isinstance(deployment["env"], dict) and deployment["env"]["JOULETRACE_DATA"].startswith("s3://")
    assert "resources" not in deployment  # would override the run pods' resources


def test_the_code_location_is_the_one_the_image_and_the_workspace_serve():
    (deployment,) = values()["dagster-user-deployments"]["deployments"]
    module = deployment["dagsterApiGrpcArgs"][deployment["dagsterApiGrpcArgs"].index("--module-name") + 1]
    workspace = yaml.safe_load((ROOT / "workspace.yaml").read_text())
    assert workspace["load_from"] == [{"python_module": module}]
    dockerfile = (DEPLOY / "Dockerfile").read_text()
    assert f'"--module-name", "{module}"' in dockerfile
    assert f'"-p", "{deployment["port"]}"' in dockerfile and f"EXPOSE {deployment['port']}" in dockerfile
    user = re.search(r"^USER (\d+)$", dockerfile, re.M)
    assert user and int(user.group(1)) == deployment["podSecurityContext"]["runAsUser"]
    assert "'.[deploy]'" in dockerfile
    # Every package the project ships is copied into the image.
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    packages = {
        pattern.rstrip("*") for pattern in project["tool"]["setuptools"]["packages"]["find"]["include"]
    }
    copied = set(re.findall(r"^COPY (\w+) \./\1$", dockerfile, re.M))
    assert packages <= copied
    python = re.search(r"^FROM python:(\d+\.\d+)", dockerfile, re.M).group(1)
    assert project["project"]["requires-python"] == f">={python}"


def test_chart_and_integration_versions_follow_the_pinned_dagster():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    (dagster,) = [d for d in project["project"]["dependencies"] if d.startswith("dagster==")]
    version = dagster.split("==")[1]
    major, minor, patch = version.split(".")
    assert f"--version {version}" in (DEPLOY / "helm-values.yaml").read_text()
    integrations = f"0.{int(minor) + 16}.{patch}"  # dagster 1.13.27 <-> dagster-k8s 0.29.27
    for extra in ("deploy", "dev"):
        pins = {
            d.split("==")[0]: d.split("==")[1]
            for d in project["project"]["optional-dependencies"][extra]
            if "==" in d
        }
        assert pins["dagster-postgres"] == pins["dagster-k8s"] == integrations, extra
