import uuid
from datetime import UTC, datetime, timedelta

import duckdb
import fsspec
import pyarrow.dataset as ds
import pyarrow.parquet as pq
import pytest
from fsspec.implementations.memory import MemoryFileSystem
from upath import UPath

import schemas
from datasets.store import (
    local_path,
    read_parquet,
    read_table,
    renames_atomically,
    replace_folder,
    storage_path,
    write_bytes_atomic,
    write_dataset,
    write_parquet_atomic,
    write_task_energy,
)

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


# ------------------------------------------------------------------ fsspec locations (object storage)


@pytest.fixture(params=["memory", "file"])
def fsspec_root(request, tmp_path):
    """A dataset root given as a URL: fsspec's in-memory filesystem (an object store: no rename) or the
    local one (``file://``, renamed into place like a plain folder)."""
    if request.param == "file":
        yield f"file://{tmp_path}/dataset"
        return
    root = f"memory://traces-{uuid.uuid4().hex}/dataset"
    yield root
    fs = fsspec.filesystem("memory")
    bucket = "/" + root.split("://", 1)[1].split("/", 1)[0]
    if fs.exists(bucket):
        fs.rm(bucket, recursive=True)


def no_rename(*args, **kwargs):
    raise AssertionError("an object store has no rename: nothing may move objects there")


def test_a_url_root_is_written_and_read_through_the_same_functions(fsspec_root, monkeypatch):
    monkeypatch.setattr(MemoryFileSystem, "mv", no_rename)
    written = write_dataset(fsspec_root, {"workflows": workflows(), "tasks": tasks()})
    assert all(isinstance(p, UPath) and str(p).startswith(fsspec_root) for p in written["tasks"])
    assert [p.parent.name for p in written["tasks"]] == ["date=2026-11-02", "date=2026-11-03"]
    assert read_table(fsspec_root, "tasks").sort_by("task_id").equals(tasks())
    write_dataset(UPath(fsspec_root), {"workflows": workflows(energy=5.0)})
    again = read_table(UPath(fsspec_root), "workflows")
    assert again["energy_joules"].to_pylist() == [5.0, 5.0]
    # Nothing but the partitions: no staging folder or temporary file is left behind.
    root = UPath(fsspec_root)
    left = sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())
    assert left == [
        f"{table}/date=2026-11-0{day}/part-0.parquet" for table in ("tasks", "workflows") for day in (2, 3)
    ]


def test_replacing_a_folder_on_an_object_store_drops_files_the_new_one_does_not_have(fsspec_root):
    target = UPath(fsspec_root) / "bundle"

    def fill_with(*names):
        def fill(staging):
            for name in names:
                write_bytes_atomic(name.encode(), staging / name)

        return fill

    replace_folder(target, fill_with("a.json", "b.json"))
    replace_folder(target, fill_with("b.json", "c/d.json"))
    assert sorted(str(p.relative_to(target)) for p in target.rglob("*") if p.is_file()) == [
        "b.json",
        "c/d.json",
    ]
    assert (target / "c" / "d.json").read_bytes() == b"c/d.json"


@pytest.mark.parametrize("kind", ["local", "memory", "file"])
def test_a_failure_while_filling_leaves_the_old_folder_as_it_was(kind, tmp_path):
    target = {
        "local": tmp_path / "folder",
        "memory": UPath(f"memory://traces-{uuid.uuid4().hex}/folder"),
        "file": UPath(f"file://{tmp_path}/folder"),
    }[kind]
    replace_folder(target, lambda staging: write_bytes_atomic(b"old", staging / "part-0.parquet"))

    def broken(staging):
        write_bytes_atomic(b"new", staging / "part-0.parquet")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError, match="disk full"):
        replace_folder(target, broken)
    assert (target / "part-0.parquet").read_bytes() == b"old"
    assert sorted(p.name for p in target.parent.iterdir()) == ["folder"]
    if kind == "memory":
        target.fs.rm(target.parent.path, recursive=True)


def test_single_files_are_put_whole_on_object_stores_and_renamed_into_place_locally(tmp_path, monkeypatch):
    monkeypatch.setattr(MemoryFileSystem, "mv", no_rename)
    table = workflows()
    remote = write_parquet_atomic(table, f"memory://traces-{uuid.uuid4().hex}/assets/workflows.parquet")
    assert isinstance(remote, UPath) and read_parquet(remote).equals(table)
    assert [p.name for p in remote.parent.iterdir()] == ["workflows.parquet"]
    remote.fs.rm(remote.parent.parent.path, recursive=True)
    local = write_parquet_atomic(table, tmp_path / "assets" / "workflows.parquet")
    assert type(local) is type(tmp_path) and read_parquet(local).equals(table)
    assert read_parquet(f"file://{local}").equals(table)
    assert [p.name for p in local.parent.iterdir()] == ["workflows.parquet"]


def test_storage_paths_stay_local_paths_unless_given_as_urls(tmp_path):
    assert storage_path(str(tmp_path)) == tmp_path and type(storage_path(str(tmp_path))) is type(tmp_path)
    assert type(storage_path(UPath(tmp_path))) is type(tmp_path)  # a local UPath is a local path
    s3 = storage_path("s3://bucket/prefix/dataset")
    assert (
        isinstance(s3, UPath)
        and s3.protocol == "s3"
        and str(s3 / "tasks") == "s3://bucket/prefix/dataset/tasks"
    )
    assert renames_atomically(tmp_path) and renames_atomically(f"file://{tmp_path}")
    assert not renames_atomically("memory://x") and not renames_atomically("s3://bucket/prefix")
    assert local_path(f"file://{tmp_path}/a") == tmp_path / "a" and local_path("memory://x/a") is None


def test_task_energy_file_keeps_dictionaries_for_repeating_text_only(tmp_path):
    """write_task_energy: the repeating text columns are dictionary-encoded; the unique task ids and the
    numbers are not (a dictionary of unique values is built only to be dropped); the table reads back as
    written."""
    rows = 1000
    table = schemas.conform(
        "task_energy",
        {
            "workflow_uid": [f"wf-{i // 50}" for i in range(rows)],
            "task_id": [f"task-{i}" for i in range(rows)],
            "device_kind": ["cpu_package"] * rows,
            "device_id": [f"package-{i % 2}" for i in range(rows)],
            "energy_joules": [1.5 * i for i in range(rows)],
            "dynamic_joules": [1.0 * i for i in range(rows)],
            "idle_joules": [0.5 * i for i in range(rows)],
            "coverage": [1.0] * rows,
            "samples": [i % 7 for i in range(rows)],
            "method": ["counter-interpolated;split=requests"] * rows,
            "uncertainty_joules": [0.01 * i for i in range(rows)],
            "provenance": ["measured"] * rows,
        },
    )
    path = tmp_path / "task_energy.parquet"
    write_task_energy(table, path)
    group = pq.ParquetFile(path).metadata.row_group(0)
    encoded = {
        group.column(i).path_in_schema
        for i in range(group.num_columns)
        if group.column(i).dictionary_page_offset is not None
    }
    assert encoded == {"workflow_uid", "device_kind", "device_id", "method", "provenance"}
    assert pq.read_table(path).equals(table)
