"""The allocation evaluation asset on the sample world's traced workflows."""

import dagster as dg
import pyarrow as pa

from collectors.cluster.recorded import RecordedSources
from datasets.store import write_dataset
from pipelines.allocate.assets import AllocationEvaluationConfig, allocation_evaluation, trace_cases
from pipelines.cli import main
from pipelines.traces.assets import TraceDatasetResource


def sample_world_dataset(tmp_path) -> str:
    """The sample world's workflows, tasks and machines as a trace dataset (no energy needed here)."""
    assert main(["sample", "--out", str(tmp_path / "world"), "--workflows", "4", "--seed", "5"]) == 0
    sources = RecordedSources(tmp_path / "world")
    workflows, tasks = sources.workflows_and_tasks()
    root = tmp_path / "dataset"
    write_dataset(root, {"workflows": workflows, "tasks": tasks, "machines": sources.machines()})
    return str(root)


def test_asset_evaluates_synthetic_and_traced_workflows_with_plots(tmp_path):
    root = sample_world_dataset(tmp_path)
    traced = trace_cases(root)
    assert traced and all(case.workload == "traces" for case in traced)
    config = AllocationEvaluationConfig(workloads=["strassen"], budgets="1,3,20", repetitions=1)
    output = allocation_evaluation(
        dg.build_asset_context(), config=config, dataset=TraceDatasetResource(root=root)
    )
    table = output.value
    assert isinstance(table, pa.Table)
    workloads = set(table["workload"].to_pylist())
    assert workloads == {"strassen", "traces"}
    assert table.num_rows == (1 + len(traced)) * 3 * 3
    for workload in workloads:
        assert output.metadata[f"plot_{workload}"].value.startswith(f"![{workload}](data:image/png;base64,")
    assert output.metadata["summary"].value["deferred"]["within_budget"] == 1.0
    assert sum(table["violations"].to_pylist()) == 0
