"""Schedules (S.json): which machine runs each task, from when to when, and the figures the simulator gave.

S.json is ``{"format": "jouletrace.schedule/1", "workflow", "platform", "algorithm", "parameters",
"makespan_seconds", "energy_joules", "busy_energy_joules", "idle_energy_joules", "cost",
"seconds_to_schedule", "assignments": [{"task_id", "machine_id", "start_seconds", "end_seconds"}]}``;
times are seconds from the start of the run. Only ``assignments`` is needed to replay one.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

SCHEDULE_FORMAT = "jouletrace.schedule/1"


class ScheduleError(ValueError):
    """An S.json that cannot be read as a schedule; the message names the entry and field."""


@dataclass(frozen=True)
class Assignment:
    task_id: str
    machine_id: str
    start_seconds: float
    end_seconds: float


@dataclass
class Schedule:
    algorithm: str
    assignments: list[Assignment]
    parameters: dict = field(default_factory=dict)
    seconds_to_schedule: float = 0.0
    workflow: str = ""
    platform: str = ""


def schedule_to_json(schedule: Schedule, figures: dict | None = None) -> dict:
    """S.json with the simulator's ``figures`` (makespan_seconds, energy_joules, ... cost) on top."""
    data: dict = {
        "format": SCHEDULE_FORMAT,
        "workflow": schedule.workflow,
        "platform": schedule.platform,
        "algorithm": schedule.algorithm,
        "parameters": dict(schedule.parameters),
    }
    data.update(figures or {})
    data["seconds_to_schedule"] = schedule.seconds_to_schedule
    data["assignments"] = [
        {
            "task_id": a.task_id,
            "machine_id": a.machine_id,
            "start_seconds": a.start_seconds,
            "end_seconds": a.end_seconds,
        }
        for a in sorted(schedule.assignments, key=lambda a: (a.start_seconds, a.machine_id, a.task_id))
    ]
    return data


def schedule_from_json(data: dict) -> Schedule:
    if not isinstance(data, dict) or not isinstance(data.get("assignments"), list):
        raise ScheduleError("a schedule file needs an `assignments` list at its top level")
    fmt = data.get("format", SCHEDULE_FORMAT)
    if fmt != SCHEDULE_FORMAT:
        raise ScheduleError(f"format is {fmt!r}; this version reads {SCHEDULE_FORMAT}")
    assignments = []
    for k, entry in enumerate(data["assignments"]):
        if not isinstance(entry, dict):
            raise ScheduleError(f"assignments[{k}]: must be an object")
        for key in ("task_id", "machine_id"):
            if not isinstance(entry.get(key), str):
                raise ScheduleError(f"assignments[{k}]: {key} must be a string")
        times = []
        for key in ("start_seconds", "end_seconds"):
            value = entry.get(key)
            if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
                raise ScheduleError(f"assignments[{k}] ({entry['task_id']}): {key} must be a number")
            times.append(float(value))
        assignments.append(Assignment(entry["task_id"], entry["machine_id"], *times))
    return Schedule(
        algorithm=str(data.get("algorithm", "unknown")),
        assignments=assignments,
        parameters=dict(data.get("parameters") or {}),
        seconds_to_schedule=float(data.get("seconds_to_schedule", 0.0)),
        workflow=str(data.get("workflow", "")),
        platform=str(data.get("platform", "")),
    )
