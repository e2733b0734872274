"""The reading rule is a property of the power source (schemas.kinds.POWER_SOURCES): an unknown source is
refused by name, and the same meter read directly or through the agent's Prometheus metrics is read alike."""

import pyarrow as pa
import pyarrow.compute as pc
import pytest

import schemas
from collectors.cluster.recorded import RecordedSources
from datasets.attribution import attribute
from datasets.sample_world import generate
from schemas.kinds import POWER_SOURCES, TRAILING_AVERAGE_GAUGE


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    folder = tmp_path_factory.mktemp("world")
    generate(folder, n_workflows=3, seed=4)
    sources = RecordedSources(folder)
    _, tasks = sources.workflows_and_tasks()
    return tasks, sources.power_samples(), sources.machines()


def test_an_unknown_source_is_refused_by_name(world):
    _, samples, _ = world
    renamed = samples.set_column(
        samples.schema.get_field_index("source"),
        "source",
        pc.if_else(pc.equal(samples["source"], "nvml"), "nvidia-smi", samples["source"]),
    )
    problems = schemas.check("power_samples", renamed, source="readings.parquet")
    assert [(p.column, sorted(set(p.values))) for p in problems] == [("source", ["nvidia-smi"])]


def _renamed(samples: pa.Table, old: str, new: str) -> pa.Table:
    source = pc.if_else(pc.equal(samples["source"], old), pa.scalar(new), samples["source"])
    return samples.set_column(samples.schema.get_field_index("source"), "source", source)


def _gpu_joules(tasks, samples, machines) -> pa.ChunkedArray:
    energy = attribute(tasks, samples, machines).task_energy
    gpu = energy.filter(pc.equal(energy["device_kind"], "gpu"))
    return gpu.sort_by([(k, "ascending") for k in ("workflow_uid", "task_id", "device_id")])["energy_joules"]


def test_the_gpu_read_through_the_agent_in_prometheus_is_read_as_the_gpu_read_directly(world):
    """GPU power gauges alone (their energy counters left out), so the gauge's reading rule decides."""
    tasks, samples, machines = world
    counters = pc.and_(
        pc.equal(samples["source"], "nvml"), pc.equal(samples["value_kind"], "energy_counter_joules")
    )
    gauges = samples.filter(pc.invert(counters))
    assert pc.sum(pc.equal(gauges["source"], "nvml")).as_py() > 0
    assert POWER_SOURCES["agent/nvml"] == POWER_SOURCES["nvml"] == (TRAILING_AVERAGE_GAUGE, 1.0)
    direct = _gpu_joules(tasks, gauges, machines)
    assert _gpu_joules(tasks, _renamed(gauges, "nvml", "agent/nvml"), machines).equals(direct)
    # Read as an instantaneous gauge (a trapezoid), the same readings give other joules: the rule matters.
    assert not _gpu_joules(tasks, _renamed(gauges, "nvml", "hwmon"), machines).equals(direct)
