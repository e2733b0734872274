"""build_training_table on the sample world's trace dataset: rows, targets, modes and joined features."""

import numpy as np
import pandas as pd
import pytest

from models.errors import ModelInputError
from models.features import AFTER_RUN_FEATURES, MIN_COVERAGE, build_training_table

KEYS = ["workflow_uid", "task_id", "device_kind"]
USAGE_COLUMNS = set(AFTER_RUN_FEATURES)


def _ran(tables) -> pd.DataFrame:
    tasks = tables["tasks"]
    return tasks[(tasks["phase"] == "Succeeded") & (tasks["runtime_seconds"] > 0)]


def _expected_device_rows(tables) -> pd.DataFrame:
    """task_energy summed per (task, device kind), for succeeded tasks whose rows all covered the task."""
    energy = (
        tables["task_energy"]
        .groupby(KEYS)
        .agg(energy_joules=("energy_joules", "sum"), coverage=("coverage", "min"))
    )
    energy = energy[energy["coverage"] >= MIN_COVERAGE].reset_index()
    ran = _ran(tables)[["workflow_uid", "task_id", "runtime_seconds"]]
    return energy.merge(ran, on=["workflow_uid", "task_id"])


@pytest.fixture(scope="module")
def energy_table(world):
    return build_training_table(world.tables, "energy_joules", "before-run")


def test_energy_rows_are_one_per_task_and_device_kind(world, energy_table):
    frame = energy_table.frame
    assert not frame.duplicated(KEYS).any()
    expected = _expected_device_rows(world.tables)
    assert len(expected) > 300
    got = frame.set_index(KEYS).sort_index()
    want = expected.set_index(KEYS).sort_index()
    assert got.index.equals(want.index)
    np.testing.assert_allclose(got["energy_joules"], want["energy_joules"], rtol=1e-12)
    assert {"cpu_package", "dram"} <= set(frame["device_kind"])


def test_runtime_rows_are_one_per_task(world):
    table = build_training_table(world.tables, "runtime_seconds", "before-run")
    frame = table.frame
    ran = _ran(world.tables)
    assert "device_kind" not in frame or frame["device_kind"].isna().all()
    assert not frame.duplicated(["workflow_uid", "task_id"]).any()
    assert len(frame) == len(ran)
    merged = frame.merge(ran, on=["workflow_uid", "task_id"], suffixes=("", "_task"))
    np.testing.assert_array_equal(merged["runtime_seconds"], merged["runtime_seconds_task"])
    assert not {"device_kind", "devices_held", "task_device_type"} & set(table.features)


def test_before_run_features_hold_no_runtime_or_usage(energy_table):
    assert not USAGE_COLUMNS & set(energy_table.features)
    # every feature is a column of the rows
    assert set(energy_table.features) <= set(energy_table.frame.columns)
    for column in (
        "cpu_seconds",
        "avg_cpu_percent",
        "gpu_busy_seconds",
        "memory_peak_bytes",
        "written_bytes",
    ):
        assert column not in energy_table.frame.columns


def test_after_run_adds_runtime_and_usage(world, energy_table):
    after = build_training_table(world.tables, "energy_joules", "after-run")
    added = set(after.features) - set(energy_table.features)
    assert added == USAGE_COLUMNS
    assert set(energy_table.features) <= set(after.features)
    # the CPU seconds are the containers' counters: a task that ran for a while used some CPU
    cpu = after.frame.loc[after.frame["device_kind"] == "cpu_package", "cpu_seconds"]
    assert cpu.notna().mean() > 0.9 and (cpu.dropna() > 0).mean() > 0.9
    # a runtime target is never its own feature
    runtime = build_training_table(world.tables, "runtime_seconds", "after-run")
    assert "runtime_seconds" not in runtime.features
    assert (USAGE_COLUMNS - {"runtime_seconds"}) <= set(runtime.features)


def test_average_power_is_energy_over_runtime(world):
    frame = build_training_table(world.tables, "avg_power_watts", "before-run").frame
    np.testing.assert_allclose(frame["avg_power_watts"], frame["energy_joules"] / frame["runtime_seconds"])
    assert (frame["avg_power_watts"] > 0).all()


def _depth(task_id, parents_of) -> int:
    parents = parents_of[task_id]
    return 0 if not parents else 1 + max(_depth(p, parents_of) for p in parents)


def test_depth_and_fan_follow_the_tasks_parents_and_children(world, energy_table):
    tasks = world.tables["tasks"]
    frame = energy_table.frame
    # the deepest task: its chain of parents is longest
    deepest = frame.loc[frame["depth_level"].idxmax()]
    assert deepest["depth_level"] >= 3
    checked = 0
    for uid in frame["workflow_uid"].unique():
        own = tasks[tasks["workflow_uid"] == uid]
        parents_of = {
            t: [p for p in ps if p in set(own["task_id"])]
            for t, ps in zip(own["task_id"], own["parents"], strict=True)
        }
        rows = frame[frame["workflow_uid"] == uid].drop_duplicates("task_id")
        for row in rows.itertuples():
            task = own[own["task_id"] == row.task_id].iloc[0]
            assert row.fan_in == len(task["parents"])
            assert row.fan_out == len(task["children"])
            assert row.depth_level == _depth(row.task_id, parents_of)
            checked += 1
    assert checked == frame.drop_duplicates(["workflow_uid", "task_id"]).shape[0]
    # the DAGs have joins and forks, so the counts above are not all 0 or 1
    assert frame["fan_in"].max() >= 2 and frame["fan_out"].max() >= 2


def test_machine_columns_are_the_hosts_machines_row(world, energy_table):
    machines = world.tables["machines"].set_index("host_node")
    frame = energy_table.frame
    assert frame["host_node"].nunique() == len(machines)
    for row in frame.drop_duplicates("host_node").itertuples():
        machine = machines.loc[row.host_node]
        assert row.cpu_model == machine["cpu_model"]
        assert row.machine_sockets == machine["sockets"]
        assert row.machine_cores == machine["cores"]
        assert row.cpu_speed_mhz == machine["cpu_speed_mhz"]
        assert row.machine_memory_bytes == machine["memory_bytes"]
        assert row.machine_gpu_count == len(machine["gpu_models"])
        assert row.machine_fpga_count == len(machine["fpga_models"])
        if len(machine["gpu_models"]):
            assert row.gpu_model == machine["gpu_models"][0].removesuffix("-SHARED")
        else:
            assert pd.isna(row.gpu_model)
        if len(machine["fpga_models"]):
            assert row.fpga_model == machine["fpga_models"][0]
        else:
            assert pd.isna(row.fpga_model)
    # at least one machine of each accelerator kind, so both branches above ran
    assert (frame["machine_gpu_count"] > 0).any() and (frame["machine_fpga_count"] > 0).any()


def test_device_kind_filter_keeps_only_that_kind(world, energy_table):
    dram = build_training_table(world.tables, "energy_joules", "before-run", device_kind="dram").frame
    assert set(dram["device_kind"]) == {"dram"}
    everything = energy_table.frame
    assert len(dram) == (everything["device_kind"] == "dram").sum()


def test_an_unknown_device_kind_is_refused(world):
    with pytest.raises(ModelInputError, match="--device-kind 'tpu'.*cpu_package"):
        build_training_table(world.tables, "energy_joules", "before-run", device_kind="tpu")


def test_a_target_a_dataset_does_not_have_is_refused(world):
    with pytest.raises(ModelInputError, match="power_watts"):
        build_training_table(world.tables, "power_watts", "before-run")
