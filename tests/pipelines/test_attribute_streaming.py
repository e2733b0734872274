"""`jouletrace attribute --samples DATASET`: a trace dataset is streamed node by node and day by day
(attribute_dataset) and gives what the command gives on the same tables as files."""

import numpy as np
import pyarrow.parquet as pq

from collectors.cluster.recorded import RecordedSources
from datasets.store import write_dataset
from pipelines.cli import main


def test_a_trace_dataset_streams_to_the_same_task_energy(tmp_path, capsys):
    world = tmp_path / "world"
    assert main(["sample", "--out", str(world), "--workflows", "4", "--seed", "5"]) == 0
    sources = RecordedSources(world)
    workflows, tasks = sources.workflows_and_tasks()
    readers = {"machines": sources.machines, "power_samples": sources.power_samples}
    tables = {"workflows": workflows, "tasks": tasks} | {name: read() for name, read in readers.items()}
    dataset = tmp_path / "dataset"
    write_dataset(dataset, tables)
    files = {name: tmp_path / f"{name}.parquet" for name in ("tasks", "power_samples", "machines")}
    for name, path in files.items():
        pq.write_table(tables[name], path)
    streamed, whole = tmp_path / "streamed.parquet", tmp_path / "whole.parquet"
    assert main(["attribute", "--samples", str(dataset), "--out", str(streamed)]) == 0
    command = ["attribute", "--tasks", str(files["tasks"]), "--samples", str(files["power_samples"])]
    assert main([*command, "--machines", str(files["machines"]), "--out", str(whole)]) == 0
    got, expected = pq.read_table(streamed), pq.read_table(whole)
    assert got.num_rows == expected.num_rows > 0
    assert got.select(["workflow_uid", "task_id", "device_id"]).equals(
        expected.select(["workflow_uid", "task_id", "device_id"])
    )
    for column in ("energy_joules", "uncertainty_joules"):
        np.testing.assert_allclose(got[column].to_numpy(), expected[column].to_numpy(), rtol=1e-9)
    capsys.readouterr()
    given_twice = [
        "attribute",
        "--samples",
        str(dataset),
        "--tasks",
        str(files["tasks"]),
        "--out",
        "x.parquet",
    ]
    assert main(given_twice) == 2
    assert "is a trace dataset, which holds its own tables: drop --tasks" in capsys.readouterr().err
    assert main(["attribute", "--samples", str(files["power_samples"]), "--out", "x.parquet"]) == 2
    assert "give --tasks TASKS, or --samples a trace dataset folder" in capsys.readouterr().err
