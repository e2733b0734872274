"""P.json and WF.json builders: a small sample world's trace dataset, the real WfInstances runs, the CLI."""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from allocate.io import workflow_from_json, workflow_to_json
from allocate.scheduling.build_platform import platform_from_dataset
from allocate.scheduling.build_workflow import (
    ENERGY,
    RUNTIME,
    trace_runs,
    workflow_from_dataset,
    workflow_from_wfformat,
)
from allocate.scheduling.platform import platform_from_json
from allocate.scheduling.problem import build_problem
from datasets.sample_world.cluster import build_cluster
from datasets.sample_world.recipes import RECIPES
from datasets.store import read_table
from pipelines.cli import main

WORKFLOWS, SEED = 16, 3
# Tasks and (parent, child) pairs of the specification of each real WfInstances run.
WFINSTANCES = {
    "1000genome-chameleon-2ch-250k-001.json": (82, 106),
    "blast-chameleon-small-002.json": (43, 120),
    "epigenomics-chameleon-hep-1seq-50k-001.json": (73, 88),
    "helloworld-chain-5-chameleon.json": (5, 4),
    "helloworld-forkjoin-10-chameleon.json": (10, 16),
    "montage-chameleon-dss-05d-001.json": (58, 114),
    "sarek-dirt02-001.json": (26, 50),
    "scrnaseq-dirt02-001.json": (14, 17),
}


@dataclass
class World:
    recorded: Path
    dataset: Path
    idle_watts: dict[str, float]  # the sample world's true idle power of every node (all meters)
    device_idle_watts: dict[str, float]  # and of every device (package-0, GPU-..., 0000:af:00.0)
    platform: dict


@pytest.fixture(scope="module")
def world(tmp_path_factory, sample_dataset) -> World:
    out = tmp_path_factory.mktemp("build-world")
    summary = sample_dataset(out, WORKFLOWS, SEED)
    idle = {node: sum(watts.values()) for node, watts in summary.idle_power_watts.items()}
    devices = {d: w for watts in summary.idle_power_watts.values() for d, w in watts.items()}
    return World(out / "recorded", out / "dataset", idle, devices, platform_from_dataset(out / "dataset"))


def _true_watts_per_busy_core(world: World) -> dict[str, float]:
    """Per node: the ground truth's CPU + DRAM dynamic joules over the CPU-seconds its containers used."""
    truth = pq.read_table(world.recorded / "truth" / "task_energy.parquet").to_pandas()
    cpu = truth[truth["device_kind"].isin(["cpu_package", "dram"])].groupby("task_id")["dynamic_joules"].sum()
    tasks = read_table(world.dataset, "tasks").to_pandas()
    counters = read_table(world.dataset, "container_samples").to_pandas()
    seconds = counters[counters["value_kind"] == "cpu_seconds_counter"].groupby("pod_uid")["value"].max()
    tasks["joules"] = tasks["task_id"].map(cpu)
    tasks["cpu_seconds"] = tasks["pod_uid"].map(seconds)
    sums = tasks.groupby("host_node")[["joules", "cpu_seconds"]].sum()
    return (sums["joules"] / sums["cpu_seconds"]).to_dict()


def test_fitted_power_lands_on_the_sample_worlds_truth(world):
    slopes = _true_watts_per_busy_core(world)
    machines = read_table(world.dataset, "machines").to_pandas().set_index("host_node")
    for m in world.platform["machines"]:
        fit = m["fit"]["power"]
        # exact on this world; 1% and 4% leave room for the windows an agent gap removes
        assert m["idle_watts"] == pytest.approx(world.idle_watts[m["id"]], rel=0.01), m["id"]
        assert fit["watts_per_busy_core"] == pytest.approx(slopes[m["id"]], rel=0.04), m["id"]
        assert m["busy_watts"] == pytest.approx(m["idle_watts"] + fit["watts_per_busy_core"] * m["cores"])
        assert fit["r2"] > 0.99 and fit["windows"] > 50 and fit["quiet_windows"] >= 3
        assert fit["least_squares"]["r2"] > 0.99  # the plain least-squares line is reported beside it
        assert m["sources"]["idle_watts"].startswith("fitted from power_samples")
        assert m["sources"]["busy_watts"].startswith("fitted from power_samples")
        row = machines.loc[m["id"]]
        assert m["cores"] == row["cores"] and m["sources"]["cores"] == "machines.cores"
        assert m["gpus"] == len(row["gpu_models"]) and m["fpgas"] == len(row["fpga_models"])
        assert m["labels"] == dict(row["labels"]) and m["labels"]["kubernetes.io/hostname"] == m["id"]
        assert "cost_per_hour" not in m and m["sources"]["cost_per_hour"].startswith("not in the dataset")
    accelerators = {
        d: a["idle_watts"]
        for m in world.platform["machines"]
        for d, a in m["fit"]["power"]["accelerators"].items()
    }
    assert len(accelerators) == 3  # two GPUs, one FPGA
    for device, watts in accelerators.items():
        assert watts == pytest.approx(world.device_idle_watts[device], rel=0.02), device
    assert "default" in world.platform["sources"]["bandwidth_bytes_per_second"]
    assert world.platform["warnings"] == []
    platform_from_json(world.platform)  # the reader takes it, extra keys and all


def test_speeds_order_the_machines_as_the_cpus_per_core_speed_does(world):
    """Machines with one CPU model share a speed; a slower CPU is slower, within 10% of the sample world's
    true slowdown of the CPU-only runs each node had."""
    from allocate.scheduling.build_platform import cpu_runs

    nodes = {n.name: n for n in build_cluster(np.random.default_rng(0))}
    types = {k: t for _, make, _ in RECIPES for k, t in make(np.random.default_rng(0)).task_types.items()}
    runs = cpu_runs(read_table(world.dataset, "tasks").to_pandas())
    speed = {m["id"]: m["speed"] for m in world.platform["machines"]}
    throughput = {name: node.cpu.relative_throughput for name, node in nodes.items()}
    for a in speed:
        for b in speed:
            if throughput[a] > throughput[b]:
                assert speed[a] > speed[b], (a, b, speed)
            elif throughput[a] == throughput[b]:
                assert speed[a] == speed[b]
    reference = world.platform["reference_machine"]
    assert speed[reference] == 1.0 and throughput[reference] == max(throughput.values())
    for name, value in speed.items():
        mine = runs[runs["host_node"] == name]
        slowdown = [types[t].slowdown(throughput[name]) for t in mine["template_name"]]
        assert value == pytest.approx(float(np.exp(-np.mean(np.log(slowdown)))), rel=0.10), name
    sources = {m["id"]: m["sources"]["speed"] for m in world.platform["machines"]}
    assert sources["gpu-node-1"].startswith("fitted from task runtimes")
    assert sources[reference].startswith("reference")


def test_a_dataset_without_power_readings_says_so_and_keeps_the_given_watts(world, tmp_path):
    for table in ("workflows", "tasks", "machines"):
        shutil.copytree(world.dataset / table, tmp_path / table)
    data = platform_from_dataset(tmp_path)
    assert any("no power_samples" in w for w in data["warnings"])
    for m in data["machines"]:
        assert "idle_watts" not in m and "busy_watts" not in m
        assert m["sources"]["idle_watts"].startswith("not in the dataset")
    given = platform_from_dataset(tmp_path, 1e9, 2.5, idle_watts=80.0, busy_watts=300.0)
    for m in given["machines"]:
        assert (m["idle_watts"], m["busy_watts"], m["cost_per_hour"]) == (80.0, 300.0, 2.5)
        assert m["sources"]["idle_watts"].startswith("given") and m["sources"]["cost_per_hour"] == "given"
    assert (
        given["bandwidth_bytes_per_second"] == 1e9
        and given["sources"]["bandwidth_bytes_per_second"] == "given"
    )


def _workflow_with_gpus(world: World) -> str:
    workflows = read_table(world.dataset, "workflows").to_pandas()
    return workflows.loc[workflows["workflow_name"].str.startswith("ml-training"), "workflow_uid"].iloc[0]


def test_a_runs_numbers_are_measured_where_it_ran_and_carried_elsewhere(world):
    uid = _workflow_with_gpus(world)
    workflow = workflow_from_dataset(world.dataset, uid, platform=world.platform)
    tasks = read_table(world.dataset, "tasks").to_pandas().set_index("task_id")
    energy = read_table(world.dataset, "task_energy").to_pandas()
    additive = energy[energy["device_kind"].isin(["cpu_package", "dram", "gpu", "fpga"])]
    dynamic = additive.groupby("task_id")["dynamic_joules"].sum()
    speed = {m["id"]: m["speed"] for m in world.platform["machines"]}
    gpu_machines = {m["id"] for m in world.platform["machines"] if m["gpus"]}
    mine = tasks[(tasks["workflow_uid"] == uid) & tasks["host_node"].notna()]
    assert len(workflow.tasks) == mine["task_name"].nunique()
    assert any(t.device == "gpu" for t in workflow.tasks.values())
    for task in workflow.tasks.values():
        row = tasks.loc[task.id]
        host = row["host_node"]
        assert task.runtime_seconds[host] == row["runtime_seconds"]
        assert task.sources[RUNTIME][host] == "synthetic"  # the rows' provenance
        assert task.energy_joules[host] == pytest.approx(dynamic[task.id])
        assert task.sources[ENERGY][host] == "synthetic"
        assert task.work_seconds == pytest.approx(row["runtime_seconds"] * speed[host])
        assert task.device == ("gpu" if len(row["gpu_ids"]) else "cpu")
        others = set(speed) - {host} if task.device == "cpu" else gpu_machines - {host}
        assert set(task.runtime_seconds) == others | {host}
        for m in others:
            assert task.sources[RUNTIME][m] == "work/speed"
            assert task.runtime_seconds[m] == pytest.approx(task.work_seconds / speed[m])
            assert task.sources[ENERGY][m].startswith("scaled: measured on")
    ids = set(workflow.tasks)
    parents = {(p, t) for t in ids for p in tasks.loc[t, "parents"] if p in ids}
    assert {(e.source, e.target) for e in workflow.edges} == parents
    data = workflow_to_json(workflow)
    assert workflow_to_json(workflow_from_json(json.loads(json.dumps(data)))) == data
    problem = build_problem(workflow, platform_from_json(world.platform))
    assert np.isfinite(problem.runtime_seconds).sum() == sum(
        len(t.runtime_seconds) for t in workflow.tasks.values()
    )


def test_the_carried_runtimes_follow_the_sample_worlds_slowdowns(world):
    """work / speed on another CPU: within 15% of the sample world's true runtime there for 9 in 10 tasks."""
    nodes = {n.name: n for n in build_cluster(np.random.default_rng(0))}
    types = {k: t for _, make, _ in RECIPES for k, t in make(np.random.default_rng(0)).task_types.items()}
    tasks = read_table(world.dataset, "tasks").to_pandas().set_index("task_id")
    uid = tasks.loc[tasks["template_name"] == "blastall", "workflow_uid"].iloc[0]
    errors = []
    for task in workflow_from_dataset(world.dataset, uid, platform=world.platform).tasks.values():
        row = tasks.loc[task.id]
        slow = types[row["template_name"]].slowdown
        for m, seconds in task.runtime_seconds.items():
            truth = row["runtime_seconds"] * slow(nodes[m].cpu.relative_throughput)
            truth /= slow(nodes[row["host_node"]].cpu.relative_throughput)
            errors.append(abs(seconds / truth - 1))
    assert np.quantile(errors, 0.9) < 0.15


def test_regressors_predict_the_other_machines_and_can_be_reused(world, tmp_path):
    uid = _workflow_with_gpus(world)
    saved = tmp_path / "models"
    trained = workflow_from_dataset(world.dataset, uid, platform=world.platform, save_models=saved)
    models = {RUNTIME: saved / RUNTIME, ENERGY: saved / ENERGY}
    reused = workflow_from_dataset(world.dataset, uid, platform=world.platform, models=models)
    assert workflow_to_json(reused) == workflow_to_json(trained)
    predicted = 0
    for task in reused.tasks.values():
        host = next(m for m, s in task.sources[RUNTIME].items() if s == "synthetic")
        for field in (RUNTIME, ENERGY):
            for m, source in task.sources[field].items():
                if m != host:
                    assert source.startswith("predicted: xgboost model") and f"the run on {host}" in source
                    predicted += 1
    assert predicted > 2 * len(reused.tasks)
    card = json.loads((saved / ENERGY / "model_card.json").read_text())
    assert card["energy_basis"] == "dynamic_joules"
    with pytest.raises(ValueError, match="not energy_joules"):
        workflow_from_dataset(world.dataset, uid, models={ENERGY: saved / RUNTIME})
    # A `jouletrace train --target energy_joules` folder learns the idle share too: refused.
    total = tmp_path / "total"
    shutil.copytree(saved / ENERGY, total)
    del card["energy_basis"]
    (total / "model_card.json").write_text(json.dumps(card))
    with pytest.raises(ValueError, match="idle share"):
        workflow_from_dataset(world.dataset, uid, models={ENERGY: total})


def _row(task_id, name, attempt, phase, parents, runtime=10.0, host="n1"):
    return {
        "task_id": task_id,
        "task_name": name,
        "attempt": attempt,
        "phase": phase,
        "parents": parents,
        "runtime_seconds": runtime,
        "host_node": host,
        "gpu_ids": [],
        "fpga_ids": [],
        "written_bytes": 600.0,
        "provenance": "measured",
    }


def test_retries_keep_the_succeeded_attempt_and_tasks_that_never_ran_are_bridged():
    rows = pd.DataFrame(
        [
            _row("a", "a", 0, "Succeeded", []),
            _row("b0", "b", 0, "Failed", ["a"], runtime=3.0),
            _row("b1", "b", 1, "Succeeded", ["a"], runtime=12.0),
            _row("c", "c", 0, "Omitted", ["b1"], runtime=None, host=None),
            _row("d", "d", 0, "Succeeded", ["c"]),
            # two tasks of one name (lanes of a nested DAG), each with its own parent
            _row("x1", "x", 0, "Succeeded", ["a"]),
            _row("x2", "x", 0, "Succeeded", ["b1"]),
        ]
    )
    runs, edges = trace_runs(rows, None)
    assert {r.id: r.runtime for r in runs} == {"a": 10.0, "b1": 12.0, "d": 10.0, "x1": 10.0, "x2": 10.0}
    # written bytes are shared over the children recorded (b1's two: c and x2); d gets b1 as its parent
    # across c, which never ran, with no data
    assert edges == [("a", "b1", 300.0), ("a", "x1", 300.0), ("b1", "d", 0.0), ("b1", "x2", 300.0)]


@pytest.mark.parametrize("name", sorted(WFINSTANCES))
def test_every_real_wfinstances_run_becomes_a_workflow(shared_data, tmp_path, name):
    path = shared_data / "wfinstances" / name
    spec = json.loads(path.read_text())["workflow"]["specification"]
    pairs = {(p, t["id"]) for t in spec["tasks"] for p in t["parents"]}
    assert (len(spec["tasks"]), len(pairs)) == WFINSTANCES[name]
    out = tmp_path / "WF.json"
    assert main(["workflow", "--wfformat", str(path), "--out", str(out)]) == 0
    workflow = workflow_from_json(json.loads(out.read_text()))
    assert len(workflow.tasks) == WFINSTANCES[name][0] and len(workflow.edges) == WFINSTANCES[name][1]
    assert {(e.source, e.target) for e in workflow.edges} == pairs
    for task in workflow.tasks.values():
        assert not task.energy_joules  # WfInstances runs have no energy
        ran = [m for m, s in task.sources[RUNTIME].items() if s == "imported"]
        assert len(ran) == 1 and task.runtime_seconds[ran[0]] >= 0
    assert sum(e.data_bytes for e in workflow.edges) > 0  # files a child reads that its parent wrote


def test_a_wfformat_file_with_energy_gives_it_and_takes_a_platform(world, tmp_path):
    from datasets.formats.wfformat_read import document_file_bytes, tables_to_wfformat

    uid = _workflow_with_gpus(world)
    tables = {n: read_table(world.dataset, n) for n in ("workflows", "tasks", "machines", "task_energy")}
    path = tmp_path / "run.json"
    path.write_bytes(document_file_bytes(tables_to_wfformat(tables).documents[uid]))
    from_file = workflow_from_wfformat(path, platform=world.platform)
    from_dataset = workflow_from_dataset(world.dataset, uid, platform=world.platform)
    assert set(from_file.tasks) == set(from_dataset.tasks)
    for task in from_file.tasks.values():
        host = next(m for m, s in task.sources[RUNTIME].items() if s == "imported")
        assert task.energy_joules[host] == pytest.approx(from_dataset.tasks[task.id].energy_joules[host])
        assert task.sources[ENERGY][host].startswith("imported")
        assert task.runtime_seconds == pytest.approx(from_dataset.tasks[task.id].runtime_seconds)


def test_cli_writes_the_platform_and_the_workflow(world, tmp_path, capsys):
    p, wf = tmp_path / "P.json", tmp_path / "WF.json"
    args = ["platform", "--dataset", str(world.dataset), "--cost-per-hour", "1.2", "--out", str(p)]
    assert main(args) == 0
    line = capsys.readouterr().out
    assert line.count("\n") == 1 and "5 machines" in line and "idle and busy watts fitted for 5" in line
    assert all(m["cost_per_hour"] == 1.2 for m in json.loads(p.read_text())["machines"])
    uid = _workflow_with_gpus(world)
    args = ["workflow", "--dataset", str(world.dataset), "--workflow-uid", uid, "--platform", str(p)]
    assert main([*args, "--out", str(wf)]) == 0
    line = capsys.readouterr().out
    assert line.count("\n") == 1 and "synthetic" in line and "work/speed" in line and "scaled" in line
    workflow = workflow_from_json(json.loads(wf.read_text()))
    assert workflow.name.startswith("ml-training")


@pytest.mark.parametrize(
    "args, message",
    [
        (
            ["workflow", "--dataset", "{dataset}", "--workflow-uid", "no-such-run"],
            "no workflow_uid 'no-such-run'",
        ),
        (["workflow", "--dataset", "{missing}", "--workflow-uid", "x"], "no such trace dataset folder"),
        (["workflow", "--wfformat", "{dataset}/../recorded/manifest.json"], "not a WfFormat file"),
        (["workflow", "--wfformat", "{missing}.json"], "no such file"),
        (["platform", "--dataset", "{missing}"], "no such trace dataset folder"),
        (["platform", "--dataset", "{dataset}", "--bandwidth", "0"], "--bandwidth '0'"),
        (["workflow", "--dataset", "{dataset}"], "--workflow-uid"),
    ],
)
def test_bad_input_exits_2_with_one_line_and_writes_nothing(world, tmp_path, capsys, args, message):
    out = tmp_path / "out.json"
    filled = [a.format(dataset=world.dataset, missing=tmp_path / "missing") for a in args]
    assert main([*filled, "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err and err.startswith(f"jouletrace {args[0]}: error: ")
    assert not out.exists()
