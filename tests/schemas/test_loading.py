"""schemas.load_table: the one way commands read a table file (issue 14, points 8 and 9)."""

import gzip
from datetime import UTC, datetime

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

import schemas
from schemas.loading import DEFAULTS, when_absent

T0 = datetime(2026, 11, 2, 8, 0, tzinfo=UTC)


def samples_table(**columns) -> pa.Table:
    """Three power readings of one RAPL counter, with some columns replaced."""
    base = {
        "host_node": ["n1"] * 3,
        "device_kind": ["cpu_package"] * 3,
        "device_id": ["package-0"] * 3,
        "timestamp": pa.array([T0.timestamp() * 1e6 + i * 1e6 for i in range(3)], pa.float64())
        .cast(pa.int64())
        .cast(pa.timestamp("us", tz="UTC")),
        "value": pa.array([10.0, 20.5, 31.0]),
        "value_kind": ["energy_counter_joules"] * 3,
        "counter_max_joules": pa.array([262143.0] * 3),
        "source": ["rapl"] * 3,
        "provenance": ["measured"] * 3,
    }
    base.update(columns)
    return pa.table(base)


def minimal_tasks() -> pa.Table:
    """A user's own task table: ids, host, start and end, nothing else."""
    starts = pa.array([T0, T0], pa.timestamp("us", tz="UTC"))
    ends = pa.array([datetime(2026, 11, 2, 8, 5, tzinfo=UTC), datetime(2026, 11, 2, 8, 7, tzinfo=UTC)])
    return pa.table(
        {
            "workflow_uid": ["w", "w"],
            "task_id": ["a", "b"],
            "host_node": ["n1", "n1"],
            "started_at": starts,
            "finished_at": ends.cast(pa.timestamp("us", tz="UTC")),
        }
    )


def write(table: pa.Table, path):
    pq.write_table(table, path)
    return path


def test_files_that_are_not_parquet_are_named_with_what_they_are(tmp_path):
    empty = tmp_path / "empty.parquet"
    empty.write_bytes(b"")
    with pytest.raises(
        ValueError, match=r"empty\.parquet \(--samples\): empty file \(0 bytes\), not a Parquet"
    ):
        schemas.load_table("power_samples", empty, argument="--samples")
    text = tmp_path / "readings.parquet"
    text.write_text("host_node,value\nn1,3\n")
    with pytest.raises(ValueError, match=r"readings\.parquet: not a Parquet file: it holds text .*\*\.csv"):
        schemas.load_table("power_samples", text)
    truncated = tmp_path / "cut.parquet"
    truncated.write_bytes(write(samples_table(), tmp_path / "whole.parquet").read_bytes()[:-20])
    with pytest.raises(ValueError, match=r"cut\.parquet: damaged or truncated Parquet file"):
        schemas.load_table("power_samples", truncated)
    with pytest.raises(FileNotFoundError, match=r"nowhere\.parquet \(--tasks\): no such file"):
        schemas.load_table("tasks", tmp_path / "nowhere.parquet", argument="--tasks")


def test_csv_that_is_not_utf8_names_file_and_line(tmp_path):
    latin = tmp_path / "tasks.csv"
    latin.write_bytes("workflow_uid,task_id\nw,a\nw,caf\xe9\n".encode("latin-1"))
    with pytest.raises(
        ValueError, match=r"tasks\.csv \(--tasks\): not UTF-8 text \(line 3, byte 30 is 0xe9\)"
    ):
        schemas.load_table("tasks", latin, argument="--tasks")
    zipped = tmp_path / "tasks.csv.gz"
    zipped.write_bytes(gzip.compress("workflow_uid\n\xff\n".encode("latin-1")))
    with pytest.raises(ValueError, match=r"tasks\.csv\.gz: not UTF-8 text \(line 2"):
        schemas.load_table("tasks", zipped)


def test_text_timestamps_and_text_values_in_parquet_are_refused(tmp_path):
    text = samples_table(
        timestamp=pa.array(["2026-11-02T08:00:00Z"] * 3), value=pa.array(["10", "20.5", "31"])
    )
    with pytest.raises(schemas.SchemaError) as error:
        schemas.load_table("power_samples", write(text, tmp_path / "power_samples.parquet"))
    message = str(error.value)
    assert (
        "power_samples.parquet: table power_samples, column 'timestamp': text where timestamps are expected"
        in message
    )
    assert "column 'value': text where numbers are expected" in message
    # validate, which reads files the same way, refuses the same file for the same reasons.
    with pytest.raises(schemas.SchemaError) as checked:
        schemas.validate_path(tmp_path / "power_samples.parquet")
    assert [p.column for p in checked.value.problems] == ["timestamp", "value"]


def test_nanoseconds_are_rounded_to_microseconds_and_reported(tmp_path):
    micros = samples_table()["timestamp"].cast(pa.int64())
    nanos = pc.add(pc.multiply(micros, 1000), pa.array([0, 499, 1500], pa.int64()))
    table = samples_table(timestamp=nanos.cast(pa.timestamp("ns", tz="UTC")))
    loaded = schemas.load_table("power_samples", write(table, tmp_path / "ns.parquet"))
    assert loaded.table.schema == schemas.POWER_SAMPLES
    got = loaded.table["timestamp"].cast(pa.int64()).to_pylist()
    expected = micros.to_pylist()
    assert got == [expected[0], expected[1], expected[2] + 2]  # 0 and 499 ns round down, 1500 ns up
    (note,) = loaded.notes
    assert note.column == "timestamp" and note.count == 2
    assert "nanosecond timestamps rounded to the schema's microseconds (2 values changed)" in str(note)


def test_safe_widenings_are_applied_and_reported(tmp_path):
    table = samples_table(
        value=pa.array([10, 20, 31], pa.int32()),
        counter_max_joules=pa.array([262143.0] * 3, pa.float32()),
        timestamp=samples_table()["timestamp"].cast(pa.timestamp("ms", tz="Europe/Paris")),
    )
    loaded = schemas.load_table("power_samples", write(table, tmp_path / "w.parquet"))
    assert loaded.table.schema == schemas.POWER_SAMPLES
    assert loaded.table["value"].to_pylist() == [10.0, 20.0, 31.0]
    notes = {note.column: note.action for note in loaded.notes}
    assert notes["value"] == "int32 stored as double"
    assert notes["counter_max_joules"] == "float widened to double"
    assert "time zone 'Europe/Paris' read as the same UTC instants" in notes["timestamp"]
    tasks = minimal_tasks().append_column("attempt", pa.array([0, 1], pa.int32()))
    tasks = tasks.append_column("memory_request_bytes", pa.array([1.0e9, 2.0e9]))
    loaded = schemas.load_table("tasks", write(tasks, tmp_path / "t.parquet"))
    assert loaded.table["attempt"].type == pa.int64() and loaded.table["attempt"].to_pylist() == [0, 1]
    assert loaded.table["memory_request_bytes"].to_pylist() == [10**9, 2 * 10**9]
    notes = {note.column: note.action for note in loaded.notes}
    assert notes["attempt"] == "int32 widened to int64"
    assert notes["memory_request_bytes"] == "whole-number double stored as int64"


def test_unsafe_conversions_name_column_and_rows(tmp_path):
    tasks = minimal_tasks().append_column("attempt", pa.array([0.0, 1.5]))
    with pytest.raises(schemas.SchemaError, match=r"'attempt': values that are not whole .* row 1: 1\.5"):
        schemas.load_table("tasks", write(tasks, tmp_path / "t.parquet"))
    naive = minimal_tasks().set_column(
        3, "started_at", minimal_tasks()["started_at"].cast(pa.timestamp("us"))
    )
    with pytest.raises(schemas.SchemaError, match="'started_at': timestamps without a time zone"):
        schemas.load_table("tasks", write(naive, tmp_path / "naive.parquet"))
    extra = minimal_tasks().append_column("start_time", pa.array([1, 2]))
    with pytest.raises(schemas.SchemaError, match=r"columns \['start_time'\] are not in the model"):
        schemas.load_table("tasks", write(extra, tmp_path / "extra.parquet"))
    flags = samples_table(value=pa.array([True, False, True]))
    with pytest.raises(schemas.SchemaError, match="'value': booleans"):
        schemas.load_table("power_samples", write(flags, tmp_path / "flags.parquet"))


def test_a_minimal_task_table_takes_the_documented_defaults(tmp_path):
    loaded = schemas.load_table("tasks", write(minimal_tasks(), tmp_path / "t.parquet"), command="attribute")
    table = loaded.table
    assert table.schema == schemas.TASKS
    row = table.to_pylist()[1]
    assert row["task_name"] == "b" and row["attempt"] == 0 and row["phase"] == "Succeeded"
    assert row["time_resolution_seconds"] == 1.0 and row["runtime_seconds"] == 420.0
    assert row["parents"] == row["gpu_ids"] == [] and row["provenance"] == "measured"
    assert row["cpu_request_cores"] is None and row["pod_uid"] is None
    text = "\n".join(map(str, loaded.notes))
    assert "absent columns take their defaults: task_name = task_id, attempt = 0" in text
    assert "time_resolution_seconds = 1.0" in text and "absent columns are null: template_name" in text
    # Every default a note can name is documented in docs/data-model.md.
    for table_name, defaults in DEFAULTS.items():
        for column in defaults:
            field = schemas.TABLES[table_name].field(column)
            assert when_absent(table_name, field) == defaults[column].doc
    # Millisecond times give a millisecond resolution; attribute cannot do without host and times.
    shifted = minimal_tasks().set_column(
        4, "finished_at", pc.add(minimal_tasks()["finished_at"], pa.scalar(1500, pa.duration("us")))
    )
    table = schemas.load_table("tasks", write(shifted, tmp_path / "ms.parquet")).table
    assert table["time_resolution_seconds"].to_pylist() == [1e-06, 1e-06]
    no_host = minimal_tasks().drop_columns(["host_node"])
    assert schemas.load_table("tasks", write(no_host, tmp_path / "nh.parquet")).table.num_rows == 2
    with pytest.raises(schemas.SchemaError, match="'host_node': column is missing: attribute needs it"):
        schemas.load_table("tasks", tmp_path / "nh.parquet", command="attribute")


def test_csv_tables_are_parsed_by_column_type(tmp_path):
    csv = tmp_path / "tasks.csv"
    csv.write_text(
        "workflow_uid,task_id,host_node,started_at,finished_at,cpu_request_cores,gpu_ids\n"
        'w,a,n1,2026-11-02T08:00:00Z,2026-11-02T10:05:00+02:00,2,"[""GPU-1""]"\n'
        "w,b,n1,2026-11-02T08:00:00.000000500Z,2026-11-02T08:07:00Z,,\n"
    )
    loaded = schemas.load_table("tasks", csv)
    rows = loaded.table.to_pylist()
    assert rows[0]["finished_at"] == datetime(2026, 11, 2, 8, 5, tzinfo=UTC)
    assert rows[0]["gpu_ids"] == ["GPU-1"] and rows[1]["gpu_ids"] == []
    assert rows[0]["cpu_request_cores"] == 2.0 and rows[1]["cpu_request_cores"] is None
    assert rows[1]["started_at"] == datetime(2026, 11, 2, 8, 0, 0, 1, tzinfo=UTC)  # 500 ns rounds up
    assert any(n.column == "started_at" and n.count == 1 for n in loaded.notes)
    bad = tmp_path / "bad.csv"
    bad.write_text(
        "workflow_uid,task_id,host_node,started_at,finished_at\nw,a,n1,2026-11-02 08:00:00,yesterday\n"
    )
    with pytest.raises(schemas.SchemaError) as error:
        schemas.load_table("tasks", bad, argument="--tasks")
    message = str(error.value)
    assert (
        "bad.csv (--tasks): table tasks, column 'started_at': text that is not a time with its zone"
        in message
    )
    assert "row 0: '2026-11-02 08:00:00'" in message and "row 0: 'yesterday'" in message


def test_strict_refuses_what_the_lenient_reading_coerces(tmp_path):
    path = write(minimal_tasks(), tmp_path / "tasks.parquet")
    assert schemas.validate_path(path) == {"tasks": 2}
    with pytest.raises(schemas.SchemaError, match="--strict wants the model's exact schema"):
        schemas.validate_path(path, strict=True)
    (tmp_path / "exact").mkdir()
    exact = write(schemas.load_table("tasks", path).table, tmp_path / "exact" / "tasks.parquet")
    assert schemas.check_path(exact, strict=True).notes == []


def test_a_folder_is_read_file_by_file_and_its_notes_merged(tmp_path):
    folder = tmp_path / "power_samples"
    for day, kind in ((1, pa.int32()), (2, pa.int32()), (3, pa.float64())):
        part = folder / f"date=2026-11-0{day}"
        part.mkdir(parents=True)
        shifted = pc.add(samples_table()["timestamp"], pa.scalar(day * 86_400_000_000, pa.duration("us")))
        write(samples_table(value=pa.array([1, 2, 3], kind), timestamp=shifted), part / "part-0.parquet")
    loaded = schemas.load_table("power_samples", folder)
    assert loaded.table.num_rows == 9
    (note,) = loaded.notes
    assert str(note).startswith(f"{folder} (2 of 3 files): table power_samples, column 'value'")
    write(samples_table(value=pa.array(["x"] * 3)), folder / "date=2026-11-03" / "part-1.parquet")
    with pytest.raises(schemas.SchemaError, match=r"date=2026-11-03/part-1\.parquet: table power_samples"):
        schemas.load_table("power_samples", folder)
