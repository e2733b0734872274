"""The allocation evaluation asset: Eager, Deferred and refine against the budget limit, plots in the UI."""

import dagster as dg
import pyarrow as pa

from allocate.catalog import default_catalog
from allocate.evaluate import Case, evaluate, parse_budgets, plot_png, summary, synthetic_cases
from allocate.generators import trace_workflows
from datasets.store import read_table
from pipelines.metadata import png_markdown
from pipelines.traces.assets import TraceDatasetResource


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


def trace_cases(dataset_root: str) -> list[Case]:
    """Every traced workflow of the dataset that has a task that ran, as workload ``traces`` (one
    repetition each)."""
    tasks, machines = (read_table(dataset_root, name).to_pandas() for name in ("tasks", "machines"))
    workflows = trace_workflows(tasks, machines)
    return [Case("traces", i, w) for i, w in enumerate(w for w in workflows if w.tasks)]


@dg.asset(group_name="allocate", kinds={"parquet"}, deps=["energy_traces"])
def allocation_evaluation(
    context: dg.AssetExecutionContext, config: AllocationEvaluationConfig, dataset: TraceDatasetResource
) -> dg.Output:
    """Makespan and cost of each allocator per workload and budget, relative to Deferred."""
    cases = list(synthetic_cases(config.workloads, config.repetitions, config.seed))
    if config.include_traces:
        cases += trace_cases(dataset.root)
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
        plots[f"plot_{workload}"] = png_markdown(plot_png(results, workload), workload)
    return dg.Output(
        pa.Table.from_pandas(results, preserve_index=False),
        metadata={
            "dagster/row_count": len(results),
            "workflows": len(cases),
            "summary": dg.MetadataValue.json(stats),
            **plots,
        },
    )
