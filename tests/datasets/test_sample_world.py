"""The sample world, checked on real generated output: layout, Argo/Kubernetes fidelity, meters, truth."""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import timedelta
from pathlib import Path
from types import MappingProxyType

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

import schemas
from collectors.cluster.recorded import RecordedSources
from datasets.sample_world import SampleWorldSummary, generate
from datasets.sample_world import plan as plan_module
from datasets.sample_world.argo import fnv1a32 as generator_fnv1a32
from datasets.sample_world.argo import node_id as argo_node_id
from datasets.sample_world.cluster import NodeSpec, build_cluster
from datasets.sample_world.plan import PodTask, WorkflowPlan, plan_world
from datasets.sample_world.power import Device, GpuDemand, PowerTrace, time_slice, truth_row
from datasets.sample_world.recipes import RECIPES, Recipe, TaskType
from datasets.sample_world.scheduler import Outcome, runtime_on, simulate
from schemas.tables import KEYS

SEED = 7
RAPL_MAX_JOULES = 262143.328850
SECOND_PRECISION = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")
CONTAINER_ID = re.compile(r"^containerd://[0-9a-f]{64}$")
READING_INTERVAL_SECONDS = MappingProxyType(
    {"cpu-node-1": 1.0, "cpu-node-2": 5.0, "cpu-node-3": 15.0, "gpu-node-1": 1.0, "fpga-node-1": 1.0}
)


def fnv1a32(text: str) -> int:
    h = 0x811C9DC5
    for byte in text.encode():
        h = ((h ^ byte) * 0x01000193) % 2**32
    return h


def files_of(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> SampleWorldSummary:
    return generate(tmp_path_factory.mktemp("world"), seed=SEED)


@pytest.fixture(scope="module")
def workflows(world: SampleWorldSummary) -> list[dict]:
    paths = sorted((world.out_dir / "argo" / "workflows").glob("*/*.json"))
    return [json.loads(p.read_text()) for p in paths]


@pytest.fixture(scope="module")
def pod_lists(world: SampleWorldSummary) -> dict[str, dict]:
    paths = sorted((world.out_dir / "kubernetes" / "pods").glob("*/*.json"))
    return {p.stem: json.loads(p.read_text()) for p in paths}


@pytest.fixture(scope="module")
def power(world: SampleWorldSummary) -> pd.DataFrame:
    tables = [pq.read_table(p).to_pandas() for p in sorted((world.out_dir / "power").glob("*.parquet"))]
    return pd.concat(tables, ignore_index=True)


@pytest.fixture(scope="module")
def containers(world: SampleWorldSummary) -> pd.DataFrame:
    paths = sorted((world.out_dir / "containers").glob("*.parquet"))
    return pd.concat([pq.read_table(p).to_pandas() for p in paths], ignore_index=True)


@pytest.fixture(scope="module")
def truth(world: SampleWorldSummary) -> pd.DataFrame:
    return pq.read_table(world.out_dir / "truth" / "task_energy.parquet").to_pandas()


@pytest.fixture(scope="module")
def host_of_task(pod_lists: dict[str, dict]) -> dict[str, str]:
    return {
        pod["metadata"]["annotations"]["workflows.argoproj.io/node-id"]: pod["spec"]["nodeName"]
        for pod_list in pod_lists.values()
        for pod in pod_list["items"]
    }


@dataclass(frozen=True)
class Model:
    """What a generated world recorded, before recording: its nodes, workflows, pods and their attempts."""

    cluster: tuple[NodeSpec, ...]
    plans: list[WorkflowPlan]
    pods: list[PodTask]
    outcomes: list[Outcome]


def child_rngs(seed: int) -> list[np.random.Generator]:
    """The generators world.generate draws the cluster, the plan and the schedule from, in that order."""
    return [np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(5)[:3]]


@pytest.fixture(scope="module")
def model(world: SampleWorldSummary) -> Model:
    cluster_rng, plan_rng, schedule_rng = child_rngs(SEED)
    cluster = build_cluster(cluster_rng)
    plans, pods = plan_world(plan_rng, world.n_workflows)
    return Model(cluster, plans, pods, simulate(schedule_rng, plans, pods, cluster))


@pytest.fixture(scope="module")
def hosts(model: Model) -> dict[str, NodeSpec]:
    return {node.name: node for node in model.cluster}


def pod_nodes(workflow: dict) -> list[dict]:
    return [n for n in workflow["status"]["nodes"].values() if n["type"] == "Pod"]


def test_hash_is_argos_fnv1a32(shared_data: Path):
    """The test's and the generator's hash both reproduce the node ids of real Argo workflows."""
    checked = 0
    for path in sorted((shared_data / "argo").glob("*.json")):
        workflow = json.loads(path.read_text())
        name = workflow["metadata"]["name"]
        for node_id, node in workflow["status"]["nodes"].items():
            if node_id != name:
                assert (
                    node_id
                    == f"{name}-{fnv1a32(node['name'])}"
                    == f"{name}-{generator_fnv1a32(node['name'])}"
                )
                checked += 1
    assert checked > 20


def test_same_seed_gives_identical_files(world: SampleWorldSummary, tmp_path: Path):
    again = generate(tmp_path / "again", seed=SEED)
    assert again == SampleWorldSummary(**{**world.__dict__, "out_dir": again.out_dir})
    assert files_of(again.out_dir) == files_of(world.out_dir)


def test_other_seed_replaces_the_previous_world(world: SampleWorldSummary, tmp_path: Path):
    folder = tmp_path / "reused"
    shutil.copytree(world.out_dir, folder)
    other = generate(folder, seed=SEED + 1)
    before, after = files_of(world.out_dir), files_of(folder)
    assert after != before
    assert json.loads(after["manifest.json"])["seed"] == SEED + 1
    workflow_files = sorted((folder / "argo" / "workflows").glob("*/*.json"))
    pod_files = sorted((folder / "kubernetes" / "pods").glob("*/*.json"))
    assert len(workflow_files) == len(pod_files) == other.n_workflows
    assert [p.name for p in workflow_files] == [p.name for p in pod_files]
    assert not list(folder.rglob("*.tmp"))


def test_rejects_an_empty_world(tmp_path: Path):
    with pytest.raises(ValueError):
        generate(tmp_path, n_workflows=0)


def test_size_and_span(
    world: SampleWorldSummary, workflows: list[dict], power: pd.DataFrame, containers: pd.DataFrame
):
    assert world.n_workflows == len(workflows) >= 20
    assert world.n_tasks == sum(len(pod_nodes(w)) for w in workflows) >= 500
    assert world.n_power_samples == len(power)
    assert world.n_container_samples == len(containers)
    assert world.nodes == list(READING_INTERVAL_SECONDS)
    assert world.start.tzinfo is not None and world.end.tzinfo is not None
    assert timedelta(hours=1) <= world.end - world.start <= timedelta(hours=3)


def test_manifest(world: SampleWorldSummary):
    manifest = json.loads((world.out_dir / "manifest.json").read_text())
    assert manifest == {
        "cluster": "sample",
        "provenance": "synthetic",
        "generator": "jouletrace.sample_world",
        "seed": SEED,
        "created_at": manifest["created_at"],
    }
    assert SECOND_PRECISION.match(manifest["created_at"])


def test_every_parquet_file_validates(world: SampleWorldSummary):
    files = sorted(world.out_dir.rglob("*.parquet"))
    assert [str(p.relative_to(world.out_dir)) for p in files] == sorted(
        [f"{folder}/{node}.parquet" for folder in ("containers", "power") for node in world.nodes]
        + ["truth/task_energy.parquet"]
    )
    tables = {"truth": "task_energy", "power": "power_samples", "containers": "container_samples"}
    for path in files:
        table = pq.read_table(path)
        name = tables[path.parent.name]
        schemas.validate(name, table, str(path))
        assert set(table["provenance"].to_pylist()) == {"synthetic"}


def test_node_list(world: SampleWorldSummary):
    nodes = json.loads((world.out_dir / "kubernetes" / "nodes.json").read_text())
    assert (nodes["apiVersion"], nodes["kind"]) == ("v1", "NodeList")
    by_name = {n["metadata"]["name"]: n for n in nodes["items"]}
    assert list(by_name) == world.nodes
    for name, node in by_name.items():
        labels, annotations = node["metadata"]["labels"], node["metadata"]["annotations"]
        assert labels["kubernetes.io/hostname"] == name
        assert labels["feature.node.kubernetes.io/cpu-model.vendor_id"] == "Intel"
        assert annotations["jouletrace.io/cpu-sockets"] == "2"
        assert int(annotations["jouletrace.io/cpu-speed-mhz"]) > 1000
        assert re.match(r"^\d+Ki$", node["status"]["capacity"]["memory"])
        assert int(node["status"]["allocatable"]["cpu"]) == int(node["status"]["capacity"]["cpu"])
    gpu = by_name["gpu-node-1"]
    gpu_labels = gpu["metadata"]["labels"]
    assert gpu_labels["nvidia.com/gpu.count"] == "2"
    assert gpu_labels["nvidia.com/gpu.replicas"] == "2"
    assert gpu_labels["nvidia.com/gpu.sharing-strategy"] == "time-slicing"
    assert gpu_labels["nvidia.com/gpu.product"] == "NVIDIA-A100-PCIE-40GB-SHARED"
    assert gpu["status"]["capacity"]["nvidia.com/gpu"] == "4", "2 GPUs x 2 time-slicing replicas"
    fpga = by_name["fpga-node-1"]
    assert fpga["metadata"]["annotations"]["jouletrace.io/fpga-models"] == "Xilinx Alveo U250"
    assert fpga["status"]["capacity"]["xilinx.com/fpga-xilinx_u250_gen3x16_xdma_shell_4_1-0"] == "1"
    assert by_name["cpu-node-1"]["status"]["capacity"]["cpu"] == "32"


def test_argo_nodes_follow_the_controllers_rules(workflows: list[dict]):
    for workflow in workflows:
        meta, nodes = workflow["metadata"], workflow["status"]["nodes"]
        name = meta["name"]
        assert re.match(rf"^{re.escape(meta['generateName'])}[a-z0-9]{{5}}$", name)
        assert meta["labels"]["workflows.argoproj.io/completed"] == "true"
        assert meta["labels"]["workflows.argoproj.io/phase"] == workflow["status"]["phase"]
        assert meta["annotations"]["workflows.argoproj.io/pod-name-format"] == "v2"
        assert nodes[name]["name"] == name and "boundaryID" not in nodes[name]
        for node_id, node in nodes.items():
            assert node["id"] == node_id
            if node_id != name:
                assert node_id == f"{name}-{fnv1a32(node['name'])}"
                assert node["boundaryID"] in nodes
            assert node["templateScope"] == f"local/{name}"
            assert all(child in nodes for child in node.get("children", []))
            assert all(out in nodes for out in node.get("outboundNodes", []))
            assert SECOND_PRECISION.match(node["startedAt"]) and SECOND_PRECISION.match(node["finishedAt"])
            assert node["startedAt"] <= node["finishedAt"]
            if node["type"] == "Pod":
                assert node["hostNodeName"] in READING_INTERVAL_SECONDS
                assert node["outputs"]["exitCode"] == ("0" if node["phase"] == "Succeeded" else "1")
            if node["type"] in ("DAG", "Steps"):
                assert node["outboundNodes"]


def test_every_pod_node_has_its_pod(workflows: list[dict], pod_lists: dict[str, dict]):
    for workflow in workflows:
        name = workflow["metadata"]["name"]
        pods = {
            p["metadata"]["annotations"]["workflows.argoproj.io/node-id"]: p for p in pod_lists[name]["items"]
        }
        nodes = pod_nodes(workflow)
        assert sorted(pods) == sorted(n["id"] for n in nodes)
        for node in nodes:
            pod = pods[node["id"]]
            meta = pod["metadata"]
            assert meta["name"] == f"{name}-{node['templateName']}-{fnv1a32(node['name'])}"
            assert meta["labels"]["workflows.argoproj.io/workflow"] == name
            assert meta["annotations"]["workflows.argoproj.io/node-name"] == node["name"]
            assert pod["spec"]["nodeName"] == node["hostNodeName"]
            assert pod["status"]["phase"] == node["phase"]
            main = next(c for c in pod["spec"]["containers"] if c["name"] == "main")
            requests = main["resources"]["requests"]
            assert re.match(r"^\d+(m)?$", requests["cpu"]) and re.match(r"^\d+(Gi|Mi)$", requests["memory"])
            gpu_ids = [g for g in meta["annotations"].get("jouletrace.io/gpu-ids", "").split(",") if g]
            assert len(gpu_ids) == int(requests.get("nvidia.com/gpu", 0))
            assert all(g.startswith("GPU-") for g in gpu_ids)
            assert (node["hostNodeName"] == "gpu-node-1") or not gpu_ids
            fpga_ids = meta["annotations"].get("jouletrace.io/fpga-ids")
            assert (fpga_ids == "0000:af:00.0") == any(k.startswith("xilinx.com/fpga-") for k in requests)
            for status in pod["status"]["containerStatuses"]:
                assert CONTAINER_ID.match(status["containerID"])
            main_state = next(s for s in pod["status"]["containerStatuses"] if s["name"] == "main")
            terminated = main_state["state"]["terminated"]
            assert (terminated["startedAt"], terminated["finishedAt"]) == (
                node["startedAt"],
                node["finishedAt"],
            )


def test_retries_failure_steps_and_nested_dags(workflows: list[dict]):
    retried = [
        (w, n)
        for w in workflows
        for n in w["status"]["nodes"].values()
        if n["type"] == "Retry" and len(n.get("children", [])) > 1
    ]
    recovered = [
        n
        for w, n in retried
        if w["status"]["nodes"][n["children"][0]]["phase"] == "Failed"
        and w["status"]["nodes"][n["children"][-1]]["phase"] == "Succeeded"
    ]
    assert len(recovered) >= 3
    for workflow, node in retried:
        name = workflow["metadata"]["name"]
        attempts = [f"{node['name']}({i})" for i in range(len(node["children"]))]
        assert node["children"] == [f"{name}-{fnv1a32(attempt)}" for attempt in attempts]

    failed = [w for w in workflows if w["status"]["phase"] == "Failed"]
    assert len(failed) == 1
    nodes = failed[0]["status"]["nodes"]
    exhausted = [n for n in nodes.values() if n["type"] == "Retry" and n["phase"] == "Failed"]
    assert len(exhausted) == 1
    assert all(nodes[c]["phase"] == "Failed" for c in exhausted[0]["children"])
    skipped = [n for n in nodes.values() if n["type"] == "Skipped"]
    assert skipped and all(n["phase"] == "Omitted" for n in skipped)
    assert set(nodes[exhausted[0]["children"][-1]]["children"]) <= {n["id"] for n in skipped}

    steps = [w for w in workflows if w["status"]["nodes"][w["metadata"]["name"]]["type"] == "Steps"]
    assert steps
    for workflow in steps:
        name, nodes = workflow["metadata"]["name"], workflow["status"]["nodes"]
        groups = sorted((n for n in nodes.values() if n["type"] == "StepGroup"), key=lambda n: n["name"])
        assert nodes[name]["children"] == [groups[0]["id"]]
        assert [g["name"] for g in groups] == [f"{name}[{i}]" for i in range(len(groups))]

    nested = [
        n
        for w in workflows
        for n in w["status"]["nodes"].values()
        if n["type"] == "DAG" and "boundaryID" in n
    ]
    assert nested
    assert all(n["outboundNodes"] and n["children"] for n in nested)


def test_idle_before_and_after_all_tasks(world: SampleWorldSummary, workflows: list[dict]):
    started = min(n["startedAt"] for w in workflows for n in pod_nodes(w))
    finished = max(n["finishedAt"] for w in workflows for n in pod_nodes(w))
    first_task = pd.Timestamp(started).to_pydatetime()
    last_task = pd.Timestamp(finished).to_pydatetime()
    assert first_task - world.start >= timedelta(seconds=120)
    assert world.end - last_task >= timedelta(seconds=120)


def test_readings_are_sorted_and_non_negative(world: SampleWorldSummary):
    for path in sorted((world.out_dir / "power").glob("*.parquet")):
        frame = pq.read_table(path).to_pandas()
        assert (frame["value"] >= 0).all()
        assert frame["host_node"].nunique() == 1 and frame["host_node"].iloc[0] == path.stem
        devices = frame["device_id"].to_numpy()
        changes = devices[1:] != devices[:-1]
        assert changes.sum() == frame["device_id"].nunique() - 1, "each device's rows are contiguous"
        for _, group in frame.groupby(["device_id", "value_kind"]):
            assert group["timestamp"].is_monotonic_increasing


def test_rapl_counters_wrap_within_range(power: pd.DataFrame):
    rapl = power[power["source"] == "rapl"]
    assert set(rapl["device_kind"]) == {"cpu_package", "dram"}
    assert (rapl["counter_max_joules"] == RAPL_MAX_JOULES).all()
    assert ((rapl["value"] >= 0) & (rapl["value"] < RAPL_MAX_JOULES)).all()
    micro = rapl["value"].to_numpy() * 1e6
    assert np.allclose(micro, np.round(micro), atol=1e-3), "quantised to 1 microjoule"
    wraps = sum(
        int((np.diff(g["value"].to_numpy()) < 0).sum()) for _, g in rapl.groupby(["host_node", "device_id"])
    )
    assert wraps >= 5
    others = power[power["source"] != "rapl"]
    assert others["counter_max_joules"].isna().all()


def test_reading_intervals_and_agent_gap(world: SampleWorldSummary, power: pd.DataFrame):
    gap_host, gap_start, gap_end = world.agent_gap
    assert timedelta(seconds=80) <= gap_end - gap_start <= timedelta(seconds=100)
    for (host, device), group in power.groupby(["host_node", "device_id"]):
        times = group["timestamp"].drop_duplicates()
        steps_seconds = times.diff().dt.total_seconds().dropna()
        interval = READING_INTERVAL_SECONDS[host]
        assert abs(steps_seconds.median() - interval) < 0.05, (host, device)
        inside = times[(times > gap_start) & (times < gap_end)]
        if host == gap_host:
            assert inside.empty
            assert steps_seconds.max() >= 80
        else:
            assert steps_seconds.max() < interval + 0.05


def test_one_nvml_counter_resets_once(world: SampleWorldSummary, power: pd.DataFrame):
    host, reset_device, at = world.counter_reset
    counters = power[(power["source"] == "nvml") & (power["value_kind"] == "energy_counter_joules")]
    assert counters["device_id"].nunique() == 2 and set(counters["host_node"]) == {host}
    for device, group in counters.groupby("device_id"):
        drops = np.flatnonzero(np.diff(group["value"].to_numpy()) < 0)
        assert len(drops) == (1 if device == reset_device else 0)
        if device == reset_device:
            assert group["timestamp"].iloc[drops[0]] < at <= group["timestamp"].iloc[drops[0] + 1]
            assert group["value"].iloc[drops[0] + 1] < 1000.0
    gauges = power[(power["source"] == "nvml") & (power["value_kind"] == "power_watts")]
    assert len(gauges) == len(counters)
    assert (gauges["value"] > 40).all() and (gauges["value"] < 400).all()
    assert (power.loc[power["source"] == "hwmon", "device_id"] == "0000:af:00.0").all()


def test_truth_rows(truth: pd.DataFrame, workflows: list[dict], pod_lists: dict[str, dict]):
    pods = {
        p["metadata"]["annotations"]["workflows.argoproj.io/node-id"]: p
        for pod_list in pod_lists.values()
        for p in pod_list["items"]
    }
    uids = {w["metadata"]["name"]: w["metadata"]["uid"] for w in workflows}
    assert set(truth["task_id"]) == set(pods)
    assert (truth["method"] == "ground_truth").all() and (truth["provenance"] == "synthetic").all()
    assert (truth["coverage"] == 1.0).all() and (truth["samples"] == 0).all()
    assert (truth["uncertainty_joules"] == 0.0).all()
    assert np.allclose(truth["energy_joules"], truth["dynamic_joules"] + truth["idle_joules"])
    assert (truth["peak_power_watts"] >= truth["avg_power_watts"] * (1 - 1e-9)).all()
    assert (truth["dynamic_joules"] > 0).all()
    for task_id, rows in truth.groupby("task_id"):
        pod = pods[task_id]
        annotations = pod["metadata"]["annotations"]
        assert set(rows["workflow_uid"]) == {
            uids[pod["metadata"]["labels"]["workflows.argoproj.io/workflow"]]
        }
        expected = {"package-0", "package-1", "dram-0", "dram-1"}
        expected |= {
            d
            for key in ("jouletrace.io/gpu-ids", "jouletrace.io/fpga-ids")
            for d in annotations.get(key, "").split(",")
            if d
        }
        assert set(rows["device_id"]) == expected


def test_counters_read_idle_plus_task_energy(
    world: SampleWorldSummary, power: pd.DataFrame, truth: pd.DataFrame, host_of_task: dict[str, str]
):
    """Between the first and last reading, a RAPL counter reads exactly idle x span + the tasks' dynamic energy."""
    truth = truth.assign(host_node=truth["task_id"].map(host_of_task))
    rapl = power[power["source"] == "rapl"]
    for (host, device), group in rapl.groupby(["host_node", "device_id"]):
        steps = np.diff(group["value"].to_numpy())
        read_joules = float(np.sum(np.where(steps < 0, steps + RAPL_MAX_JOULES, steps)))
        span_seconds = (group["timestamp"].iloc[-1] - group["timestamp"].iloc[0]).total_seconds()
        tasks = truth[(truth["host_node"] == host) & (truth["device_id"] == device)]
        assert read_joules >= tasks["energy_joules"].sum()
        expected = world.idle_power_watts[host][device] * span_seconds + tasks["dynamic_joules"].sum()
        assert read_joules == pytest.approx(expected, rel=0.005), (host, device)


@pytest.fixture(scope="module")
def main_containers(pod_lists: dict[str, dict]) -> pd.DataFrame:
    """One row per Pod: its ids, node, main container id and main container's (second-precision) run."""
    rows = []
    for pod_list in pod_lists.values():
        for pod in pod_list["items"]:
            main = next(s for s in pod["status"]["containerStatuses"] if s["name"] == "main")
            terminated = main["state"]["terminated"]
            rows.append(
                {
                    "task_id": pod["metadata"]["annotations"]["workflows.argoproj.io/node-id"],
                    "namespace": pod["metadata"]["namespace"],
                    "pod_name": pod["metadata"]["name"],
                    "pod_uid": pod["metadata"]["uid"],
                    "container_id": main["containerID"].removeprefix("containerd://"),
                    "host_node": pod["spec"]["nodeName"],
                    "started_at": pd.Timestamp(terminated["startedAt"]),
                    "finished_at": pd.Timestamp(terminated["finishedAt"]),
                }
            )
    return pd.DataFrame(rows).set_index("task_id")


@pytest.fixture(scope="module")
def cpu_counters(containers: pd.DataFrame) -> pd.DataFrame:
    return containers[containers["value_kind"] == "cpu_seconds_counter"]


@pytest.fixture(scope="module")
def gpu_counters(containers: pd.DataFrame) -> pd.DataFrame:
    return containers[containers["value_kind"] == "gpu_busy_seconds_counter"]


@pytest.fixture(scope="module")
def type_of_task(workflows: list[dict]) -> dict[str, TaskType]:
    task_types = {
        (app, template): task_type
        for app, make, _ in RECIPES
        for template, task_type in make(np.random.default_rng(0)).task_types.items()
    }
    return {
        node["id"]: task_types[(w["metadata"]["generateName"].removesuffix("-"), node["templateName"])]
        for w in workflows
        for node in pod_nodes(w)
    }


@pytest.fixture(scope="module")
def gpu_holders(pod_lists: dict[str, dict], main_containers: pd.DataFrame) -> pd.DataFrame:
    """One row per (Pod, GPU it holds): the GPU, and the Pod's main container ids and (second-precision) run."""
    rows = []
    for pod_list in pod_lists.values():
        for pod in pod_list["items"]:
            annotations = pod["metadata"]["annotations"]
            for gpu in annotations.get("jouletrace.io/gpu-ids", "").split(","):
                if gpu:
                    rows.append({"task_id": annotations["workflows.argoproj.io/node-id"], "gpu_id": gpu})
    return pd.DataFrame(rows).join(main_containers, on="task_id")


def series_of(counters: pd.DataFrame):
    return counters.groupby(["host_node", "pod_uid", "container_id", "device_id"], sort=False, dropna=False)


def touches_gap(world: SampleWorldSummary, host: str, first, last) -> bool:
    """A series of `host` whose readings [first, last] would reach into the agent gap lost some of them."""
    gap_host, gap_start, gap_end = world.agent_gap
    return (
        host == gap_host
        and first <= gap_end + timedelta(seconds=20)
        and last >= gap_start - timedelta(seconds=20)
    )


def test_container_counters_are_read_with_the_rapl_counters(
    world: SampleWorldSummary, power: pd.DataFrame, containers: pd.DataFrame, cpu_counters: pd.DataFrame
):
    """cgroup usage_usec: cumulative, 1 us steps, read at the node's RAPL reading times, not in the gap."""
    assert set(containers["host_node"]) == set(world.nodes)
    assert set(containers["namespace"]) == {"science"} and set(containers["provenance"]) == {"synthetic"}
    assert set(containers["value_kind"]) == {"cpu_seconds_counter", "gpu_busy_seconds_counter"}
    assert cpu_counters["device_kind"].isna().all() and cpu_counters["device_id"].isna().all()
    assert set(cpu_counters["source"]) == {"agent-cgroup"}
    micro = containers["value"].to_numpy() * 1e6
    assert np.allclose(micro, np.round(micro), rtol=0, atol=1e-3), "quantised to 1 microsecond"
    keys = list(KEYS["container_samples"])
    for path in sorted((world.out_dir / "containers").glob("*.parquet")):
        frame = pq.read_table(path).to_pandas()
        assert (frame["host_node"] == path.stem).all()
        assert frame.equals(frame.sort_values(keys, kind="stable").reset_index(drop=True)), "sorted by key"
    rapl = power[power["device_id"] == "package-0"]
    reading_times = {host: group["timestamp"].to_numpy() for host, group in rapl.groupby("host_node")}
    for (host, _, _, _), group in series_of(cpu_counters):
        readings = reading_times[host]
        at = np.searchsorted(readings, group["timestamp"].to_numpy())
        assert (readings[np.minimum(at, len(readings) - 1)] == group["timestamp"].to_numpy()).all()
        assert (np.diff(at) == 1).all() or touches_gap(world, host, *group["timestamp"].iloc[[0, -1]])
        assert (np.diff(group["value"].to_numpy()) >= 0).all(), "a counter never goes back"


def test_container_series_join_the_pods(
    world: SampleWorldSummary, cpu_counters: pd.DataFrame, main_containers: pd.DataFrame
):
    """Every series is one Pod's main container, on its node, from just before it starts to just after."""
    by_uid = main_containers.reset_index().set_index("pod_uid")
    seen = set()
    for (host, pod_uid, container_id, _), group in series_of(cpu_counters):
        pod = by_uid.loc[pod_uid]
        assert (container_id, host) == (pod["container_id"], pod["host_node"])
        assert set(group["pod_name"]) == {pod["pod_name"]} and set(group["namespace"]) == {pod["namespace"]}
        first, last = group["timestamp"].iloc[0], group["timestamp"].iloc[-1]
        if not touches_gap(world, host, first, last):
            assert group["value"].iloc[0] == 0.0 < group["value"].iloc[1], "starts at the last reading before"
            assert first < pod["started_at"] + timedelta(seconds=1) and last >= pod["finished_at"]
            assert group["value"].iloc[-2] < group["value"].iloc[-1], (
                "ends at the first reading after the end"
            )
        seen.add(pod_uid)
    gap_host, gap_start, gap_end = world.agent_gap
    unseen = main_containers[~main_containers["pod_uid"].isin(seen)]
    assert len(unseen) <= 10
    assert (unseen["host_node"] == gap_host).all()
    assert (unseen["started_at"] >= gap_start - timedelta(seconds=1)).all()
    assert (unseen["finished_at"] <= gap_end).all()


def test_cpu_time_is_what_the_truth_burns(
    world: SampleWorldSummary,
    cpu_counters: pd.DataFrame,
    truth: pd.DataFrame,
    main_containers: pd.DataFrame,
    type_of_task: dict[str, TaskType],
    hosts: dict[str, NodeSpec],
):
    """A task's CPU package dynamic energy is its type's joules per CPU-second x its node's CPU power factor x
    its CPU time; its DRAM dynamic energy the type's DRAM joules per CPU-second x its CPU time."""
    task_types = set(type_of_task.values())
    dynamic = truth.groupby(["task_id", "device_kind"])["dynamic_joules"].sum()
    task_of_uid = dict(zip(main_containers["pod_uid"], main_containers.index, strict=True))
    exact = 0
    for (host, pod_uid, _, _), group in series_of(cpu_counters):
        task_id = task_of_uid[pod_uid]
        task_type = type_of_task[task_id]
        package_joules_per_cpu_second = (
            task_type.cpu_joules_per_cpu_second * hosts[host].cpu.dynamic_power_factor
        )
        cpu_seconds = dynamic[(task_id, "cpu_package")] / package_joules_per_cpu_second
        assert dynamic[(task_id, "dram")] / task_type.dram_joules_per_cpu_second == pytest.approx(
            cpu_seconds, rel=1e-12
        )
        read_cpu_seconds = group["value"].iloc[-1] - group["value"].iloc[0]
        seconds = (group["timestamp"].iloc[-1] - group["timestamp"].iloc[0]).total_seconds()
        assert read_cpu_seconds <= 1.1 * task_type.cpu_request_cores * seconds + 1e-6
        if touches_gap(world, host, *group["timestamp"].iloc[[0, -1]]):
            assert read_cpu_seconds <= cpu_seconds + 1e-6
        else:
            assert read_cpu_seconds == pytest.approx(cpu_seconds, rel=0, abs=1e-6), task_id
            exact += 1
    assert exact >= 0.95 * world.n_tasks
    assert min(t.dram_joules_per_cpu_second for t in task_types) >= 0.8
    assert max(t.dram_joules_per_cpu_second for t in task_types) <= 1.6


def busy_increments(gpu_counters: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """Per GPU, each holder's busy seconds between consecutive readings (a column per pod uid) and the
    interval's length (column `seconds`)."""
    by_gpu = {}
    for gpu, series in gpu_counters.groupby("device_id"):
        counters = series.pivot(index="timestamp", columns="pod_uid", values="value")
        seconds = counters.index.to_series().diff().dt.total_seconds()
        by_gpu[gpu] = counters.diff().assign(seconds=seconds).iloc[1:]
    return by_gpu


def union_seconds(starts: pd.Series, ends: pd.Series) -> float:
    """Length of the union of the intervals [start, end) (skipping empty ones)."""
    total, reach = 0.0, None
    for start, end in sorted(zip(starts, ends, strict=True)):
        if end <= start:
            continue
        if reach is None or start > reach:
            total, reach = total + (end - start).total_seconds(), end
        elif end > reach:
            total, reach = total + (end - reach).total_seconds(), end
    return total


def test_two_pods_time_slice_one_gpu(gpu_holders: pd.DataFrame, gpu_counters: pd.DataFrame):
    """Two replicas per GPU: some GPU busy for two pods at once, never three, and GPU pods alone too.

    Read on the busy-time counters: the counters of one GPU are all read at that GPU's reading times, and a
    holder's counter rises in every reading interval it runs through."""
    assert (gpu_holders["host_node"] == "gpu-node-1").all()
    assert not gpu_holders.duplicated(["task_id", "gpu_id"]).any(), "replicas of distinct GPUs"
    assert (gpu_holders.groupby("task_id").size() <= 2).all()
    shared, alone = set(), set()
    for increments in busy_increments(gpu_counters).values():
        rising = increments.drop(columns="seconds") > 0
        holders = rising.sum(axis=1)
        assert holders.max() <= 2
        shared |= set(rising.columns[rising[holders == 2].any()])
        alone |= set(rising.columns[rising[holders == 1].any()])
    assert len(shared) >= 2, "seed 7 puts two pods on one GPU at once"
    assert alone - shared, "and some GPU pod has its GPUs to itself"


def test_gpu_busy_counters_are_what_the_truth_burns(
    world: SampleWorldSummary,
    power: pd.DataFrame,
    gpu_counters: pd.DataFrame,
    gpu_holders: pd.DataFrame,
    truth: pd.DataFrame,
    type_of_task: dict[str, TaskType],
):
    """NVML busy seconds of every GPU pod's main container on each of its GPUs: read with the GPU's energy,
    monotonic, at most 1 s per second per pod and per GPU, and in total the truth's dynamic energy over the
    task type's watts per busy-second."""
    assert set(gpu_counters["device_kind"]) == {"gpu"} and set(gpu_counters["source"]) == {"agent-nvml"}
    holders = gpu_holders.set_index(["pod_uid", "gpu_id"])
    nvml = power[(power["source"] == "nvml") & (power["value_kind"] == "energy_counter_joules")]
    reading_times = {gpu: group["timestamp"].to_numpy() for gpu, group in nvml.groupby("device_id")}
    dynamic = truth.set_index(["task_id", "device_id"])["dynamic_joules"]
    exact, seen = 0, set()
    for (host, pod_uid, container_id, gpu), group in series_of(gpu_counters):
        holder = holders.loc[(pod_uid, gpu)]
        assert (host, container_id) == (holder["host_node"], holder["container_id"])
        times, values = group["timestamp"], group["value"].to_numpy()
        assert np.isin(times.to_numpy(), reading_times[gpu]).all()
        elapsed = times.diff().dt.total_seconds().to_numpy()[1:]
        assert (np.diff(values) >= 0).all() and (np.diff(values) <= elapsed + 2e-6).all()
        busy_seconds = (
            dynamic[(holder["task_id"], gpu)] / type_of_task[holder["task_id"]].gpu_watts_per_busy_second
        )
        if touches_gap(world, host, times.iloc[0], times.iloc[-1]):
            assert values[-1] <= busy_seconds + 1e-6
        else:
            assert values[0] == 0.0 and times.iloc[0] < holder["started_at"] + timedelta(seconds=1)
            assert times.iloc[-1] >= holder["finished_at"]
            assert values[-1] == pytest.approx(busy_seconds, rel=0, abs=1e-6), (holder["task_id"], gpu)
            exact += 1
        seen.add((pod_uid, gpu))
    assert exact >= 0.8 * len(holders) and seen <= set(holders.index)
    for increments in busy_increments(gpu_counters).values():
        per_interval = increments.drop(columns="seconds").sum(axis=1)
        assert (per_interval <= increments["seconds"] + 1e-5).all(), "a GPU is busy at most all its time"


def test_gpu_truth_is_its_power_while_held(
    world: SampleWorldSummary, power: pd.DataFrame, truth: pd.DataFrame, gpu_holders: pd.DataFrame
):
    """A GPU's truth rows add up to what its energy counter read minus its idle power while nobody held it,
    with the dynamic part exact and the idle part split among the holders running (Argo's second-precision
    times bound how long somebody held it)."""
    _, reset_gpu, reset_at = world.counter_reset
    nvml = power[(power["source"] == "nvml") & (power["value_kind"] == "energy_counter_joules")]
    for gpu, counter in nvml.groupby("device_id"):
        idle_watts = world.idle_power_watts["gpu-node-1"][gpu]
        times, values = counter["timestamp"], counter["value"].to_numpy()
        steps = np.diff(values)
        if gpu == reset_gpu:  # the counter restarted at reset_at, a moment nobody held the GPU
            drop = int(np.flatnonzero(steps < 0)[0])
            steps[drop] = values[drop + 1] + idle_watts * (reset_at - times.iloc[drop]).total_seconds()
        read_joules = float(steps.sum())
        span_seconds = (times.iloc[-1] - times.iloc[0]).total_seconds()
        rows = truth[truth["device_id"] == gpu]
        assert read_joules == pytest.approx(
            idle_watts * span_seconds + rows["dynamic_joules"].sum(), rel=1e-9
        )
        held = gpu_holders[gpu_holders["gpu_id"] == gpu]
        second = timedelta(seconds=1)
        at_least = union_seconds(held["started_at"] + second, held["finished_at"])
        at_most = union_seconds(held["started_at"], held["finished_at"] + second)
        nobody = (idle_watts * (span_seconds - at_most), idle_watts * (span_seconds - at_least))
        assert read_joules - nobody[1] <= rows["energy_joules"].sum() <= read_joules - nobody[0], gpu
        assert at_least < sum((held["finished_at"] - held["started_at"]).dt.total_seconds()), "some overlap"


def test_time_slicing_splits_busy_time_and_idle_power():
    """Exactly: holders get their busy fraction until the fractions add up to more than 1, then shares of
    it; the idle power goes to the holders running, equally; the truth is the power minus unheld idle."""
    gpu = Device("gpu-node-1", "gpu", "GPU-test", 50.0)
    demands = [
        GpuDemand(gpu, np.array([0.0, 40.0]), np.array([40.0, 100.0]), np.array([0.8, 0.5]), 200.0),
        GpuDemand(gpu, np.array([60.0]), np.array([150.0]), np.array([0.7]), 300.0),
        GpuDemand(gpu, np.array([200.0]), np.array([230.0]), np.array([0.9]), 200.0),
    ]
    got = time_slice(demands)
    (first, first_load), (second, second_load), (alone, _) = got
    assert first.seconds_at(np.array([100.0]))[0] == pytest.approx(40 * 0.8 + 20 * 0.5 + 40 * 0.5 / 1.2)
    assert second.seconds_at(np.array([150.0]))[0] == pytest.approx(40 * 0.7 / 1.2 + 50 * 0.7)
    assert alone.seconds_at(np.array([230.0]))[0] == pytest.approx(30 * 0.9)
    assert first_load.idle_watts.tolist() == [50.0, 50.0, 25.0]
    assert second_load.idle_watts.tolist() == [25.0, 50.0]
    trace = PowerTrace.of_loads(gpu.idle_watts, [load for _, load in got], 300.0)
    truth = [truth_row(load, load.end_seconds[-1] - load.start_seconds[0]) for _, load in got]
    unheld_joules = gpu.idle_watts * (300.0 - 150.0 - 30.0)
    measured = trace.energy_at(np.array([300.0]))[0] - unheld_joules
    assert sum(row["energy_joules"] for row in truth) == pytest.approx(measured, rel=1e-12)
    assert truth[1]["dynamic_joules"] == pytest.approx(300.0 * (40 * 0.7 / 1.2 + 50 * 0.7))


def test_recorded_sources_reads_the_counters(world: SampleWorldSummary, containers: pd.DataFrame):
    """Read back through RecordedSources, the counters' pod uids join the tasks table."""
    sources = RecordedSources(world.out_dir)
    read = sources.container_samples()
    assert read.schema.equals(schemas.CONTAINER_SAMPLES) and read.num_rows == len(containers)
    _, tasks = sources.workflows_and_tasks()
    assert set(read["pod_uid"].to_pylist()) <= set(tasks["pod_uid"].to_pylist())
    one = sources.container_samples([world.nodes[0]], world.start, world.start + timedelta(minutes=30))
    assert set(one["host_node"].to_pylist()) == {world.nodes[0]}
    assert one.num_rows < read.num_rows


# Hardware and workflow-structure effects: CPU speed, CPU power per busy core, aggregators' fan-in.

AGGREGATORS = MappingProxyType(
    {
        "mconcatfit": (20, 0.7),
        "mimgtbl": (12, 0.8),
        "mapmerge": (3, 0.6),
        "individuals-merge": (10, 0.8),
        "cat-blast": (18, 0.8),
        "cat": (18, 0.8),
        "merge-bam": (7, 0.7),
        "train": (6, 0.5),
    }
)


def test_cpu_models_speed_and_power():
    """Per-core speed is the all-core turbo ratio to the Gold 6346, power per busy core the stated factor."""
    cpus = {node.name: node.cpu for node in build_cluster(np.random.default_rng(0))}
    assert {name: round(cpu.relative_throughput, 3) for name, cpu in cpus.items()} == {
        "cpu-node-1": 1.0,
        "cpu-node-2": 1.0,
        "cpu-node-3": 1.0,
        "gpu-node-1": 0.743,
        "fpga-node-1": 0.8,
    }
    assert {name: cpu.dynamic_power_factor for name, cpu in cpus.items()} == {
        "cpu-node-1": 1.0,
        "cpu-node-2": 1.0,
        "cpu-node-3": 1.0,
        "gpu-node-1": 0.55,
        "fpga-node-1": 0.62,
    }
    cpu_bound = TaskType("t", "i", "c", 1, 1, 100, 0.3, 8.0, 1.0)
    io_bound = replace(cpu_bound, cpu_bound_fraction=0.3)
    assert cpu_bound.slowdown(1.0) == io_bound.slowdown(1.0) == 1.0
    assert cpu_bound.slowdown(2600 / 3500) == pytest.approx(0.85 * 3500 / 2600 + 0.15)
    assert io_bound.slowdown(0.8) == pytest.approx(0.3 / 0.8 + 0.7)


def test_attempts_run_longer_on_slower_cpus(model: Model, workflows: list[dict], hosts: dict[str, NodeSpec]):
    """Every recorded attempt lasts its pod's planned runtime stretched for its node's CPU (runtime_on), to
    Argo's 1 s; a failed one a part of it, stretched alike. So blastall (85% CPU-bound) runs 1.294x as long on
    the Gold 6338 node and 1.2125x on the Silver 4316 node as on the Gold 6346 nodes."""
    recorded = {node["id"]: node for w in workflows for node in pod_nodes(w)}
    blastall: dict[str, list[float]] = {}
    seen = 0
    for pod, outcome in zip(model.pods, model.outcomes, strict=True):
        name = model.plans[pod.workflow].name
        for attempt in outcome.attempts:
            node = recorded[argo_node_id(name, pod.attempt_node_name(attempt.number))]
            assert node["hostNodeName"] == attempt.host_node
            runtime = (pd.Timestamp(node["finishedAt"]) - pd.Timestamp(node["startedAt"])).total_seconds()
            host = hosts[attempt.host_node]
            if attempt.succeeded:
                assert abs(runtime - runtime_on(host, pod, pod.runtime_seconds)) < 1.0, node["id"]
                if pod.task_type.template == "blastall":
                    blastall.setdefault(host.name, []).append(runtime / pod.runtime_seconds)
            else:
                shortest, longest = (max(1.5, f * pod.runtime_seconds) for f in (0.1, 0.9))
                assert runtime_on(host, pod, shortest) - 1.0 < runtime < runtime_on(host, pod, longest) + 1.0
            seen += 1
    assert seen == len(recorded), "the model reproduces every recorded attempt"
    expected = {"gpu-node-1": 0.85 * 3500 / 2600 + 0.15, "fpga-node-1": 0.85 / 0.8 + 0.15}
    assert set(blastall) == set(hosts) and min(len(r) for r in blastall.values()) >= 5
    for host, ratios in blastall.items():
        assert np.median(ratios) == pytest.approx(expected.get(host, 1.0), abs=0.01), host


def without_fan_in(make: Callable[[np.random.Generator], Recipe]) -> Callable[[np.random.Generator], Recipe]:
    def flat(rng: np.random.Generator) -> Recipe:
        recipe = make(rng)
        types = {k: replace(t, fan_in_exponent=0.0) for k, t in recipe.task_types.items()}
        return replace(recipe, task_types=types)

    return flat


def test_aggregator_runtime_median_grows_with_fan_in(
    world: SampleWorldSummary, model: Model, monkeypatch: pytest.MonkeyPatch
):
    """An aggregator's median runtime is x (fan-in / reference) ** exponent, fan-in = the upstream pods it
    waits on. Checked on the world's plan against the same plan drawn with every exponent 0: the same draws,
    so each aggregator's planned runtime is the flat one x that factor and every other pod's is unchanged."""
    types = {k: t for _, make, _ in RECIPES for k, t in make(np.random.default_rng(0)).task_types.items()}
    assert {
        k: (t.reference_fan_in, t.fan_in_exponent) for k, t in types.items() if t.fan_in_exponent
    } == dict(AGGREGATORS)
    for template, (reference, exponent) in AGGREGATORS.items():
        median = types[template].median_runtime_seconds
        assert types[template].median_runtime_at(reference) == pytest.approx(median)
        assert types[template].median_runtime_at(2 * reference) == pytest.approx(median * 2**exponent)
    monkeypatch.setattr(plan_module, "RECIPES", tuple((a, without_fan_in(m), w) for a, m, w in RECIPES))
    _, flat = plan_world(child_rngs(SEED)[1], world.n_workflows)
    fan_ins: dict[str, set[int]] = {}
    for pod, flat_pod in zip(model.pods, flat, strict=True):
        assert (pod.node_name, pod.parents) == (flat_pod.node_name, flat_pod.parents)
        t = pod.task_type
        factor = (len(pod.parents) / t.reference_fan_in) ** t.fan_in_exponent
        if 2.0 < flat_pod.runtime_seconds < 1800.0 and 2.0 < flat_pod.runtime_seconds * factor < 1800.0:
            assert pod.runtime_seconds == pytest.approx(flat_pod.runtime_seconds * factor, rel=1e-9)
        if t.template in AGGREGATORS:
            fan_ins.setdefault(t.template, set()).add(len(pod.parents))
    assert set(fan_ins) == set(AGGREGATORS)
    assert sum(len(seen) > 1 for seen in fan_ins.values()) >= 4, f"fan-ins vary: {fan_ins}"
    assert all(min(seen) >= 2 for seen in fan_ins.values())


def test_package_joules_per_cpu_second_follow_the_cpu_model(
    world: SampleWorldSummary,
    cpu_counters: pd.DataFrame,
    truth: pd.DataFrame,
    main_containers: pd.DataFrame,
    type_of_task: dict[str, TaskType],
    hosts: dict[str, NodeSpec],
):
    """Per node, the truth's CPU-package dynamic joules per CPU-second read by the container counters are the
    task type's x 1 (Gold 6346), 0.55 (Gold 6338) or 0.62 (Silver 4316); DRAM's are the type's everywhere."""
    dynamic = truth.groupby(["task_id", "device_kind"])["dynamic_joules"].sum()
    task_of_uid = dict(zip(main_containers["pod_uid"], main_containers.index, strict=True))
    rows = []
    for (host, pod_uid, _, _), group in series_of(cpu_counters):
        if touches_gap(world, host, *group["timestamp"].iloc[[0, -1]]):
            continue
        task_id = task_of_uid[pod_uid]
        t = type_of_task[task_id]
        cpu_seconds = group["value"].iloc[-1] - group["value"].iloc[0]
        rows.append(
            {
                "host": host,
                "template": t.template,
                "package": dynamic[(task_id, "cpu_package")] / cpu_seconds / t.cpu_joules_per_cpu_second,
                "dram": dynamic[(task_id, "dram")] / cpu_seconds / t.dram_joules_per_cpu_second,
            }
        )
    frame = pd.DataFrame(rows)
    factor = {"gpu-node-1": 0.55, "fpga-node-1": 0.62}
    for host, rows in frame.groupby("host"):
        assert hosts[host].cpu.dynamic_power_factor == factor.get(host, 1.0)
        assert np.allclose(rows["package"], factor.get(host, 1.0), rtol=1e-5, atol=0), host
        assert np.allclose(rows["dram"], 1.0, rtol=1e-5, atol=0), host
    blastall = frame[frame["template"] == "blastall"].groupby("host")["package"].size()
    assert set(blastall.index) == set(hosts), "one task type measured on all three CPU models"
