"""Raw readings spooled to ``power_samples`` Parquet files, so attribution can re-check every counter wrap and
nothing depends on Prometheus having scraped."""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from collectors.meters.source import Reading
from schemas.kinds import ENERGY_COUNTER

if TYPE_CHECKING:
    import pyarrow as pa


def _file_time(unix_seconds: float) -> str:
    return datetime.fromtimestamp(unix_seconds, UTC).strftime("%Y%m%dT%H%M%S.%fZ")


class Spool:
    """Raw readings buffered in memory and written as one ``power_samples`` Parquet file per rotation.

    Arrow and the schemas (which pull in pandas, ~100 MB resident) are imported when the first file is
    written, so an agent without a spool does not load them for its own sake.
    """

    def __init__(self, folder: Path, host_node: str, rotate_seconds: float, rotate_rows: int):
        self.folder = Path(folder)
        self.host_node = host_node
        self.rotate_seconds = rotate_seconds
        self.rotate_rows = rotate_rows
        self._readings: list[Reading] = []
        self._next_write_monotonic: float | None = None  # set by the first reading of a file

    def add(self, readings: Sequence[Reading], now_monotonic: float) -> Path | None:
        """Buffer readings; write the buffer when the file is old or big enough. Returns the file written."""
        if not readings:
            return None
        if self._next_write_monotonic is None:
            self._next_write_monotonic = now_monotonic + self.rotate_seconds
        self._readings.extend(readings)
        due = now_monotonic >= self._next_write_monotonic or len(self._readings) >= self.rotate_rows
        return self.flush(now_monotonic) if due else None

    def table(self) -> pa.Table:
        """The buffer as a ``power_samples`` table."""
        import pyarrow as pa

        import schemas
        from schemas.tables import UTC_TIMESTAMP

        readings = self._readings
        timestamps_us = pa.array([round(r.unix_seconds * 1e6) for r in readings], pa.int64())
        return schemas.conform(
            "power_samples",
            {
                "host_node": [self.host_node] * len(readings),
                "device_kind": [r.meter.device_kind for r in readings],
                "device_id": [r.meter.device_id for r in readings],
                "timestamp": timestamps_us.cast(UTC_TIMESTAMP),
                "value": [r.value for r in readings],
                "value_kind": [r.meter.value_kind for r in readings],
                "counter_max_joules": [
                    r.meter.counter_max_joules if r.meter.value_kind == ENERGY_COUNTER else None
                    for r in readings
                ],
                "source": [r.meter.source for r in readings],
                "provenance": ["measured"] * len(readings),
            },
        )

    def flush(self, now_monotonic: float | None = None) -> Path | None:
        """Write the buffer to a new file (atomically). On failure keep it and retry one rotation later."""
        if not self._readings:
            return None
        start = min(r.unix_seconds for r in self._readings)
        end = max(r.unix_seconds for r in self._readings)
        host = re.sub(r"[^A-Za-z0-9._-]", "_", self.host_node)
        path = self.folder / f"power_samples-{host}-{_file_time(start)}-{_file_time(end)}.parquet"
        try:
            _write_atomic(self.table(), path)
        except OSError:
            if now_monotonic is not None:
                self._next_write_monotonic = now_monotonic + self.rotate_seconds
            raise
        self._readings = []
        self._next_write_monotonic = None
        return path


def _write_atomic(table: pa.Table, path: Path) -> None:
    """A temporary sibling renamed over `path`: a reader (or a crash) sees no file or the whole file."""
    import pyarrow.parquet as pq

    path.parent.mkdir(parents=True, exist_ok=True)
    staging = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        pq.write_table(table, staging)
        os.replace(staging, path)
    finally:
        staging.unlink(missing_ok=True)
