"""predict_on_machines: each task (and device kind) predicted on every machine that has what it needs."""

import numpy as np
import pandas as pd
import pytest

from models.api import dataset_rows, predict_dataset, predict_on_machines
from models.store import load_model
from pipelines.cli import main


@pytest.fixture(scope="module")
def what_if(dataset_model, world):
    _, run = dataset_model
    loaded = load_model(run.out_dir)
    rows = dataset_rows(loaded, world.tables).assign(row=lambda f: np.arange(len(f)))
    machines = world.tables["machines"]
    frame = predict_on_machines(loaded, rows, machines)
    return rows, machines, frame


def test_a_cpu_only_task_gets_every_machine(what_if):
    rows, machines, frame = what_if
    cpu_only = rows[
        (rows["gpu_count"] == 0)
        & (rows["fpga_count"] == 0)
        & rows["device_kind"].isin(["cpu_package", "dram"])
    ]
    assert len(cpu_only) > 100
    hosts = frame[frame["row"].isin(cpu_only["row"])].groupby("row")["host_node"].apply(set)
    assert len(hosts) == len(cpu_only)
    assert (hosts == set(machines["host_node"])).all()


def test_a_gpu_row_gets_only_machines_with_gpus(what_if):
    rows, machines, frame = what_if
    with_gpus = set(machines.loc[[len(m) > 0 for m in machines["gpu_models"]], "host_node"])
    assert with_gpus and with_gpus != set(machines["host_node"])
    gpu_rows = rows[rows["device_kind"] == "gpu"]
    assert len(gpu_rows) > 0
    hosts = frame[frame["row"].isin(gpu_rows["row"])].groupby("row")["host_node"].apply(set)
    assert len(hosts) == len(gpu_rows) and (hosts == with_gpus).all()
    # a task holding a GPU needs one on its CPU rows too
    holders = rows[(rows["gpu_count"] > 0) & (rows["device_kind"] != "gpu")]
    held = frame[frame["row"].isin(holders["row"])]
    assert len(holders) > 0 and set(held["host_node"]) <= with_gpus


def test_an_fpga_row_gets_only_machines_with_fpgas(what_if):
    rows, machines, frame = what_if
    with_fpgas = set(machines.loc[[len(m) > 0 for m in machines["fpga_models"]], "host_node"])
    fpga_rows = rows[rows["device_kind"] == "fpga"]
    assert len(fpga_rows) > 0
    assert set(frame.loc[frame["row"].isin(fpga_rows["row"]), "host_node"]) == with_fpgas


def test_ran_here_marks_the_machine_it_ran_on_once(what_if):
    rows, _, frame = what_if
    assert frame["ran_here"].dtype == bool
    per_row = frame.groupby("row")["ran_here"].sum()
    assert len(per_row) == len(rows) and (per_row == 1).all()
    here = frame[frame["ran_here"]].set_index("row").sort_index()
    assert (here["host_node"].to_numpy() == rows.set_index("row").sort_index()["host_node"].to_numpy()).all()


def test_the_machine_it_ran_on_gets_the_plain_prediction(what_if, dataset_model, world):
    rows, _, frame = what_if
    _, run = dataset_model
    plain = predict_dataset(run.out_dir, world.dataset)
    assert len(plain) == len(rows)
    here = frame[frame["ran_here"]].set_index("row").sort_index()
    for column in ("energy_joules_predicted", "energy_joules_lower", "energy_joules_upper"):
        np.testing.assert_allclose(here[column].to_numpy(), plain[column].to_numpy(), rtol=1e-9)
    # elsewhere the hardware differs, and so (for some rows) does the prediction
    elsewhere = frame[~frame["ran_here"]].merge(
        plain[["energy_joules_predicted"]].assign(row=np.arange(len(plain))), on="row", suffixes=("", "_here")
    )
    assert (
        ~np.isclose(elsewhere["energy_joules_predicted"], elsewhere["energy_joules_predicted_here"])
    ).any()


def test_the_command_writes_the_what_if_rows(dataset_model, world, what_if, tmp_path, capsys):
    _, run = dataset_model
    _, _, frame = what_if
    out = tmp_path / "what-if.parquet"
    argv = ["predict", "--model", str(run.out_dir), "--dataset", str(world.dataset), "--on-machines"]
    assert main([*argv, "--out", str(out)]) == 0
    written = pd.read_parquet(out)
    assert len(written) == len(frame)
    assert {
        "ran_here",
        "host_node",
        "energy_joules_predicted",
        "energy_joules_lower",
        "energy_joules_upper",
    } <= set(written.columns)
    assert f"{len(frame)} rows" in capsys.readouterr().out
