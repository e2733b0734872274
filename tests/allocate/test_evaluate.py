import json

import pandas as pd
import pytest

from allocate.catalog import EC2_INSPIRED
from allocate.evaluate import (
    Case,
    evaluate,
    parse_budgets,
    summary,
    synthetic_cases,
    synthetic_workflow,
    write_outputs,
)
from allocate.generators import fft


def test_budget_ranges():
    assert parse_budgets("1:5") == [1, 2, 3, 4, 5]
    assert parse_budgets("1:2:0.25") == [1.0, 1.25, 1.5, 1.75, 2.0]
    assert parse_budgets("1, 2.5,10") == [1.0, 2.5, 10.0]
    for bad in ("0:5", "5:1", "1:5:0", "", "-1,2"):
        with pytest.raises(ValueError):
            parse_budgets(bad)


def test_workloads():
    assert len(synthetic_workflow("fft", 0, 0).tasks) == 95
    assert len(synthetic_workflow("strassen", 0, 0).tasks) == 25
    assert len(synthetic_workflow("random", 1, 0).tasks) == 100
    assert not synthetic_workflow("random-nd", 0, 0).deterministic
    with pytest.raises(ValueError, match="workload"):
        synthetic_workflow("montage", 0, 0)


def test_evaluation_writes_results_summary_and_plots(tmp_path):
    cases = [*synthetic_cases(["strassen"], 2, seed=1), Case("small", 0, fft(4))]
    results = evaluate(cases, [1, 3, 30], EC2_INSPIRED)
    assert len(results) == 3 * 3 * 3
    deferred = results[results["algorithm"] == "deferred"]
    assert (deferred["relative_makespan"] == 1.0).all() and deferred["within_budget"].all()
    assert (results["violations"] == 0).all()
    assert (results[results["algorithm"] == "refine"]["relative_makespan"] <= 1.0).all()
    written = write_outputs(results, tmp_path)
    assert {p.name for p in written.values()} == {
        "results.parquet",
        "summary.json",
        "strassen.png",
        "small.png",
    }
    assert written["strassen"].read_bytes()[:4] == b"\x89PNG"
    assert len(pd.read_parquet(written["results"])) == len(results)
    stats = json.loads(written["summary"].read_text())
    assert stats == json.loads(json.dumps(summary(results)))
    assert stats["deferred"]["within_budget"] == 1.0 and stats["refine"]["slower_than_deferred"] == 0.0
