"""What every `jouletrace` command does alike (issue 14, points 7, 10 and 11): one line per problem and no
traceback (exit 2 for bad input, 1 for a failed run, --debug shows the traceback), `validate` telling which
kind of folder it was given, budgets and over-budget results, --version and defaults in every help."""

import argparse
import json
import shutil

import pytest

from pipelines import cli
from pipelines.cli import main, parser
from pipelines.cli_support import shows_default


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    """Recorded sources (`jouletrace sample`), the trace dataset collected from them, and its WfInstances
    bundle and WTA trace (`jouletrace export`)."""
    root = tmp_path_factory.mktemp("kinds")
    world, dataset = root / "world", root / "dataset"
    assert main(["sample", "--out", str(world), "--workflows", "2", "--seed", "7"]) == 0
    assert main(["collect", "--argo-recorded", str(world), "--out", str(dataset)]) == 0
    assert main(["export", "wfinstances", str(dataset), "--out", str(root / "bundle")]) == 0
    assert main(["export", "wta", str(dataset), "--out", str(root / "wta")]) == 0
    return {"world": world, "dataset": dataset, "bundle": root / "bundle", "wta": root / "wta", "root": root}


# --- point 7: one line, exit codes, --debug ------------------------------------------------------------


def test_an_unexpected_error_is_one_line_with_exit_1_and_debug_shows_the_traceback(
    monkeypatch, tmp_path, capsys
):
    def broken(args):
        raise KeyError("tasks")

    monkeypatch.setattr(cli, "cmd_generate", broken)
    args = ["generate", "strassen", "--out", str(tmp_path / "s.json")]
    assert main(args) == 1
    err = capsys.readouterr().err
    assert err == "jouletrace generate: failed: KeyError: 'tasks' (rerun with --debug to see the traceback)\n"
    with pytest.raises(KeyError):
        main(["--debug", *args])
    with pytest.raises(KeyError):
        main([*args, "--debug"])


def test_a_failed_run_names_its_steps_and_bad_input_exits_2(monkeypatch, tmp_path, capsys):
    def failed(args):
        raise RuntimeError("the demo run failed:\nstep power_samples failed: power/n1.parquet: unreadable")

    monkeypatch.setattr(cli, "cmd_demo", failed)
    assert main(["demo", "--out", str(tmp_path)]) == 1
    assert capsys.readouterr().err.splitlines() == [
        "jouletrace demo: failed: the demo run failed:",
        "jouletrace demo:   step power_samples failed: power/n1.parquet: unreadable",
    ]
    assert main(["validate", str(tmp_path / "nothing")]) == 2
    assert (
        capsys.readouterr().err
        == f"jouletrace validate: error: {tmp_path / 'nothing'}: no such file or folder\n"
    )


def test_a_failed_collection_step_is_one_line_naming_the_step(folders, tmp_path, capfd):
    """A Dagster step failure used to print Dagster's traceback; now each log record is one line, the step
    and the file are named, the exit code is 1, and --debug shows Dagster's traceback."""
    broken = tmp_path / "broken"
    shutil.copytree(folders["world"], broken)
    node_file = sorted((broken / "power").glob("*.parquet"))[0]
    node_file.write_text("not parquet")
    assert main(["collect", "--argo-recorded", str(broken), "--out", str(tmp_path / "ds")]) == 1
    err = capfd.readouterr().err
    assert "jouletrace collect: step power_samples failed: " in err and str(node_file) in err
    assert "Traceback" not in err and "Stack Trace" not in err
    assert main(["--debug", "collect", "--argo-recorded", str(broken), "--out", str(tmp_path / "ds")]) == 1
    assert "Stack Trace" in capfd.readouterr().err


# --- point 10: validate tells which kind of folder it was given ------------------------------------------


def test_validate_recorded_sources_as_recorded_sources(folders, capsys):
    world = folders["world"]
    assert main(["validate", str(world)]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"{world}: recorded sources (docs/recorded-sources.md)\nok  {world}: 2 workflows")
    assert "power readings" in out and "ground truth" in out


def test_validate_names_the_bad_file_of_recorded_sources(folders, tmp_path, capsys):
    broken = tmp_path / "world"
    shutil.copytree(folders["world"], broken)
    pods = sorted((broken / "kubernetes" / "pods").rglob("*.json"))[0]
    pods.write_text("{")
    readings = sorted((broken / "power").glob("*.parquet"))[0]
    readings.write_bytes(b"")
    assert main(["validate", str(broken)]) == 2
    err = capsys.readouterr().err
    assert str(pods) in err and f"{readings}: empty file (0 bytes)" in err


def test_validate_a_trace_dataset_table_by_table(folders, capsys):
    dataset = folders["dataset"]
    assert main(["validate", str(dataset)]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"{dataset}: trace dataset (docs/data-model.md)\n")
    assert "ok  tasks:" in out and "ok  power_samples:" in out and "ok  task_energy:" in out
    assert main(["validate", "--strict", str(dataset / "tasks")]) == 0
    assert capsys.readouterr().out.startswith(f"{dataset / 'tasks'}: table folder\nok  tasks:")


def test_validate_a_wfinstances_bundle_and_a_wta_trace_by_their_formats(folders, capsys):
    assert main(["validate", str(folders["bundle"])]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"{folders['bundle']}: WfInstances bundle") and "ok  " in out
    assert main(["validate", str(folders["wta"])]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"{folders['wta']}: WTA trace") and "ok  " in out


def test_validate_a_folder_of_folders_says_what_is_inside(folders, capsys):
    assert main(["validate", str(folders["root"])]) == 2
    err = capsys.readouterr().err
    assert "not a folder jouletrace knows" in err
    assert f"{folders['dataset']} (trace dataset)" in err and f"{folders['world']} (recorded sources)" in err


# --- point 11: budgets, --version, defaults in every help ----------------------------------------------


@pytest.fixture(scope="module")
def workflow(tmp_path_factory):
    path = tmp_path_factory.mktemp("allocate") / "WF.json"
    assert main(["generate", "random", "--n", "30", "--seed", "1", "--out", str(path)]) == 0
    return path


def test_allocate_over_budget_exits_1_unless_allowed(workflow, tmp_path, capsys):
    out = tmp_path / "R.json"
    args = ["allocate", "--workflow", str(workflow), "--budget", "0.01", "--out", str(out)]
    assert main(args) == 1
    err = capsys.readouterr().err
    result = json.loads(out.read_text())
    assert not result["within_budget"]
    assert f"over budget: cost {result['cost']:.4f} > --budget 0.0100" in err
    assert f"raise --budget to at least the minimum budget {result['minimum_budget']:.4f}" in err
    assert main([*args, "--allow-over-budget"]) == 0
    enough = ["allocate", "--workflow", str(workflow), "--budget", str(result["minimum_budget"] * 2)]
    assert main([*enough, "--out", str(out)]) == 0


@pytest.mark.parametrize("budget", ["nan", "0", "-1", "inf", "lots"])
def test_nan_zero_and_negative_budgets_are_refused(workflow, tmp_path, budget, capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["allocate", "--workflow", str(workflow), "--budget", budget, "--out", str(tmp_path / "R.json")])
    assert exit_.value.code == 2
    assert "argument --budget" in capsys.readouterr().err
    assert not (tmp_path / "R.json").exists()


def test_evaluate_allocation_and_schedule_refuse_nan_budgets(tmp_path, capsys):
    args = ["evaluate-allocation", "--workloads", "strassen", "--budgets", "1,nan", "--out", str(tmp_path)]
    assert main(args) == 2
    assert "--budgets '1,nan': every budget must be a finite number > 0" in capsys.readouterr().err
    assert (
        main(["schedule", "--workflow", "w", "--platform", "p", "--energy-budget", "nan", "--out", "s"]) == 2
    )
    assert "energy_budget must be >= 0, not nan" in capsys.readouterr().err


def test_a_workflow_file_that_is_not_utf8_is_named_with_its_option(tmp_path, capsys):
    latin = tmp_path / "WF.json"
    latin.write_bytes('{"name": "caf\xe9"}'.encode("latin-1"))
    assert (
        main(["allocate", "--workflow", str(latin), "--budget", "1", "--out", str(tmp_path / "R.json")]) == 2
    )
    assert f"error: {latin} (--workflow): not UTF-8 text (byte 13)" in capsys.readouterr().err


def test_version(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["--version"])
    assert exit_.value.code == 0
    assert capsys.readouterr().out.startswith("jouletrace 0.1.0 (trace schema version 1)")


def subparsers(p: argparse.ArgumentParser, name: str = "jouletrace"):
    yield name, p
    for action in p._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub_name, sub in action.choices.items():
                yield from subparsers(sub, f"{name} {sub_name}")


def test_every_option_of_every_command_shows_its_default(monkeypatch):
    monkeypatch.setenv("COLUMNS", "1000")  # one line per option: "(default: CC-BY-4.0)" is not wrapped
    walked = list(subparsers(parser()))
    assert len(walked) > 25
    for name, p in walked:
        help_text = p.format_help()  # every help renders (no stray % in a help string)
        if name != "jouletrace" and name.count(" ") == 1:
            assert p.description, f"{name} --help has no description"
        formatter = p._get_formatter()
        for action in p._actions:
            if action.default in (None, False, argparse.SUPPRESS) or action.required:
                continue
            if isinstance(action, argparse._HelpAction | argparse._VersionAction):
                continue
            shown = formatter._expand_help(action)
            assert "default" in shown, f"{name} {action.option_strings or action.dest}: {shown!r}"
            if shows_default(action, action.help or ""):
                assert f"(default: {action.default})" in shown
                assert f"(default: {action.default})" in help_text
    attribute = dict(walked)["jouletrace attribute"].format_help()
    assert "(default: 3600.0)" in attribute and "(default: fitted)" not in attribute  # --split says it itself
    assert "(default: deferred)" in dict(walked)["jouletrace allocate"].format_help()
