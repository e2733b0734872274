"""Trace assets: task energy and node energy balance -> the energy-trace dataset."""

import dagster as dg
import pyarrow as pa
import pyarrow.compute as pc

import schemas
from datasets.attribution import OPTION_NAMES, AttributionOptions, attribute, parse_idle_power
from datasets.reports import (
    balance_plot_png,
    coverage_by_device_kind,
    energy_plot_png,
    joules_by_device_kind,
    rows_by_split,
    top_task_types_markdown,
)
from datasets.storage import display_path
from datasets.store import restrict_to_days, storage_path, write_bytes_atomic, write_dataset
from pipelines.collect.partitions import run_days
from pipelines.metadata import png_markdown

_DEFAULTS = AttributionOptions()


class AttributionConfig(dg.Config):
    """AttributionOptions (datasets/attribution/options.py: meaning, defaults, checks) as Dagster run config;
    tests/pipelines/test_attribution_options.py checks that the two hold the same fields and defaults.
    idle_power: "HOST:DEVICE_KIND=WATTS" per device, as on the command line (the options' idle_power_watts)."""

    idle_policy: str = _DEFAULTS.idle_policy
    split: str = _DEFAULTS.split
    share: str | None = _DEFAULTS.share
    window_seconds: float = _DEFAULTS.window_seconds
    idle_power: list[str] = []
    skew_tolerance_seconds: float = _DEFAULTS.skew_tolerance_seconds
    correct_skew: bool = _DEFAULTS.correct_skew
    fast: bool = _DEFAULTS.fast
    threads: int | None = _DEFAULTS.threads

    def options(self) -> AttributionOptions:
        values = {name: value for name, value in self.__dict__.items() if name != "idle_power"}
        return AttributionOptions(**values, idle_power_watts=dict(map(parse_idle_power, self.idle_power)))

    @classmethod
    def from_options(cls, options: AttributionOptions) -> dict:
        """The run config of task_energy that gives `options`."""
        values = {name: getattr(options, name) for name in OPTION_NAMES if name != "idle_power_watts"}
        idle = [f"{host}:{kind}={watts!r}" for (host, kind), watts in options.idle_power_watts.items()]
        return {**values, "idle_power": idle}


class TraceDatasetResource(dg.ConfigurableResource):
    """Root folder of the hive-partitioned energy-trace dataset."""

    root: str


@dg.multi_asset(
    outs={
        "task_energy": dg.AssetOut(
            description="Energy per task and device (`task_energy`).", kinds={"parquet"}
        ),
        "node_energy_balance": dg.AssetOut(
            description="Per node, device and window: measured = attributed + unattributed.",
            kinds={"parquet"},
        ),
    },
    group_name="traces",
)
def task_energy(
    context: dg.AssetExecutionContext,
    config: AttributionConfig,
    task_runs: pa.Table,
    power_samples: pa.Table,
    machines: pa.Table,
    container_samples: pa.Table,
):
    result = attribute(
        task_runs,
        power_samples,
        machines,
        config.options(),
        containers=container_samples if container_samples.num_rows else None,
    )
    energy, balance = result.task_energy, result.node_energy_balance
    by_kind = joules_by_device_kind(energy)
    context.log.info(
        f"attributed {pc.sum(energy['energy_joules']).as_py() or 0.0:,.0f} J to "
        f"{len(set(energy['task_id'].to_pylist()))} tasks over {len(by_kind)} device kinds"
    )
    yield dg.Output(
        energy,
        output_name="task_energy",
        metadata={
            "dagster/row_count": energy.num_rows,
            "joules_by_device_kind": dg.MetadataValue.json(by_kind),
            "rows_by_split": dg.MetadataValue.json(rows_by_split(energy)),
            "coverage_by_device_kind": dg.MetadataValue.json(coverage_by_device_kind(energy, task_runs)),
            "top_task_types": dg.MetadataValue.md(top_task_types_markdown(energy, task_runs)),
            "idle_policy": config.idle_policy,
            "split": config.split,
            "share": config.share or ("usage" if container_samples.num_rows else "requests"),
        },
    )
    measured = pc.sum(balance["measured_joules"]).as_py() or 0.0
    attributed = pc.sum(balance["attributed_joules"]).as_py() or 0.0
    yield dg.Output(
        balance,
        output_name="node_energy_balance",
        metadata={
            "dagster/row_count": balance.num_rows,
            "measured_joules": measured,
            "attributed_joules": attributed,
            "attributed_fraction": attributed / measured if measured else 0.0,
            "node_balance": png_markdown(balance_plot_png(balance), "node energy balance"),
        },
    )


def with_workflow_energy(workflows: pa.Table, energy: pa.Table) -> pa.Table:
    """Workflows with energy_joules = the sum of their tasks' attributed energy over the meters that do not
    overlap (null if none)."""
    additive = energy.filter(pc.is_in(energy["device_kind"], pa.array(schemas.ADDITIVE_DEVICE_KINDS)))
    sums = additive.group_by("workflow_uid").aggregate([("energy_joules", "sum")])
    lookup = dict(zip(sums["workflow_uid"].to_pylist(), sums["energy_joules_sum"].to_pylist(), strict=True))
    values = pa.array([lookup.get(uid) for uid in workflows["workflow_uid"].to_pylist()], pa.float64())
    return workflows.set_column(workflows.schema.get_field_index("energy_joules"), "energy_joules", values)


@dg.asset(group_name="traces", kinds={"parquet"})
def energy_traces(
    context: dg.AssetExecutionContext,
    dataset: TraceDatasetResource,
    workflow_runs: pa.Table,
    task_runs: pa.Table,
    machines: pa.Table,
    power_samples: pa.Table,
    container_samples: pa.Table,
    task_energy: pa.Table,
    node_energy_balance: pa.Table,
) -> dg.MaterializeResult:
    """The energy-trace dataset: every table, hive-partitioned by date, raw readings kept. A run of some
    days writes those days' partitions only (the workflows that ran into them were read as context)."""
    tables = {
        "workflows": with_workflow_energy(workflow_runs, task_energy),
        "tasks": task_runs,
        "machines": machines,
        "power_samples": power_samples,
        "container_samples": container_samples,
        "task_energy": task_energy,
        "node_energy_balance": node_energy_balance,
    }
    days = context.partition_keys if run_days(context) is not None else None
    if days is not None:
        tables = restrict_to_days(tables, set(days))
    written = write_dataset(dataset.root, tables)
    root = storage_path(dataset.root)
    plot = energy_plot_png(tables["task_energy"], tables["tasks"])
    plot_path = write_bytes_atomic(plot, root / "plots" / "energy_by_task_type.png")
    rows = {name: table.num_rows for name, table in tables.items()}
    context.log.info(f"wrote dataset {root}: " + ", ".join(f"{k} {v} rows" for k, v in rows.items()))
    return dg.MaterializeResult(
        metadata={
            "root": dg.MetadataValue.path(display_path(root)),
            "days": dg.MetadataValue.json(days or "every recorded day"),
            "rows_written": dg.MetadataValue.json(rows),
            "files": sum(len(v) for v in written.values()),
            "joules_by_device_kind": dg.MetadataValue.json(joules_by_device_kind(tables["task_energy"])),
            "plot": dg.MetadataValue.path(display_path(plot_path)),
            "coverage_by_device_kind": dg.MetadataValue.json(
                coverage_by_device_kind(tables["task_energy"], tables["tasks"])
            ),
            "energy_by_task_type": png_markdown(plot, "energy by task type"),
        }
    )
