"""The seed experiment: Eager, Deferred and refine against the budget limit, per workload.

Budgets are in units of each workflow's minimum budget (the cheapest one-VM sequential schedule, summed
over sub-workflows times their provisioned executions): budget limit 1 is the least money with which
Deferred can promise to stay within budget, 50 is fifty times that. Reported per case: makespan and cost,
relative makespan and cost (each algorithm / Deferred on the same case), cost / budget, and the number of
violations ``check_result`` finds in the algorithm's R.json.
"""

from __future__ import annotations

import io
import json
import math
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pyarrow as pa
from matplotlib.figure import Figure

from allocate import generators
from allocate.check import check_result
from allocate.decompose import decompose
from allocate.model import Catalog, Workflow
from allocate.plan import ALGORITHMS, allocate_workflow, minimum_workflow_budget
from datasets.store import write_bytes_atomic, write_parquet_atomic

WORKLOADS = ("fft", "strassen", "random", "random-nd")
REFERENCE = "deferred"
COLORS = {"eager": "tab:red", "deferred": "tab:blue", "refine": "tab:green"}
BUDGET_TICKS = (1, 2, 5, 10, 20, 50)


@dataclass(frozen=True)
class Case:
    workload: str
    repetition: int
    workflow: Workflow


def synthetic_workflow(workload: str, repetition: int, seed: int) -> Workflow:
    """FFT on 16 points (95 tasks), Strassen (25), a 100-task daggen DAG, or 5 x 20-task DAGs with
    a branch and a loop; task costs drawn again for every repetition."""
    case_seed = seed * 1000 + repetition
    if workload == "fft":
        return generators.fft(16, seed=case_seed)
    if workload == "strassen":
        return generators.strassen(seed=case_seed)
    if workload == "random":
        return generators.random_dag(100, seed=case_seed)
    if workload == "random-nd":
        return generators.random_nondeterministic(seed=case_seed)
    raise ValueError(f"workload must be one of {WORKLOADS}, not {workload!r}")


def synthetic_cases(workloads: Iterable[str], repetitions: int, seed: int) -> Iterator[Case]:
    for workload in workloads:
        for repetition in range(repetitions):
            yield Case(workload, repetition, synthetic_workflow(workload, repetition, seed))


def parse_budgets(text: str) -> list[float]:
    """``1:50`` (every integer), ``1:50:0.5`` (with a step) or ``1,2,5,10``."""
    if ":" in text:
        parts = [float(p) for p in text.split(":")]
        if len(parts) not in (2, 3) or parts[0] <= 0 or parts[1] < parts[0]:
            raise ValueError(f"budgets {text!r}: give LOW:HIGH[:STEP] with 0 < LOW <= HIGH")
        step = parts[2] if len(parts) == 3 else 1.0
        if step <= 0:
            raise ValueError("the budget step must be > 0")
        count = math.floor((parts[1] - parts[0]) / step + 1e-9) + 1
        return [parts[0] + i * step for i in range(count)]
    values = [float(p) for p in text.split(",") if p.strip()]
    if not values or min(values) <= 0:
        raise ValueError(f"budgets {text!r}: give positive numbers")
    return values


def evaluate(
    cases: Iterable[Case],
    budget_factors: list[float],
    catalog: Catalog,
    algorithms: Iterable[str] = ALGORITHMS,
    confidence: float = 0.9,
    seed: int = 0,
) -> pd.DataFrame:
    algorithms = list(algorithms)
    rows = []
    for case in cases:
        subs = decompose(case.workflow, seed=seed)
        floor = minimum_workflow_budget(subs, catalog, confidence)
        for factor in budget_factors:
            for algorithm in algorithms:
                result = allocate_workflow(
                    case.workflow, catalog, factor * floor, algorithm, confidence, subs=subs
                )
                data = result.to_json()
                rows.append(
                    {
                        "workload": case.workload,
                        "workflow": case.workflow.name,
                        "repetition": case.repetition,
                        "tasks": len(case.workflow.tasks),
                        "sub_workflows": len(subs),
                        "budget_factor": factor,
                        "budget": data["budget"],
                        "minimum_budget": floor,
                        "algorithm": algorithm,
                        "makespan_seconds": data["makespan_seconds"],
                        "cost": data["cost"],
                        "within_budget": data["within_budget"],
                        "seconds_to_allocate": data["seconds_to_allocate"],
                        "violations": len(check_result(data, case.workflow)),
                    }
                )
    return with_relative(pd.DataFrame(rows))


def with_relative(results: pd.DataFrame) -> pd.DataFrame:
    """Add relative_makespan / relative_cost (to Deferred on the same case) and cost_over_budget."""
    keys = ["workload", "repetition", "budget_factor"]
    reference = results[results["algorithm"] == REFERENCE][[*keys, "makespan_seconds", "cost"]]
    merged = results.merge(reference, on=keys, how="left", suffixes=("", "_reference"))
    merged["relative_makespan"] = merged["makespan_seconds"] / merged["makespan_seconds_reference"]
    merged["relative_cost"] = merged["cost"] / merged["cost_reference"]
    merged["cost_over_budget"] = merged["cost"] / merged["budget"]
    return merged.drop(columns=["makespan_seconds_reference", "cost_reference"])


def summary(results: pd.DataFrame) -> dict:
    """Per algorithm: cases, share within budget, violations, and vs Deferred: faster / equal / slower."""
    out = {}
    for algorithm, rows in results.groupby("algorithm", sort=False):
        ratio = rows["relative_makespan"]
        out[algorithm] = {
            "cases": len(rows),
            "within_budget": float(rows["within_budget"].mean()),
            "violations": int(rows["violations"].sum()),
            "faster_than_deferred": float((ratio < 1 - 1e-9).mean()),
            "equal_to_deferred": float(((ratio >= 1 - 1e-9) & (ratio <= 1 + 1e-9)).mean()),
            "slower_than_deferred": float((ratio > 1 + 1e-9).mean()),
            "mean_relative_makespan": float(ratio.mean()),
            "max_cost_over_budget": float(rows["cost_over_budget"].max()),
            "mean_seconds_to_allocate": float(rows["seconds_to_allocate"].mean()),
        }
    return out


def plot_png(results: pd.DataFrame, workload: str) -> bytes:
    """Relative makespan and cost (to Deferred) and cost / budget against the budget limit (means over
    repetitions)."""
    rows = results[results["workload"] == workload]
    means = rows.groupby(["algorithm", "budget_factor"])[
        ["relative_makespan", "relative_cost", "cost_over_budget"]
    ].mean()
    fig = Figure(figsize=(15, 4.2))
    axes = fig.subplots(1, 3)
    panels = [
        ("relative_makespan", "makespan / Deferred's", False),
        ("relative_cost", "cost / Deferred's", False),
        ("cost_over_budget", "cost / budget", True),
    ]
    for ax, (column, label, with_reference) in zip(axes, panels, strict=True):
        for algorithm in means.index.get_level_values(0).unique():
            if algorithm == REFERENCE and not with_reference:
                continue
            series = means.loc[algorithm, column]
            ax.plot(series.index, series.to_numpy(), marker=".", label=algorithm, color=COLORS.get(algorithm))
        ax.axhline(1.0, color="grey", linewidth=0.8, linestyle="--")
        ax.set_xscale("log")
        ax.set_xticks(BUDGET_TICKS, [f"{t:g}" for t in BUDGET_TICKS])
        ax.set_xlabel("budget limit (x minimum budget, log scale)")
        ax.set_ylabel(label)
        ax.legend()
    low, high = int(rows["tasks"].min()), int(rows["tasks"].max())
    sizes = f"{low}" if low == high else f"{low}-{high}"
    fig.suptitle(f"{workload}: {rows['repetition'].nunique()} workflows of {sizes} tasks, mean over them")
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100, bbox_inches="tight")
    return buffer.getvalue()


def write_outputs(results: pd.DataFrame, out_dir: str | Path) -> dict[str, Path]:
    """results.parquet, summary.json and one <workload>.png per workload in ``out_dir``."""
    out = Path(out_dir)
    written = {
        "results": write_parquet_atomic(
            pa.Table.from_pandas(results, preserve_index=False), out / "results.parquet"
        )
    }
    text = json.dumps(summary(results), indent=1) + "\n"
    written["summary"] = write_bytes_atomic(text.encode(), out / "summary.json")
    for workload in results["workload"].unique():
        written[workload] = write_bytes_atomic(plot_png(results, workload), out / f"{workload}.png")
    return written
