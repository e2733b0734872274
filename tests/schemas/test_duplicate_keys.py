"""The duplicate-key check in linear time (schemas.validation._duplicated_keys) and the reads `jouletrace
attribute` makes (only the columns it uses, text kept dictionary-encoded): same verdicts as a plain count."""

from collections import Counter

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import schemas
from schemas.loading import load_table
from schemas.validation import _duplicated_keys

KEYS = ["host_node", "device_kind", "device_id", "value_kind", "timestamp"]


def readings(rows: list[tuple]) -> pa.Table:
    names = ["host_node", "device_kind", "device_id", "value_kind"]
    columns = {name: pa.array([row[i] for row in rows], pa.string()) for i, name in enumerate(names)}
    columns["timestamp"] = pa.array([row[4] for row in rows], pa.timestamp("us", tz="UTC"))
    return pa.table(columns)


def counted(rows: list[tuple]) -> int:
    return sum(1 for count in Counter(rows).values() if count > 1)


def test_grouped_unsorted_and_encoded_keys_give_the_counts_of_a_plain_count():
    rng = np.random.default_rng(3)
    base = [
        ("n1", "cpu_package", f"package-{d}", "energy_counter_joules", t) for d in (0, 1) for t in range(50)
    ]
    cases = {
        "grouped, no duplicate": base,
        "a series in two runs, no duplicate": base[:25] + base[50:] + base[25:50],
        "a series in two runs, two duplicates": base + base[10:12],
        "repeated instant inside a run": base[:5] + base[4:5] + base[5:],
        "nulls equal nulls": [(None, "gpu", "g", "power_watts", 1)] * 2 + base,
        "shuffled": [base[i] for i in rng.permutation(len(base))] + base[:3],
    }
    for name, rows in cases.items():
        table = readings(rows)
        expected = counted(rows)
        for keys in (table, table.combine_chunks().unify_dictionaries()):
            duplicated, first = _duplicated_keys(keys.select(KEYS))
            assert duplicated == expected, name
            assert bool(first) == bool(expected), name
        encoded = pa.table({n: table[n].dictionary_encode() if n != "timestamp" else table[n] for n in KEYS})
        assert _duplicated_keys(encoded)[0] == expected, name
    duplicated, first = _duplicated_keys(readings(base + base[10:11]).select(KEYS))
    assert first["device_id"] == "package-0" and first["timestamp"].timestamp() == 10e-6


def test_chunks_with_their_own_dictionaries_as_a_parquet_reader_gives_them():
    """The run check walks chunk by chunk: a duplicate or a new series at a chunk's first row is seen
    against the previous chunk's last row, whose dictionary may order the values differently."""
    base = [
        ("n1", "cpu_package", f"package-{d}", "energy_counter_joules", t) for d in (0, 1) for t in range(50)
    ]
    cases = {
        "cut inside a series": (base[:30], base[30:]),
        "cut between series": (base[:50], base[50:]),
        "a duplicate at the cut": (base[:30], base[29:]),
        "time going back at the cut": (base[:30], base[28:29] + base[30:]),
        "a series coming back after another": (base[:20] + base[50:60], base[20:50] + base[60:]),
    }
    for name, parts in cases.items():
        batches = []
        for part in parts:
            table = readings(part)
            columns = {n: table[n].combine_chunks() for n in KEYS}
            # Each chunk its own dictionary, in the order of first appearance (the second chunk's differs).
            batches.append(
                pa.record_batch(
                    [columns[n].dictionary_encode() if n != "timestamp" else columns[n] for n in KEYS], KEYS
                )
            )
        chunked = pa.Table.from_batches(batches)
        rows = [row for part in parts for row in part]
        assert chunked["device_id"].num_chunks == 2
        assert _duplicated_keys(chunked)[0] == counted(rows), name


def test_attribute_reads_only_what_it_uses_with_text_encoded(tmp_path):
    """The reader keeps Parquet's dictionaries and leaves out unread columns, and still refuses duplicates
    and unknown columns."""
    rows = [("n1", "cpu_package", "package-0", "energy_counter_joules", t) for t in range(20)]
    extra = {"value": pa.array(np.arange(20.0)), "source": pa.array(["rapl"] * 20)}
    extra["provenance"] = pa.array(["measured"] * 20)
    table = readings(rows)
    for name, column in extra.items():
        table = table.append_column(name, column)
    table = schemas.conform("power_samples", table)
    path = tmp_path / "samples.parquet"
    pq.write_table(table, path)
    loaded = load_table("power_samples", path, dictionaries=True).table
    assert pa.types.is_dictionary(loaded["host_node"].type)
    assert loaded["host_node"].to_pylist() == table["host_node"].to_pylist()
    part = load_table("power_samples", path, columns=("host_node", "timestamp", "value")).table
    assert part.column_names == ["host_node", "timestamp", "value"]
    pq.write_table(pa.concat_tables([table, table.slice(3, 1)]), path)
    with pytest.raises(schemas.SchemaError, match="1 duplicated keys"):
        load_table("power_samples", path, dictionaries=True)
    pq.write_table(table.append_column("colour", pa.array(["red"] * 20)), path)
    with pytest.raises(schemas.SchemaError, match=r"columns \['colour'\] are not in the model"):
        load_table("power_samples", path, columns=("host_node",), dictionaries=True)


def test_the_columns_attribute_reads_of_tasks_still_hold_their_key(tmp_path):
    """attribute reads a few task columns; they include the whole key, so a repeated task is refused."""
    from datasets.attribution.options import COLUMNS_READ

    tasks = pa.table(
        {
            "workflow_uid": ["w", "w"],
            "task_id": ["t", "t"],
            "host_node": ["n1", "n1"],
            "started_at": pa.array([0, 0], pa.timestamp("us", tz="UTC")),
            "finished_at": pa.array([10, 10], pa.timestamp("us", tz="UTC")),
        }
    )
    path = tmp_path / "tasks.parquet"
    pq.write_table(tasks, path)
    with pytest.raises(schemas.SchemaError, match="1 duplicated keys"):
        load_table("tasks", path, columns=COLUMNS_READ["tasks"])
