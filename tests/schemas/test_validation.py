from datetime import UTC, datetime

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import schemas
from schemas.validation import table_name_of


def sample_row(**overrides):
    row = dict(
        host_node="n1",
        device_kind="cpu_package",
        device_id="package-0",
        timestamp=datetime(2026, 11, 2, 8, 0, tzinfo=UTC),
        value=12.5,
        value_kind="energy_counter_joules",
        counter_max_joules=262143.32885,
        source="rapl",
        provenance="measured",
    )
    row.update(overrides)
    return row


def test_every_numeric_column_names_its_unit_and_every_table_with_numbers_has_provenance():
    units = ("_joules", "_watts", "_seconds", "_bytes", "_cores", "_mhz", "_percent", "_at", "coverage")
    allowed_plain = {"attempt", "task_count", "sockets", "cores", "samples", "value"}
    for name, schema in schemas.TABLES.items():
        assert schema.metadata[b"jouletrace.table"].decode() == name
        assert "provenance" in schema.names, name
        for f in schema:
            if pa.types.is_floating(f.type) or pa.types.is_integer(f.type):
                assert f.name.endswith(units) or f.name in allowed_plain, f"{name}.{f.name} has no unit"
            if pa.types.is_timestamp(f.type):
                assert f.type.tz == "UTC", f"{name}.{f.name} is not UTC"


def test_conform_fills_nullable_columns_and_rejects_unknown_or_naive():
    table = schemas.conform("power_samples", [sample_row(counter_max_joules=None)])
    assert table.schema == schemas.POWER_SAMPLES
    assert schemas.check("power_samples", table) == []
    with pytest.raises(schemas.SchemaError, match="unknown columns"):
        schemas.conform("power_samples", [sample_row(watts=3.0)])
    naive = pd.DataFrame([sample_row(timestamp=pd.Timestamp("2026-11-02 08:00"))])
    with pytest.raises(schemas.SchemaError, match="naive timestamps"):
        schemas.conform("power_samples", naive)


def test_check_names_column_and_first_bad_rows():
    rows = [sample_row(), sample_row(value=-1.0, timestamp=datetime(2026, 11, 2, 8, 1, tzinfo=UTC))]
    rows.append(sample_row(device_kind="cpu", timestamp=datetime(2026, 11, 2, 8, 2, tzinfo=UTC)))
    problems = schemas.check("power_samples", schemas.conform("power_samples", rows), source="x.parquet")
    text = "\n".join(map(str, problems))
    assert "x.parquet: table power_samples, column 'value': negative or NaN value in 1 rows" in text
    assert "row 1: -1.0" in text
    assert "column 'device_kind': value not one of" in text and "row 2: 'cpu'" in text


def test_duplicate_keys_and_reversed_times_are_errors():
    table = schemas.conform("power_samples", [sample_row(), sample_row()])
    assert any("duplicated keys" in p.message for p in schemas.check("power_samples", table))
    wf = schemas.conform(
        "workflows",
        [
            dict(
                workflow_uid="u",
                workflow_name="w",
                cluster="c",
                phase="Succeeded",
                started_at=datetime(2026, 1, 1, 1, tzinfo=UTC),
                finished_at=datetime(2026, 1, 1, 0, tzinfo=UTC),
                task_count=0,
                provenance="measured",
            )
        ],
    )
    assert any("finished_at before started_at" in p.message for p in schemas.check("workflows", wf))


def test_validate_path_names_the_file(tmp_path):
    good = schemas.conform("power_samples", [sample_row()])
    folder = tmp_path / "ds" / "power_samples" / "date=2026-11-02"
    folder.mkdir(parents=True)
    pq.write_table(good, folder / "part-0.parquet")
    assert schemas.validate_path(tmp_path / "ds") == {"power_samples": 1}
    bad = good.set_column(good.schema.get_field_index("provenance"), "provenance", pa.array(["guessed"]))
    pq.write_table(bad, folder / "part-1.parquet")
    with pytest.raises(schemas.SchemaError) as err:
        schemas.validate_path(tmp_path / "ds")
    assert str(folder / "part-1.parquet") in str(err.value)
    assert "'provenance'" in str(err.value) and "'guessed'" in str(err.value)


def test_table_name_from_metadata_or_folder(tmp_path):
    file = tmp_path / "anything.parquet"
    pq.write_table(schemas.empty("tasks"), file)
    assert table_name_of(file) == "tasks"
    plain = tmp_path / "machines" / "part-0.parquet"
    plain.parent.mkdir()
    pq.write_table(pa.table({"host_node": ["a"]}), plain)
    assert table_name_of(plain) == "machines"
    # A machines table needs only host_node; the rest take their documented defaults, which --strict refuses.
    assert schemas.validate_path(plain) == {"machines": 1}
    with pytest.raises(schemas.SchemaError, match="absent columns take their defaults"):
        schemas.validate_path(plain, strict=True)
    workflows = tmp_path / "workflows.parquet"
    pq.write_table(pa.table({"workflow_uid": ["u"]}), workflows)
    with pytest.raises(schemas.SchemaError, match="'workflow_name': required column is missing"):
        schemas.validate_path(workflows)


def test_data_model_doc_is_current():
    from pathlib import Path

    from schemas.__main__ import data_model_markdown

    doc = (Path(__file__).resolve().parents[2] / "docs" / "data-model.md").read_text()
    assert doc == data_model_markdown(), "regenerate with: python -m schemas > docs/data-model.md"
    assert "| `energy_joules` | `double` | no | required | dynamic_joules + idle_joules |" in doc
    assert "| `attempt` | `int64` | no | `0` | retry attempt, 0 for the first |" in doc
