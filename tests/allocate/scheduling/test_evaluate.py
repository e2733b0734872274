"""`jouletrace evaluate-scheduling` on generated workloads: results, summary and plots."""

import json

import pandas as pd
import pytest

from pipelines.cli import main


@pytest.fixture(scope="module")
def evaluated(tmp_path_factory):
    out = tmp_path_factory.mktemp("evaluation")
    args = [
        "evaluate-scheduling",
        "--workloads",
        "fft,strassen,random",
        "--repetitions",
        "2",
        "--tasks",
        "40",
    ]
    assert main([*args, "--out", str(out)]) == 0
    return out


def test_results_hold_every_policy_for_every_workflow(evaluated):
    results = pd.read_parquet(evaluated / "results.parquet")
    assert results["valid"].all()
    assert results["workflow"].nunique() == 6
    for _, g in results.groupby("workflow"):
        assert {
            "heft",
            "min-energy",
            "ecs",
            "merge",
            "deadline",
            "weighted",
            "energy-budget",
            "budget-heft",
        } <= set(g["algorithm"])
        heft = g[g["algorithm"] == "heft"].iloc[0]
        assert heft["makespan_vs_heft"] == 1.0 and heft["energy_vs_heft"] == 1.0
        assert g["on_pareto_front"].any()
        # The front is what no schedule beats on both figures.
        for r in g[g["on_pareto_front"]].itertuples():
            beaten = (g["makespan_seconds"] <= r.makespan_seconds) & (g["energy_joules"] < r.energy_joules)
            assert not beaten.any()
        least = g[g["algorithm"] == "min-energy"].iloc[0]
        assert least["energy_joules"] <= heft["energy_joules"]


def test_summary_and_plots(evaluated):
    summary = json.loads((evaluated / "summary.json").read_text())
    families = {f["family"]: f for f in summary["families"]}
    assert set(families) == {"fft", "strassen", "random"}
    for f in families.values():
        assert 0.0 <= f["saved_at_equal_makespan"] <= f["saved_within_5pct"] < 1.0
        assert f["all_valid"]
    for name in ("pareto_fronts.png", "energy_saved.png", "makespan_per_joule_saved.png"):
        assert (evaluated / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_unknown_workload_is_refused(tmp_path, capsys):
    assert main(["evaluate-scheduling", "--workloads", "fft,nbody", "--out", str(tmp_path / "x")]) == 2
    assert "unknown 'nbody'" in capsys.readouterr().err and not (tmp_path / "x").exists()
