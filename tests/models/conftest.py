"""Shared inputs of the learning-stage tests, each built once per session.

- ``world``: a small sample world (8 workflows, seed 3), attributed and written as a trace dataset.
- ``power_csv``: a plain CSV of node power readings made from that world's recorded sources: per node and
  30 s window, the RAPL package counters' joules over the seconds read (watts) and the node's containers'
  CPU-second counters over the same seconds (busy cores), with the node, its CPU model and the window's
  start time.
- ``csv_model`` / ``dataset_model``: models trained once on them and shared by the tests that read them.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from collectors.cluster.recorded import RecordedSources
from datasets.attribution import attribute
from datasets.sample_world import generate
from datasets.store import write_dataset
from models.tables import read_trace_dataset

WORLD_WORKFLOWS = 8
WORLD_SEED = 3
WINDOW = "30s"


@dataclass
class World:
    recorded: Path
    dataset: Path
    tables: dict[str, pd.DataFrame]


@pytest.fixture(scope="session")
def world(tmp_path_factory) -> World:
    out = tmp_path_factory.mktemp("models-world")
    generate(out / "recorded", n_workflows=WORLD_WORKFLOWS, seed=WORLD_SEED)
    sources = RecordedSources(out / "recorded")
    workflows, tasks = sources.workflows_and_tasks()
    machines, samples = sources.machines(), sources.power_samples()
    containers = sources.container_samples()
    result = attribute(tasks, samples, machines, containers=containers)
    write_dataset(
        out / "dataset",
        {
            "workflows": workflows,
            "tasks": tasks,
            "machines": machines,
            "task_energy": result.task_energy,
            "container_samples": containers,
        },
    )
    return World(out / "recorded", out / "dataset", read_trace_dataset(out / "dataset"))


def _package_joules(readings: pd.DataFrame) -> pd.Series:
    """Joules of all CPU packages per reading interval, indexed by the interval's end (wraps undone)."""
    packages = readings[
        (readings["device_kind"] == "cpu_package") & (readings["value_kind"] == "energy_counter_joules")
    ]
    per_package = []
    for _, one in packages.sort_values("timestamp").groupby("device_id"):
        step = one["value"].diff()
        step = step.where(step >= 0, step + one["counter_max_joules"])
        per_package.append(pd.Series(step.to_numpy(), index=one["timestamp"].to_numpy()))
    return pd.concat(per_package, axis=1).sum(axis=1, min_count=len(per_package)).dropna()


def _busy_seconds(counters: pd.DataFrame) -> pd.Series:
    """CPU-seconds of all containers per reading interval, indexed by the interval's end."""
    cpu = counters[counters["value_kind"] == "cpu_seconds_counter"].sort_values("timestamp")
    step = cpu.groupby("container_id")["value"].diff()
    return step.groupby(cpu["timestamp"].to_numpy()).sum()


def power_table(recorded: Path) -> pd.DataFrame:
    machines = RecordedSources(recorded).machines().to_pandas().set_index("host_node")
    frames = []
    for path in sorted((recorded / "power").glob("*.parquet")):
        node = path.stem
        joules = _package_joules(pd.read_parquet(path))
        busy = _busy_seconds(pd.read_parquet(recorded / "containers" / path.name))
        frame = pd.DataFrame({"joules": joules}).join(busy.rename("cpu_seconds"))
        frame["cpu_seconds"] = frame["cpu_seconds"].fillna(0.0)
        ends = pd.Series(frame.index, index=frame.index)
        frame["seconds"] = ends.diff().dt.total_seconds()
        frame = frame.dropna()
        # intervals across a gap in the readings say nothing about one instant's power
        frame = frame[frame["seconds"] < 3 * frame["seconds"].median()]
        windows = frame.resample(WINDOW).sum()
        windows = windows[windows["seconds"] >= 10]
        frames.append(
            pd.DataFrame(
                {
                    "timestamp": windows.index.strftime("%Y-%m-%dT%H:%M:%SZ"),
                    "host_node": node,
                    "cpu_model": machines.loc[node, "cpu_model"],
                    "busy_cores": windows["cpu_seconds"] / windows["seconds"],
                    "power_watts": windows["joules"] / windows["seconds"],
                }
            )
        )
    return pd.concat(frames, ignore_index=True)


@pytest.fixture(scope="session")
def power_csv(world, tmp_path_factory) -> Path:
    table = power_table(world.recorded)
    assert len(table) > 200 and table["host_node"].nunique() == 5
    assert np.isfinite(table["power_watts"]).all() and (table["power_watts"] > 0).all()
    path = tmp_path_factory.mktemp("power") / "power.csv"
    table.to_csv(path, index=False)
    return path


@dataclass
class CliRun:
    code: int
    out: Path


@pytest.fixture(scope="session")
def csv_model(power_csv, tmp_path_factory) -> CliRun:
    """`jouletrace train` on the power CSV with every default (random split, model chosen by CV)."""
    from pipelines.cli import main

    out = tmp_path_factory.mktemp("csv-model") / "model"
    code = main(["train", "--table", str(power_csv), "--target", "power_watts", "--out", str(out)])
    return CliRun(code, out)


@pytest.fixture(scope="session")
def dataset_model(world, tmp_path_factory):
    """models.api.train_dataset on the trace dataset: energy_joules, before-run, with the evaluation."""
    from models.api import train_dataset
    from models.options import TrainOptions

    out = tmp_path_factory.mktemp("dataset-model") / "model"
    options = TrainOptions(target="energy_joules", mode="before-run", model="linear", seed=4)
    run = train_dataset(world.dataset, options, out)
    return options, run


@pytest.fixture(scope="session")
def error_line():
    """The one error line a failed command wrote to stderr (a progress bar erased with \\r may precede it
    on the same line)."""

    def line_of(err: str, command: str) -> str:
        assert err.endswith("\n") and err.count("\n") == 1, err
        line = err.rstrip("\n").split("\r")[-1]
        assert line.startswith(f"jouletrace {command}: error: "), err
        return line

    return line_of
