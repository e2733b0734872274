"""The recorded-source folder reader: a tiny folder written in tmp_path, read back."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import schemas
from collectors.cluster.recorded import RecordedSources

ARGO_DIR = Path(__file__).resolve().parents[2] / ".." / "shared" / "data" / "argo"
WORKFLOW = "dag-diamond-82q7s"
HOST = "k3d-k3s-default-server-0"
OTHER_HOST = "gpu-node-7"
T0 = datetime(2024, 10, 1, 4, 27, 20, tzinfo=UTC)


def write_json(path: Path, obj) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj))
    return path


def pod(node_id: str, cpu: str) -> dict:
    return {
        "metadata": {
            "name": f"{WORKFLOW}-echo-{node_id.rsplit('-', 1)[1]}",
            "namespace": "argo",
            "labels": {"workflows.argoproj.io/workflow": WORKFLOW},
            "annotations": {"workflows.argoproj.io/node-id": node_id},
        },
        "spec": {
            "nodeName": HOST,
            "containers": [
                {"name": "wait", "resources": {"requests": {"cpu": "10m", "memory": "64Mi"}}},
                {"name": "main", "resources": {"requests": {"cpu": cpu, "memory": "1Gi"}}},
            ],
        },
        "status": {"containerStatuses": [{"name": "main", "containerID": "containerd://abc"}]},
    }


def power_rows(host: str, seconds: range) -> list[dict]:
    return [
        {
            "host_node": host,
            "device_kind": "cpu_package",
            "device_id": "package-0",
            "timestamp": T0 + timedelta(seconds=s),
            "value": 1000.0 + 50.0 * s,
            "value_kind": "energy_counter_joules",
            "counter_max_joules": 262143.99,
            "source": "rapl",
            "provenance": "synthetic",
        }
        for s in seconds
    ]


def container_rows(host: str | None, pod_name: str, seconds: range) -> list[dict]:
    """An agent cgroup CPU-time counter of one container, using 0.5 CPU-seconds per second."""
    return [
        {
            "host_node": host,
            "namespace": "argo",
            "pod_name": pod_name,
            "pod_uid": f"uid-{pod_name}",
            "container_id": f"cid-{pod_name}",
            "device_kind": None,
            "timestamp": T0 + timedelta(seconds=s),
            "value": 0.5 * (s - seconds[0]),
            "value_kind": "cpu_seconds_counter",
            "source": "agent-cgroup",
            "provenance": "synthetic",
        }
        for s in seconds
    ]


def write_power(folder: Path, host: str, table: pa.Table, kind: str = "power") -> Path:
    path = folder / kind / f"{host}.parquet"
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, path)
    return path


@pytest.fixture
def recorded(tmp_path: Path) -> Path:
    """One real workflow, its pods, one node and power readings of two nodes."""
    folder = tmp_path / "recorded"
    write_json(
        folder / "manifest.json",
        {
            "cluster": "lab-k3d",
            "provenance": "synthetic",
            "generator": "test",
            "seed": 7,
            "created_at": "2026-01-01T00:00:00Z",
        },
    )
    workflow = json.loads((ARGO_DIR / "dagDiamondRetry.workflow.json").read_text())
    write_json(folder / "argo" / "workflows" / "argo" / f"{WORKFLOW}.json", workflow)
    pods = [
        pod(node_id, "500m") for node_id, node in workflow["status"]["nodes"].items() if node["type"] == "Pod"
    ]
    write_json(
        folder / "kubernetes" / "pods" / "argo" / f"{WORKFLOW}.json", {"kind": "PodList", "items": pods}
    )
    node = {
        "metadata": {"name": HOST, "labels": {"kubernetes.io/hostname": HOST}},
        "status": {"capacity": {"cpu": "8", "memory": "16Gi"}},
    }
    write_json(folder / "kubernetes" / "nodes.json", {"kind": "NodeList", "items": [node]})
    write_power(folder, HOST, schemas.conform("power_samples", power_rows(HOST, range(0, 30, 5))))
    write_power(
        folder, OTHER_HOST, schemas.conform("power_samples", power_rows(OTHER_HOST, range(0, 30, 10)))
    )
    return folder


def test_round_trip(recorded: Path):
    sources = RecordedSources(recorded)
    assert sources.manifest["cluster"] == "lab-k3d" and sources.manifest["seed"] == 7
    assert [obj["metadata"]["name"] for obj in sources.workflow_objects()] == [WORKFLOW]
    assert len(sources.pod_lists()) == 1 and sources.node_list()["kind"] == "NodeList"

    workflows, tasks = sources.workflows_and_tasks()
    assert workflows.schema.equals(schemas.WORKFLOWS) and tasks.schema.equals(schemas.TASKS)
    (workflow,) = workflows.to_pylist()
    assert (workflow["workflow_name"], workflow["cluster"], workflow["provenance"]) == (
        WORKFLOW,
        "lab-k3d",
        "synthetic",
    )
    assert workflow["task_count"] == tasks.num_rows == 4
    assert set(tasks["provenance"].to_pylist()) == {"synthetic"}
    assert tasks["cpu_request_cores"].to_pylist() == [0.51] * 4
    assert tasks["memory_request_bytes"].to_pylist() == [2**30 + 64 * 2**20] * 4
    assert set(tasks["host_node"].to_pylist()) == {HOST}

    (machine,) = sources.machines().to_pylist()
    assert (machine["host_node"], machine["cores"], machine["memory_bytes"]) == (HOST, 8, 16 * 2**30)
    assert machine["provenance"] == "synthetic"


def test_power_samples_filters_by_node_and_time(recorded: Path):
    sources = RecordedSources(recorded)
    everything = sources.power_samples()
    assert everything.schema.equals(schemas.POWER_SAMPLES)
    assert everything.num_rows == 6 + 3
    assert everything["host_node"].to_pylist() == [OTHER_HOST] * 3 + [HOST] * 6  # sorted by node, then time
    window = sources.power_samples(
        [HOST, "node-without-readings"], T0 + timedelta(seconds=5), T0 + timedelta(seconds=15)
    )
    assert [t - T0 for t in window["timestamp"].to_pylist()] == [timedelta(seconds=s) for s in (5, 10, 15)]
    assert set(window["host_node"].to_pylist()) == {HOST}
    assert sources.power_samples([], None, None).num_rows == 0
    assert sources.power_samples(["node-without-readings"]).schema.equals(schemas.POWER_SAMPLES)
    with pytest.raises(ValueError, match="has no time zone"):
        sources.power_samples([HOST], start=datetime(2024, 10, 1))


def test_power_file_with_nanoseconds_and_large_strings_is_accepted(recorded: Path):
    """A spool written by pandas (ns timestamps) is cast to the schema, not rejected."""
    table = schemas.conform("power_samples", power_rows(HOST, range(3)))
    table = table.set_column(3, "timestamp", table["timestamp"].cast(pa.timestamp("ns", tz="UTC")))
    table = table.set_column(0, "host_node", table["host_node"].cast(pa.large_string()))
    write_power(recorded, HOST, table)
    read = RecordedSources(recorded).power_samples([HOST])
    assert read.schema.equals(schemas.POWER_SAMPLES) and read.num_rows == 3


def test_defaults_without_manifest(tmp_path: Path):
    sources = RecordedSources(tmp_path)
    assert sources.manifest["cluster"] == "unknown" and sources.manifest["provenance"] == "measured"
    workflows, tasks = sources.workflows_and_tasks()
    assert workflows.num_rows == tasks.num_rows == 0
    assert sources.power_samples().num_rows == 0
    with pytest.raises(FileNotFoundError, match="nodes.json: no NodeList recorded"):
        sources.machines()
    with pytest.raises(FileNotFoundError, match="no such recorded-source folder"):
        RecordedSources(tmp_path / "missing")


def test_bad_manifest_names_the_file(tmp_path: Path):
    write_json(tmp_path / "manifest.json", {"cluster": "c", "provenance": "guessed"})
    with pytest.raises(ValueError, match=r"manifest.json: provenance 'guessed' is not one of"):
        RecordedSources(tmp_path)


def test_bad_workflow_json_names_the_file(recorded: Path):
    path = recorded / "argo" / "workflows" / "argo" / "broken.json"
    path.write_text("{not json")
    with pytest.raises(ValueError, match=f"{path}: not valid JSON"):
        RecordedSources(recorded).workflow_objects()


def test_bad_workflow_field_names_the_file_and_node(recorded: Path):
    path = recorded / "argo" / "workflows" / "argo" / f"{WORKFLOW}.json"
    workflow = json.loads(path.read_text())
    workflow["status"]["nodes"][f"{WORKFLOW}-1226654358"]["startedAt"] = "2024-13-01T04:27:36Z"
    write_json(path, workflow)
    with pytest.raises(
        ValueError, match=rf"{path}: workflow argo/{WORKFLOW}: node {WORKFLOW}-1226654358 .*startedAt"
    ):
        RecordedSources(recorded).workflows_and_tasks()


def test_bad_pods_and_nodes_name_the_file(recorded: Path):
    pods_path = recorded / "kubernetes" / "pods" / "argo" / f"{WORKFLOW}.json"
    podlist = json.loads(pods_path.read_text())
    podlist["items"][0]["spec"]["containers"][1]["resources"]["requests"]["memory"] = "1 GB"
    write_json(pods_path, podlist)
    with pytest.raises(ValueError, match=rf"{pods_path}: pod argo/.*: container main: '1 GB'"):
        RecordedSources(recorded).workflows_and_tasks()
    nodes_path = write_json(
        recorded / "kubernetes" / "nodes.json",
        {"items": [{"metadata": {"name": HOST}, "status": {"capacity": {"cpu": "eight"}}}]},
    )
    with pytest.raises(ValueError, match=rf"{nodes_path}: node {HOST}: status.capacity\['cpu'\]"):
        RecordedSources(recorded).machines()


def test_bad_power_files_name_the_file(recorded: Path):
    rows = power_rows(HOST, range(3))
    rows[1]["device_kind"] = "toaster"
    path = write_power(recorded, HOST, schemas.conform("power_samples", rows))
    with pytest.raises(schemas.SchemaError, match=rf"{path}: table power_samples, column 'device_kind'"):
        RecordedSources(recorded).power_samples([HOST])

    table = schemas.conform("power_samples", power_rows(HOST, range(2)))
    naive = pa.array([datetime(2024, 10, 1), datetime(2024, 10, 2)], pa.timestamp("us"))
    path = write_power(recorded, HOST, table.set_column(3, "timestamp", naive))
    with pytest.raises(schemas.SchemaError, match=rf"{path}: table power_samples, column 'timestamp': naive"):
        RecordedSources(recorded).power_samples([HOST])

    path = write_power(recorded, HOST, schemas.conform("power_samples", power_rows(OTHER_HOST, range(2))))
    with pytest.raises(ValueError, match=rf"{path}: holds readings of other nodes \['{OTHER_HOST}'\]"):
        RecordedSources(recorded).power_samples()

    path.write_bytes(b"not parquet")
    with pytest.raises(ValueError, match=f"{path}: not a readable Parquet file"):
        RecordedSources(recorded).power_samples([HOST])


def test_container_samples_filter_by_node_and_time(recorded: Path):
    sources = RecordedSources(recorded)
    assert sources.container_samples().schema.equals(schemas.CONTAINER_SAMPLES)
    assert sources.container_samples().num_rows == 0, "no containers/ folder: no readings"
    rows = container_rows(HOST, "pod-b", range(10, 30, 5)) + container_rows(HOST, "pod-a", range(0, 20, 5))
    write_power(recorded, HOST, schemas.conform("container_samples", rows), "containers")
    write_power(
        recorded,
        OTHER_HOST,
        schemas.conform("container_samples", container_rows(OTHER_HOST, "pod-c", range(0, 30, 10))),
        "containers",
    )
    everything = sources.container_samples()
    assert everything.schema.equals(schemas.CONTAINER_SAMPLES) and everything.num_rows == 4 + 4 + 3
    assert (
        everything["pod_name"].to_pylist() == ["pod-c"] * 3 + ["pod-a"] * 4 + ["pod-b"] * 4
    )  # node, pod, time
    window = sources.container_samples(
        [HOST, "node-without-readings"], T0 + timedelta(seconds=5), T0 + timedelta(seconds=15)
    )
    assert [(r["pod_name"], r["timestamp"] - T0, r["value"]) for r in window.to_pylist()] == [
        ("pod-a", timedelta(seconds=5), 2.5),
        ("pod-a", timedelta(seconds=10), 5.0),
        ("pod-a", timedelta(seconds=15), 7.5),
        ("pod-b", timedelta(seconds=10), 0.0),
        ("pod-b", timedelta(seconds=15), 2.5),
    ]
    assert sources.container_samples([]).num_rows == 0
    with pytest.raises(ValueError, match="has no time zone"):
        sources.container_samples([HOST], end=datetime(2024, 10, 1))


def test_bad_container_files_name_the_file(recorded: Path):
    rows = container_rows(HOST, "pod-a", range(3))
    rows[1]["value_kind"] = "cpu_percent"
    path = write_power(recorded, HOST, schemas.conform("container_samples", rows), "containers")
    with pytest.raises(schemas.SchemaError, match=rf"{path}: table container_samples, column 'value_kind'"):
        RecordedSources(recorded).container_samples([HOST])

    rows = container_rows(None, "pod-a", range(2))
    path = write_power(recorded, HOST, schemas.conform("container_samples", rows), "containers")
    with pytest.raises(ValueError, match=rf"{path}: holds readings of other nodes \[None\]"):
        RecordedSources(recorded).container_samples()
