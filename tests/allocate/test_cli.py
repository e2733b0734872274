"""`jouletrace generate | allocate | evaluate-allocation` on real files."""

import json

import pandas as pd

from allocate.check import check_result
from allocate.io import catalog_to_json, read_workflow, write_json
from allocate.model import Catalog, VmType
from pipelines.cli import main


def test_generate_allocate_and_check(tmp_path, capsys):
    wf = tmp_path / "WF.json"
    assert main(["generate", "fft", "--points", "8", "--out", str(wf)]) == 0
    assert len(json.loads(wf.read_text())["tasks"]) == 39
    assert main(["generate", "strassen", "--seed", "2", "--out", str(tmp_path / "s.json")]) == 0
    assert len(json.loads((tmp_path / "s.json").read_text())["tasks"]) == 25
    random = tmp_path / "r.json"
    args = ["generate", "random", "--n", "30", "--fat", "0.4", "--density", "0.3", "--regularity", "0.5"]
    assert main([*args, "--jump", "2", "--seed", "4", "--out", str(random)]) == 0
    assert main(["generate", "random-nd", "--n", "5", "--out", str(tmp_path / "nd.json")]) == 0
    for algorithm in ("eager", "deferred", "refine"):
        out = tmp_path / f"R-{algorithm}.json"
        assert (
            main(
                [
                    "allocate",
                    "--workflow",
                    str(random),
                    "--budget",
                    "1.5",
                    "--algorithm",
                    algorithm,
                    "--out",
                    str(out),
                ]
            )
            == 0
        )
        result = json.loads(out.read_text())
        assert result["algorithm"] == algorithm and result["budget"] == 1.5
        assert check_result(result, read_workflow(random)) == []
    assert "within budget" in capsys.readouterr().out


def test_allocate_with_a_catalog_file_and_confidence(tmp_path):
    catalog = tmp_path / "C.json"
    write_json(catalog_to_json(Catalog("mine", (VmType("big", 16, 1.0, 1.0),))), catalog)
    wf, out = tmp_path / "nd.json", tmp_path / "R.json"
    assert main(["generate", "random-nd", "--n", "6", "--seed", "3", "--out", str(wf)]) == 0
    args = ["allocate", "--workflow", str(wf), "--budget", "20", "--catalog", str(catalog)]
    assert main([*args, "--confidence", "0.5", "--out", str(out)]) == 0
    result = json.loads(out.read_text())
    assert {t["type"] for t in result["catalog"]["vm_types"]} == {"big"}
    assert result["confidence"] == 0.5


def test_errors_are_reported_not_raised(tmp_path, capsys):
    assert (
        main(
            [
                "allocate",
                "--workflow",
                str(tmp_path / "none.json"),
                "--budget",
                "1",
                "--out",
                str(tmp_path / "R.json"),
            ]
        )
        == 2
    )
    assert main(["generate", "fft", "--points", "6", "--out", str(tmp_path / "f.json")]) == 2
    assert "power of two" in capsys.readouterr().err


def test_evaluate_allocation_writes_parquet_and_plots(tmp_path, capsys):
    out = tmp_path / "eval"
    args = ["evaluate-allocation", "--workloads", "strassen,fft", "--budgets", "1,4,40"]
    assert main([*args, "--repetitions", "1", "--seed", "3", "--out", str(out)]) == 0
    assert {"results.parquet", "summary.json", "strassen.png", "fft.png"} <= {p.name for p in out.iterdir()}
    assert set(pd.read_parquet(out / "results.parquet")["algorithm"]) == {"eager", "deferred", "refine"}
    assert "deferred" in capsys.readouterr().out
