"""The accuracy the attribution issue asks for, checked against ground truth.

On the sample world (its truth is exact per task and device) and on generated edge cases
(datasets/accuracy.py): per-task error below 1% for tasks at least 20 reading intervals long, the stated
uncertainty interval holding the truth in at least 95% of the tasks of every length, and the balance closing.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from collectors.cluster.recorded import RecordedSources
from datasets.accuracy import LENGTH_MULTIPLES, Scenario, edge_case_errors, row_errors
from datasets.attribution import attribute, attribute_dataset
from datasets.sample_world import generate
from datasets.store import write_dataset
from schemas import ADDITIVE_DEVICE_KINDS

LENGTH_BINS = [0.0, 1.0, 5.0, 20.0, 100.0, np.inf]


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> dict:
    out = tmp_path_factory.mktemp("world")
    generate(out, seed=7)
    if not (Path(out) / "containers").exists():
        pytest.xfail("the sample world writes no per-container CPU counters yet (containers/)")
    sources = RecordedSources(out)
    workflows, tasks = sources.workflows_and_tasks()
    tables = {
        "workflows": workflows,
        "tasks": tasks,
        "machines": sources.machines(),
        "power_samples": sources.power_samples(),
        "container_samples": sources.container_samples(),
    }
    result = attribute(
        tasks, tables["power_samples"], tables["machines"], containers=tables["container_samples"]
    )
    return {
        "out": out,
        "tables": tables,
        "result": result,
        "truth": pq.read_table(out / "truth" / "task_energy.parquet"),
    }


def _length_in_intervals(world: dict) -> pd.Series:
    """Each task's runtime over its node's reading interval (median spacing of its RAPL readings)."""
    samples = world["tables"]["power_samples"].to_pandas()
    rapl = samples[samples["device_id"] == "package-0"]
    interval = rapl.groupby("host_node")["timestamp"].apply(lambda t: t.diff().dt.total_seconds().median())
    tasks = world["tables"]["tasks"].to_pandas().set_index(["workflow_uid", "task_id"])
    return tasks["runtime_seconds"] / tasks["host_node"].map(interval)


def test_tasks_of_twenty_intervals_are_within_one_percent(world):
    energy = world["result"].task_energy.to_pandas()
    energy = energy[energy["device_kind"].isin(ADDITIVE_DEVICE_KINDS)]
    truth = world["truth"].to_pandas()
    truth = truth[truth["device_kind"].isin(ADDITIVE_DEVICE_KINDS)]
    keys = ["workflow_uid", "task_id"]
    per_task = pd.DataFrame(
        {
            "attributed": energy.groupby(keys)["energy_joules"].sum(),
            "truth": truth.groupby(keys)["energy_joules"].sum(),
            "covered": energy.groupby(keys)["coverage"].min() == 1.0,
        }
    ).join(_length_in_intervals(world).rename("intervals"))
    error = (per_task["attributed"] - per_task["truth"]).abs() / per_task["truth"]
    long_tasks = per_task["intervals"] >= 20
    assert long_tasks.sum() > 200
    # Tasks whose readings have a gap (the agent was down for ~90 s) are out of the criterion: what the
    # node drew in the gap is known only in total. They stay within their stated uncertainty (below).
    assert error[long_tasks & per_task["covered"]].max() < 0.01
    assert error[long_tasks].median() < 0.001


def test_the_uncertainty_holds_the_truth_for_95_percent_of_every_length(world):
    rows = row_errors(world["result"].task_energy, world["truth"])
    rows = rows.join(_length_in_intervals(world).rename("intervals"), on=["workflow_uid", "task_id"])
    rows["bin"] = pd.cut(rows["intervals"], LENGTH_BINS)
    by_length = rows.groupby("bin", observed=True)["covered"].mean()
    assert (by_length >= 0.95).all(), by_length.to_dict()
    # Honest, not blindly wide: the interval is a small part of the energy for all but the shortest.
    assert rows["relative_uncertainty"].median() < 0.01


def test_the_balance_closes_for_every_node_device_and_window(world):
    balance = world["result"].node_energy_balance.to_pandas()
    energy = world["result"].task_energy.to_pandas()
    np.testing.assert_allclose(
        balance["measured_joules"], balance["attributed_joules"] + balance["unattributed_joules"], rtol=1e-12
    )
    assert (balance["unattributed_joules"] >= -1e-9 * balance["measured_joules"]).all()
    attributed = balance.groupby(["device_kind", "device_id"])["attributed_joules"].sum()
    rows = energy.groupby(["device_kind", "device_id"])["energy_joules"].sum().reindex(attributed.index)
    np.testing.assert_allclose(rows, attributed, rtol=1e-9)
    assert set(balance["host_node"]) == set(world["tables"]["power_samples"]["host_node"].to_pylist())


def test_streaming_the_world_as_a_dataset_gives_the_in_memory_result(world, tmp_path):
    write_dataset(tmp_path, world["tables"])
    streamed = attribute_dataset(tmp_path)
    for name in ("task_energy", "node_energy_balance"):
        expected, got = getattr(world["result"], name), getattr(streamed, name)
        assert got.num_rows == expected.num_rows
        for column in ("energy_joules", "uncertainty_joules", "measured_joules", "attributed_joules"):
            if column in expected.column_names:
                np.testing.assert_allclose(got[column].to_numpy(), expected[column].to_numpy(), rtol=1e-9)


@pytest.mark.parametrize(
    "scenario",
    [
        Scenario("counter", 1.0, colocated=True, usage=True),
        Scenario("counter", 15.0, colocated=False, usage=False),
        Scenario("counter", 5.0, colocated=True, usage=True, faults=True),
        Scenario("trapezoid", 1.0, colocated=False, usage=False),
        Scenario("trailing", 5.0, colocated=True, usage=True, tasks_per_length=12),
        Scenario("counter", 1.0, colocated=True, usage=True, device="gpu"),
        Scenario("trailing", 1.0, colocated=True, usage=True, device="gpu", tasks_per_length=12),
    ],
    ids=lambda scenario: scenario.name,
)
def test_edge_cases_short_and_long_tasks_counters_and_gauges(scenario):
    rows = edge_case_errors(scenario, seed=1)
    coverage = rows.groupby("length_multiple")["covered"].mean()
    assert set(coverage.index) == set(LENGTH_MULTIPLES)
    assert (coverage >= 0.95).all(), coverage.to_dict()
    assert (rows["energy_joules"] > 0).all(), (
        "a task shorter than the reading interval is never a silent zero"
    )
    if scenario.meter == "counter":
        long_tasks = rows[rows["length_multiple"] >= 20]
        assert long_tasks["relative_error"].quantile(0.95) < 0.01


def test_time_sliced_gpu_busy_time_splits_as_exactly_as_cpu_time():
    """Two lanes of tasks time-slice one GPU: with per-container busy-time counters the fitted watts per
    busy-second of each task type split it; without them an equal split among holders is all there is."""
    by_usage = edge_case_errors(Scenario("counter", 1.0, colocated=True, usage=True, device="gpu"), seed=2)
    equal = edge_case_errors(Scenario("counter", 1.0, colocated=True, usage=False, device="gpu"), seed=2)
    long_usage = by_usage[by_usage["length_multiple"] >= 20]["relative_error"]
    long_equal = equal[equal["length_multiple"] >= 20]["relative_error"]
    assert long_usage.median() < 0.001
    assert long_usage.quantile(0.95) < 0.01
    assert long_equal.median() > 0.05, "the busy-time counters are what makes the split right"
    for rows in (by_usage, equal):
        assert (rows.groupby("length_multiple")["covered"].mean() >= 0.95).all()


def test_gauge_noise_is_counted_per_interval_not_read_as_split_uncertainty():
    """A 1 s instantaneous gauge with 2% noise and co-located tasks with usage series: the interval still holds
    the truth for 95% of the tasks of every length, and for long tasks it is a few percent, not the ~17% it
    was when the fit's residual carried the gauge's own noise."""
    rows = edge_case_errors(Scenario("trapezoid", 1.0, colocated=True, usage=True), seed=2)
    assert (rows.groupby("length_multiple")["covered"].mean() >= 0.95).all()
    assert rows[rows["length_multiple"] >= 20]["relative_uncertainty"].median() < 0.08
