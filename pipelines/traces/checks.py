"""Asset checks: every table matches the trace model, energies are non-negative, balances close."""

import dagster as dg
import pyarrow as pa
import pyarrow.compute as pc

import schemas

# asset name -> table of the trace model it holds
TABLE_OF_ASSET = {
    "workflow_runs": "workflows",
    "task_runs": "tasks",
    "machines": "machines",
    "power_samples": "power_samples",
    "container_samples": "container_samples",
    "task_energy": "task_energy",
    "node_energy_balance": "node_energy_balance",
}
# The balance must close within this fraction of the measured energy.
BALANCE_TOLERANCE = 1e-3


def _schema_check(asset: str, table_name: str) -> dg.AssetChecksDefinition:
    @dg.asset_check(
        asset=asset, name="schema_valid", blocking=True, description=f"matches the `{table_name}` schema"
    )
    def _check(value: pa.Table) -> dg.AssetCheckResult:
        problems = schemas.check(table_name, value, source=asset)
        return dg.AssetCheckResult(
            passed=not problems,
            metadata={
                "rows": value.num_rows,
                "problems": dg.MetadataValue.md("\n".join(f"- {p}" for p in problems) or "none"),
            },
        )

    return _check


schema_checks = [_schema_check(asset, table) for asset, table in TABLE_OF_ASSET.items()]


def negative_energy_rows(task_energy: pa.Table) -> int:
    bad = None
    for column in ("energy_joules", "dynamic_joules", "idle_joules", "uncertainty_joules"):
        mask = pc.fill_null(pc.less(task_energy[column], 0.0), False)
        bad = mask if bad is None else pc.or_(bad, mask)
    return int(pc.sum(bad).as_py() or 0) if bad is not None else 0


@dg.asset_check(asset="task_energy", blocking=True, description="no negative joules in any energy column")
def energies_non_negative(task_energy: pa.Table) -> dg.AssetCheckResult:
    bad = negative_energy_rows(task_energy)
    return dg.AssetCheckResult(passed=bad == 0, metadata={"negative_rows": bad, "rows": task_energy.num_rows})


def balance_problems(
    balance: pa.Table, task_energy: pa.Table, tolerance: float = BALANCE_TOLERANCE
) -> list[str]:
    """Where measured != attributed + unattributed, attributed > measured, or the per-device sums of
    task energy differ from what the balance says was attributed (all within `tolerance` of measured)."""
    problems = []
    frame = balance.to_pandas()
    slack = tolerance * frame["measured_joules"].abs().clip(lower=1.0)
    gap = (frame["measured_joules"] - frame["attributed_joules"] - frame["unattributed_joules"]).abs()
    for row in frame[gap > slack].head(5).itertuples():
        problems.append(
            f"{row.host_node}/{row.device_id} {row.window_start}: measured != attributed + unattributed"
        )
    for row in frame[frame["unattributed_joules"] < -slack].head(5).itertuples():
        problems.append(f"{row.host_node}/{row.device_id} {row.window_start}: attributed exceeds measured")
    per_device = frame.groupby(["device_kind", "device_id"])[["attributed_joules", "measured_joules"]].sum()
    tasks = task_energy.to_pandas().groupby(["device_kind", "device_id"])["energy_joules"].sum()
    joined = per_device.join(tasks.rename("task_joules"), how="outer").fillna(0.0)
    off = (joined["attributed_joules"] - joined["task_joules"]).abs() > tolerance * joined[
        "measured_joules"
    ].clip(lower=1.0)
    for key, row in joined[off].head(5).iterrows():
        problems.append(
            f"{key}: balance says {row.attributed_joules:.1f} J attributed, tasks hold {row.task_joules:.1f} J"
        )
    return problems


@dg.asset_check(
    asset="node_energy_balance",
    additional_ins={"task_energy": dg.AssetIn("task_energy")},
    blocking=True,
    description="measured = attributed + unattributed per node, device and window, within 0.1%",
)
def balance_closes(node_energy_balance: pa.Table, task_energy: pa.Table) -> dg.AssetCheckResult:
    problems = balance_problems(node_energy_balance, task_energy)
    measured = pc.sum(node_energy_balance["measured_joules"]).as_py() or 0.0
    attributed = pc.sum(node_energy_balance["attributed_joules"]).as_py() or 0.0
    return dg.AssetCheckResult(
        passed=not problems,
        metadata={
            "measured_joules": measured,
            "attributed_joules": attributed,
            "problems": dg.MetadataValue.md("\n".join(f"- {p}" for p in problems) or "none"),
        },
    )


checks = [*schema_checks, energies_non_negative, balance_closes]
