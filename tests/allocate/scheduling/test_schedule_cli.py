"""`jouletrace schedule` and `jouletrace simulate` as users run them, with bad input refused in one line."""

import json

import pytest

from allocate.io import workflow_to_json, write_json
from allocate.scheduling.platform import platform_to_json
from allocate.scheduling.workloads import generated_workflow, reference_platform
from pipelines.cli import main


@pytest.fixture
def files(tmp_path):
    wf = write_json(workflow_to_json(generated_workflow("random", 40, seed=2)), tmp_path / "WF.json")
    p = write_json(platform_to_json(reference_platform()), tmp_path / "P.json")
    return tmp_path, str(wf), str(p)


@pytest.mark.parametrize("algorithm", ["heft", "min-energy", "ecs", "merge", "deadline", "weighted"])
def test_schedule_then_simulate_gives_the_same_figures(files, capsys, algorithm):
    folder, wf, p = files
    out = folder / f"{algorithm}.json"
    assert (
        main(["schedule", "--workflow", wf, "--platform", p, "--algorithm", algorithm, "--out", str(out)])
        == 0
    )
    written = json.loads(out.read_text())
    for key in (
        "makespan_seconds",
        "energy_joules",
        "cost",
        "algorithm",
        "seconds_to_schedule",
        "assignments",
    ):
        assert key in written
    assert {"task_id", "machine_id", "start_seconds", "end_seconds"} == set(written["assignments"][0])
    capsys.readouterr()
    assert main(["simulate", "--workflow", wf, "--platform", p, "--schedule", str(out)]) == 0
    printed = capsys.readouterr().out
    assert f"makespan {written['makespan_seconds']:,.1f} s" in printed
    assert f"energy {written['energy_joules']:,.1f} J" in printed
    assert "valid" in printed


def test_energy_budget_below_the_least_reachable_exits_with_that_value(files, capsys):
    folder, wf, p = files
    out = folder / "least.json"
    main(["schedule", "--workflow", wf, "--platform", p, "--algorithm", "min-energy", "--out", str(out)])
    least = json.loads(out.read_text())["energy_joules"]
    capsys.readouterr()
    target = folder / "S.json"
    code = main(["schedule", "--workflow", wf, "--platform", p, "--algorithm", "energy-budget",
                 "--energy-budget", str(least / 2), "--out", str(target)])  # fmt: skip
    err = capsys.readouterr().err
    assert code == 2 and not target.exists()
    assert (
        f"the least this scheduler reaches on {generated_workflow('random', 40, seed=2).name} is {least:,.6g} J"
        in err
    )
    assert code == 2 and len(err.strip().splitlines()) == 1


def test_an_invalid_schedule_exits_non_zero_and_says_why(files, capsys):
    folder, wf, p = files
    out = folder / "S.json"
    main(["schedule", "--workflow", wf, "--platform", p, "--out", str(out)])
    data = json.loads(out.read_text())
    data["assignments"][-1]["start_seconds"] -= 1.0  # now one second too long
    data["assignments"].append(dict(data["assignments"][0], task_id="ghost"))
    write_json(data, out)
    capsys.readouterr()
    assert main(["simulate", "--workflow", wf, "--platform", p, "--schedule", str(out)]) == 1
    err = capsys.readouterr().err
    assert "task 'ghost' is not in workflow" in err
    assert "the schedule cannot run" in err


def _platform_with(folder, change):
    data = platform_to_json(reference_platform())
    change(data)
    return str(write_json(data, folder / "bad-P.json"))


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda d: d["machines"][0].update(speed=0), "machines[0] (fast-0): speed must be > 0"),
        (lambda d: d["machines"][1].update(cores=0), "machines[1] (fast-1): cores must be >= 1"),
        (lambda d: d["machines"][2].update(busy_watts=1.0), "busy_watts (1.0) must be >= idle_watts"),
        (lambda d: d.pop("bandwidth_bytes_per_second"), "set bandwidth_bytes_per_second or links"),
        (lambda d: d["machines"].append(dict(d["machines"][0])), "id 'fast-0' is repeated"),
        (
            lambda d: d.update(links=[{"source": "fast-0", "target": "nowhere", "bytes_per_second": 1}]),
            "unknown machine 'nowhere'",
        ),
    ],
)
def test_bad_platform_is_named_and_nothing_written(files, capsys, change, message):
    folder, wf, _ = files
    bad = _platform_with(folder, change)
    out = folder / "S.json"
    assert main(["schedule", "--workflow", wf, "--platform", bad, "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "bad-P.json" in err and message in err and not out.exists()


def test_bad_workflow_and_options_are_named(files, capsys):
    folder, _, p = files
    cyclic = {"tasks": [{"id": "a", "work_seconds": 1}, {"id": "b", "work_seconds": 1}],
              "edges": [{"source": "a", "target": "b"}, {"source": "b", "target": "a"}]}  # fmt: skip
    wf = str(write_json(cyclic, folder / "cyclic.json"))
    out = folder / "S.json"
    assert main(["schedule", "--workflow", wf, "--platform", p, "--out", str(out)]) == 2
    assert "cyclic.json" in capsys.readouterr().err and not out.exists()
    gpu = {"tasks": [{"id": "a", "work_seconds": 1, "device": "fpga"}], "edges": []}
    wf = str(write_json(gpu, folder / "fpga.json"))
    assert main(["schedule", "--workflow", wf, "--platform", p, "--out", str(out)]) == 2
    assert "task a: needs a fpga and no machine of reference-9 has one" in capsys.readouterr().err
    args = ["schedule", "--workflow", wf, "--platform", p, "--algorithm", "budget-heft", "--budget", "-1"]
    assert main([*args, "--out", str(out)]) == 2
    assert "budget must be >= 0" in capsys.readouterr().err and not out.exists()
