"""`jouletrace collect` against real servers: a replaying Argo/Kubernetes API and a real Prometheus.

The sample world is served over HTTP (Argo through Hera, pods and nodes through the kubernetes client)
and its readings are loaded into Prometheus in each exporter dialect; collecting from those servers
must give the task energies that attributing the world's own readings gives. Then the Kubernetes API is
taken away (`--kubernetes none`, no configuration, no access), pods deleted as Argo's podGC does, and the
pods' GPU ids withheld (DCGM exporter without its Kubernetes mapping): every task's CPU and GPU energy
must still be collected, and what was missing said in one line.
"""

import json
import shutil
from datetime import timedelta
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from collectors.cluster.kubernetes import GPU_IDS_ANNOTATION, parse_quantity
from collectors.cluster.recorded import RecordedSources
from datasets.attribution import UNMAPPED_DEVICE, attribute
from datasets.openmetrics import EXPORTER_PORTS, create_tsdb_blocks, write_openmetrics
from datasets.sample_world import generate
from datasets.store import read_table
from pipelines.cli import main
from tests.support.replay import ReplayServer

TOKEN = "s3cret-token"
# Prometheus keeps milliseconds: the reference is the world's readings at that resolution.
US_PER_MS = 1000
# The exporters' values carry microjoules: a few readings' worth of rounding on the smallest rows.
ABSOLUTE_TOLERANCE_JOULES = 1e-5


def machine_openmetrics(world_dir: Path, start_s: int, end_s: int) -> str:
    """What node_exporter says of the world's nodes (node_cpu_info with --collector.cpu.info, MemTotal),
    every 15 s: the hardware their Node objects describe, for a collection that cannot read them."""
    lines = {"node_cpu_info": [], "node_memory_MemTotal_bytes": []}
    for node in json.loads((world_dir / "kubernetes" / "nodes.json").read_text())["items"]:
        annotations, status = node["metadata"]["annotations"], node["status"]
        address = next(a["address"] for a in status["addresses"] if a["type"] == "InternalIP")
        instance = f'instance="{address}:{EXPORTER_PORTS["node-exporter"]}"'
        cores, sockets = int(status["capacity"]["cpu"]), int(annotations["jouletrace.io/cpu-sockets"])
        model = annotations["jouletrace.io/cpu-model"]
        memory = parse_quantity(status["capacity"]["memory"])
        for at in range(start_s, end_s, 15):
            for cpu in range(cores):
                labels = f'cpu="{cpu}",{instance},model_name="{model}",package="{cpu // (cores // sockets)}"'
                lines["node_cpu_info"].append(f"node_cpu_info{{{labels}}} 1.0 {at}.000")
            lines["node_memory_MemTotal_bytes"].append(
                f"node_memory_MemTotal_bytes{{{instance}}} {memory!r} {at}.000"
            )
    text = [line for name, family in lines.items() for line in [f"# TYPE {name} gauge", *family]]
    return "\n".join([*text, "# EOF", ""])


@pytest.fixture(scope="module")
def cluster(tmp_path_factory, start_prometheus):
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool is not installed (make test installs Debian's prometheus package as root)")
    root = tmp_path_factory.mktemp("cluster")
    world = generate(root / "world", n_workflows=6, seed=3)
    for dialect in ("agent", "node-exporter", "dcgm", "kepler"):
        write_openmetrics(root / "world", root / f"{dialect}.om", dialect)
        create_tsdb_blocks(root / f"{dialect}.om", root / "tsdb", promtool)
    margin = timedelta(hours=1)
    (root / "machines.om").write_text(
        machine_openmetrics(
            root / "world", int((world.start - margin).timestamp()), int((world.end + margin).timestamp())
        )
    )
    create_tsdb_blocks(root / "machines.om", root / "tsdb", promtool)
    prometheus = start_prometheus(root / "prometheus", "scrape_configs: []\n", root / "tsdb")
    sources = RecordedSources(root / "world")
    archived = [obj["metadata"]["uid"] for obj in sources.workflow_objects()[::2]]
    with ReplayServer(root / "world", archived_uids=archived, token=TOKEN) as replay:
        yield {"world": world, "sources": sources, "prometheus": prometheus, "replay": replay, "root": root}
    prometheus.stop()


def at_milliseconds(samples: pa.Table) -> pa.Table:
    micros = samples["timestamp"].cast(pa.int64())
    rounded = pc.multiply(pc.round(pc.divide(micros, float(US_PER_MS))), float(US_PER_MS)).cast(pa.int64())
    index = samples.schema.get_field_index("timestamp")
    return samples.set_column(index, "timestamp", rounded.cast(samples.schema.field(index).type))


def per_task(task_energy: pa.Table, kinds: set[str]) -> dict[tuple[str, str, str], float]:
    """Joules per (workflow, task, device kind), summed over the kind's devices (Kepler sums sockets)."""
    totals: dict[tuple[str, str, str], float] = {}
    for row in task_energy.select(["workflow_uid", "task_id", "device_kind", "energy_joules"]).to_pylist():
        if row["device_kind"] in kinds:
            key = (row["workflow_uid"], row["task_id"], row["device_kind"])
            totals[key] = totals.get(key, 0.0) + row["energy_joules"]
    return totals


def collect(cluster, out, dialects: list[str], *extra: str, argo=None, kubernetes=None) -> int:
    """`jouletrace collect` from the replay (or `argo`), Kubernetes at `kubernetes` (default: the replay;
    "" gives no --kubernetes at all)."""
    world = cluster["world"]
    argo = argo or cluster["replay"].url
    kubernetes = argo if kubernetes is None else kubernetes
    args = ["collect", "--argo", argo] + (["--kubernetes", kubernetes] if kubernetes else [])
    args += ["--prometheus", cluster["prometheus"].url, "--out", str(out)]
    args += ["--since", (world.start - timedelta(hours=1)).isoformat()]
    args += ["--until", (world.end + timedelta(hours=1)).isoformat(), *extra]
    for dialect in dialects:
        args += ["--dialect", dialect]
    return main(args)


@pytest.mark.parametrize(
    ("dialects", "kinds"),
    [
        (["agent"], {"cpu_package", "dram", "gpu", "fpga"}),
        (["node-exporter", "dcgm"], {"cpu_package", "dram", "gpu"}),
        (["kepler"], {"cpu_package", "dram", "gpu"}),
    ],
)
def test_collect_from_servers_gives_the_task_energy_of_the_world(
    cluster, tmp_path, monkeypatch, dialects, kinds
):
    monkeypatch.setenv("ARGO_TOKEN", TOKEN)
    monkeypatch.setenv("KUBERNETES_TOKEN", TOKEN)
    assert collect(cluster, tmp_path / "dataset", dialects) == 0
    got = per_task(read_table(tmp_path / "dataset", "task_energy"), kinds)

    sources = cluster["sources"]
    _, tasks = sources.workflows_and_tasks()
    world_samples = sources.power_samples()
    world_samples = world_samples.filter(pc.is_in(world_samples["device_kind"], pa.array(sorted(kinds))))
    want = per_task(attribute(tasks, at_milliseconds(world_samples), sources.machines()).task_energy, kinds)
    assert set(got) == set(want)
    off = {key: abs(got[key] - want[key]) for key in want}
    bad = {key: gap for key, gap in off.items() if gap > 1e-6 * want[key] + ABSOLUTE_TOLERANCE_JOULES}
    assert not bad, f"{dialects}: {len(bad)} rows differ, e.g. {next(iter(bad.items()))}"
    collected = read_table(tmp_path / "dataset", "workflows")
    assert collected.num_rows == cluster["world"].n_workflows
    assert set(collected["provenance"].to_pylist()) == {"measured"}


def test_a_wrong_token_fails_clearly_and_writes_nothing(cluster, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("ARGO_TOKEN", "xyzzy-not-the-token")
    monkeypatch.setenv("KUBERNETES_TOKEN", TOKEN)
    assert collect(cluster, tmp_path / "dataset", ["agent"]) == 1
    err = capsys.readouterr().err
    assert "/api/v1/workflows" in err and "401" in err and "xyzzy" not in err
    assert not (tmp_path / "dataset" / "task_energy").exists()


def test_prometheus_down_fails_clearly_and_keeps_the_old_dataset(cluster, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("ARGO_TOKEN", TOKEN)
    monkeypatch.setenv("KUBERNETES_TOKEN", TOKEN)
    out = tmp_path / "dataset"
    assert collect(cluster, out, ["agent"]) == 0
    before = read_table(out, "task_energy")
    monkeypatch.setitem(cluster, "prometheus", type("Down", (), {"url": "http://127.0.0.1:9"})())
    assert collect(cluster, out, ["agent"]) == 1
    assert "http://127.0.0.1:9" in capsys.readouterr().err
    assert read_table(out, "task_energy").equals(before)


# Collection without the Kubernetes API, without pods, without GPU ids -----------------------------------

MISSING = "jouletrace collect: missing: "
KUBERNETES_PATHS = r"^/api/v1/(namespaces/[^/]+/pods|pods|nodes)$"


def reference(cluster, kinds: set[str]) -> dict[tuple[str, str, str], float]:
    """Per task and kind, the energy of attributing the world's own readings with its pods and nodes."""
    sources = cluster["sources"]
    _, tasks = sources.workflows_and_tasks()
    samples = sources.power_samples()
    samples = samples.filter(pc.is_in(samples["device_kind"], pa.array(sorted(kinds))))
    return per_task(attribute(tasks, at_milliseconds(samples), sources.machines()).task_energy, kinds)


def gpu_rows(task_energy: pa.Table) -> dict[tuple[str, str], dict[str, float]]:
    """Per GPU task: energy, stated uncertainty (summed over its rows) and the coverage of its rows."""
    found: dict[tuple[str, str], dict[str, float]] = {}
    for row in task_energy.filter(pc.equal(task_energy["device_kind"], "gpu")).to_pylist():
        got = found.setdefault((row["workflow_uid"], row["task_id"]), {"j": 0.0, "u": 0.0, "coverage": 1.0})
        got["j"] += row["energy_joules"]
        got["u"] += row["uncertainty_joules"]
        got["coverage"] = min(got["coverage"], row["coverage"])
    return found


def missing_lines(err: str) -> list[str]:
    return [line for line in err.splitlines() if line.startswith(MISSING)]


def assert_every_task_has_its_energy(cluster, out: Path, kinds: set[str]) -> dict:
    """CPU rows as with the pods (requests from Argo's templates are the pods'); GPU energy for every GPU
    task, the node's total as with the pods, each task within its stated uncertainty of the truth."""
    got = per_task(read_table(out, "task_energy"), kinds)
    want = reference(cluster, kinds)
    cpu = {key for key in want if key[2] in ("cpu_package", "dram")}
    assert cpu <= set(got)
    bad = {
        k: (got[k], want[k])
        for k in cpu
        if abs(got[k] - want[k]) > 1e-6 * want[k] + ABSOLUTE_TOLERANCE_JOULES
    }
    assert not bad, f"{len(bad)} CPU rows differ, e.g. {next(iter(bad.items()))}"
    gpus = gpu_rows(read_table(out, "task_energy"))
    _, tasks = cluster["sources"].workflows_and_tasks()
    holders = {(r["workflow_uid"], r["task_id"]) for r in tasks.to_pylist() if r["gpu_ids"]}
    assert holders and set(gpus) == holders
    assert all(g["j"] > 0 and g["coverage"] > 0 for g in gpus.values())
    want_gpu = sum(j for key, j in want.items() if key[2] == "gpu")
    got_gpu = sum(g["j"] for g in gpus.values())
    assert got_gpu == pytest.approx(want_gpu, rel=1e-3)
    if "fpga" in kinds:
        fpga = {key[:2]: j for key, j in got.items() if key[2] == "fpga"}
        boards = {(r["workflow_uid"], r["task_id"]) for r in tasks.to_pylist() if r["fpga_ids"]}
        assert boards and set(fpga) == boards and all(j > 0 for j in fpga.values())
        want_fpga = sum(j for key, j in want.items() if key[2] == "fpga")
        assert sum(fpga.values()) == pytest.approx(want_fpga, rel=1e-3)
    truth = pq.read_table(cluster["root"] / "world" / "truth" / "task_energy.parquet")
    truth_gpu = per_task(truth, {"gpu"})
    for key, g in gpus.items():
        assert abs(g["j"] - truth_gpu[(*key, "gpu")]) <= g["u"], (key, g, truth_gpu[(*key, "gpu")])
    return {"got": got_gpu, "want": want_gpu, "truth": sum(truth_gpu.values())}


@pytest.mark.parametrize("mode", ["--kubernetes none", "no configuration", "no access"])
def test_collect_without_the_kubernetes_api_recovers_every_tasks_cpu_and_gpu_energy(
    cluster, tmp_path, monkeypatch, capsys, mode
):
    monkeypatch.setenv("ARGO_TOKEN", TOKEN)
    monkeypatch.setenv("KUBERNETES_TOKEN", TOKEN)
    out = tmp_path / "dataset"
    dialects = ["node-exporter", "dcgm"]
    if mode == "--kubernetes none":
        assert collect(cluster, out, dialects, kubernetes="none") == 0
        why = "--kubernetes none"
    elif mode == "no configuration":
        monkeypatch.setenv("KUBECONFIG", str(tmp_path / "no-such-kubeconfig"))
        assert collect(cluster, out, dialects, kubernetes="") == 0
        why = "Kubernetes API not read: no usable Kubernetes configuration"
    else:
        cluster["replay"].add_fault(KUBERNETES_PATHS, status=403)
        try:
            assert collect(cluster, out, dialects) == 0
        finally:
            cluster["replay"].clear_faults()
        why = "Kubernetes API not read: GET /api/v1/namespaces/"
    assert_every_task_has_its_energy(cluster, out, {"cpu_package", "dram", "gpu"})

    tasks = read_table(out, "tasks").to_pylist()
    ran = [
        row
        for row in tasks
        if row["host_node"] and not (row["reason"] or "").startswith(("skipped", "never"))
    ]
    assert ran and all(row["reason"].startswith(f"pod not read ({why}") for row in ran)
    assert all(row["pod_uid"] is None for row in ran)
    assert {tuple(row["gpu_ids"]) for row in ran if row["gpu_ids"]} <= {
        (UNMAPPED_DEVICE,),
        (UNMAPPED_DEVICE,) * 2,
    }
    machines = {row["host_node"]: row for row in read_table(out, "machines").to_pylist()}
    world_machines = {row["host_node"]: row for row in cluster["sources"].machines().to_pylist()}
    for host in {row["host_node"] for row in ran}:
        fields = ("cpu_model", "sockets", "cores", "memory_bytes")
        assert [machines[host][f] for f in fields] == [world_machines[host][f] for f in fields]
    (line,) = missing_lines(capsys.readouterr().err)
    assert f"tasks without their pod ({why}" in line and "split=unmapped-by-request" in line
    assert "machines: 5 from Prometheus' exporters" in line


def world_copy(cluster, tmp_path: Path, change) -> Path:
    """A copy of the world whose pod lists `change(path, podlist)` edits (returning None deletes the file)."""
    folder = tmp_path / "world"
    shutil.copytree(cluster["root"] / "world", folder)
    for path in sorted((folder / "kubernetes" / "pods").glob("*/*.json")):
        podlist = change(path, json.loads(path.read_text()))
        if podlist is None:
            path.unlink()
        else:
            path.write_text(json.dumps(podlist))
    return folder


def test_collect_with_pods_but_without_their_gpu_ids_keeps_the_gpu_energy(
    cluster, tmp_path, monkeypatch, capsys
):
    """The pods are there but carry no device ids (no PodResources annotation) and DCGM exporter runs
    without its Kubernetes mapping (no pod labels): the GPU holders come from the pods' requests."""

    def strip(path, podlist):
        for pod in podlist["items"]:
            pod["metadata"]["annotations"].pop(GPU_IDS_ANNOTATION, None)
        return podlist

    monkeypatch.setenv("ARGO_TOKEN", TOKEN)
    monkeypatch.setenv("KUBERNETES_TOKEN", TOKEN)
    with ReplayServer(world_copy(cluster, tmp_path, strip), token=TOKEN) as replay:
        assert collect(cluster, tmp_path / "dataset", ["node-exporter", "dcgm"], argo=replay.url) == 0
    numbers = assert_every_task_has_its_energy(cluster, tmp_path / "dataset", {"cpu_package", "dram", "gpu"})
    assert numbers["got"] == pytest.approx(numbers["truth"], rel=1e-3)
    methods = {
        m.split(";split=")[1].split(";")[0]
        for m in read_table(tmp_path / "dataset", "task_energy")["method"].to_pylist()
        if ";split=unmapped" in m
    }
    assert methods and methods <= {"unmapped-sole-holder", "unmapped-by-request"}
    (line,) = missing_lines(capsys.readouterr().err)
    assert line.startswith(MISSING) and "GPU ids not read for" in line and "pod" not in line


def test_collect_after_pod_gc_marks_the_tasks_whose_pods_are_gone(cluster, tmp_path, monkeypatch, capsys):
    gone = sorted(path.stem for path in (cluster["root"] / "world" / "kubernetes" / "pods").glob("*/*.json"))[
        ::2
    ]
    monkeypatch.setenv("ARGO_TOKEN", TOKEN)
    monkeypatch.setenv("KUBERNETES_TOKEN", TOKEN)
    folder = world_copy(cluster, tmp_path, lambda path, podlist: None if path.stem in gone else podlist)
    with ReplayServer(folder, token=TOKEN) as replay:
        assert collect(cluster, tmp_path / "dataset", ["agent"], argo=replay.url) == 0
    assert_every_task_has_its_energy(cluster, tmp_path / "dataset", {"cpu_package", "dram", "gpu", "fpga"})
    workflows = {
        row["workflow_uid"]: row["workflow_name"]
        for row in read_table(tmp_path / "dataset", "workflows").to_pylist()
    }
    for row in read_table(tmp_path / "dataset", "tasks").to_pylist():
        if row["host_node"] and workflows[row["workflow_uid"]] in gone and row["phase"] != "Omitted":
            assert row["reason"].startswith("pod not read (pod not found (deleted, e.g. by Argo's podGC))")
        elif workflows[row["workflow_uid"]] not in gone:
            assert row["reason"] is None or row["reason"].startswith(("skipped", "never ran"))
    (line,) = missing_lines(capsys.readouterr().err)
    assert "pod not found (deleted, e.g. by Argo's podGC)" in line


def test_a_recorded_folder_without_kubernetes_responses_is_collected(cluster, tmp_path, capsys):
    """`--argo-recorded` on a folder saved by a user who could not read the Kubernetes API."""
    folder = tmp_path / "saved"
    shutil.copytree(cluster["root"] / "world", folder)
    shutil.rmtree(folder / "kubernetes")
    world = cluster["world"]
    args = ["collect", "--argo-recorded", str(folder), "--out", str(tmp_path / "dataset")]
    args += ["--since", (world.start - timedelta(hours=1)).isoformat()]
    args += ["--until", (world.end + timedelta(hours=1)).isoformat()]
    assert main(args) == 0
    energy = read_table(tmp_path / "dataset", "task_energy")
    gpus = gpu_rows(energy)
    assert gpus and all(g["j"] > 0 for g in gpus.values())
    (line,) = missing_lines(capsys.readouterr().err)
    assert f"(no kubernetes/ folder in {folder})" in line and "unknown" in line
