"""Summaries people look at: joules per device kind, top task types, and PNG plots."""

from __future__ import annotations

import io

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
from matplotlib.figure import Figure

from schemas import ADDITIVE_DEVICE_KINDS


def joules_by_device_kind(task_energy: pa.Table) -> dict[str, float]:
    grouped = task_energy.group_by("device_kind").aggregate([("energy_joules", "sum")]).to_pylist()
    return {
        row["device_kind"]: float(row["energy_joules_sum"])
        for row in sorted(grouped, key=lambda r: r["device_kind"])
    }


def rows_by_split(task_energy: pa.Table) -> dict[str, int]:
    """How many task_energy rows each split rule made (the `split=` part of `method`; rows without
    readings under "no-readings"): shows at a glance whether usage series, busy-time counters or only requests
    and equal shares were there to split with."""
    splits = pc.struct_field(pc.extract_regex(task_energy["method"], r"split=(?P<split>[^;]+)"), "split")
    names = pc.fill_null(pc.if_else(pc.starts_with(task_energy["method"], "no-readings"), None, splits), "")
    counts = pc.value_counts(names).to_pylist()
    return {
        (row["values"] or "no-readings"): int(row["counts"])
        for row in sorted(counts, key=lambda r: (-r["counts"], r["values"]))
    }


def energy_by_task_type(task_energy: pa.Table, tasks: pa.Table) -> pd.DataFrame:
    """Joules per task type (template), summed over devices, most energy first."""
    energy = task_energy.select(["workflow_uid", "task_id", "device_kind", "energy_joules"]).to_pandas()
    kinds = tasks.select(["workflow_uid", "task_id", "template_name", "runtime_seconds"]).to_pandas()
    kinds["template_name"] = kinds["template_name"].fillna("(none)")
    per_kind = energy.pivot_table(
        index=["workflow_uid", "task_id"],
        columns="device_kind",
        values="energy_joules",
        aggfunc="sum",
        fill_value=0.0,
    )
    per_kind["energy_joules"] = per_kind[[c for c in per_kind.columns if c in ADDITIVE_DEVICE_KINDS]].sum(
        axis=1
    )
    frame = kinds.merge(per_kind.reset_index(), on=["workflow_uid", "task_id"], how="inner")
    columns = [c for c in per_kind.columns]
    table = frame.groupby("template_name").agg(
        tasks=("task_id", "count"),
        runtime_seconds=("runtime_seconds", "sum"),
        **{c: (c, "sum") for c in columns},
    )
    return table.sort_values("energy_joules", ascending=False)


def top_task_types_markdown(task_energy: pa.Table, tasks: pa.Table, n: int = 10) -> str:
    table = energy_by_task_type(task_energy, tasks).head(n)
    kinds = [c for c in table.columns if c not in ("tasks", "runtime_seconds", "energy_joules")]
    header = (
        "| task type | tasks | runtime (s) | energy (kJ) | " + " | ".join(f"{k} (kJ)" for k in kinds) + " |"
    )
    rule = "|---" * (4 + len(kinds)) + "|"
    rows = [
        f"| {name} | {int(r.tasks)} | {r.runtime_seconds:,.0f} | {r.energy_joules / 1e3:,.1f} | "
        + " | ".join(f"{r[k] / 1e3:,.1f}" for k in kinds)
        + " |"
        for name, r in table.iterrows()
    ]
    return "\n".join([header, rule, *rows])


def _png(fig) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
    return buffer.getvalue()


def energy_plot_png(task_energy: pa.Table, tasks: pa.Table, n: int = 12) -> bytes:
    """Stacked bars: energy of the top task types, split by device kind."""
    table = energy_by_task_type(task_energy, tasks).head(n)
    kinds = [c for c in table.columns if c not in ("tasks", "runtime_seconds", "energy_joules")]
    fig = Figure(figsize=(9, 4.5))
    ax = fig.subplots()
    bottom = np.zeros(len(table))
    for kind in kinds:
        values = table[kind].to_numpy() / 1e3
        ax.bar(table.index.astype(str), values, bottom=bottom, label=kind)
        bottom += values
    ax.set_ylabel("energy (kJ)")
    ax.set_title("Attributed energy of the task types using the most energy")
    ax.legend(title="device kind")
    ax.tick_params(axis="x", rotation=45)
    return _png(fig)


def accuracy_plot_png(errors: pd.DataFrame) -> bytes:
    """Attributed vs true energy per task (log-log), with the identity line."""
    fig = Figure(figsize=(5.5, 5))
    ax = fig.subplots()
    truth = errors["truth_joules"].to_numpy()
    attributed = errors["attributed_joules"].to_numpy()
    ax.loglog(truth, np.maximum(attributed, truth.min() / 10), ".", alpha=0.5, markersize=4)
    lims = [truth.min() * 0.8, truth.max() * 1.2]
    ax.plot(lims, lims, "k--", linewidth=0.8)
    ax.set_xlabel("ground-truth task energy (J)")
    ax.set_ylabel("attributed task energy (J)")
    median = float(np.median(errors["relative_error"]))
    ax.set_title(f"Attribution vs ground truth (median rel. error {median:.2%})")
    return _png(fig)


def coverage_by_device_kind(task_energy: pa.Table, tasks: pa.Table) -> dict[str, float]:
    """Per device kind, the fraction of the tasks that ran whose energy comes from readings (rows made
    with no readings, method "no-readings...", do not count); "any" is the fraction with at least one."""
    ran = tasks.filter(pc.is_valid(tasks["host_node"]))
    total = len(set(zip(ran["workflow_uid"].to_pylist(), ran["task_id"].to_pylist(), strict=True)))
    if total == 0:
        return {}
    read = task_energy.filter(pc.invert(pc.starts_with(task_energy["method"], "no-readings")))
    frame = read.select(["workflow_uid", "task_id", "device_kind"]).to_pandas().drop_duplicates()
    result = {
        kind: len(group[["workflow_uid", "task_id"]].drop_duplicates()) / total
        for kind, group in frame.groupby("device_kind")
    }
    result["any"] = len(frame[["workflow_uid", "task_id"]].drop_duplicates()) / total
    return {kind: round(share, 4) for kind, share in sorted(result.items())}


def balance_plot_png(balance: pa.Table) -> bytes:
    """Per node: measured energy as attributed (to tasks) + unattributed, stacked; what was not
    attributed is idle power nobody reserved, gaps or readings outside any task."""
    frame = balance.select(["host_node", "attributed_joules", "unattributed_joules"]).to_pandas()
    per_node = frame.groupby("host_node")[["attributed_joules", "unattributed_joules"]].sum() / 1e3
    per_node = per_node.sort_index()
    fig = Figure(figsize=(max(5.0, 0.6 * len(per_node) + 2), 4.5))
    ax = fig.subplots()
    names = per_node.index.astype(str)
    ax.bar(names, per_node["attributed_joules"], label="attributed to tasks")
    ax.bar(names, per_node["unattributed_joules"], bottom=per_node["attributed_joules"], label="unattributed")
    ax.set_ylabel("energy (kJ)")
    ax.set_title("Node energy balance: measured = attributed + unattributed")
    ax.legend()
    ax.tick_params(axis="x", rotation=45)
    return _png(fig)
