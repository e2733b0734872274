"""The scheduling evaluation asset on a small sample world's trace dataset, plus a generated workload."""

import dagster as dg
import pyarrow as pa

from pipelines.scheduling.assets import SchedulingEvaluationConfig, scheduling_evaluation
from pipelines.traces.assets import TraceDatasetResource


def test_asset_schedules_the_traced_workflows_and_shows_its_plots(tmp_path, sample_dataset):
    sample_dataset(tmp_path, 4, 11)
    config = SchedulingEvaluationConfig(workloads=["strassen"], repetitions=1)
    output = scheduling_evaluation(
        dg.build_asset_context(), config=config, dataset=TraceDatasetResource(root=str(tmp_path / "dataset"))
    )
    table = output.value
    assert isinstance(table, pa.Table)
    frame = table.to_pandas()
    assert frame["valid"].all() and output.metadata["all_valid"].value
    platforms = set(frame["platform"])
    assert platforms == {"dataset", "reference-9"}  # the dataset's own machines, and the reference platform
    assert frame.loc[frame["platform"] == "dataset", "workflow"].nunique() == 4
    assert "strassen" in set(frame["family"])
    for key in ("pareto", "saved", "price"):
        assert "](data:image/png;base64,iVBORw0KGgo" in output.metadata[key].value
    assert "saved_within_5pct" in output.metadata["summary"].value
