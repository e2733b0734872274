"""`jouletrace train-policy` and `schedule --algorithm policy` as users run them."""

import json

from allocate.io import workflow_to_json, write_json
from allocate.model import Task, Workflow
from allocate.scheduling.platform import Machine, Platform, platform_to_json
from allocate.scheduling.workloads import generated_workflow, reference_platform
from pipelines.cli import main


def test_train_with_two_workers_then_schedule_and_simulate(tmp_path, capsys):
    policy = tmp_path / "policy"
    args = ["train-policy", "--workloads", "fft,random", "--workflows-per-workload", "1", "--max-tasks", "30"]
    assert main([*args, "--timesteps", "128", "--workers", "2", "--out", str(policy)]) == 0
    assert "held-out makespan" in capsys.readouterr().out
    card = json.loads((policy / "model_card.json").read_text())
    assert card["options"]["workers"] == 2 and card["library_versions"]["sb3-contrib"]
    assert [w["workflow"] for w in card["training_set"]] and (
        policy / "learning_curve.png"
    ).stat().st_size > 0

    wf = write_json(workflow_to_json(generated_workflow("random", 50, seed=9)), tmp_path / "WF.json")
    p = write_json(platform_to_json(reference_platform()), tmp_path / "P.json")
    out = tmp_path / "S.json"
    command = ["schedule", "--workflow", str(wf), "--platform", str(p), "--algorithm", "policy"]
    assert main([*command, "--policy", str(policy), "--weight", "0.3", "--out", str(out)]) == 0
    written = json.loads(out.read_text())
    assert written["algorithm"] == "policy" and written["parameters"] == {"weight": 0.3}
    assert len(written["assignments"]) == 50
    assert main(["simulate", "--workflow", str(wf), "--platform", str(p), "--schedule", str(out)]) == 0

    small = Platform("small", (Machine("a", cores=2),), bandwidth_bytes_per_second=1e9)
    other = write_json(platform_to_json(small), tmp_path / "small.json")
    capsys.readouterr()
    bad = ["schedule", "--workflow", str(wf), "--platform", str(other), "--algorithm", "policy"]
    assert main([*bad, "--policy", str(policy), "--out", str(tmp_path / "x.json")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "trained for platform 'reference-9'" in err[0]


def test_a_task_no_machine_can_run_is_refused_before_training(tmp_path, capsys):
    tasks = {"prep": Task("prep", 60.0), "train": Task("train", 600.0, device="gpu")}
    gpu = write_json(workflow_to_json(Workflow("gpu-job", tasks, [])), tmp_path / "WF.json")
    cpu_only = Platform("cpu-only", (Machine("a", cores=2),), bandwidth_bytes_per_second=1e9)
    p = write_json(platform_to_json(cpu_only), tmp_path / "P.json")
    args = ["train-policy", "--platform", str(p), "--workloads", "fft", "--workflows-per-workload", "1"]
    code = main([*args, "--workflows", str(gpu), "--timesteps", "64", "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1
    assert "task train: needs a gpu and no machine of cpu-only has one" in err[0]
    assert not (tmp_path / "o").exists()


def test_evaluate_the_shipped_policy_against_the_online_baselines(tmp_path, capsys):
    out = tmp_path / "evaluation"
    args = [
        "evaluate-policy",
        "--workloads",
        "strassen",
        "--repetitions",
        "1",
        "--seeds",
        "2",
        "--weights",
        "1",
    ]
    assert main([*args, "--out", str(out)]) == 0
    rows = json.loads((out / "policy_summary.json").read_text())
    by_scheduler = {r["scheduler"]: r for r in rows}
    assert set(by_scheduler) == {
        "policy",
        "heft-dynamic",
        "heft-static",
        "min-energy",
        "ecs",
        "weighted",
        "random",
    }
    assert by_scheduler["heft-dynamic"]["makespan_vs_dynamic_heft"] == 1.0
    assert (
        by_scheduler["min-energy"]["energy_vs_dynamic_heft"]
        < 1.0
        < by_scheduler["min-energy"]["makespan_vs_dynamic_heft"]
    )
    assert (out / "tradeoffs.png").stat().st_size > 0 and "policy" in capsys.readouterr().out


def test_environments_per_worker_need_a_ray_address(tmp_path, capsys):
    args = ["train-policy", "--workloads", "fft", "--envs-per-worker", "2", "--out", str(tmp_path / "p")]
    assert main(args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--envs-per-worker" in err[0] and "--ray-address" in err[0]
    assert not (tmp_path / "p").exists()
