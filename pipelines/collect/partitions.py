"""Collection by UTC day, the same days as the dataset's ``date=`` partitions.

Why daily: a partition is one ``date=YYYY-MM-DD`` folder of the dataset, so materializing a partition
replaces exactly that folder. Dagster recommends at most 100,000 partitions per asset and its UI slows
down past about 25,000 (dagster-io/dagster#10330, #21002): days stay near 365 a year, hours would pass
25,000 within three years, and one dynamic partition per Argo run would pass it within weeks on a busy
cluster. Today's partition exists (``end_offset=1``) so that a run finished this morning can be
collected now and again, overwriting, later.

A day owns the workflows that *started* on it (the dataset files a workflow, its tasks and their energy
under its start date). Collecting a day reads every workflow that *finished* from the start of the day to
its end plus a lookback (default 24 h), so that:

* a workflow that started late in the day and finished after midnight is caught (when the day is
  collected again, by the schedule's lookback or by the finished-run sensor);
* workflows that started earlier but ran into the day are read too, as context: their tasks share
  nodes with the day's own tasks, and leaving them out would hand their energy to the day's tasks.
  Only the day's own rows are written; the context rows belong to (and are written by) their own day.

Several days run as one run (a partition range, ``BackfillPolicy.multi_run``), which reads the sources
once for the whole range.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

import dagster as dg

from pipelines.io import RANGE_END_TAG, RANGE_START_TAG
from pipelines.settings import DEFAULT_COLLECTION_START

DEFAULT_LOOKBACK_HOURS = 24.0
# A backfill of past days runs this many days per run: one read of the sources and one start-up for a
# week, while a failed run only has a week to redo.
MAX_DAYS_PER_RUN = 7


def collection_days(start: str = DEFAULT_COLLECTION_START) -> dg.DailyPartitionsDefinition:
    """Daily UTC partitions from `start` (YYYY-MM-DD) to today."""
    return dg.DailyPartitionsDefinition(start_date=start, timezone="UTC", end_offset=1)


def collection_backfill_policy() -> dg.BackfillPolicy:
    return dg.BackfillPolicy.multi_run(max_partitions_per_run=MAX_DAYS_PER_RUN)


@dataclass(frozen=True)
class CollectionWindow:
    """The days [first_day, last_day] being collected and how far past them a run may finish."""

    first_day: date
    last_day: date
    lookback: timedelta = timedelta(hours=DEFAULT_LOOKBACK_HOURS)

    def __post_init__(self) -> None:
        if self.last_day < self.first_day:
            raise ValueError(f"collection window ends ({self.last_day}) before it starts ({self.first_day})")
        if self.lookback < timedelta(0):
            raise ValueError(f"lookback must not be negative, not {self.lookback}")

    @property
    def finished_since(self) -> datetime:
        """The start of the first day: runs that finished earlier are not read."""
        return datetime.combine(self.first_day, time(), UTC)

    @property
    def finished_until(self) -> datetime:
        """The end of the last day plus the lookback."""
        return datetime.combine(self.last_day + timedelta(days=1), time(), UTC) + self.lookback

    def __str__(self) -> str:
        days = self.first_day.isoformat()
        if self.last_day != self.first_day:
            days += f"..{self.last_day.isoformat()}"
        return f"{days} (runs finished until {self.finished_until.isoformat()})"


def run_days(context: dg.AssetExecutionContext) -> dg.PartitionKeyRange | None:
    """The days of a run (one partition or a range), None when the asset is not partitioned."""
    if not (context.has_partition_key or context.has_partition_key_range):
        return None
    return context.partition_key_range


def window_of(context: dg.AssetExecutionContext, lookback_hours: float) -> CollectionWindow | None:
    """The run's days, or None when the asset is not partitioned (then every recorded run is read)."""
    keys = run_days(context)
    if keys is None:
        return None
    return CollectionWindow(
        date.fromisoformat(keys.start), date.fromisoformat(keys.end), timedelta(hours=lookback_hours)
    )


def days_between(first: date, last: date) -> dg.PartitionKeyRange:
    return dg.PartitionKeyRange(first.isoformat(), last.isoformat())


def range_tags(keys: dg.PartitionKeyRange) -> dict[str, str]:
    """Run tags that make one run cover a range of days (as Dagster's own backfills do)."""
    return {RANGE_START_TAG: keys.start, RANGE_END_TAG: keys.end}


def started_day(obj: dict) -> date | None:
    """UTC day an Argo workflow object started on (status.startedAt), None if it never started."""
    value = (obj.get("status") or {}).get("startedAt")
    if not value:
        return None
    return datetime.fromisoformat(value).astimezone(UTC).date()


def days_of_workflows(objects: list[dict]) -> tuple[date, date] | None:
    """First and last start day of the given Argo workflow objects."""
    days = sorted(d for d in (started_day(o) for o in objects) if d is not None)
    return (days[0], days[-1]) if days else None


def days_of_window(since: str | None, until: str | None) -> dg.PartitionKeyRange | None:
    """The days covering [since, until) (ISO 8601 times with a zone); None when neither is given."""
    if since is None and until is None:
        return None
    if since is None or until is None:
        raise ValueError("give both --since and --until (or neither, to read every recorded run)")
    start, end = _utc(since, "--since"), _utc(until, "--until")
    if end <= start:
        raise ValueError(f"--until {until} is not after --since {since}")
    return days_between(start.date(), (end - timedelta(microseconds=1)).date())


def _utc(value: str, name: str) -> datetime:
    try:
        at = datetime.fromisoformat(value)
    except ValueError:
        raise ValueError(f"{name} {value!r} is not an ISO 8601 time, e.g. 2026-11-02T08:00:00Z") from None
    if at.tzinfo is None:
        raise ValueError(f"{name} {value!r} has no time zone; write it as UTC, e.g. 2026-11-02T08:00:00Z")
    return at.astimezone(UTC)
