"""`jouletrace collect` against real servers: a replaying Argo/Kubernetes API and a real Prometheus.

The sample world is served over HTTP (Argo through Hera, pods and nodes through the kubernetes client)
and its readings are loaded into Prometheus in each exporter dialect; collecting from those servers
must give the task energies that attributing the world's own readings gives.
"""

import shutil
from datetime import timedelta

import pyarrow as pa
import pyarrow.compute as pc
import pytest

from collectors.recorded import RecordedSources
from collectors.replay import ReplayServer
from datasets.attribution import attribute
from datasets.openmetrics import create_tsdb_blocks, write_openmetrics
from datasets.sample_world import generate
from datasets.traces import read_table
from pipelines.cli import main

TOKEN = "s3cret-token"
# Prometheus keeps milliseconds: the reference is the world's readings at that resolution.
US_PER_MS = 1000
# The exporters' values carry microjoules: a few readings' worth of rounding on the smallest rows.
ABSOLUTE_TOLERANCE_JOULES = 1e-5


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


def collect(cluster, out, dialects: list[str], *extra: str) -> int:
    world = cluster["world"]
    args = ["collect", "--argo", cluster["replay"].url, "--kubernetes", cluster["replay"].url]
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
