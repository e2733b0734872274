"""Every scheduler on many workflows: where energy-aware policies save energy and what makespan they pay.

Each case (a workflow on a platform) is scheduled by HEFT, min-energy, ECS, the weighted rule at eleven
weights, processor merging at three slacks, the energy-budget scheduler at two budgets between the
min-energy and HEFT energies, and budget-HEFT at HEFT's own cost when machines have prices. Every schedule
is replayed by the simulator. Figures are also given relative to HEFT's schedule of the same case.

Summary per workload family (medians over its workflows): the energy saved at no longer makespan than
HEFT's, the energy saved within 5% longer makespan, and the makespan paid per kilojoule saved by the
min-energy schedule.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from allocate.model import Workflow
from allocate.scheduling import schedulers
from allocate.scheduling.platform import Platform
from allocate.scheduling.problem import build_problem
from allocate.scheduling.workloads import WORKLOADS, generated_workflow, reference_platform

MAKESPAN_ALLOWANCE = 0.05  # "no more than 5% longer makespan" in the summary


@dataclass(frozen=True)
class EvaluationOptions:
    workloads: tuple[str, ...] = ()
    repetitions: int = 3
    tasks: int = 100
    seed: int = 0

    def __post_init__(self):
        unknown = [w for w in self.workloads if w not in WORKLOADS]
        if unknown:
            raise ValueError(f"--workloads: unknown {unknown[0]!r}; choose from {', '.join(WORKLOADS)}")
        if self.repetitions < 1 or self.tasks < 2:
            raise ValueError("--repetitions must be >= 1 and --tasks >= 2")


@dataclass
class Case:
    family: str
    workflow: Workflow
    platform: Platform


def gather_cases(
    options: EvaluationOptions,
    dataset: str | None = None,
    wfformat: Iterable[str] | None = None,
    platform_path: str | None = None,
) -> list[Case]:
    """Cases from a trace dataset, from WfFormat files, or from generated workloads."""
    from allocate.io import read_json
    from allocate.scheduling.platform import platform_from_json

    platform = platform_from_json(read_json(platform_path)) if platform_path else None
    if dataset:
        return dataset_cases(dataset, platform)
    if wfformat:
        from allocate.scheduling.build_workflow import workflow_from_wfformat

        platform = platform or reference_platform()
        cases = []
        for path in wfformat:
            workflow = workflow_from_wfformat(path)
            cases.append(Case(family_of(Path(path).stem), workflow, platform))
        return cases
    platform = platform or reference_platform()
    return [
        Case(family, generated_workflow(family, options.tasks, options.seed + r), platform)
        for family in options.workloads
        for r in range(options.repetitions)
    ]


def family_of(name: str) -> str:
    """A workflow's family: a WfInstances run's name up to its first dash ("montage-chameleon-dss-05d-001"
    -> "montage"), an Argo run's name without its generateName suffix ("genome-align-x7k2p" ->
    "genome-align")."""
    parts = name.lower().split("-")
    if len(parts) > 1 and len(parts[-1]) == 5 and parts[-1].isalnum() and not parts[-1].isdigit():
        return "-".join(parts[:-1])
    return parts[0] or name


def dataset_cases(root: str, platform: Platform | None) -> list[Case]:
    """One case per workflow of a trace dataset with a task that ran, on the dataset's machines (P.json
    fitted from its readings) unless a platform is given; the family is the workflow's name without the
    generateName suffix."""
    from allocate.scheduling.build_platform import platform_from_dataset
    from allocate.scheduling.build_workflow import workflow_from_dataset
    from allocate.scheduling.platform import platform_from_json
    from datasets.store import read_table

    platform = platform or platform_from_json(platform_from_dataset(root))
    workflows = read_table(root, "workflows").to_pandas().sort_values("workflow_uid")
    cases = []
    for uid, name in zip(workflows["workflow_uid"], workflows["workflow_name"], strict=True):
        try:
            workflow = workflow_from_dataset(root, uid, platform)
        except ValueError as exc:
            if "has no task that ran" in str(exc):
                continue
            raise
        cases.append(Case(family_of(str(name)), workflow, platform))
    return cases


def _policies(problem) -> list[schedulers.Result]:
    results = schedulers.pareto_sweep(problem)
    heft, least = results[0].simulation, results[1].simulation
    for fraction in (0.5, 0.8):
        budget = least.energy_joules + fraction * max(heft.energy_joules - least.energy_joules, 0.0)
        results.append(schedulers.energy_budget(problem, budget))
    if heft.cost > 0:  # HEFT's own cost: always met (HEFT itself is a fallback)
        results.append(schedulers.budget_heft(problem, heft.cost))
    return results


def _label(result: schedulers.Result) -> str:
    parameters = result.schedule.parameters
    name = result.schedule.algorithm
    if "weight" in parameters:
        return f"{name} w={parameters['weight']:g}"
    if "slack" in parameters:
        return f"{name} slack={parameters['slack']:g}"
    if "energy_budget_joules" in parameters:
        return f"{name} {parameters['energy_budget_joules']:,.0f} J"
    return name


def evaluate_case(case: Case) -> pd.DataFrame:
    problem = build_problem(case.workflow, case.platform)
    results = _policies(problem)
    front = {id(r) for r in schedulers.pareto_front(results)}
    heft = results[0].simulation
    rows = []
    for r in results:
        s = r.simulation
        rows.append(
            {
                "family": case.family,
                "workflow": case.workflow.name,
                "platform": case.platform.name,
                "tasks": len(problem),
                "algorithm": r.schedule.algorithm,
                "policy": _label(r),
                "parameters": json.dumps(r.schedule.parameters, sort_keys=True),
                "makespan_seconds": s.makespan_seconds,
                "energy_joules": s.energy_joules,
                "busy_energy_joules": s.busy_energy_joules,
                "idle_energy_joules": s.idle_energy_joules,
                "cost": s.cost,
                "machines_used": s.machines_used,
                "seconds_to_schedule": r.schedule.seconds_to_schedule,
                "valid": s.valid,
                "makespan_vs_heft": s.makespan_seconds / heft.makespan_seconds
                if heft.makespan_seconds
                else 1.0,
                "energy_vs_heft": s.energy_joules / heft.energy_joules if heft.energy_joules else 1.0,
                "on_pareto_front": id(r) in front,
            }
        )
    return pd.DataFrame(rows)


def evaluate_cases(cases: Iterable[Case]) -> pd.DataFrame:
    return pd.concat([evaluate_case(c) for c in cases], ignore_index=True)


def _best_saving(group: pd.DataFrame, allowance: float) -> float:
    within = group[group["makespan_vs_heft"] <= 1.0 + allowance + 1e-12]
    return float(1.0 - within["energy_vs_heft"].min())


def _per_kj(group: pd.DataFrame) -> float:
    heft = group[group["algorithm"] == "heft"].iloc[0]
    least = group[group["algorithm"] == "min-energy"].iloc[0]
    saved_kj = (heft["energy_joules"] - least["energy_joules"]) / 1000.0
    paid = least["makespan_seconds"] - heft["makespan_seconds"]
    return float(paid / saved_kj) if saved_kj > 0 else math.nan


def summary(results: pd.DataFrame) -> pd.DataFrame:
    """Per family: medians over workflows of what energy-aware policies save against HEFT."""
    rows = []
    for family, by_family in results.groupby("family", sort=True):
        per_workflow = [
            {
                "saved_at_equal_makespan": _best_saving(g, 0.0),
                "saved_within_5pct": _best_saving(g, MAKESPAN_ALLOWANCE),
                "makespan_seconds_per_kj_saved": _per_kj(g),
                "best_policy_within_5pct": g[g["makespan_vs_heft"] <= 1.0 + MAKESPAN_ALLOWANCE + 1e-12]
                .sort_values("energy_vs_heft")["policy"]
                .iloc[0],
                "min_energy_makespan_vs_heft": float(
                    g.loc[g["algorithm"] == "min-energy", "makespan_vs_heft"].iloc[0]
                ),
                "min_energy_energy_vs_heft": float(
                    g.loc[g["algorithm"] == "min-energy", "energy_vs_heft"].iloc[0]
                ),
            }
            for _, g in by_family.groupby("workflow", sort=True)
        ]
        frame = pd.DataFrame(per_workflow)
        rows.append(
            {
                "family": family,
                "workflows": len(frame),
                "median_tasks": float(by_family.groupby("workflow")["tasks"].first().median()),
                "saved_at_equal_makespan": float(frame["saved_at_equal_makespan"].median()),
                "saved_within_5pct": float(frame["saved_within_5pct"].median()),
                "min_energy_makespan_vs_heft": float(frame["min_energy_makespan_vs_heft"].median()),
                "min_energy_energy_vs_heft": float(frame["min_energy_energy_vs_heft"].median()),
                "makespan_seconds_per_kj_saved": float(frame["makespan_seconds_per_kj_saved"].median()),
                "most_frequent_best_policy": frame["best_policy_within_5pct"].mode().iloc[0],
                "all_valid": bool(by_family["valid"].all()),
            }
        )
    return pd.DataFrame(rows)


def summary_text(table: pd.DataFrame) -> str:
    lines = [
        f"{'family':<14}{'flows':>6}{'tasks':>7}{'saved@=':>9}{'saved@5%':>10}"
        f"{'minE ms':>9}{'minE E':>8}{'s/kJ':>9}  best policy within 5%"
    ]
    for r in table.itertuples():
        lines.append(
            f"{r.family:<14}{r.workflows:>6}{r.median_tasks:>7.0f}{r.saved_at_equal_makespan:>9.1%}"
            f"{r.saved_within_5pct:>10.1%}{r.min_energy_makespan_vs_heft:>9.2f}{r.min_energy_energy_vs_heft:>8.2f}"
            f"{r.makespan_seconds_per_kj_saved:>9.2f}  {r.most_frequent_best_policy}"
        )
    return "\n".join(lines)


def write_outputs(results: pd.DataFrame, out: Path) -> dict:
    """results.parquet, summary.json and the PNG plots in ``out`` (each written atomically)."""
    from allocate.io import write_json
    from allocate.scheduling.plots import plot_energy_saved, plot_pareto_fronts, plot_price_of_saving
    from datasets.store import write_parquet_atomic

    out.mkdir(parents=True, exist_ok=True)
    import pyarrow as pa

    table = summary(results)
    written = {
        "results": write_parquet_atomic(
            pa.Table.from_pandas(results, preserve_index=False), out / "results.parquet"
        ),
        "summary": write_json(
            {"families": json.loads(table.to_json(orient="records")), "allowance": MAKESPAN_ALLOWANCE},
            out / "summary.json",
        ),
        "pareto_png": plot_pareto_fronts(results, out / "pareto_fronts.png"),
        "saved_png": plot_energy_saved(table, out / "energy_saved.png"),
        "price_png": plot_price_of_saving(results, out / "makespan_per_joule_saved.png"),
    }
    written["summary_text"] = summary_text(table)
    return written
