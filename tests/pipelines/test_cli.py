"""The jouletrace command line on real files: sample, attribute, validate."""

import subprocess
import sys

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

import schemas
from collectors.cluster.recorded import RecordedSources
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
    assert "no.parquet (--tasks): no such file" in capsys.readouterr().err


def test_attribute_starts_without_the_modules_it_does_not_use(world, tmp_path):
    """`jouletrace attribute` is a command people run by hand: it loads the engine, not Dagster, plotting,
    the clients, the schedulers or fsspec (local files). (pandas comes with pyarrow: pa.array checks for
    pandas types.)"""
    _, files = world
    args = attribute_args(files, tmp_path / "energy.parquet")
    heavy = (
        "dagster",
        "matplotlib",
        "hera",
        "kubernetes",
        "duckdb",
        "urllib.request",
        "allocate.scheduling.engine",
        "fsspec",
    )
    code = (
        "import sys; from pipelines.cli import main; "
        f"code = main({args!r}); "
        f"print(code, sorted(name for name in {heavy!r} if name in sys.modules))"
    )
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert run.stdout.strip().splitlines()[-1] == "0 []", run.stdout + run.stderr


def with_column(table: pa.Table, name: str, values) -> pa.Table:
    return table.set_column(table.schema.get_field_index(name), name, values)


def test_attribute_and_validate_refuse_text_times_and_text_values_alike(world, tmp_path, capsys):
    """Issue 14 point 9: `attribute` used to cast text timestamps and text power values that `validate`
    rejects; both now read files the same way and name every bad column of every input."""
    _, files = world
    tasks = pq.read_table(files["tasks"])
    for name in ("started_at", "finished_at"):
        tasks = with_column(tasks, name, pc.cast(tasks[name], pa.string()))
    samples = pq.read_table(files["samples"])
    samples = with_column(samples, "value", pc.cast(samples["value"], pa.string()))
    bad_tasks, bad_samples = tmp_path / "tasks.parquet", tmp_path / "power_samples.parquet"
    pq.write_table(tasks, bad_tasks)
    pq.write_table(samples, bad_samples)
    target = tmp_path / "energy.parquet"
    assert main(attribute_args({"tasks": bad_tasks, "samples": bad_samples}, target)) == 2
    err = capsys.readouterr().err
    assert (
        f"{bad_tasks} (--tasks): table tasks, column 'started_at': text where timestamps are expected" in err
    )
    assert f"{bad_tasks} (--tasks): table tasks, column 'finished_at'" in err
    assert f"{bad_samples} (--samples): table power_samples, column 'value': text where numbers" in err
    assert not target.exists() and "Traceback" not in err
    for path, column in ((bad_tasks, "started_at"), (bad_samples, "value")):
        assert main(["validate", str(path)]) == 2
        assert f"{path}: table {path.stem}, column '{column}': text where" in capsys.readouterr().err


def test_nanosecond_times_and_int32_columns_are_coerced_and_reported(world, tmp_path, capsys):
    _, files = world
    samples = pq.read_table(files["samples"])
    nanos = pc.add(samples["timestamp"].cast(pa.timestamp("ns", tz="UTC")), pa.scalar(1, pa.duration("ns")))
    tasks = pq.read_table(files["tasks"])
    tasks = with_column(tasks, "attempt", tasks["attempt"].cast(pa.int32()))
    paths = {"tasks": tmp_path / "tasks.parquet", "samples": tmp_path / "power_samples.parquet"}
    pq.write_table(tasks, paths["tasks"])
    pq.write_table(with_column(samples, "timestamp", nanos), paths["samples"])
    coerced, reference = tmp_path / "coerced.parquet", tmp_path / "reference.parquet"
    assert main(attribute_args(paths, coerced)) == 0
    err = capsys.readouterr().err
    assert f"note: {paths['tasks']} (--tasks): table tasks, column 'attempt': int32 widened to int64" in err
    changed = f"rounded to the schema's microseconds ({samples.num_rows} values changed)"
    assert f"note: {paths['samples']} (--samples): table power_samples, column 'timestamp'" in err
    assert changed in err
    # 1 ns rounds away: the very energies of the file as the model writes it.
    assert main(attribute_args(files, reference)) == 0
    assert pq.read_table(coerced).equals(pq.read_table(reference))
    assert main(["validate", str(paths["samples"])]) == 0
    assert changed in capsys.readouterr().err
    assert main(["validate", "--strict", str(paths["samples"])]) == 2
    assert "--strict wants the model's exact schema" in capsys.readouterr().err


def test_a_minimal_user_task_table_is_enough_for_attribute(world, tmp_path, capsys):
    """ids, host, start and end (requests optional), as CSV or Parquet: the rest take documented defaults."""
    _, files = world
    tasks = pq.read_table(files["tasks"])
    ran = tasks.filter(pc.is_valid(tasks["host_node"]))
    minimal = ran.select(["workflow_uid", "task_id", "host_node", "started_at", "finished_at"])
    csv = tmp_path / "mine.csv"
    minimal.to_pandas().to_csv(csv, index=False)
    parquet = tmp_path / "mine.parquet"
    pq.write_table(minimal.append_column("cpu_request_cores", ran["cpu_request_cores"]), parquet)
    for source in (csv, parquet):
        target = tmp_path / f"{source.suffix[1:]}.parquet"
        assert main(attribute_args({"tasks": source, "samples": files["samples"]}, target)) == 0
        captured = capsys.readouterr()
        # Only the columns attribute reads are named (it does not read task_name).
        assert (
            "absent columns take their defaults: attempt = 0, time_resolution_seconds = 1.0" in captured.err
        )
        assert "task_name" not in captured.err
        energy = schemas.validate("task_energy", pq.read_table(target))
        assert set(energy["task_id"].to_pylist()) == set(ran["task_id"].to_pylist())
        assert "wrote" in captured.out
    no_times = tmp_path / "no_times.parquet"
    pq.write_table(minimal.drop_columns(["started_at"]), no_times)
    assert main(attribute_args({"tasks": no_times, "samples": files["samples"]}, tmp_path / "x.parquet")) == 2
    assert "column 'started_at': column is missing: attribute needs it" in capsys.readouterr().err


def test_files_that_are_not_parquet_are_named_with_their_option(tmp_path, capsys):
    empty, text = tmp_path / "empty.parquet", tmp_path / "text.parquet"
    empty.write_bytes(b"")
    text.write_text("workflow_uid,task_id\n")
    args = ["attribute", "--tasks", str(empty), "--samples", str(text), "--out", str(tmp_path / "o.parquet")]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert f"jouletrace attribute: error: {empty} (--tasks): empty file (0 bytes), not a Parquet file" in err
    assert main(["validate", "--table", "tasks", str(text)]) == 2
    err = capsys.readouterr().err
    assert f"error: {text}: not a Parquet file: it holds text (starting 'workflow_uid,task_id')" in err
    latin = tmp_path / "tasks.csv"
    latin.write_bytes("workflow_uid,task_id\nw,\xe9\n".encode("latin-1"))
    assert main(["validate", str(latin)]) == 2
    assert f"error: {latin}: not UTF-8 text (line 2" in capsys.readouterr().err
