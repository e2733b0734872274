"""The allocation evaluation asset: Eager, Deferred and refine against the budget limit, plots in the UI."""

import base64

import dagster as dg
import pyarrow as pa

from allocate.catalog import default_catalog
from allocate.evaluate import Case, evaluate, parse_budgets, plot_png, summary, synthetic_cases
from allocate.generators import trace_workflows


class AllocationEvaluationConfig(dg.Config):
    """What to evaluate; budgets are multiples of each workflow's minimum budget (docs/allocation.md).

    The defaults are a short sweep so that materializing everything stays quick; the full seed experiment
    is ``budgets="1:50"`` (or ``jouletrace evaluate-allocation``)."""

    workloads: list[str] = ["fft", "strassen", "random"]
    budgets: str = "1,1.5,2,3,5,8,12,20,35,50"
    repetitions: int = 2
    seed: int = 0
    confidence: float = 0.9
    include_traces: bool = True


def trace_cases(task_runs: pa.Table, machines: pa.Table) -> list[Case]:
    """Every traced workflow that has a task that ran, as workload ``traces`` (one repetition each)."""
    workflows = trace_workflows(task_runs.to_pandas(), machines.to_pandas())
    return [Case("traces", i, w) for i, w in enumerate(w for w in workflows if w.tasks)]


@dg.asset(group_name="allocate", kinds={"parquet"})
def allocation_evaluation(
    context: dg.AssetExecutionContext,
    config: AllocationEvaluationConfig,
    task_runs: pa.Table,
    machines: pa.Table,
) -> dg.Output:
    """Makespan and cost of each allocator per workload and budget, relative to Deferred."""
    cases = list(synthetic_cases(config.workloads, config.repetitions, config.seed))
    if config.include_traces:
        cases += trace_cases(task_runs, machines)
    results = evaluate(
        cases,
        parse_budgets(config.budgets),
        default_catalog(),
        confidence=config.confidence,
        seed=config.seed,
    )
    stats = summary(results)
    context.log.info(
        f"evaluated {len(cases)} workflows x {results['budget_factor'].nunique()} budgets: "
        + ", ".join(f"{a} within budget {s['within_budget']:.0%}" for a, s in stats.items())
    )
    plots = {}
    for workload in results["workload"].unique():
        image = base64.b64encode(plot_png(results, workload)).decode()
        plots[f"plot_{workload}"] = dg.MetadataValue.md(f"![{workload}](data:image/png;base64,{image})")
    return dg.Output(
        pa.Table.from_pandas(results, preserve_index=False),
        metadata={
            "dagster/row_count": len(results),
            "workflows": len(cases),
            "summary": dg.MetadataValue.json(stats),
            **plots,
        },
    )
