"""Trace assets: task energy and node energy balance -> the energy-trace dataset."""

import base64
from pathlib import Path

import dagster as dg
import pyarrow as pa
import pyarrow.compute as pc

import schemas
from datasets.attribution import attribute, parse_idle_power
from datasets.reports import energy_plot_png, joules_by_device_kind, rows_by_split, top_task_types_markdown
from datasets.traces import write_bytes_atomic, write_dataset


class AttributionConfig(dg.Config):
    """How readings become task energy (rules in docs/attribution.md). `share` None: by measured usage
    where container CPU counters exist, else by requests."""

    idle_policy: str = "requests"
    split: str = "fitted"
    share: str | None = None
    window_seconds: float = 3600.0
    skew_tolerance_seconds: float = 0.0
    correct_skew: bool = False
    # Configured idle power instead of the estimate from readings: "HOST:DEVICE_KIND=WATTS" (per device).
    idle_power: list[str] = []

    def idle_power_watts(self) -> dict[tuple[str, str], float] | None:
        return dict(parse_idle_power(item) for item in self.idle_power) if self.idle_power else None


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
        idle_policy=config.idle_policy,
        split=config.split,
        share=config.share,
        containers=container_samples if container_samples.num_rows else None,
        window_seconds=config.window_seconds,
        skew_tolerance_seconds=config.skew_tolerance_seconds,
        correct_skew=config.correct_skew,
        idle_power_watts=config.idle_power_watts(),
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
    """The energy-trace dataset: every table, hive-partitioned by date, raw readings kept."""
    tables = {
        "workflows": with_workflow_energy(workflow_runs, task_energy),
        "tasks": task_runs,
        "machines": machines,
        "power_samples": power_samples,
        "container_samples": container_samples,
        "task_energy": task_energy,
        "node_energy_balance": node_energy_balance,
    }
    written = write_dataset(dataset.root, tables)
    checked = schemas.validate_path(dataset.root)
    plot = energy_plot_png(task_energy, task_runs)
    plot_path = write_bytes_atomic(plot, Path(dataset.root) / "plots" / "energy_by_task_type.png")
    context.log.info(
        f"wrote dataset {dataset.root}: " + ", ".join(f"{k} {v} rows" for k, v in checked.items())
    )
    image = base64.b64encode(plot).decode()
    return dg.MaterializeResult(
        metadata={
            "root": dg.MetadataValue.path(str(Path(dataset.root).resolve())),
            "rows": dg.MetadataValue.json(checked),
            "files": sum(len(v) for v in written.values()),
            "joules_by_device_kind": dg.MetadataValue.json(joules_by_device_kind(task_energy)),
            "plot": dg.MetadataValue.path(str(plot_path.resolve())),
            "energy_by_task_type": dg.MetadataValue.md(
                f"![energy by task type](data:image/png;base64,{image})"
            ),
        }
    )
