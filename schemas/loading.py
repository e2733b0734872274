"""Reading a trace table from a file: the one way every command does it.

A table comes from a Parquet file, a folder of Parquet files or a CSV file (``.csv``, ``.tsv``, optionally
``.gz``). Every error names the file (and the command-line option it came from, when given), the column and
the first bad rows, and says what to do. Then the table is brought to the model's schema:

- safe coercions are applied and reported as notes: timestamps in seconds or milliseconds widened and
  nanoseconds rounded to the schema's microseconds, another time zone read as the same UTC instants,
  narrower integers widened to int64, float32 widened to double, integers stored as double (up to 2^53) or
  as text ids, whole-number doubles stored as int64, decimals stored as double;
- unsafe ones are errors: text where numbers or timestamps are expected (in Parquet; a CSV file's text is
  parsed by its column's type), timestamps without a time zone, fractions where whole numbers are
  expected, integers beyond 2^53 in a double column, booleans;
- absent columns take the documented defaults (`DEFAULTS`; nullable columns without one are null); a
  required column without a default is an error; a column the model does not have is an error;
- then the value rules of `schemas.validation.check` (enumerations, non-negative quantities, keys, ...).
"""

from __future__ import annotations

import gzip
import json
from collections.abc import Callable, Collection, Iterable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from schemas.tables import ID_LIST, UTC_TIMESTAMP
from schemas.validation import MAX_BAD_ROWS, Problem, SchemaError, _encoded_string, check, schema_of

MAX_EXACT_INTEGER = 2**53
UTC_NAMES = frozenset({"UTC", "utc", "Etc/UTC", "Z", "+00:00", "GMT", "Etc/GMT"})
CSV_SUFFIXES = (".csv", ".tsv", ".csv.gz", ".tsv.gz")
TIME_EXAMPLE = "ISO 8601 with a zone, e.g. 2026-11-02T08:00:00Z"


class SchemaNote(UserWarning):
    """A safe coercion or a default applied while reading a table: reported, not an error."""


@dataclass(frozen=True)
class Note:
    source: str
    table: str
    column: str | None
    action: str
    count: int | None = None

    def __str__(self) -> str:
        where = f"{self.source}: table {self.table}"
        if self.column:
            where += f", column {self.column!r}"
        changed = f" ({self.count} values changed)" if self.count else ""
        return f"{where}: {self.action}{changed}"


@dataclass
class Loaded:
    """A table in the model's exact schema, and what was done to get it there."""

    table: pa.Table
    notes: list[Note]


@dataclass(frozen=True)
class Default:
    """What an absent column takes: `doc` is what docs/data-model.md says, `fill` computes it from the
    columns before it (in schema order) and the row count."""

    doc: str
    fill: Callable[[dict[str, pa.ChunkedArray | pa.Array], int], pa.Array]
    per_row: bool = False  # a value per row (task_name = task_id); else one value, which notes show

    def shown(self, filled) -> str:
        if self.per_row or len(filled) == 0:
            return self.doc.split(" (")[0].replace("`", "")
        return json.dumps(_first(filled))


class _Refused(Exception):
    """An unsafe conversion of one column: the message says what to do; `mask` marks the bad rows."""

    def __init__(self, message: str, mask=None):
        super().__init__(message)
        self.message, self.mask = message, mask


# --- defaults of absent columns ----------------------------------------------------------------------------


def _first(values):
    value = values[0].as_py()
    return dict(value) if isinstance(value, list) and value and isinstance(value[0], tuple) else value


def _constant(value, type_: pa.DataType) -> Callable[[dict, int], pa.Array]:
    return lambda columns, n: pa.array([value] * n, type_)


def _copy_of(name: str) -> Callable[[dict, int], pa.Array]:
    return lambda columns, n: columns[name]


def _micros(times) -> np.ndarray:
    """Non-null values of a UTC timestamp column as integer microseconds."""
    valid = times.filter(pc.is_valid(times)) if times.null_count else times
    return np.asarray(valid.cast(pa.int64()).to_numpy(zero_copy_only=False), dtype=np.int64)


def _time_resolution(columns: dict, n: int) -> pa.Array:
    """The precision the table's times are written at: 1 s, 1 ms or 1 us."""
    values = np.concatenate([_micros(columns["started_at"]), _micros(columns["finished_at"])])
    if not (values % 1_000_000).any():
        resolution = 1.0
    elif not (values % 1000).any():
        resolution = 0.001
    else:
        resolution = 1e-6
    return pa.array([resolution] * n, pa.float64())


def _runtime(columns: dict, n: int) -> pa.Array:
    elapsed = pc.subtract(columns["finished_at"].cast(pa.int64()), columns["started_at"].cast(pa.int64()))
    return pc.divide(elapsed.cast(pa.float64()), 1e6)


MEASURED = Default("`measured`", _constant("measured", pa.string()))
NO_IDS = Default("`[]`", _constant([], ID_LIST))

# The columns a table read from a file may leave out, besides the nullable ones (null when absent). Only the
# tables users give to commands (`attribute`, `validate`) have them; the others are written by jouletrace.
DEFAULTS: dict[str, dict[str, Default]] = {
    "tasks": {
        "task_name": Default("`task_id`", _copy_of("task_id"), per_row=True),
        "attempt": Default("`0`", _constant(0, pa.int64())),
        "phase": Default("`Succeeded`", _constant("Succeeded", pa.string())),
        "time_resolution_seconds": Default(
            "the precision the table's times are written at: `1` when every start and end is a whole "
            "second, else `0.001` when whole milliseconds, else `1e-06`",
            _time_resolution,
        ),
        "runtime_seconds": Default("`finished_at - started_at`", _runtime, per_row=True),
        "parents": NO_IDS,
        "children": NO_IDS,
        "gpu_ids": NO_IDS,
        "fpga_ids": NO_IDS,
        "provenance": MEASURED,
    },
    "machines": {
        "gpu_models": NO_IDS,
        "fpga_models": NO_IDS,
        "labels": Default("`{}`", _constant([], pa.map_(pa.string(), pa.string()))),
        "provenance": MEASURED,
    },
    "power_samples": {
        "source": Default(
            "`unknown` (a power_watts gauge is then read as instantaneous: the trapezoid rule)",
            _constant("unknown", pa.string()),
        ),
        "provenance": MEASURED,
    },
    "container_samples": {"provenance": MEASURED},
}


# Nullable columns a command cannot do without: absent from a file it is given, they are an error there.
NEEDED_BY: dict[str, dict[str, tuple[str, ...]]] = {
    "attribute": {"tasks": ("host_node", "started_at", "finished_at")},
}


def needed(command: str, table: str) -> tuple[str, ...]:
    return NEEDED_BY.get(command, {}).get(table, ())


def when_absent(table: str, field: pa.Field) -> str:
    """What docs/data-model.md says a column takes when a file leaves it out."""
    default = DEFAULTS.get(table, {}).get(field.name)
    if default is not None:
        return default.doc
    if not field.nullable:
        return "required"
    commands = [command for command in NEEDED_BY if field.name in needed(command, table)]
    return "null" + (f" (`{'`, `'.join(commands)}` needs it)" if commands else "")


# --- reading files -----------------------------------------------------------------------------------------


def is_csv(path: Path) -> bool:
    return path.name.lower().endswith(CSV_SUFFIXES)


def table_files(folder: Path) -> list[Path]:
    """The Parquet files of a table folder (hive partitions included), hidden and temporary files left out."""
    return sorted(
        p
        for p in folder.rglob("*.parquet")
        if p.is_file() and not any(part.startswith((".", "_")) for part in p.relative_to(folder).parts)
    )


def read_file(
    path: Path,
    label: str,
    table: str | None = None,
    *,
    columns: Collection[str] | None = None,
    dictionaries: bool = False,
) -> pa.Table:
    """The raw columns of one Parquet or CSV file; errors name `label` and say what the file is instead.

    columns: read only these of the model's columns (and any the model does not know, so that they are still
    reported); dictionaries: the model's text columns of a Parquet file stay dictionary-encoded as Parquet
    stores them (decoding every row costs more than a reader that works on the codes does with them).

    A local file is read without pyarrow's pre-buffering, which gathers a file's column chunks into memory
    ahead of decoding for object stores' latency: on a local 143 MB file of 10M readings it only added 110 MB
    to the peak and made the read slower (0.26-0.76 s without it, 0.40-2.77 s with it, 5 runs each)."""
    if is_csv(path):
        return _read_csv(path, label, schema_of(table) if table else None)
    try:
        if columns is None and not dictionaries:
            return pq.ParquetFile(path, pre_buffer=False).read()
        names = pq.read_schema(path).names
        model = schema_of(table) if table else pa.schema([])
        wanted = [n for n in names if columns is None or n in columns or n not in model.names]
        text = [f.name for f in model if pa.types.is_string(f.type) and f.name in wanted]
        read_dictionary = text if dictionaries else None
        return pq.ParquetFile(path, read_dictionary=read_dictionary, pre_buffer=False).read(columns=wanted)
    except (pa.ArrowException, OSError) as exc:
        raise ValueError(f"{label}: {_not_parquet(path, exc)}") from None


def _not_parquet(path: Path, exc: Exception) -> str:
    try:
        size = path.stat().st_size
        with path.open("rb") as handle:
            head = handle.read(64)
    except OSError as error:
        return f"cannot be read ({error.strerror or error})"
    if size == 0:
        return "empty file (0 bytes), not a Parquet file"
    if head[:4] != b"PAR1":
        text = head.decode("utf-8", errors="ignore")
        if text and all(c.isprintable() or c in "\r\n\t" for c in text):
            first = text.splitlines()[0][:40]
            return (
                f"not a Parquet file: it holds text (starting {first!r}); give a Parquet file, or name a CSV "
                "file *.csv"
            )
        return "not a Parquet file (no Parquet magic bytes at its start)"
    message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return f"damaged or truncated Parquet file ({message}); write it again"


def _read_csv(path: Path, label: str, schema: pa.Schema | None) -> pa.Table:
    import pyarrow.csv as csv  # only for CSV input (start-up time of the commands that read Parquet)

    delimiter = "\t" if ".tsv" in path.name.lower() else ","
    types = {f.name: pa.string() for f in schema} if schema is not None else {}
    convert = csv.ConvertOptions(
        column_types=types, strings_can_be_null=True, null_values=[""], quoted_strings_can_be_null=False
    )
    try:
        return csv.read_csv(
            path, parse_options=csv.ParseOptions(delimiter=delimiter), convert_options=convert
        )
    except (pa.ArrowException, OSError) as exc:
        message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        if "UTF8" in message or "UTF-8" in message:
            raise ValueError(f"{label}: {_not_utf8(path)}") from None
        if path.stat().st_size == 0 or "Empty CSV file" in message:
            raise ValueError(
                f"{label}: empty file, not a CSV table (a header line naming the columns)"
            ) from None
        raise ValueError(f"{label}: not a readable CSV file ({message})") from None


def _not_utf8(path: Path) -> str:
    opener = gzip.open if path.name.lower().endswith(".gz") else open
    with opener(path, "rb") as handle:
        data = handle.read()
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        return (
            f"not UTF-8 text (line {line}, byte {exc.start} is 0x{data[exc.start]:02x}); save the file as "
            "UTF-8"
        )
    return "not UTF-8 text; save the file as UTF-8"


# --- coercion ----------------------------------------------------------------------------------------------


def _bad_rows(source: str, table: str, column: str, message: str, mask, values) -> Problem:
    if mask is None:
        return Problem(source, table, column, message)
    index = np.flatnonzero(np.asarray(pc.fill_null(mask, False).to_numpy(zero_copy_only=False), dtype=bool))
    rows = [int(i) for i in index[:MAX_BAD_ROWS]]
    return Problem(
        source, table, column, f"{message} ({len(index)} rows)", rows, [values[i].as_py() for i in rows]
    )


def _is_text(data_type: pa.DataType) -> bool:
    return (
        pa.types.is_string(data_type)
        or pa.types.is_large_string(data_type)
        or pa.types.is_string_view(data_type)
    )


def _what(data_type: pa.DataType) -> str:
    if _is_text(data_type):
        return "text"
    if pa.types.is_boolean(data_type):
        return "booleans"
    return str(data_type)


def _to_timestamp(column, origin: str) -> tuple[pa.ChunkedArray, str | None, int | None]:
    t = column.type
    if not pa.types.is_timestamp(t):
        raise _Refused(
            f"{_what(t)} where timestamps are expected: store {UTC_TIMESTAMP} (a CSV file holds {TIME_EXAMPLE})"
        )
    if t.tz is None:
        raise _Refused(
            "timestamps without a time zone: the model is UTC only; store them with tz=UTC "
            "(pandas: .dt.tz_localize('UTC') when they are UTC)"
        )
    actions = []
    if t.tz not in UTC_NAMES:
        actions.append(f"time zone {t.tz!r} read as the same UTC instants")
    changed = None
    if t.unit == "ns":
        ns = column.cast(pa.int64())
        valid = pc.is_valid(ns).to_numpy(zero_copy_only=False)
        values = np.asarray(pc.fill_null(ns, 0).to_numpy(zero_copy_only=False), dtype=np.int64)
        changed = int(np.count_nonzero((values % 1000 != 0) & valid))
        micros = pa.array(np.floor_divide(values + 500, 1000), pa.int64(), mask=~valid)
        result = micros.cast(UTC_TIMESTAMP)
        if changed or origin != "csv":
            actions.append("nanosecond timestamps rounded to the schema's microseconds")
    else:
        result = column.cast(pa.timestamp("us", tz=t.tz)).cast(UTC_TIMESTAMP)
        if t.unit != "us" and origin != "csv":
            actions.append(
                f"timestamps in {'seconds' if t.unit == 's' else 'milliseconds'} widened to microseconds"
            )
    return result, "; ".join(actions) or None, changed or None


def _whole(column) -> pa.Array:
    """Mask of the non-null values that are not whole numbers within +-2^53."""
    finite = pc.is_finite(column)
    whole = pc.and_(finite, pc.equal(pc.floor(column), column))
    small = pc.less_equal(pc.abs(column), float(MAX_EXACT_INTEGER))
    return pc.and_(pc.is_valid(column), pc.invert(pc.and_(whole, small)))


def _to_int64(column, origin: str) -> tuple[pa.ChunkedArray, str | None, int | None]:
    t = column.type
    if pa.types.is_integer(t):
        if pa.types.is_uint64(t):
            too_big = pc.greater(column, 2**63 - 1)
            if pc.any(too_big).as_py():
                raise _Refused("integers beyond the int64 range", too_big)
        return column.cast(pa.int64()), f"{t} widened to int64", None
    if pa.types.is_floating(t):
        bad = _whole(column)
        if pc.any(bad).as_py():
            raise _Refused(
                "values that are not whole numbers where int64 is expected: store whole numbers", bad
            )
        return column.cast(pa.int64()), f"whole-number {t} stored as int64", None
    if pa.types.is_decimal(t):
        try:
            return column.cast(pa.int64()), f"whole-number {t} stored as int64", None
        except pa.ArrowInvalid:
            raise _Refused("decimals that are not whole numbers where int64 is expected") from None
    raise _Refused(f"{_what(t)} where whole numbers are expected: store int64 numbers, not {_what(t)}")


def _to_float64(column, origin: str) -> tuple[pa.ChunkedArray, str | None, int | None]:
    t = column.type
    if pa.types.is_floating(t):
        return column.cast(pa.float64()), f"{t} widened to double", None
    if pa.types.is_integer(t):
        too_big = pc.greater(pc.abs(column.cast(pa.float64())), float(MAX_EXACT_INTEGER))
        if pc.any(too_big).as_py():
            raise _Refused("integers beyond 2^53 cannot be stored as double exactly", too_big)
        return column.cast(pa.float64()), f"{t} stored as double", None
    if pa.types.is_decimal(t):
        return column.cast(pa.float64(), safe=False), f"{t} stored as double", None
    raise _Refused(f"{_what(t)} where numbers are expected: store double numbers, not {_what(t)}")


def _to_string(column, origin: str) -> tuple[pa.ChunkedArray, str | None, int | None]:
    t = column.type
    if _is_text(t):
        return column.cast(pa.string()), None, None
    if pa.types.is_integer(t):
        return column.cast(pa.string()), f"integer {t} ids stored as text", None
    raise _Refused(f"{_what(t)} where text is expected: store strings")


def _to_nested(column, want: pa.DataType) -> tuple[pa.ChunkedArray, str | None, int | None]:
    t = column.type
    if pa.types.is_map(want) and pa.types.is_map(t) or pa.types.is_list(want) and _is_list(t):
        if _is_list(t) and pa.types.is_integer(t.value_type):
            return column.cast(want), f"{t} ids stored as text", None
        try:
            return column.cast(want), None, None
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError):
            pass
    raise _Refused(f"{_what(t)} where {want} is expected")


def _is_list(t: pa.DataType) -> bool:
    return pa.types.is_list(t) or pa.types.is_large_list(t) or pa.types.is_fixed_size_list(t)


def coerce_column(column, want: pa.DataType, origin: str = "parquet"):
    """(column as `want`, what was done or None, values changed or None); raises _Refused when unsafe."""
    if isinstance(column, pa.Array):
        column = pa.chunked_array([column], column.type)
    if column.type == want:
        return column, None, None
    if pa.types.is_null(column.type):
        return pa.nulls(len(column), want), None, None
    if pa.types.is_dictionary(column.type):
        column = column.cast(column.type.value_type)
        if column.type == want:
            return column, None, None
    if pa.types.is_boolean(column.type):
        raise _Refused(f"booleans where {want} is expected")
    if pa.types.is_timestamp(want):
        return _to_timestamp(column, origin)
    if pa.types.is_integer(want):
        return _to_int64(column, origin)
    if pa.types.is_floating(want):
        return _to_float64(column, origin)
    if pa.types.is_string(want):
        return _to_string(column, origin)
    return _to_nested(column, want)


def _parse_text(column, want: pa.DataType) -> pa.ChunkedArray:
    """A CSV column (text) read as `want`: JSON arrays/objects for lists and maps, else Arrow's parsers."""
    if pa.types.is_list(want) or pa.types.is_map(want):
        return _parse_json_cells(column, want)
    target = pa.timestamp("ns", tz="UTC") if pa.types.is_timestamp(want) else want
    try:
        return column.cast(target)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        pass
    bad = []
    for value in column.to_pylist():
        try:
            ok = value is None or pa.scalar(value).cast(target) is not None
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            ok = False
        bad.append(not ok)
    if pa.types.is_timestamp(want):
        expected = f"a time with its zone ({TIME_EXAMPLE})"
    elif pa.types.is_integer(want):
        expected = "a whole number"
    else:
        expected = "a number"
    raise _Refused(f"text that is not {expected}", pa.array(bad))


def _parse_json_cells(column, want: pa.DataType) -> pa.Array:
    is_map = pa.types.is_map(want)
    values = [_json_cell(text, is_map) for text in column.to_pylist()]
    bad = [value is None for value in values]
    if any(bad):
        shape = 'a JSON object like {"key": "value"}' if is_map else 'a JSON array like ["a", "b"]'
        raise _Refused(f"text that is not {shape}", pa.array(bad))
    return pa.array(values, want)


def _json_cell(text: str | None, is_map: bool) -> list | None:
    """One CSV cell of a list or map column: [] when empty, None when it is not what the column holds."""
    if text is None:
        return []
    try:
        value = json.loads(text)
    except json.JSONDecodeError:
        return None
    if is_map:
        if value == []:
            return []
        if isinstance(value, dict) and all(isinstance(v, str | int | float) for v in value.values()):
            return [(str(k), str(v)) for k, v in value.items()]
        return None
    if isinstance(value, list) and all(isinstance(v, str | int) and not isinstance(v, bool) for v in value):
        return [str(v) for v in value]
    return None


def coerce(
    table: str,
    data: pa.Table,
    source: str,
    *,
    origin: str = "parquet",
    strict: bool = False,
    needs: dict[str, str] | None = None,
    columns: Collection[str] | None = None,
    keep_dictionaries: bool = False,
) -> Loaded:
    """`data` in the exact schema of `table`, with the notes of what was done; SchemaError naming `source`,
    the column and the first bad rows for everything that cannot safely be done. strict: every coercion and
    default is an error too (the data must already be in the model's schema). needs: {nullable column: the
    command that cannot do without it}, an error when absent. columns: the result holds only these (a
    command that reads what it uses), checked by their rules. keep_dictionaries: dictionary-encoded text
    columns stay so (same values, type dictionary<string>)."""
    schema = schema_of(table)
    if columns is not None:
        schema = pa.schema([f for f in schema if f.name in columns], metadata=schema.metadata)
    problems: list[Problem] = []
    notes: list[Note] = []
    present = data.column_names
    duplicated = sorted({name for name in present if present.count(name) > 1})
    if duplicated:
        problems.append(Problem(source, table, None, f"columns {duplicated} appear more than once"))
    unknown = [name for name in present if name not in schema_of(table).names]
    if unknown:
        problems.append(
            Problem(
                source,
                table,
                None,
                f"columns {unknown} are not in the model: remove or rename them (docs/data-model.md)",
            )
        )
    columns_out: dict[str, pa.ChunkedArray | pa.Array] = {}
    for f in schema:
        if f.name not in present or f.name in duplicated:
            continue
        raw = data[f.name]
        if keep_dictionaries and _encoded_string(raw.type) and pa.types.is_string(f.type):
            columns_out[f.name] = raw
            continue
        try:
            if origin == "csv" and _is_text(raw.type) and not pa.types.is_string(f.type):
                raw = _parse_text(raw, f.type)
            columns_out[f.name], action, changed = coerce_column(raw, f.type, origin)
        except _Refused as refused:
            problems.append(_bad_rows(source, table, f.name, refused.message, refused.mask, data[f.name]))
            continue
        if action:
            notes.append(Note(source, table, f.name, action, changed))
    if problems:
        raise SchemaError(problems)
    for name, command in (needs or {}).items():
        if name not in columns_out:
            problems.append(Problem(source, table, name, f"column is missing: {command} needs it; add it"))
    filled, nulls = _fill_absent(table, schema, columns_out, data.num_rows, source, problems)
    if problems:
        raise SchemaError(problems)
    if filled:
        notes.append(Note(source, table, None, "absent columns take their defaults: " + ", ".join(filled)))
    if nulls:
        notes.append(Note(source, table, None, "absent columns are null: " + ", ".join(nulls)))
    if strict and notes:
        raise SchemaError(
            [
                Problem(n.source, n.table, n.column, f"{n.action}; --strict wants the model's exact schema")
                for n in notes
            ]
        )
    fields = [pa.field(f.name, columns_out[f.name].type, f.nullable, f.metadata) for f in schema]
    result = pa.Table.from_arrays(
        [columns_out[f.name] for f in schema], schema=pa.schema(fields, metadata=schema.metadata)
    )
    problems = check(table, result, source, columns=columns)
    if problems:
        raise SchemaError(problems)
    return Loaded(result, notes)


def conform_read(table: str, data: pa.Table, source: str) -> pa.Table:
    """`coerce` for a reader that returns only the table (a dataset's table folder): its notes become
    SchemaNote warnings, which the command line prints as one line each."""
    import warnings

    loaded = coerce(table, data, source)
    for note in loaded.notes:
        warnings.warn(str(note), SchemaNote, stacklevel=2)
    return loaded.table


def _fill_absent(
    table: str, schema: pa.Schema, columns: dict, rows: int, source: str, problems: list[Problem]
) -> tuple[list[str], list[str]]:
    """Fill the absent columns in schema order (a default may use the columns before it)."""
    filled, nulls = [], []
    for f in schema:
        if f.name in columns:
            continue
        default = DEFAULTS.get(table, {}).get(f.name)
        if default is not None and all(name in columns for name in _needs(table, f.name)):
            columns[f.name] = default.fill(columns, rows)
            filled.append(f"{f.name} = {default.shown(columns[f.name])}")
        elif f.nullable:
            columns[f.name] = pa.nulls(rows, f.type)
            nulls.append(f.name)
        else:
            problems.append(
                Problem(source, table, f.name, "required column is missing: add it (docs/data-model.md)")
            )
    return filled, nulls


def _needs(table: str, column: str) -> tuple[str, ...]:
    if table == "tasks" and column in ("time_resolution_seconds", "runtime_seconds"):
        return ("started_at", "finished_at")
    if table == "tasks" and column == "task_name":
        return ("task_id",)
    return ()


# --- files and folders -------------------------------------------------------------------------------------


def _labelled(path: Path, argument: str | None) -> str:
    return f"{path} ({argument})" if argument else str(path)


def each_file(
    table: str,
    path: str | Path,
    *,
    argument: str | None = None,
    strict: bool = False,
    needs: dict[str, str] | None = None,
    columns: Collection[str] | None = None,
    dictionaries: bool = False,
) -> Iterator[tuple[Path, Loaded | SchemaError]]:
    """(file, its table or the problems found) for a file or every Parquet file of a folder; columns and
    dictionaries as for `load_table`."""
    path = Path(path)
    schema_of(table)
    if not path.exists():
        raise FileNotFoundError(f"{_labelled(path, argument)}: no such file or folder")
    files = table_files(path) if path.is_dir() else [path]
    if not files:
        raise ValueError(f"{_labelled(path, argument)}: holds no .parquet files of table {table}")
    for file in files:
        label = _labelled(file, argument)
        raw = read_file(file, label, table, columns=columns, dictionaries=dictionaries)
        try:
            origin = "csv" if is_csv(file) else "parquet"
            yield (
                file,
                coerce(
                    table,
                    raw,
                    label,
                    origin=origin,
                    strict=strict,
                    needs=needs,
                    columns=columns,
                    keep_dictionaries=dictionaries,
                ),
            )
        except SchemaError as exc:
            yield file, exc


def load_table(
    table: str,
    path: str | Path,
    *,
    argument: str | None = None,
    strict: bool = False,
    command: str | None = None,
    columns: Collection[str] | None = None,
    dictionaries: bool = False,
) -> Loaded:
    """Read `table` from a Parquet file, a folder of them or a CSV file, in the model's exact schema.

    argument: the command-line option the path came from (`--tasks`), named in every error and note.
    command: the command reading it, whose NEEDED_BY columns must be there.
    columns: read, check and return only these columns (what the command uses); dictionaries: the text
    columns of Parquet files stay dictionary-encoded (dictionary<string>), as Parquet stores them.
    Raises FileNotFoundError, ValueError (a file that is not Parquet/CSV/UTF-8) or SchemaError (every
    problem of every file)."""
    parts: list[pa.Table] = []
    notes: list[Note] = []
    problems: list[Problem] = []
    files = 0
    needs = dict.fromkeys(needed(command, table), command) if command else None
    files_read = each_file(
        table, path, argument=argument, strict=strict, needs=needs, columns=columns, dictionaries=dictionaries
    )
    for _, loaded in files_read:
        files += 1
        if isinstance(loaded, SchemaError):
            problems.extend(loaded.problems)
            continue
        parts.append(loaded.table)
        notes.extend(loaded.notes)
    if problems:
        raise SchemaError(problems)
    table_data = parts[0] if len(parts) == 1 else pa.concat_tables(parts)
    if len(parts) > 1:
        problems = check(table, table_data, _labelled(Path(path), argument), columns=columns)
        if problems:
            raise SchemaError(problems)
    return Loaded(table_data, merge_notes(notes, _labelled(Path(path), argument), files))


def merge_notes(notes: Iterable[Note], folder: str, files: int) -> list[Note]:
    """One note per (table, column, action) of a folder's files, counting the files and values."""
    groups: dict[tuple, list[Note]] = {}
    for note in notes:
        groups.setdefault((note.table, note.column, note.action), []).append(note)
    merged = []
    for group in groups.values():
        if len(group) == 1 or files <= 1:
            merged.extend(group)
            continue
        changed = sum(note.count or 0 for note in group)
        source = f"{folder} ({len(group)} of {files} files)"
        merged.append(replace(group[0], source=source, count=changed or None))
    return merged
