"""The jouletrace command line on real files: sample, attribute, validate."""

import subprocess
import sys

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

import schemas
from collectors.recorded import RecordedSources
from pipelines.cli import main


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    out = tmp_path_factory.mktemp("world")
    assert main(["sample", "--out", str(out), "--workflows", "6", "--seed", "5"]) == 0
    sources = RecordedSources(out)
    _, tasks = sources.workflows_and_tasks()
    files = {
        "tasks": out / "tasks.parquet",
        "samples": out / "samples.parquet",
        "machines": out / "machines.parquet",
    }
    pq.write_table(tasks, files["tasks"])
    pq.write_table(sources.power_samples(), files["samples"])
    pq.write_table(sources.machines(), files["machines"])
    return out, files


def attribute_args(files, target):
    return [
        "attribute",
        "--tasks",
        str(files["tasks"]),
        "--samples",
        str(files["samples"]),
        "--out",
        str(target),
    ]


def test_attribute_writes_task_energy_for_every_task_that_ran(world, tmp_path, capsys):
    out, files = world
    target = tmp_path / "energy.parquet"
    balance = tmp_path / "balance.parquet"
    args = attribute_args(files, target)
    assert main([*args, "--machines", str(files["machines"]), "--balance-out", str(balance)]) == 0
    energy = schemas.validate("task_energy", pq.read_table(target))
    tasks = pq.read_table(files["tasks"])
    ran = tasks.filter(pc.is_valid(tasks["host_node"]))
    assert set(energy["task_id"].to_pylist()) == set(ran["task_id"].to_pylist())
    assert set(energy["device_kind"].to_pylist()) == {"cpu_package", "dram", "gpu", "fpga"}
    assert "wrote" in capsys.readouterr().out
    # The balance written beside it holds exactly what the tasks received.
    attributed = pc.sum(pq.read_table(balance)["attributed_joules"]).as_py()
    assert attributed == pytest.approx(pc.sum(energy["energy_joules"]).as_py(), rel=1e-9)
    # One thread gives the very same table as all cores, and a folder of files reads as its files do.
    folder = tmp_path / "samples"
    folder.mkdir()
    pq.write_table(pq.read_table(files["samples"]), folder / "part-0.parquet")
    serial = tmp_path / "serial.parquet"
    args = attribute_args(files | {"samples": folder}, serial)
    assert main([*args, "--machines", str(files["machines"]), "--threads", "1"]) == 0
    assert pq.read_table(serial).equals(pq.read_table(target))


def test_idle_policy_none_gives_no_idle_energy(world, tmp_path):
    _, files = world
    target = tmp_path / "energy.parquet"
    args = attribute_args(files, target)
    assert main([*args, "--idle-policy", "none"]) == 0
    energy = pq.read_table(target)
    assert pc.max(energy["idle_joules"]).as_py() == 0.0
    assert pc.min(energy["dynamic_joules"]).as_py() >= 0.0


def test_validate_reports_file_column_and_rows(world, tmp_path, capsys):
    _, files = world
    assert main(["validate", str(files["samples"])]) == 0
    assert "ok  power_samples" in capsys.readouterr().out
    samples = pq.read_table(files["samples"])
    values = samples["value"].to_numpy().copy()
    values[3] = -5.0
    bad = samples.set_column(samples.schema.get_field_index("value"), "value", pa.array(values))
    target = tmp_path / "power_samples" / "part-0.parquet"
    target.parent.mkdir()
    pq.write_table(bad, target)
    assert main(["validate", str(target)]) == 2
    err = capsys.readouterr().err
    assert str(target) in err and "'value'" in err and "row 3: -5.0" in err


def test_attribute_names_a_missing_file(tmp_path, capsys):
    assert main(["attribute", "--tasks", str(tmp_path / "no.parquet"), "--samples", "x", "--out", "y"]) == 2
    assert "no.parquet: no such file" in capsys.readouterr().err


def test_attribute_starts_without_the_modules_it_does_not_use(world, tmp_path):
    """`jouletrace attribute` is a command people run by hand: it loads the engine, not Dagster, plotting or
    the clients. (pandas comes with pyarrow: pa.array of a Python list checks for pandas types.)"""
    _, files = world
    args = attribute_args(files, tmp_path / "energy.parquet")
    heavy = ("dagster", "matplotlib", "hera", "kubernetes", "duckdb")
    code = (
        "import sys; from pipelines.cli import main; "
        f"code = main({args!r}); "
        f"print(code, sorted(name for name in {heavy!r} if name in sys.modules))"
    )
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert run.stdout.strip().splitlines()[-1] == "0 []", run.stdout + run.stderr
