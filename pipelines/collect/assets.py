"""Collection assets: task runs (Argo + pods) -> machines -> power samples.

Kubernetes is optional: when its API cannot be read (`--kubernetes none`, no configuration, no access) or
the pods are gone, tasks keep what Argo recorded and take their requests from its templates, and machines
come from Prometheus' exporters or stay unknown. What was missing is in each asset's `missing` metadata,
which `jouletrace collect` prints as one line.
"""

from datetime import datetime, timedelta

import dagster as dg
import pyarrow as pa
import pyarrow.compute as pc

import schemas
from collectors.cluster.argo import workflows_to_tables
from collectors.cluster.kubernetes import fill_gpu_ids, nodes_to_machines, pods_to_table_rows
from collectors.cluster.prometheus_machines import complete_machines
from collectors.cluster.task_resources import complete_tasks, mark_unmapped
from pipelines.collect.partitions import DEFAULT_LOOKBACK_HOURS, window_of
from pipelines.collect.resources import (
    ArgoRunsResource,
    KubernetesResource,
    KubernetesUnavailable,
    PowerReadingsResource,
)

# Readings this long before the first and after the last task let idle power be observed.
READINGS_MARGIN = timedelta(minutes=10)
# Why Kubernetes was not read, as kept in a task's `reason`: the first line, this long at most.
REASON_CHARS = 200


def _why(exc: Exception) -> str:
    text = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
    return text if len(text) <= REASON_CHARS else text[: REASON_CHARS - 3] + "..."


class CollectionConfig(dg.Config):
    """How long after the end of the collected days a workflow may finish and still be read
    (pipelines/collect/partitions.py). Unpartitioned runs read every recorded run."""

    lookback_hours: float = DEFAULT_LOOKBACK_HOURS


def reading_window(tasks: pa.Table) -> tuple[datetime, datetime]:
    """Readings are needed from a margin before the first task start to a margin after the last end."""
    start, end = pc.min(tasks["started_at"]).as_py(), pc.max(tasks["finished_at"]).as_py()
    if start is None or end is None:
        raise ValueError("task_runs has no task with start and finish times: nothing to read power for")
    return start - READINGS_MARGIN, end + READINGS_MARGIN


@dg.multi_asset(
    outs={
        "workflow_runs": dg.AssetOut(
            description="One row per Argo workflow run (`workflows` table).",
            kinds={"parquet"},
            is_required=False,
        ),
        "task_runs": dg.AssetOut(
            description="One row per task attempt (`tasks` table): Argo nodes joined with their pods.",
            kinds={"parquet"},
            is_required=False,
        ),
    },
    group_name="collect",
)
def task_runs(
    context: dg.AssetExecutionContext,
    config: CollectionConfig,
    argo: ArgoRunsResource,
    kubernetes: KubernetesResource,
    power: PowerReadingsResource,
):
    """The workflows of the run's days and those that ran into them (context for the split); a day with
    no finished workflow materializes nothing, and the steps after it are skipped."""
    window = window_of(context, config.lookback_hours)
    if window is None:
        objects = argo.workflow_objects(None, None)
    else:
        objects = argo.workflow_objects(window.finished_since, window.finished_until)
    if not objects:
        context.log.info(f"no workflow finished in {window or 'the recorded runs'}: nothing to collect")
        return
    workflows, tasks = workflows_to_tables(objects, cluster=argo.cluster(), provenance=argo.provenance())
    listed = list(
        zip(workflows["namespace"].to_pylist(), workflows["workflow_name"].to_pylist(), strict=True)
    )
    pods, unread = None, None
    try:
        pods = [row for pod_list in kubernetes.pod_lists(listed) for row in pods_to_table_rows(pod_list)]
    except KubernetesUnavailable as exc:
        unread = _why(exc)
        context.log.info(f"pods not read ({unread}): tasks take their requests from Argo's templates")
    tasks, requested, gaps = complete_tasks(tasks, workflows, objects, pods, unread)
    tasks = fill_gpu_ids(tasks, workflows, power.gpu_ids_by_pod(*reading_window(tasks)))
    tasks = mark_unmapped(tasks, requested, gaps)
    missing = gaps.summary()
    ran = pc.sum(pc.is_valid(tasks["host_node"])).as_py()
    context.log.info(
        f"parsed {workflows.num_rows} workflows, {tasks.num_rows} tasks ({ran} ran), {len(pods or [])} pods"
    )
    phases = workflows.group_by("phase").aggregate([([], "count_all")]).to_pylist()
    yield dg.Output(
        workflows,
        output_name="workflow_runs",
        metadata={
            "dagster/row_count": workflows.num_rows,
            "phases": dg.MetadataValue.json({p["phase"]: p["count_all"] for p in phases}),
        },
    )
    yield dg.Output(
        tasks,
        output_name="task_runs",
        metadata={
            "dagster/row_count": tasks.num_rows,
            "tasks_that_ran": ran,
            "pods": len(pods or []),
            "missing": missing or "",
        },
    )


@dg.asset(group_name="collect", kinds={"parquet"})
def machines(
    context: dg.AssetExecutionContext,
    task_runs: pa.Table,
    argo: ArgoRunsResource,
    kubernetes: KubernetesResource,
    power: PowerReadingsResource,
):
    """Node hardware (`machines` table) from Kubernetes Node objects and their discovery labels; nodes the
    API does not describe (not readable, or the node is gone) and fields it leaves empty from the
    exporters in Prometheus (node_exporter, Kepler, DCGM), else unknown (null)."""
    provenance = argo.provenance()
    unread = None
    try:
        table = nodes_to_machines(kubernetes.node_list(), provenance=provenance)
    except KubernetesUnavailable as exc:
        unread = _why(exc)
        table = schemas.empty("machines")
    hosts = sorted({h for h in task_runs["host_node"].to_pylist() if h})
    listed = set(table["host_node"].to_pylist())
    incomplete = [r["host_node"] for r in table.to_pylist() if r["host_node"] in hosts and None in r.values()]
    described = []
    if set(hosts) - listed or incomplete:
        described = power.machines(
            [h for h in hosts if h not in listed or h in incomplete], *reading_window(task_runs), provenance
        )
    table, origin = complete_machines(table, hosts, described, provenance)
    missing = _machines_missing(unread, origin)
    context.log.info(f"{table.num_rows} machines" + (f"; {missing}" if missing else ""))
    gpus = sum(len(m) for m in table["gpu_models"].to_pylist())
    fpgas = sum(len(m) for m in table["fpga_models"].to_pylist())
    return dg.Output(
        table,
        metadata={
            "dagster/row_count": table.num_rows,
            "gpus": gpus,
            "fpgas": fpgas,
            "missing": missing or "",
        },
    )


def _machines_missing(unread: str | None, origin: dict[str, list[str]]) -> str | None:
    parts = []
    if origin["prometheus"]:
        parts.append(f"{len(origin['prometheus'])} from Prometheus' exporters")
    if origin["filled"]:
        parts.append(f"{len(origin['filled'])} completed from Prometheus")
    if origin["unknown"]:
        parts.append(f"{len(origin['unknown'])} unknown ({', '.join(origin['unknown'])})")
    text = f"machines: {', '.join(parts)}" if parts else ""
    if unread:
        text = f"nodes not read ({unread})" + (f", {text}" if text else "")
    return text or None


@dg.asset(group_name="collect", kinds={"parquet"})
def power_samples(
    context: dg.AssetExecutionContext, task_runs: pa.Table, machines: pa.Table, power: PowerReadingsResource
):
    """Raw power readings (`power_samples`) of every node over the window of the task runs."""
    start, end = reading_window(task_runs)
    nodes = sorted(set(machines["host_node"].to_pylist()))
    table = power.power_samples(nodes, start, end)
    series = table.group_by(["host_node", "device_kind", "device_id", "value_kind"]).aggregate(
        [([], "count_all")]
    )
    context.log.info(f"read {table.num_rows} readings in {series.num_rows} series from {len(nodes)} nodes")
    return dg.Output(
        table,
        metadata={
            "dagster/row_count": table.num_rows,
            "series": series.num_rows,
            "window_start": start.isoformat(),
            "window_end": end.isoformat(),
        },
    )


@dg.asset(group_name="collect", kinds={"parquet"})
def container_samples(
    context: dg.AssetExecutionContext, task_runs: pa.Table, machines: pa.Table, power: PowerReadingsResource
):
    """Per-container CPU seconds (`container_samples`) over the window of the task runs: the usage that
    splits a node's energy among co-located tasks. Empty when no usage source is configured."""
    start, end = reading_window(task_runs)
    table = power.container_samples(sorted(set(machines["host_node"].to_pylist())), start, end)
    pods = len(set(table["pod_uid"].to_pylist())) if table.num_rows else 0
    context.log.info(f"read {table.num_rows} container readings of {pods} pods")
    return dg.Output(table, metadata={"dagster/row_count": table.num_rows, "pods": pods})
