"""Build tables that conform to the trace model, and check tables and files against it.

Errors name the file, the column and the first bad rows, so a user can find them.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from schemas.tables import (
    ENUMS,
    KEYS,
    NON_NEGATIVE,
    ORDERED_TIMES,
    TABLES,
    UNIT_INTERVAL,
)

MAX_BAD_ROWS = 5


class SchemaError(ValueError):
    """A table or file does not match the trace model."""

    def __init__(self, problems: list[Problem]):
        self.problems = problems
        super().__init__("\n".join(str(p) for p in problems))


@dataclass
class Problem:
    source: str
    table: str
    column: str | None
    message: str
    rows: list[int] = field(default_factory=list)
    values: list[object] = field(default_factory=list)

    def __str__(self) -> str:
        where = f"{self.source}: table {self.table}"
        if self.column:
            where += f", column {self.column!r}"
        text = f"{where}: {self.message}"
        if self.rows:
            shown = ", ".join(f"row {r}: {v!r}" for r, v in zip(self.rows, self.values, strict=False))
            text += f" (first bad rows: {shown})"
        return text


def schema_of(table: str) -> pa.Schema:
    try:
        return TABLES[table]
    except KeyError:
        raise ValueError(f"unknown table {table!r}; known tables: {', '.join(TABLES)}") from None


def empty(table: str) -> pa.Table:
    return schema_of(table).empty_table()


def conform(
    table: str,
    data: pa.Table | Mapping[str, Iterable] | list[dict] | object,
    keep_dictionaries: bool = False,
    source: str = "<memory>",
) -> pa.Table:
    """Return `data` as a pyarrow Table with exactly the schema of `table`.

    Accepts a pyarrow Table, a pandas DataFrame, a dict of columns or a list of row dicts.
    Missing nullable columns are filled with nulls; extra columns are an error; naive
    timestamps are an error (the model is UTC only). keep_dictionaries: dictionary-encoded string columns
    of a Table stay encoded (a reader that works on them as they are skips decoding every row). source:
    where the data came from (a file, a table folder), named in errors. Files are read with
    `schemas.load_table`, which refuses what this builder would cast (text to numbers or times).
    """
    schema = schema_of(table)
    if isinstance(data, list):
        columns = {f.name: [row.get(f.name) for row in data] for f in schema}
        extra = {k for row in data for k in row} - set(schema.names)
        if extra:
            raise SchemaError([Problem(source, table, None, f"unknown columns {sorted(extra)}")])
        data = columns
    if isinstance(data, Mapping):
        extra = set(data) - set(schema.names)
        if extra:
            raise SchemaError([Problem(source, table, None, f"unknown columns {sorted(extra)}")])
        n = max((len(v) for v in data.values()), default=0)
        arrays = []
        for f in schema:
            if f.name in data:
                arrays.append(_to_array(table, f, data[f.name], source))
            elif f.nullable:
                arrays.append(pa.nulls(n, f.type))
            else:
                raise SchemaError([Problem(source, table, f.name, "required column is missing")])
        return pa.Table.from_arrays(arrays, schema=schema)
    if not isinstance(data, pa.Table):
        data = pa.Table.from_pandas(data, preserve_index=False)
    extra = set(data.column_names) - set(schema.names)
    if extra:
        raise SchemaError([Problem(source, table, None, f"unknown columns {sorted(extra)}")])
    arrays, fields = [], []
    for f in schema:
        if f.name in data.column_names:
            column = data[f.name]
            if keep_dictionaries and _encoded_string(column.type) and pa.types.is_string(f.type):
                arrays.append(column)
                fields.append(pa.field(f.name, column.type, f.nullable, f.metadata))
                continue
            arrays.append(_cast(table, f, column, source))
            fields.append(f)
        elif f.nullable:
            arrays.append(pa.nulls(data.num_rows, f.type))
            fields.append(f)
        else:
            raise SchemaError([Problem(source, table, f.name, "required column is missing")])
    return pa.Table.from_arrays(arrays, schema=pa.schema(fields, metadata=schema.metadata))


def _to_array(table: str, f: pa.Field, values, source: str = "<memory>") -> pa.Array:
    if isinstance(values, pa.ChunkedArray | pa.Array):
        return _cast(table, f, values, source)
    if isinstance(values, np.ndarray) and np.issubdtype(values.dtype, np.datetime64):
        raise SchemaError([Problem(source, table, f.name, "naive timestamps; the model is UTC only")])
    try:
        arr = pa.array(values, type=f.type, from_pandas=True)
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        arr = pa.array(values, from_pandas=True)
    return _cast(table, f, arr, source)


def _encoded_string(data_type: pa.DataType) -> bool:
    return pa.types.is_dictionary(data_type) and pa.types.is_string(data_type.value_type)


def _cast(table: str, f: pa.Field, arr, source: str = "<memory>") -> pa.Array | pa.ChunkedArray:
    if pa.types.is_timestamp(f.type) and pa.types.is_timestamp(arr.type) and arr.type.tz is None:
        raise SchemaError([Problem(source, table, f.name, "naive timestamps; the model is UTC only")])
    if arr.type == f.type:
        return arr
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks()
    try:
        return arr.cast(f.type)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError) as exc:
        raise SchemaError(
            [Problem(source, table, f.name, f"cannot store {arr.type} as {f.type}: {exc}")]
        ) from None


def check(
    table: str, data: pa.Table, source: str = "<memory>", columns: Iterable[str] | None = None
) -> list[Problem]:
    """All problems of `data` against the schema and value rules of `table` (empty if valid).

    columns: the only columns `data` is meant to hold (a reader that reads what it uses); the rules of the
    others are not checked."""
    schema = schema_of(table)
    if columns is not None:
        wanted = set(columns)
        schema = pa.schema([f for f in schema if f.name in wanted], metadata=schema.metadata)
    problems: list[Problem] = []
    present = set(data.column_names)
    for f in schema:
        if f.name not in present:
            problems.append(Problem(source, table, f.name, "column is missing"))
    for name in present - set(schema.names):
        problems.append(Problem(source, table, name, "column is not in the schema"))
    if problems:
        return problems
    for f in schema:
        col = data[f.name]
        if not _same_type(col.type, f.type):
            problems.append(Problem(source, table, f.name, f"type is {col.type}, expected {f.type}"))
            continue
        if not f.nullable and col.null_count:
            problems.append(_rows(source, table, f.name, "null in a required column", pc.is_null(col), col))
    if problems:
        return problems
    for name, allowed in ENUMS.get(table, {}).items():
        if name not in present or _all_allowed(data[name], allowed):
            continue
        col = data[name]
        bad = pc.invert(pc.is_in(col, value_set=pa.array(allowed)))
        bad = pc.and_(bad, pc.is_valid(col))
        if pc.any(bad).as_py():
            problems.append(_rows(source, table, name, f"value not one of {list(allowed)}", bad, col))
    for name in NON_NEGATIVE.get(table, ()):
        if name not in present:
            continue
        col = data[name]
        bad = pc.fill_null(pc.less(col, 0), False)
        if pa.types.is_floating(col.type):
            bad = pc.or_(bad, pc.fill_null(pc.is_nan(col), False))
        if pc.any(bad).as_py():
            problems.append(_rows(source, table, name, "negative or NaN value", bad, col))
    for name in UNIT_INTERVAL.get(table, ()):
        if name not in present:
            continue
        col = data[name]
        bad = pc.fill_null(pc.greater(col, 1.0), False)
        if pc.any(bad).as_py():
            problems.append(_rows(source, table, name, "value above 1", bad, col))
    for start, end in ORDERED_TIMES.get(table, ()):
        if start not in present or end not in present:
            continue
        bad = pc.fill_null(pc.less(data[end], data[start]), False)
        if pc.any(bad).as_py():
            problems.append(_rows(source, table, end, f"{end} before {start}", bad, data[end]))
    keys = KEYS.get(table)
    if keys and data.num_rows > 1 and present.issuperset(keys):
        duplicated, first = _duplicated_keys(data.select(list(keys)))
        if duplicated:
            problems.append(
                Problem(source, table, ",".join(keys), f"{duplicated} duplicated keys, e.g. {first}")
            )
    return problems


def _all_allowed(column: pa.ChunkedArray, allowed) -> bool:
    """True when a dictionary-encoded column holds only allowed values (or nulls): its dictionaries are
    checked, not its rows. False when that cannot be told this way (then the rows are checked)."""
    if not pa.types.is_dictionary(column.type):
        return False
    allowed_values = pa.array(allowed)
    return all(
        pc.all(pc.is_in(chunk.dictionary, value_set=allowed_values)).as_py() is not False
        for chunk in column.chunks
    )


def _duplicated_keys(keys: pa.Table) -> tuple[int, dict]:
    """How many key values occur more than once (nulls equal to nulls), and the first duplicated row's key.

    In time linear in the rows, without sorting strings. When each group of the leading key columns is one
    run of rows whose last key column increases strictly (readings grouped by series in time order, as
    agents and the collectors write them; the attribution engine finds its series as the same runs) there
    is no duplicate: `_in_runs` finds it chunk by chunk on the codes as Arrow holds them. Otherwise every key
    column becomes integer codes (values of integer and time columns, dictionary indices of the others: a
    Parquet reader's dictionaries, else made by hashing), and the integer codes are sorted."""
    names = keys.column_names
    if _in_runs(keys):
        return 0, {}
    leading = [_integer_codes(keys[name], dense=True) for name in names[:-1]]
    last, _ = _integer_codes(keys[names[-1]], dense=False)
    counts = [count for _, count in leading]
    group = _combined([codes for codes, _ in leading], counts, keys.num_rows)
    order = np.lexsort((last, group))
    same = (group[order][1:] == group[order][:-1]) & (last[order][1:] == last[order][:-1])
    duplicated = int((same & ~np.concatenate([[False], same[:-1]])).sum())
    if not duplicated:
        return 0, {}
    first = int(min(order[1:][same].min(), order[:-1][same].min()))
    return duplicated, {name: keys[name][first].as_py() for name in names}


def _in_runs(keys: pa.Table) -> bool:
    """True when the rows are runs, one per distinct value of the leading key columns, within which the last
    key column increases strictly: then no key repeats. Looked at one chunk at a time on dictionary indices
    and integers as stored, so a 10M-row table costs a few small temporaries, not a copy of every column."""
    names = keys.column_names
    leading = [_comparable(keys[name]) for name in names[:-1]]
    last = keys[names[-1]]
    if any(column is None for column in leading) or not _plain_integers(last):
        return False
    starts = np.unique(np.concatenate([[0], *(_changes(column) for column in leading)]))
    falls = _changes(last, strictly_increasing=True)
    if not np.isin(falls, starts).all():
        return False
    codes = [_codes_at(column, starts) for column in leading]
    sizes = [
        len(column.chunk(0).dictionary) if pa.types.is_dictionary(column.type) and column.num_chunks else 0
        for column in leading
    ]
    combined = _combined(
        [code if size else _dense(code) for code, size in zip(codes, sizes, strict=True)],
        [size or starts.size for size in sizes],
        starts.size,
    )
    return np.unique(combined).size == starts.size


def _codes_at(column: pa.ChunkedArray, rows: np.ndarray) -> np.ndarray:
    """The codes (`_numpy_codes`) of a few sorted `rows`."""
    codes = np.zeros(rows.size, dtype=np.int64)
    for chunk, held, positions in rows_by_chunk(column, rows):
        codes[held] = _numpy_codes(chunk)[positions]
    return codes


def rows_by_chunk(column: pa.ChunkedArray, rows: np.ndarray) -> Iterator[tuple[pa.Array, slice, np.ndarray]]:
    """For sorted `rows` of a chunked column: each chunk that holds some of them, the slice of `rows` it holds
    and their positions in the chunk. Reading a few rows so avoids Arrow's take on a chunked column, which
    joins its chunks first (60 chunks of dictionary-encoded text for 10M readings: 8 ms a take)."""
    offset = 0
    for chunk in column.chunks:
        lo, hi = np.searchsorted(rows, [offset, offset + len(chunk)])
        if hi > lo:
            yield chunk, slice(lo, hi), rows[lo:hi] - offset
        offset += len(chunk)


def _comparable(column: pa.ChunkedArray) -> pa.ChunkedArray | None:
    """The column as integers or dictionary indices of one dictionary, which compare as its values do (text
    not encoded yet is encoded by hashing); None when it has nulls."""
    if column.null_count:
        return None
    if pa.types.is_dictionary(column.type):
        return pa.Table.from_arrays([column], ["c"]).unify_dictionaries()["c"]
    if _plain_integers(column):
        return column
    return pa.chunked_array([column.combine_chunks().dictionary_encode()])


def _plain_integers(column: pa.ChunkedArray) -> bool:
    """Integers or times without nulls: their values are their own codes."""
    data_type = column.type
    return (pa.types.is_integer(data_type) or pa.types.is_timestamp(data_type)) and not column.null_count


def _numpy_codes(chunk: pa.Array) -> np.ndarray:
    """A chunk's dictionary indices or integer values as numpy, without a copy where Arrow allows."""
    if pa.types.is_dictionary(chunk.type):
        chunk = chunk.indices
    elif pa.types.is_timestamp(chunk.type):
        chunk = chunk.view(pa.int64())
    return chunk.to_numpy(zero_copy_only=False)


def _changes(column: pa.ChunkedArray, strictly_increasing: bool = False) -> np.ndarray:
    """Rows whose value differs from the row before (strictly_increasing: is not above it)."""
    found, previous, offset = [], None, 0
    for chunk in column.chunks:
        values = _numpy_codes(chunk)
        if values.size == 0:
            continue
        here = values[1:] <= values[:-1] if strictly_increasing else values[1:] != values[:-1]
        if previous is not None and (values[0] <= previous if strictly_increasing else values[0] != previous):
            found.append(np.array([offset]))
        found.append(np.flatnonzero(here) + offset + 1)
        previous, offset = values[-1], offset + values.size
    return np.concatenate(found) if found else np.zeros(0, np.int64)


def _combined(codes: list[np.ndarray], counts: list[int], rows: int) -> np.ndarray:
    """One int64 per row, equal exactly when all of `codes` are (each column's codes below its count + 1)."""
    group = np.zeros(rows, dtype=np.int64)
    for column, count in zip(codes, counts, strict=True):
        if count and group.max(initial=0) >= np.iinfo(np.int64).max // (count + 1):
            group = _dense(group)
        group = group * (count + 1) + column
    return group


def _integer_codes(column: pa.ChunkedArray, dense: bool) -> tuple[np.ndarray, int]:
    """Per row an int64 equal for equal values (nulls equal to nulls) and, when `dense` or the column is not
    integer-like, how many codes there are (0: the values themselves)."""
    data_type = column.type
    if _plain_integers(column) and not dense:
        return column.cast(pa.int64()).to_numpy(), 0
    if pa.types.is_dictionary(data_type):
        unified = pa.Table.from_arrays([column], ["c"]).unify_dictionaries()["c"]
        dictionary = (
            unified.chunks[0].dictionary if unified.num_chunks else pa.array([], data_type.value_type)
        )
        indices = pa.chunked_array([chunk.indices for chunk in unified.chunks], data_type.index_type)
        if indices.null_count:
            indices = pc.fill_null(indices, len(dictionary))
        # Each chunk's indices as they are (no cast, no fill of a column without nulls), joined once.
        parts = [chunk.to_numpy(zero_copy_only=False) for chunk in indices.chunks]
        codes = np.concatenate(parts).astype(np.int64, copy=False) if parts else np.zeros(0, np.int64)
        return codes, len(dictionary) + 1
    encoded = column.combine_chunks().dictionary_encode(null_encoding="encode")
    return encoded.indices.to_numpy(zero_copy_only=False).astype(np.int64), len(encoded.dictionary)


def _dense(codes: np.ndarray) -> np.ndarray:
    """The same grouping with codes 0..k-1 (by hashing), so more columns can be combined into it."""
    encoded = pa.array(codes).dictionary_encode()
    return encoded.indices.to_numpy(zero_copy_only=False).astype(np.int64)


def _same_type(actual: pa.DataType, expected: pa.DataType) -> bool:
    if actual == expected:
        return True
    # Large/dictionary string variants read back from Parquet are the same logical column.
    if pa.types.is_string(expected):
        return pa.types.is_large_string(actual) or _encoded_string(actual)
    return False


def _rows(source: str, table: str, column: str, message: str, mask, col) -> Problem:
    idx = np.flatnonzero(np.asarray(pc.fill_null(mask, False)))
    rows = [int(i) for i in idx[:MAX_BAD_ROWS]]
    values = [col[i].as_py() for i in rows]
    return Problem(source, table, column, f"{message} in {len(idx)} rows", rows, values)


def validate(table: str, data: pa.Table, source: str = "<memory>") -> pa.Table:
    """Raise SchemaError naming source, column and first bad rows; return `data` when valid."""
    problems = check(table, data, source)
    if problems:
        raise SchemaError(problems)
    return data


def table_name_of(path: Path) -> str | None:
    """Which table a Parquet/CSV file or table folder holds: its metadata, else its (parent) folder or file
    name (`tasks.csv`, `tasks/part-0.parquet`). A file that cannot be read is left to the reader to name."""
    from schemas.loading import is_csv

    if path.is_file() and not is_csv(path):
        try:
            meta = pq.read_schema(path).metadata or {}
        except (pa.ArrowException, OSError):
            meta = {}
        name = meta.get(b"jouletrace.table")
        if name and name.decode() in TABLES:
            return name.decode()
    stem = path.name.split(".")[0] if path.is_file() else path.name
    for part in [stem, *[p.name for p in path.parents]]:
        if part in TABLES:
            return part
    return None


@dataclass
class PathCheck:
    """What `check_path` found: rows read per table, and the coercions and defaults it applied."""

    rows: dict[str, int]
    notes: list = field(default_factory=list)


def table_targets(path: Path, table: str | None = None) -> list[tuple[Path, str]]:
    """(file or table folder, table) pairs a path holds: itself, or a dataset root's table folders."""
    if table is not None:
        schema_of(table)
        return [(path, table)]
    if path.is_dir() and table_name_of(path) is None:
        targets = [(p, p.name) for p in sorted(path.iterdir()) if p.is_dir() and p.name in TABLES]
        if not targets:
            raise ValueError(f"{path}: holds no table folders ({', '.join(TABLES)})")
        return targets
    name = table_name_of(path)
    if name is None and path.is_file():
        from schemas.loading import read_file

        read_file(path, str(path))  # a file that is not a table says so first
    if name is None:
        raise ValueError(
            f"{path}: cannot tell which table it holds (no jouletrace.table metadata, and neither it nor a "
            "folder above it is named after a table): name it after its table (tasks.csv) or give --table"
        )
    return [(path, name)]


def check_path(path: str | Path, table: str | None = None, strict: bool = False) -> PathCheck:
    """Read every file of a Parquet/CSV file, a table folder or a dataset root as every command reads a
    table (`schemas.load_table`: safe coercions and defaults applied and reported, unsafe ones refused),
    then check the value rules. Hive partition columns (folder names like ``date=2026-11-21``) are not part
    of the model and are ignored. Raises SchemaError listing every problem of every file."""
    from schemas.loading import each_file, merge_notes

    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such file or directory")
    problems: list[Problem] = []
    found = PathCheck({})
    for target, name in table_targets(path, table):
        rows, notes, files = 0, [], 0
        for _, loaded in each_file(name, target, strict=strict):
            files += 1
            if isinstance(loaded, SchemaError):
                problems.extend(loaded.problems)
                continue
            rows += loaded.table.num_rows
            notes.extend(loaded.notes)
        found.rows[name] = rows
        found.notes.extend(merge_notes(notes, str(target), files))
    if problems:
        raise SchemaError(problems)
    return found


def validate_path(path: str | Path, strict: bool = False) -> dict[str, int]:
    """Validate a Parquet/CSV file, a table folder, or a dataset root holding table folders (`check_path`).

    Returns {table: rows checked}. Raises SchemaError listing every problem found; strict: a file that needs
    a coercion or a default is a problem too."""
    return check_path(path, strict=strict).rows
