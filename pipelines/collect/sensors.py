"""The collection job, its nightly schedule and the sensor that collects a workflow soon after it finishes.

The schedule collects the day that just ended and, as lookback, the day before it (one run), so that
runs that finished after their day was first collected are caught even without the sensor. The sensor
walks the Argo Server's finished workflows a few pages per tick (short ticks, dagster-io/dagster#32727)
and requests a run for every day a newly finished workflow touched: the day it started (which owns it)
and the days it ran into (where it is context for the split). Re-collecting a day overwrites it.

Sensor cursor (JSON): ``token`` where the listing continues next tick (None: start a new pass),
``watermark`` the latest finish seen by the last complete pass, ``pass_max`` the latest finish seen in
the pass under way, ``recent`` the uids that finished near the watermark. The listing is not a snapshot
across pages, so a run finishing during a pass may be missed by it: runs within ``OVERLAP`` of the
watermark are looked at again by the next pass, and ``recent`` keeps them from being requested twice.
"""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta

import dagster as dg

from pipelines.collect.partitions import range_tags
from pipelines.collect.resources import ArgoRunsResource

COLLECTION_JOB = "collect_traces"
# Runs that write days of the dataset carry this tag; deploy/dagster.yaml lets one run at a time.
COLLECTION_TAGS = {"jouletrace/stage": "collection"}
# The nightly run also collects this many days before yesterday again.
SCHEDULE_LOOKBACK_DAYS = 1
SENSOR_INTERVAL_SECONDS = 60
PAGE_SIZE = 200
PAGES_PER_TICK = 5
OVERLAP = timedelta(minutes=10)
# With no cursor yet, the sensor starts this far back; older days are a backfill's work (from the UI's
# partitions view, several days per run), not one run request each.
FIRST_TICK_LOOKBACK = timedelta(days=1)


def collection_job() -> dg.UnresolvedAssetJobDefinition:
    """Collection and attribution of some days: the `collect` and `traces` groups (partitioned by day)."""
    return dg.define_asset_job(
        COLLECTION_JOB,
        selection=dg.AssetSelection.groups("collect", "traces"),
        tags=COLLECTION_TAGS,
        description="Collect the runs of some days from Argo and the power readings, attribute their "
        "energy and write those days of the trace dataset.",
    )


def scheduled_days(tick: datetime, first_day: date) -> dg.PartitionKeyRange:
    """The days a tick at `tick` collects: yesterday and the lookback days before it (not before the
    first partition)."""
    last = tick.astimezone(UTC).date() - timedelta(days=1)
    first = max(last - timedelta(days=SCHEDULE_LOOKBACK_DAYS), first_day)
    return dg.PartitionKeyRange(first.isoformat(), max(first, last).isoformat())


def collection_schedule(
    job: dg.UnresolvedAssetJobDefinition, cron: str, first_day: date
) -> dg.ScheduleDefinition:
    """Every night (`cron`, UTC): the day that ended and the lookback before it, as one run."""

    @dg.schedule(
        name="nightly_collection",
        cron_schedule=cron,
        execution_timezone="UTC",
        job=job,
        description=f"Collects yesterday and the {SCHEDULE_LOOKBACK_DAYS} day(s) before it in one run.",
    )
    def _schedule(context: dg.ScheduleEvaluationContext) -> dg.RunRequest:
        days = scheduled_days(context.scheduled_execution_time, first_day)
        return dg.RunRequest(run_key=f"nightly {days.start}..{days.end}", tags=range_tags(days))

    return _schedule


def _parse(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value).astimezone(UTC) if value else None


def touched_days(summary: dict, first_day: date, today: date) -> list[str]:
    """The days (partition keys) from a run's start to its finish, within the partitions."""
    finished = _parse(summary["finished_at"])
    started = _parse(summary.get("started_at")) or finished
    day, last = max(started.date(), first_day), min(finished.date(), today)
    days = []
    while day <= last:
        days.append(day.isoformat())
        day += timedelta(days=1)
    return days


def sensor_tick(
    argo: ArgoRunsResource, cursor: str | None, first_day: date, now: datetime
) -> tuple[dict[str, str], str]:
    """One tick at `now`: {day: run key} of the days to collect, and the new cursor."""
    state = json.loads(cursor) if cursor else {"watermark": (now - FIRST_TICK_LOOKBACK).isoformat()}
    today = now.astimezone(UTC).date()
    watermark = _parse(state.get("watermark"))
    pass_max = _parse(state.get("pass_max"))
    recent: dict[str, str] = dict(state.get("recent") or {})
    token = state.get("token")
    new: list[dict] = []
    for _ in range(PAGES_PER_TICK):
        page, token = argo.finished_page(token, PAGE_SIZE)
        for summary in page:
            finished = _parse(summary["finished_at"])
            pass_max = finished if pass_max is None else max(pass_max, finished)
            if summary["uid"] in recent or (watermark is not None and finished <= watermark - OVERLAP):
                continue
            new.append(summary)
            recent[summary["uid"]] = summary["finished_at"]
        if token is None:
            watermark, pass_max = pass_max or watermark, None
            break
    if watermark is not None:
        recent = {uid: at for uid, at in recent.items() if _parse(at) > watermark - OVERLAP}
    latest: dict[str, str] = {}
    for summary in new:
        for day in touched_days(summary, first_day, today):
            latest[day] = max(latest.get(day, ""), summary["finished_at"])
    cursor_out = {
        "token": token,
        "watermark": watermark.isoformat() if watermark else None,
        "pass_max": pass_max.isoformat() if pass_max else None,
        "recent": recent,
    }
    return {day: f"{day} finished-by {at}" for day, at in sorted(latest.items())}, json.dumps(cursor_out)


def finished_runs_sensor(job: dg.UnresolvedAssetJobDefinition, first_day: date) -> dg.SensorDefinition:
    """Requests the collection of every day a newly finished Argo workflow touched."""

    @dg.sensor(
        name="finished_argo_runs",
        job=job,
        minimum_interval_seconds=SENSOR_INTERVAL_SECONDS,
        description="Collects the days of newly finished Argo workflows (a few pages of the listing per "
        "tick; the cursor keeps the place).",
    )
    def _sensor(context: dg.SensorEvaluationContext, argo: ArgoRunsResource) -> dg.SensorResult:
        keys, cursor = sensor_tick(argo, context.cursor, first_day, datetime.now(UTC))
        if keys:
            context.log.info(f"finished runs touch {len(keys)} day(s): {', '.join(keys)}")
        return dg.SensorResult(
            run_requests=[dg.RunRequest(run_key=key, partition_key=day) for day, key in keys.items()],
            cursor=cursor,
        )

    return _sensor
