"""Materialize every asset and run every check in process, as `jouletrace demo` and `collect` do.

Dagster's console logs a failed step with its traceback; here each log record is one line (the traceback is
for `--debug`, `JOULETRACE_DEBUG=1`), and a failed step comes back as "step <name> failed: <message>".
"""

import logging
import sys
from dataclasses import dataclass

import dagster as dg

from pipelines.build import build_definitions, source_resources
from pipelines.cli_support import debugging
from pipelines.collect.partitions import DEFAULT_LOOKBACK_HOURS, days_between, days_of_workflows, range_tags
from pipelines.settings import Settings

LOG_FORMAT = "%(asctime)s - %(name)s - %(levelname)s - %(message)s"
# Errors whose message says it all: their class name is left out of the one line.
EXPECTED_ERRORS = frozenset(
    {"ValueError", "SchemaError", "FileNotFoundError", "ModelInputError", "ArrowInvalid", "PermissionError"}
)


@dataclass(frozen=True)
class RunOutcome:
    success: bool
    checks_passed: int
    checks_failed: list[str]
    step_errors: list[str]
    # Whether the trace dataset was written (not when no workflow finished in the days).
    dataset_written: bool


def run_config(
    idle_policy: str = "requests",
    split: str = "fitted",
    share: str | None = None,
    log_level: str = "INFO",
    lookback_hours: float = DEFAULT_LOOKBACK_HOURS,
) -> dict:
    return {
        "ops": {
            "task_runs": {"config": {"lookback_hours": lookback_hours}},
            "task_energy": {"config": {"idle_policy": idle_policy, "split": split, "share": share}},
        },
        "loggers": {"console": {"config": {"log_level": log_level}}},
    }


class FirstLineFormatter(logging.Formatter):
    """A log record as its first line: a step failure without the traceback Dagster appends to it."""

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        return text.split("\n", 1)[0]


@dg.logger(
    config_schema={
        "log_level": dg.Field(str, is_required=False, default_value="INFO"),
        "name": dg.Field(str, is_required=False, default_value="dagster"),
    },
    description="Dagster's console log, one line per record (no tracebacks)",
)
def one_line_console(init_context) -> logging.Logger:
    config = init_context.logger_config
    logger = logging.Logger(config["name"], level=config["log_level"].upper())
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(FirstLineFormatter(LOG_FORMAT))
    logger.addHandler(handler)
    return logger


def materialize_everything(
    settings: Settings,
    config: dict,
    instance: dg.DagsterInstance,
    days: dg.PartitionKeyRange,
    groups: tuple[str, ...] | None = None,
) -> RunOutcome:
    """Every asset and check in one in-process run over `days` (the collection partitions), or only
    those of `groups`."""
    defs = build_definitions(settings)
    graph = defs.resolve_asset_graph()
    selection = None
    if groups is not None:
        selection = list(dg.AssetSelection.groups(*groups).resolve(graph))
    job = defs.resolve_implicit_global_asset_job_def()
    if not debugging():
        job = job.with_logger_defs({"console": one_line_console})
    result = job.execute_in_process(
        instance=instance,
        run_config=config,
        raise_on_error=False,
        asset_selection=selection,
        tags=range_tags(days),
    )
    evaluations = result.get_asset_check_evaluations()
    failed = [f"{e.asset_key.to_user_string()}:{e.check_name}" for e in evaluations if not e.passed]
    errors = [
        f"step {event.step_key} failed: {_root_message(event.event_specific_data.error)}"
        for event in result.get_step_failure_events()
    ]
    written = any(
        event.asset_key == dg.AssetKey("energy_traces") for event in result.get_asset_materialization_events()
    )
    return RunOutcome(result.success, len(evaluations) - len(failed), failed, errors, written)


def recorded_days(settings: Settings) -> dg.PartitionKeyRange:
    """The days the recorded runs started on (the sample world's, by default)."""
    argo = source_resources(settings)["argo"]
    span = days_of_workflows(argo.workflow_objects(None, None))
    if span is None:
        raise ValueError(f"{settings.recorded_dir}: no recorded workflow has started")
    return days_between(*span)


def _root_message(error) -> str:
    """The innermost cause of a step failure: the collector's own message, not Dagster's wrapping; one line,
    without the class name of an error whose message names what to fix."""
    while error.cause is not None:
        error = error.cause
    message = error.message.strip()
    prefix = f"{error.cls_name}: "
    if error.cls_name in EXPECTED_ERRORS and message.startswith(prefix):
        message = message[len(prefix) :]
    return " ".join(line.strip() for line in message.splitlines() if line.strip())
