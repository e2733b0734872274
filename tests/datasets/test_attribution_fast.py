"""The fast mode (datasets/attribution/fast.py) gives the exact mode's energies without its uncertainty terms:
checked against the exact mode on one node with a known truth, on the sample world (CPU zones, GPUs, FPGAs,
usage series, wraps, gaps), on an exclusive case where both equal the counter's energy, and where it does not
apply (the exact engine runs and says why)."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest
from hypothesis import HealthCheck, given, settings

from collectors.cluster.recorded import RecordedSources
from datasets.attribution import attribute
from datasets.sample_world import generate
from tests.datasets.test_attribution_properties import worlds
from tests.datasets.test_attribution_stages import START_US, node

KEYS = ["workflow_uid", "task_id", "device_kind", "device_id"]
ENERGY = ["energy_joules", "dynamic_joules", "idle_joules", "coverage", "samples"]


def modes(*args, **options):
    exact = attribute(*args, **options)
    fast = attribute(*args, fast=True, **options)
    return exact, fast


def joined(exact, fast):
    return exact.task_energy.to_pandas().merge(fast.task_energy.to_pandas(), on=KEYS, suffixes=("", "_fast"))


def mode_of(result) -> str:
    return next(row["detail"] for row in result.diagnostics.to_pylist() if row["item"] == "mode")


def test_one_node_gives_the_exact_energies_balance_and_rows():
    world = node()
    for split in ("fitted", "plain"):
        for idle_policy in ("requests", "time", "none"):
            exact, fast = modes(world.tasks, world.samples, split=split, idle_policy=idle_policy)
            assert mode_of(fast) == "fast"
            both = joined(exact, fast)
            assert len(both) == exact.task_energy.num_rows == fast.task_energy.num_rows
            for column in ENERGY:
                assert np.allclose(both[column + "_fast"], both[column], rtol=1e-9, atol=1e-6), column
            # The same rule, spelt the same, but for the mode.
            assert (both["method_fast"] == both["method"] + ";mode=fast").all()
            assert both["peak_power_watts_fast"].isna().all()
            # Exact task times (r = 0): no truncation to bound.
            assert (both["uncertainty_joules_fast"] == 0).all()
            balance = fast.node_energy_balance.to_pandas()
            assert np.isclose(balance["measured_joules"].sum(), world.counter_joules, rtol=1e-12)
            assert np.isclose(
                balance["attributed_joules"].sum(), both["energy_joules_fast"].sum(), rtol=1e-12
            )
            assert np.allclose(
                balance[["measured_joules", "attributed_joules"]],
                exact.node_energy_balance.to_pandas()[["measured_joules", "attributed_joules"]],
                rtol=1e-9,
            )
    # Fitted, the exact mode's split finds each type's watts per core: so does the fast one.
    _, fast_fit = modes(world.tasks, world.samples)
    fast_dynamic = fast_fit.task_energy.to_pandas().groupby("task_id")["dynamic_joules"].sum()
    assert np.allclose(fast_dynamic.to_numpy(), world.truth_dynamic_joules, rtol=0.02)


def test_an_exclusive_task_gets_the_counters_energy_in_both_modes():
    world = node()
    readings = START_US + np.rint((np.arange(1199) + 0.5) * 1e6).astype(np.int64)
    start, end = readings[[200, 500, 900]], readings[[400, 800, 1100]]
    tasks = world.tasks.slice(0, 3)
    for name, values in (("started_at", start), ("finished_at", end)):
        index = tasks.column_names.index(name)
        tasks = tasks.set_column(index, name, pa.array(values, pa.timestamp("us", tz="UTC")))
    exact, fast = modes(tasks, world.samples, idle_policy="time")
    counter = world.samples["value"].to_numpy()
    expected = counter[[400, 800, 1100]] - counter[[200, 500, 900]]
    for result in (exact, fast):
        energy = result.task_energy.to_pandas().sort_values("task_id")["energy_joules"].to_numpy()
        assert np.allclose(energy, expected, rtol=1e-12)
    both = joined(exact, fast)
    assert np.allclose(both["idle_joules_fast"], both["idle_joules"], rtol=1e-12)


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> dict:
    out = tmp_path_factory.mktemp("world")
    generate(out, n_workflows=6, seed=3)
    sources = RecordedSources(out)
    _, tasks = sources.workflows_and_tasks()
    return {
        "tasks": tasks,
        "samples": sources.power_samples(),
        "machines": sources.machines(),
        "containers": sources.container_samples(),
    }


def test_the_sample_world_gets_the_exact_energies(world):
    exact, fast = modes(world["tasks"], world["samples"], world["machines"], containers=world["containers"])
    assert mode_of(fast) == "fast"
    both = joined(exact, fast)
    assert len(both) == exact.task_energy.num_rows == fast.task_energy.num_rows
    assert set(both["device_kind"]) >= {"cpu_package", "dram", "gpu"}
    relative = (both["energy_joules_fast"] - both["energy_joules"]).abs() / both["energy_joules"].abs().clip(
        lower=1e-9
    )
    cpu = both["device_kind"].isin(["cpu_package", "dram"])
    # CPU zones: the same fit and split, to rounding. GPUs/FPGAs split by holders without busy time are
    # spread uniformly within a reading interval (the exact mode: by the mean power per holder), and a
    # trapezoid gauge's idle power comes from its intervals: within 1%, most of them to rounding.
    assert relative[cpu].max() < 1e-9
    assert relative.max() < 0.01 and relative.median() < 1e-9
    balance_fast, balance = (r.node_energy_balance.to_pandas() for r in (fast, exact))
    assert np.allclose(balance_fast["measured_joules"], balance["measured_joules"], rtol=1e-9)
    assert (balance_fast["unattributed_joules"] >= -1e-6 * balance_fast["measured_joules"]).all()
    assert np.isclose(balance_fast["attributed_joules"].sum(), both["energy_joules_fast"].sum(), rtol=1e-12)
    labels = both["method"].str.replace(r";idle_power=[^;]*", "", regex=True)
    fast_labels = both["method_fast"].str.replace(r";idle_power=[^;]*", "", regex=True)
    assert (fast_labels == labels + ";mode=fast").all()


def test_where_the_fast_mode_does_not_apply_the_exact_engine_runs_and_says_why(world):
    tasks, samples = world["tasks"], world["samples"]
    cpu = samples.filter(pc.is_in(samples["device_kind"], pa.array(["cpu_package", "dram"])))
    exact = attribute(tasks, cpu, world["machines"], skew_tolerance_seconds=2.0)
    fast = attribute(tasks, cpu, world["machines"], skew_tolerance_seconds=2.0, fast=True)
    assert mode_of(fast) == "exact: the fast mode does not estimate clock skew"
    assert fast.task_energy.equals(exact.task_energy)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(worlds())
def test_on_random_readings_the_fast_mode_keeps_the_balance_and_the_exact_energies(world):
    """Where both modes apply the same rules (CPU zones and counters, whose segments within a reading interval
    have their interval's power), the energies and windows are the exact mode's; everywhere each device's
    measured total is, the balance closes, nothing is negative and every row of the exact mode is there."""
    exact, fast = modes(world["tasks"], world["samples"], containers=world["containers"], **world["options"])
    both = joined(exact, fast)
    assert len(both) == exact.task_energy.num_rows == fast.task_energy.num_rows
    balance, exact_balance = (r.node_energy_balance.to_pandas() for r in (fast, exact))
    measured, attributed = balance["measured_joules"], balance["attributed_joules"]
    scale = np.maximum(measured.abs(), 1.0)
    device = ["host_node", "device_kind", "device_id"]
    totals = (b.groupby(device)["measured_joules"].sum() for b in (balance, exact_balance))
    assert np.allclose(*totals, rtol=1e-9, atol=1e-9)
    assert ((attributed >= -1e-9 * scale) & (attributed <= measured + 1e-9 * scale)).all()
    for column in ("energy_joules", "dynamic_joules", "idle_joules", "uncertainty_joules"):
        assert (both[column + "_fast"] >= 0).all(), column
    kinds = set(pc.unique(world["samples"]["device_kind"]).to_pylist())
    counters = pc.all(pc.equal(world["samples"]["value_kind"], "energy_counter_joules")).as_py()
    if counters and "gpu" not in kinds:
        assert np.allclose(measured, exact_balance["measured_joules"], rtol=1e-9, atol=1e-9)
        for column in ENERGY:
            assert np.allclose(both[column + "_fast"], both[column], rtol=1e-7, atol=1e-6), column
