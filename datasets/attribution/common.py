"""What every stage of the attribution shares: the result type and the diagnostics schema, the
engine's settings, array helpers (prefix sums over segment ranges) and an ordered map over threads.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime

import numpy as np
import pyarrow as pa

from datasets import kernels
from datasets.attribution.constants import US_PER_SECOND
from schemas.tables import UTC_TIMESTAMP
from schemas.validation import rows_by_chunk

DIAGNOSTICS = pa.schema(
    [
        pa.field("host_node", pa.string()),
        pa.field("device_kind", pa.string()),
        pa.field("device_id", pa.string()),
        pa.field("item", pa.string(), nullable=False),
        pa.field("value", pa.float64()),
        pa.field("detail", pa.string()),
    ]
)


@dataclass(frozen=True)
class Attribution:
    task_energy: pa.Table
    node_energy_balance: pa.Table
    diagnostics: pa.Table = field(default_factory=DIAGNOSTICS.empty_table)


def _numpy(column: pa.ChunkedArray | pa.Array) -> np.ndarray:
    """The column in numpy: without a copy when it is one chunk without nulls (Arrow's combine_chunks copies
    even one chunk: 80 MB for 10M readings, up to 0.7 s of fresh memory on a busy machine)."""
    if isinstance(column, pa.ChunkedArray):
        column = column.chunk(0) if column.num_chunks == 1 else column.combine_chunks()
    return column.to_numpy(zero_copy_only=False)


def _values_at(column: pa.ChunkedArray, rows: np.ndarray) -> list:
    """The column's values at sorted `rows`, read from the chunks that hold them (rows_by_chunk)."""
    return [
        value
        for chunk, _, positions in rows_by_chunk(column, rows)
        for value in chunk.take(pa.array(positions)).to_pylist()
    ]


def _microseconds(column: pa.ChunkedArray) -> np.ndarray:
    return _numpy(column.cast(UTC_TIMESTAMP).cast(pa.int64()))


def _moment(microseconds: int) -> str:
    return datetime.fromtimestamp(microseconds / US_PER_SECOND, UTC).isoformat()


def _codes(column: pa.ChunkedArray) -> tuple[np.ndarray, list]:
    if pa.types.is_dictionary(column.type):  # chunks read from files may each bring their own dictionary
        column = column.cast(column.type.value_type)
    encoded = column.combine_chunks().dictionary_encode()
    return _numpy(encoded.indices), encoded.dictionary.to_pylist()


def _diagnostic(item: str, value: float | None, detail: str | None = None, key=(None, None, None)) -> dict:
    host_node, device_kind, device_id = key
    return {
        "host_node": host_node,
        "device_kind": device_kind,
        "device_id": device_id,
        "item": item,
        "value": value,
        "detail": detail,
    }


def _cumulative(values: np.ndarray) -> np.ndarray:
    return kernels.cumulative(np.ascontiguousarray(values, dtype=float))


def _running(lo: np.ndarray, hi: np.ndarray, weights: np.ndarray, points: int) -> np.ndarray:
    """Per segment, the sum of the weights of the ranges [lo, hi) of grid points that hold it.

    Summed with compensation: the sum must stay the sum of the ranges holding the segment, not keep crumbs
    of large ranges that ended before it."""
    return kernels.running(lo, hi, np.ascontiguousarray(weights, dtype=float), points)


@dataclass(frozen=True)
class _Prefix:
    """Compensated prefix sums of per-segment values: sums over ranges of segments to ~100 bits, so a price
    that is huge where little draws does not swallow the small ones after it."""

    high: np.ndarray
    low: np.ndarray

    def between(self, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
        return (self.high[hi] - self.high[lo]) + (self.low[hi] - self.low[lo])


def _holding(lo: np.ndarray, hi: np.ndarray, points: int) -> np.ndarray:
    """Per segment, how many of the ranges [lo, hi) of grid points hold it (counted in integers: exact)."""
    return kernels.holding(lo, hi, points)


def _range_max(values: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """max(values[lo:hi]) per range (NaN when empty)."""
    return kernels.range_max(np.ascontiguousarray(values, dtype=float), lo, hi)


@dataclass(frozen=True)
class _Settings:
    idle_policy: str
    window_us: int
    fitted: bool
    share: str
    idle_power_watts: dict[tuple[str, str], float]
    skew_tolerance_seconds: float
    correct_skew: bool


def _in_order(work, items: list, threads: int) -> Iterator:
    """work(item) for each item, on `threads` threads, yielded in the items' order.

    The compiled kernels and numpy's array loops release the GIL, so nodes attribute side by side; at most
    2 x threads results wait at a time, so memory stays that of a few nodes."""
    if threads <= 1 or len(items) <= 1:
        yield from map(work, items)
        return
    from collections import deque
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(threads, thread_name_prefix="jouletrace-attribute") as pool:
        pending: deque = deque()
        for item in items:
            pending.append(pool.submit(work, item))
            if len(pending) >= 2 * threads:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()
