"""Each stage of the attribution engine alone (datasets/attribution/*.py), on one node whose truth is known:
a RAPL-like counter read every second, idle 40 W, two task types drawing 5 and 12 W per requested core.

The stages are run by hand in the order the engine runs them: series -> tasks and windows -> pieces ->
segments -> fit -> split -> uncertainty -> rows, each checked against what it must give."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pytest

from datasets.attribution.constants import EVERYTHING, NO_TEMPLATE, US_PER_SECOND
from datasets.attribution.engine import _settings
from datasets.attribution.fit import _design, _gather, _idle_power, _SeriesStats, _solve
from datasets.attribution.options import AttributionOptions
from datasets.attribution.pieces import _cpu_pieces
from datasets.attribution.rows import _attribute_cut, _SeriesInputs
from datasets.attribution.segments import _cut
from datasets.attribution.series import _device_series
from datasets.attribution.split import grid_shares, split_series
from datasets.attribution.tasks import _fit_classes, _ran_tasks, _windows
from datasets.attribution.uncertainty import uncertainty_joules
from schemas.validation import conform

IDLE_WATTS = 40.0
WATTS_PER_CORE = {"light": 5.0, "heavy": 12.0}
SECONDS = 1200
START_US = 1_790_000_000 * US_PER_SECOND
CAPACITY = (32 * 1e6, "machines")


@dataclass(frozen=True)
class Node:
    samples: pa.Table
    tasks: pa.Table
    truth_dynamic_joules: np.ndarray  # per task row
    counter_joules: float  # from the first to the last reading


def node(seed: int = 5) -> Node:
    """Tasks (exact times) start after 120 quiet seconds; the counter reads every second at +0.5 s."""
    rng = np.random.default_rng(seed)
    count = 40
    start_s = rng.integers(120, SECONDS - 200, count)
    end_s = start_s + rng.integers(20, 180, count)
    cores = rng.choice([1.0, 2.0, 4.0], count)
    kinds = rng.choice(list(WATTS_PER_CORE), count)
    watts_per_core = np.array([WATTS_PER_CORE[kind] for kind in kinds])
    power = np.full(SECONDS, IDLE_WATTS)
    for s, e, w in zip(start_s, end_s, cores * watts_per_core, strict=True):
        power[s:e] += w
    read_s = np.arange(SECONDS - 1) + 0.5
    energy = np.concatenate([[0.0], np.cumsum(power)])
    counter = np.interp(read_s, np.arange(SECONDS + 1), energy)
    n = read_s.size
    samples = conform(
        "power_samples",
        {
            "host_node": ["n1"] * n,
            "device_kind": ["cpu_package"] * n,
            "device_id": ["package-0"] * n,
            "timestamp": pa.array(
                START_US + np.rint(read_s * US_PER_SECOND).astype(np.int64), pa.timestamp("us", tz="UTC")
            ),
            "value": counter + 1000.0,
            "value_kind": ["energy_counter_joules"] * n,
            "counter_max_joules": [262143.0] * n,
            "source": ["rapl"] * n,
            "provenance": ["synthetic"] * n,
        },
    )
    to_us = lambda s: pa.array(START_US + s.astype(np.int64) * US_PER_SECOND, pa.timestamp("us", tz="UTC"))  # noqa: E731
    tasks = pa.table(
        {
            "workflow_uid": ["w"] * count,
            "task_id": [f"t{i:02d}" for i in range(count)],
            "template_name": list(kinds),
            "host_node": ["n1"] * count,
            "started_at": to_us(start_s),
            "finished_at": to_us(end_s),
            "time_resolution_seconds": np.zeros(count),
            "cpu_request_cores": cores,
            "gpu_ids": pa.array([[]] * count, pa.list_(pa.string())),
            "fpga_ids": pa.array([[]] * count, pa.list_(pa.string())),
            "pod_uid": pa.nulls(count, pa.string()),
            "pod_name": pa.nulls(count, pa.string()),
        }
    )
    truth = cores * watts_per_core * (end_s - start_s)
    return Node(samples, tasks, truth, float(counter[-1] - counter[0]))


@pytest.fixture(scope="module")
def staged() -> dict:
    world = node()
    series, notes = _device_series(world.samples)
    ran = _ran_tasks(world.tasks)
    rows = ran.by_node["n1"]
    windows = _windows(ran, rows, 0)
    pieces = _cpu_pieces(ran, rows, windows, None, None)
    settings = _settings(AttributionOptions())
    cut = _cut(series[0], pieces, settings.window_us)
    return {"world": world, "series": series, "ran": ran, "pieces": pieces, "cut": cut, "settings": settings}


def test_series_are_sorted_cleaned_and_refuse_conflicting_readings():
    world = node()
    shuffled = world.samples.take(np.random.default_rng(1).permutation(world.samples.num_rows))
    twice = pa.concat_tables([shuffled, world.samples.slice(10, 3)])
    series, notes = _device_series(twice)
    assert len(series) == 1 and series[0].rule == "counter"
    assert np.array_equal(series[0].times_us, np.sort(world.samples["timestamp"].cast(pa.int64()).to_numpy()))
    assert any(note["item"] == "readings_dropped" and note["value"] == 3 for note in notes)
    conflicting = conform("power_samples", [world.samples.slice(10, 1).to_pylist()[0] | {"value": 1.0}])
    with pytest.raises(ValueError, match="n1"):
        _device_series(pa.concat_tables([world.samples, conflicting]))


def test_windows_put_truncated_edges_at_their_expected_instants():
    tasks = node().tasks.slice(0, 2)
    same = tasks["started_at"].slice(1, 1)
    tasks = tasks.set_column(
        5, "finished_at", pa.concat_arrays([tasks["finished_at"].chunk(0)[:1], same.chunk(0)])
    )
    tasks = tasks.set_column(6, "time_resolution_seconds", pa.array([1.0, 1.0]))
    ran = _ran_tasks(tasks)
    windows = _windows(ran, np.arange(2), 0)
    assert np.array_equal(windows.idle_start - ran.start_us, [500_000, 333_333])
    assert np.array_equal(windows.idle_end - ran.end_us, [500_000, 666_666])
    assert np.array_equal(windows.wide_end - ran.end_us, [1_000_000, 1_000_000])


def test_requests_pieces_hold_each_task_cores_times_its_seconds(staged):
    pieces, ran = staged["pieces"], staged["ran"]
    amount = np.bincount(pieces.task, pieces.amount, pieces.rows.size)
    seconds = (ran.end_us - ran.start_us)[pieces.rows] / US_PER_SECOND
    cores = ran.request_microcores[pieces.rows] / 1e6
    assert amount == pytest.approx(cores * seconds, rel=1e-12)


def test_segments_keep_the_counter_energy_and_cut_at_every_edge(staged):
    cut, world, ran = staged["cut"], staged["world"], staged["ran"]
    assert cut.segment_j.sum() == pytest.approx(world.counter_joules, rel=1e-12)
    edges_s = (np.concatenate([ran.start_us, ran.end_us]) - cut.origin_us) / US_PER_SECOND
    assert np.isin(np.round(edges_s, 6), np.round(cut.grid_s, 6)).all()
    assert np.isin(np.round(cut.times_s, 6), np.round(cut.grid_s, 6)).all()


def fitted(staged) -> tuple:
    cut, ran = staged["cut"], staged["ran"]
    stats = _SeriesStats()
    _gather(cut, stats, EVERYTHING)
    gram = np.zeros((ran.columns, ran.columns))
    _design([cut], ran.columns, [stats], gram, EVERYTHING)
    idle = _idle_power(stats, None)
    model, relative = _solve(gram, [(stats, idle.watts, 1.0, 0.0)], ran.columns, True)
    return idle, model, relative


def test_fit_finds_the_idle_power_and_each_type_watts_per_core(staged):
    idle, model, relative = fitted(staged)
    assert idle.method == "median-idle-segments" and idle.watts == pytest.approx(IDLE_WATTS, rel=1e-6)
    ran = staged["ran"]
    for name, watts in WATTS_PER_CORE.items():
        column = 2 * ran.template_names.index(name) + 1  # the requests basis of the type
        assert model.weights[column] == pytest.approx(watts, rel=0.02)
    assert relative < 0.05


def test_split_uncertainty_and_rows_add_up_and_hold_the_truth(staged):
    cut, ran, settings = staged["cut"], staged["ran"], staged["settings"]
    idle, model, relative = fitted(staged)
    grid = grid_shares(cut, ran, model, settings, CAPACITY, False)
    split = split_series(cut, grid, model, idle, None)
    truth = staged["world"].truth_dynamic_joules[cut.pieces.rows]
    assert split.dynamic_joules == pytest.approx(truth, rel=0.03)
    seconds = (ran.end_us - ran.start_us)[cut.pieces.rows] / US_PER_SECOND
    cores = ran.request_microcores[cut.pieces.rows] / 1e6
    assert split.idle_joules == pytest.approx(IDLE_WATTS * cores / 32 * seconds, rel=1e-6)
    assert split.attributed_joules.sum() == pytest.approx(split.energy_joules.sum(), rel=1e-12)
    u = uncertainty_joules(split, model, relative, idle, 0.0, None)
    assert (u >= 0).all() and (np.abs(split.dynamic_joules - truth) <= u).mean() >= 0.95
    given = _SeriesInputs(model, relative, idle, CAPACITY, settings, None, 0.0, None, False, EVERYTHING)
    task_rows, balance = _attribute_cut(cut, ran, grid, given)
    assert np.array_equal(task_rows["energy_joules"], split.energy_joules)
    assert np.array_equal(task_rows["uncertainty_joules"], u)
    methods = task_rows["method"]
    assert {methods.names[i] for i in methods.index} == {
        "counter-interpolated;split=requests-fitted;idle=requests/capacity=machines;idle_power=median-idle-segments"
    }
    measured = balance["measured_joules"].sum()
    assert measured == pytest.approx(staged["world"].counter_joules, rel=1e-12)
    assert balance["attributed_joules"] + balance["unattributed_joules"] == pytest.approx(
        balance["measured_joules"]
    )


def test_fit_classes_join_each_template_to_its_nodes_cpu_model():
    """A task's fit class is template@model where `machines` names its node's CPU model, else the template
    (no row for the node, a null model, no machines); tasks in several chunks keep their order."""
    first = pa.table({"template_name": ["a", None], "host_node": ["n1", "n2"]})
    second = pa.table({"template_name": ["b", "a"], "host_node": ["n3", "n2"]})
    tasks = pa.concat_tables([first, second])
    machines = pa.table({"host_node": ["n1", "n3"], "cpu_model": ["Gold 6346", None]})
    classes = _fit_classes(tasks, machines)
    assert pa.types.is_dictionary(classes.type)
    assert classes.to_pylist() == ["a@Gold 6346", NO_TEMPLATE, "b", "a"]
    unknown = pa.table({"host_node": ["n1"], "cpu_model": pa.array([None], pa.string())})
    assert _fit_classes(tasks, unknown).to_pylist() == ["a", NO_TEMPLATE, "b", "a"]
    assert _fit_classes(tasks, None).to_pylist() == ["a", NO_TEMPLATE, "b", "a"]
