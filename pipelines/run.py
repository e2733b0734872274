"""Materialize every asset and run every check in process, as `jouletrace demo` and `collect` do."""

from dataclasses import dataclass

import dagster as dg

from pipelines.build import build_definitions
from pipelines.settings import Settings


@dataclass(frozen=True)
class RunOutcome:
    success: bool
    checks_passed: int
    checks_failed: list[str]
    step_errors: list[str]


def run_config(
    since: str | None = None,
    until: str | None = None,
    idle_policy: str = "requests",
    split: str = "fitted",
    share: str | None = None,
    log_level: str = "INFO",
) -> dict:
    return {
        "ops": {
            "task_runs": {"config": {"since": since, "until": until}},
            "task_energy": {"config": {"idle_policy": idle_policy, "split": split, "share": share}},
        },
        "loggers": {"console": {"config": {"log_level": log_level}}},
    }


def materialize_everything(
    settings: Settings, config: dict, instance: dg.DagsterInstance, groups: tuple[str, ...] | None = None
) -> RunOutcome:
    """Every asset and check in one in-process run, or only those of `groups`."""
    defs = build_definitions(settings)
    graph = defs.resolve_asset_graph()
    selection = None
    if groups is not None:
        selection = list(dg.AssetSelection.groups(*groups).resolve(graph))
    job = defs.resolve_implicit_global_asset_job_def()
    result = job.execute_in_process(
        instance=instance, run_config=config, raise_on_error=False, asset_selection=selection
    )
    evaluations = result.get_asset_check_evaluations()
    failed = [f"{e.asset_key.to_user_string()}:{e.check_name}" for e in evaluations if not e.passed]
    errors = [
        f"{event.step_key}: {_root_message(event.event_specific_data.error)}"
        for event in result.get_step_failure_events()
    ]
    return RunOutcome(result.success, len(evaluations) - len(failed), failed, errors)


def _root_message(error) -> str:
    """The innermost cause of a step failure: the collector's own message, not Dagster's wrapping."""
    while error.cause is not None:
        error = error.cause
    return error.message.strip()
