"""`jouletrace evaluate-scheduling --online`: the learned policy and the online baselines on the same
workflows as the offline sweep, written beside its outputs; the numbers are evaluate-policy's."""

import json
import sys
from pathlib import Path

import pandas as pd
import pytest
import torch

from allocate.policy.network import GraphPolicyNetwork
from allocate.policy.store import save_policy
from allocate.scheduling.workloads import reference_platform
from pipelines.cli import main

WFINSTANCES = Path(__file__).resolve().parents[3] / "shared" / "data" / "wfinstances"

SMALL = ["--workloads", "fft,strassen", "--repetitions", "1", "--tasks", "16", "--seed", "1000"]
ONLINE = ["--seeds", "2", "--weights", "0.5,1"]


@pytest.fixture(scope="module")
def policy(tmp_path_factory) -> str:
    """An untrained network (its objective prior) for the reference platform: any policy directory does."""
    torch.manual_seed(0)
    platform = reference_platform()
    network = GraphPolicyNetwork(len(platform.machines), hidden=16, layers=2)
    curve = [{"timesteps": 64 * k, "minutes": k, "reward": -1.0 - k / 10, "weight": 1.0} for k in range(4)]
    card = {"seed": 0, "curve": curve}
    return str(save_policy(network, platform, card, tmp_path_factory.mktemp("policy")))


@pytest.fixture(scope="module")
def evaluated(tmp_path_factory, policy):
    out = tmp_path_factory.mktemp("evaluation")
    command = ["evaluate-scheduling", *SMALL, "--online", "--policy", policy, *ONLINE]
    assert main([*command, "--out", str(out)]) == 0
    return out


def test_online_results_sit_beside_the_offline_ones(evaluated):
    offline = pd.read_parquet(evaluated / "results.parquet")
    online = pd.read_parquet(evaluated / "online_results.parquet")
    assert set(online["workflow"]) == set(offline["workflow"]) and len(set(online["workflow"])) == 2
    assert set(online["seed"]) == {0, 1} and (online["provenance"] == "simulated").all()
    rows = json.loads((evaluated / "online_summary.json").read_text())
    assert {r["weight"] for r in rows} == {0.5, 1.0} and {r["set"] for r in rows} == {"generated"}
    for weight in (0.5, 1.0):
        by = {r["scheduler"]: r for r in rows if r["weight"] == weight}
        assert set(by) == {"policy", "heft-static", "heft-dynamic", "min-energy", "ecs", "weighted", "random"}
        assert by["heft-dynamic"]["makespan_vs_dynamic_heft"] == 1.0
        assert by["heft-dynamic"]["makespan_spread_over_seeds"] == 0.0
        least = by["min-energy"]
        assert least["energy_vs_dynamic_heft"] < 1.0 < least["makespan_vs_dynamic_heft"]
        assert least["makespan_spread_over_seeds"] > 0.0  # two noise draws differ
    for name in ("pareto_fronts.png", "online_pareto.png", "policy_learning_curve.png"):
        assert (evaluated / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_the_numbers_are_evaluate_policys_on_the_same_workflows(evaluated, policy, tmp_path):
    args = [
        "evaluate-policy",
        *SMALL,
        "--policy",
        policy,
        *ONLINE,
        "--set-name",
        "generated",
        "--out",
        str(tmp_path),
    ]
    assert main(args) == 0
    ours = pd.read_parquet(evaluated / "online_results.parquet")
    pd.testing.assert_frame_equal(ours, pd.read_parquet(tmp_path / "policy_results.parquet"))


def test_online_without_the_policy_extra_stops_before_any_work(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "torch", None)  # import torch raises ImportError
    code = main(["evaluate-scheduling", *SMALL, "--online", "--out", str(tmp_path / "x")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "pip install 'jouletrace[policy]'" in err[0]
    assert not (tmp_path / "x").exists()


def test_a_ray_address_nothing_answers_at_is_refused_in_one_line(policy, tmp_path, capsys):
    args = ["evaluate-policy", *SMALL, "--policy", policy, "--ray-address", "127.0.0.1:1"]
    assert main([*args, "--out", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--ray-address 127.0.0.1:1: nothing answers at 127.0.0.1:1" in err[0]
    assert not (tmp_path / "x").exists()


def test_online_options_without_online_are_refused(policy, tmp_path, capsys):
    assert main(["evaluate-scheduling", *SMALL, "--policy", policy, "--out", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--policy: for the online runs only; add --online" in err[0]
    assert not (tmp_path / "x").exists()


def test_the_shipped_policy_runs_online_on_real_wfinstances_runs_as_they_are(tmp_path):
    """Upstream WfInstances files, unchanged (Pegasus Montage with its data sizes, a Nextflow sarek run,
    a fork-join): the shipped policy and every baseline finish each noisy run no sooner than the
    clairvoyant bound of that run's own runtime draw, and no later than random does on average."""
    from allocate.policy.baselines import noise_factors
    from allocate.policy.evaluate import makespan_lower_bound
    from allocate.policy.online import NoiseOptions
    from allocate.scheduling.build_workflow import workflow_from_wfformat
    from allocate.scheduling.problem import build_problem

    files = [
        WFINSTANCES / name
        for name in (
            "montage-chameleon-dss-05d-001.json",
            "sarek-dirt02-001.json",
            "helloworld-forkjoin-10-chameleon.json",
        )
    ]
    args = ["evaluate-scheduling", "--wfformat", *map(str, files), "--online", "--seeds", "2"]
    assert main([*args, "--weights", "0.5,1", "--out", str(tmp_path)]) == 0
    online = pd.read_parquet(tmp_path / "online_results.parquet")
    problems = {}
    for path in files:
        problem = build_problem(workflow_from_wfformat(path), reference_platform())
        problems[problem.name] = problem
    assert set(online["workflow"]) == set(problems)
    assert {"policy", "heft-dynamic", "random"} <= set(online["scheduler"])
    for (workflow, seed), runs in online.groupby(["workflow", "seed"]):
        problem = problems[workflow]
        bound = makespan_lower_bound(problem, noise_factors(problem, NoiseOptions(0.3), seed))
        assert (runs["makespan_seconds"] >= bound * (1 - 1e-12)).all(), (workflow, seed)
    mean = online.groupby("scheduler")["makespan_seconds"].mean()
    assert mean["policy"] <= mean["random"]
