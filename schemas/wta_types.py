"""Reading WTA columns as real traces store them: every value that converts without loss is converted to
the schema-1.0 type (schemas.wta_checks); the first one that does not is named with its row and value."""

from __future__ import annotations

import json

import pyarrow as pa
import pyarrow.compute as pc

ID_LIST = pa.list_(pa.int64())
_NO_VALUE = frozenset({"", "nan", "null", "none"})


def convert_wta_column(column: pa.Array, target: pa.DataType) -> tuple[pa.Array | None, str]:
    """The column in the target type when every value converts without loss, else (None, why) naming the
    first row and value that does not."""
    try:
        return _convert(column, target)
    except (pa.ArrowInvalid, OverflowError) as exc:
        return None, f"type is {column.type}, expected {target}: {exc}"


def _convert(column: pa.Array, target: pa.DataType) -> tuple[pa.Array | None, str]:
    actual = column.type
    if pa.types.is_null(actual):
        return pa.nulls(len(column), target), ""
    if pa.types.is_list(target):
        return _to_id_lists(column)
    if pa.types.is_integer(target):
        return _to_integers(column, target)
    if pa.types.is_floating(target):
        if pa.types.is_integer(actual) or pa.types.is_floating(actual):
            return column.cast(pa.float64()), ""
        if _is_text(actual):
            return _parse_each(column, pa.float64(), _parse_number, "a number")
        return None, f"type is {actual}, expected {target}"
    if _is_text(actual):
        return column.cast(pa.string()), ""
    if pa.types.is_integer(actual) or pa.types.is_floating(actual) or pa.types.is_boolean(actual):
        return column.cast(pa.string()), ""
    return None, f"type is {actual}, expected string"


def _is_text(data_type: pa.DataType) -> bool:
    return pa.types.is_string(data_type) or pa.types.is_large_string(data_type)


def _to_integers(column: pa.Array, target: pa.DataType) -> tuple[pa.Array | None, str]:
    actual = column.type
    if pa.types.is_integer(actual):
        if pa.types.is_uint64(actual):
            too_big = pc.greater(column, pa.scalar(2**63 - 1, pa.uint64()))
            if pc.any(too_big).as_py():
                row = _first(too_big)
                return None, f"row {row}: {column[row].as_py()} does not fit int64"
        return column.cast(pa.int64()), ""
    if pa.types.is_floating(actual):
        values = pc.if_else(pc.is_nan(column), pa.scalar(None, actual), column)  # NaN: unknown
        bad = pc.invert(pc.fill_null(pc.equal(pc.floor(values), values), True))
        bad = pc.or_(bad, pc.fill_null(pc.greater_equal(pc.abs(values), 2.0**63), False))
        if pc.any(bad).as_py():
            row = _first(bad)
            return None, f"row {row}: {column[row].as_py()!r} is not a whole number ({target} expected)"
        return values.cast(pa.int64(), safe=False), ""
    if _is_text(actual):
        return _parse_each(column, pa.int64(), _parse_whole, "a whole number")
    return None, f"type is {actual}, expected {target}"


def _to_id_lists(column: pa.Array) -> tuple[pa.Array | None, str]:
    actual = column.type
    if _is_text(actual):
        return _parse_each(column, ID_LIST, _parse_id_list, "a list of ids")
    if not (pa.types.is_list(actual) or pa.types.is_large_list(actual)):
        return None, f"type is {actual}, expected a list of ids"
    inner = actual.value_type
    if pa.types.is_integer(inner) or pa.types.is_null(inner):
        return column.cast(ID_LIST), ""
    values = pc.list_flatten(column)
    if pa.types.is_floating(inner):
        bad = pc.invert(pc.fill_null(pc.equal(pc.floor(values), values), False))
        if pc.any(bad).as_py():
            row = pc.list_parent_indices(column)[_first(bad)].as_py()
            value = values[_first(bad)].as_py()
            return None, f"row {row}: list<{inner}> holds ids that are not whole numbers, e.g. {value!r}"
        return column.cast(ID_LIST), ""
    if _is_text(inner):
        return _parse_each(column, ID_LIST, lambda ids: [_whole_id(v) for v in ids], "a list of ids")
    return None, f"type is {actual}, expected list<int64> or list<double>"


def _first(mask: pa.Array) -> int:
    return pc.index(mask, True).as_py()


def _parse_each(column: pa.Array, target: pa.DataType, parse, what: str) -> tuple[pa.Array | None, str]:
    out = []
    for row, value in enumerate(column.to_pylist()):
        try:
            out.append(None if value is None else parse(value))
        except (ValueError, TypeError):
            return None, f"row {row}: {value!r} is not {what} ({target} expected)"
    return pa.array(out, target), ""


def _parse_number(text: str) -> float | None:
    text = text.strip()
    if text.lower() in _NO_VALUE:
        return None
    return float(text)


def _parse_whole(text: str) -> int | None:
    text = text.strip()
    if text.lower() in _NO_VALUE:
        return None
    try:
        return int(text)
    except ValueError:
        number = float(text)
    if not number.is_integer() or abs(number) >= 2.0**63:
        raise ValueError(text)
    return int(number)


def _whole_id(value) -> int:
    if isinstance(value, bool) or value is None:
        raise ValueError(value)
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        if not value.is_integer():
            raise ValueError(value)
        return int(value)
    whole = _parse_whole(str(value))
    if whole is None:
        raise ValueError(value)
    return whole


def _parse_id_list(text: str) -> list[int]:
    """Ids written as text: a JSON list (`'[1, 2]'`, `'[]'`), or ids separated by commas or spaces."""
    text = text.strip()
    if text.lower() in _NO_VALUE:
        return []
    if text.startswith("["):
        items = json.loads(text)
        if not isinstance(items, list):
            raise ValueError(text)
    else:
        items = text.replace(",", " ").split()
    return [_whole_id(item) for item in items]


def resource_keys(column: pa.Array) -> tuple[pa.Array | None, str, str]:
    """resource_used as text: decimal resource ids, or the resource's name when a trace stores names. Unknown
    (-1, null, '', '[]') is null; a JSON list keeps its first resource (a warning says how many tasks listed
    several)."""
    actual = column.type
    if pa.types.is_integer(actual) or pa.types.is_floating(actual) or pa.types.is_null(actual):
        ids, problem = convert_wta_column(column, pa.int64())
        if problem:
            return None, problem, ""
        return pc.if_else(pc.less(ids, 0), pa.scalar(None, pa.int64()), ids).cast(pa.string()), "", ""
    if not _is_text(actual):
        return None, f"type is {actual}, expected an int64 resource id (or its text)", ""
    keys, several = [], 0
    for row, value in enumerate(column.to_pylist()):
        text = (value or "").strip()
        if text.startswith("["):
            try:
                items = json.loads(text)
            except json.JSONDecodeError:
                return None, f"row {row}: {value!r} is neither a resource id, a name nor a JSON list", ""
            if not isinstance(items, list):
                return None, f"row {row}: {value!r} is not a list of resources", ""
            several += len(items) > 1
            text = str(items[0]).strip() if items else ""
        keys.append(_resource_key(text))
    warning = f"{several} tasks list several resources; the first is kept" if several else ""
    return pa.array(keys, pa.string()), "", warning


def _resource_key(text: str) -> str | None:
    if text.lower() in _NO_VALUE:
        return None
    try:
        whole = _parse_whole(text)
    except ValueError:
        return text  # a resource name
    return None if whole is None or whole < 0 else str(whole)
