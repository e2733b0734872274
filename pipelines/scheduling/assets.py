"""The scheduling evaluation asset: every scheduler on the trace dataset's workflows, plots in the UI."""

import tempfile
from pathlib import Path

import dagster as dg
import pyarrow as pa

from allocate.scheduling.evaluate import (
    EvaluationOptions,
    dataset_cases,
    evaluate_cases,
    gather_cases,
    summary,
    summary_text,
    write_outputs,
)
from datasets.storage import local_copy
from pipelines.metadata import png_markdown
from pipelines.traces.assets import TraceDatasetResource

PLOTS = {
    "pareto_png": "Pareto fronts (makespan and energy relative to HEFT)",
    "saved_png": "Energy saved against HEFT per family",
    "price_png": "Makespan paid for the energy saved",
}


class SchedulingEvaluationConfig(dg.Config):
    """What to schedule besides the dataset's workflows (on its own machines, P.json fitted from its
    readings): generated workloads on the reference platform (docs/scheduling.md). The defaults keep
    materializing everything quick; ``jouletrace evaluate-scheduling`` runs larger sweeps."""

    workloads: list[str] = ["fft", "strassen", "random"]
    repetitions: int = 1
    tasks: int = 60
    seed: int = 0


@dg.asset(group_name="allocate", kinds={"parquet"}, deps=["energy_traces"])
def scheduling_evaluation(
    context: dg.AssetExecutionContext, config: SchedulingEvaluationConfig, dataset: TraceDatasetResource
) -> dg.Output:
    """Makespan, energy and cost of HEFT and the energy-aware schedulers on each traced and generated
    workflow; one row per schedule, with figures relative to HEFT's and the Pareto front marked."""
    with local_copy(dataset.root) as root:
        cases = dataset_cases(root, None)
    options = EvaluationOptions(tuple(config.workloads), config.repetitions, config.tasks, config.seed)
    if config.workloads:
        cases += gather_cases(options)
    context.log.info(f"scheduling {len(cases)} workflows with every scheduler")
    results = evaluate_cases(cases)
    with tempfile.TemporaryDirectory() as folder:
        written = write_outputs(results, Path(folder))
        plots = {
            key.removesuffix("_png"): png_markdown(written[key].read_bytes(), key, caption=title)
            for key, title in PLOTS.items()
        }
    families = summary(results)
    context.log.info("\n" + summary_text(families))
    return dg.Output(
        pa.Table.from_pandas(results, preserve_index=False),
        metadata={
            "dagster/row_count": len(results),
            "workflows": len(cases),
            "all_valid": bool(results["valid"].all()),
            "summary": dg.MetadataValue.md(families.to_markdown(index=False, floatfmt=".3f")),
            **plots,
        },
    )
