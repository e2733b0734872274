from datetime import UTC, datetime, timedelta

import duckdb
import pyarrow.dataset as ds
import pytest

import schemas
from datasets.traces import read_table, write_dataset

DAY1 = datetime(2026, 11, 2, 8, 0, tzinfo=UTC)
DAY2 = DAY1 + timedelta(days=1)


def workflows(energy=None):
    return schemas.conform(
        "workflows",
        [
            dict(
                workflow_uid=f"uid-{i}",
                workflow_name=f"wf-{i}",
                cluster="c",
                phase="Succeeded",
                started_at=start,
                finished_at=start + timedelta(minutes=5),
                makespan_seconds=300.0,
                task_count=1,
                energy_joules=energy,
                provenance="synthetic",
            )
            for i, start in enumerate([DAY1, DAY2])
        ],
    )


def tasks():
    return schemas.conform(
        "tasks",
        [
            dict(
                workflow_uid=f"uid-{i}",
                task_id=f"wf-{i}-1",
                task_name="t",
                attempt=0,
                phase="Succeeded",
                started_at=start,
                finished_at=start + timedelta(seconds=60),
                time_resolution_seconds=1.0,
                runtime_seconds=60.0,
                parents=[],
                children=[],
                gpu_ids=[],
                fpga_ids=[],
                provenance="synthetic",
            )
            for i, start in enumerate([DAY1, DAY2])
        ],
    )


def test_partitions_by_workflow_date_and_reads_back_identically(tmp_path):
    written = write_dataset(tmp_path, {"workflows": workflows(), "tasks": tasks()})
    assert [p.parent.name for p in written["tasks"]] == ["date=2026-11-02", "date=2026-11-03"]
    assert read_table(tmp_path, "tasks").sort_by("task_id").equals(tasks())
    assert schemas.validate_path(tmp_path) == {"tasks": 2, "workflows": 2}
    # DuckDB reads the same layout, with the hive partition column.
    rows = duckdb.sql(
        f"select date, count(*) from read_parquet('{tmp_path}/tasks/*/*.parquet', hive_partitioning=true) "
        "group by 1 order by 1"
    ).fetchall()
    assert [(str(d), n) for d, n in rows] == [("2026-11-02", 1), ("2026-11-03", 1)]


def test_rewriting_a_partition_overwrites_never_duplicates(tmp_path):
    write_dataset(tmp_path, {"workflows": workflows(), "tasks": tasks()})
    write_dataset(tmp_path, {"workflows": workflows(energy=5.0)})
    again = read_table(tmp_path, "workflows")
    assert again.num_rows == 2
    assert again["energy_joules"].to_pylist() == [5.0, 5.0]
    assert not [p for p in (tmp_path / "workflows").iterdir() if p.name.startswith(".")]
    assert ds.dataset(tmp_path / "tasks", partitioning="hive").count_rows() == 2


def test_invalid_tables_are_refused_before_anything_is_written(tmp_path):
    bad = workflows().drop_columns(["cluster"])
    with pytest.raises(schemas.SchemaError, match="cluster"):
        write_dataset(tmp_path, {"workflows": bad})
    assert not (tmp_path / "workflows").exists()
