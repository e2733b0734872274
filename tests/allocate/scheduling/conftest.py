"""Small platforms and workflows for the scheduling tests."""

from pathlib import Path

import pytest

from allocate.model import Edge, Task, Workflow
from allocate.scheduling.platform import Machine, Platform


@pytest.fixture
def mixed_platform() -> Platform:
    """A fast hungry machine, a slow frugal one, and a GPU machine; 1 MB/s between them."""
    return Platform(
        "mixed",
        (
            Machine("fast", speed=2.0, cores=2, idle_watts=100, busy_watts=300, cost_per_hour=2.0),
            Machine("slow", speed=0.5, cores=2, idle_watts=10, busy_watts=30, cost_per_hour=0.2),
            Machine("gpu", speed=1.0, cores=2, idle_watts=80, busy_watts=280, cost_per_hour=3.0, gpus=1),
        ),
        bandwidth_bytes_per_second=1e6,
    )


@pytest.fixture
def fork_join() -> Workflow:
    """a -> (b1..b4, g1, g2 on a GPU) -> z, with data on every edge."""
    tasks = {"a": Task("a", 10.0), "z": Task("z", 10.0)}
    tasks |= {f"b{i}": Task(f"b{i}", 40.0 + i) for i in range(1, 5)}
    tasks |= {f"g{i}": Task(f"g{i}", 30.0, device="gpu") for i in (1, 2)}
    middle = [t for t in tasks if t not in ("a", "z")]
    edges = [Edge("a", t, 2e6) for t in middle] + [Edge(t, "z", 1e6) for t in middle]
    return Workflow("fork-join", tasks, edges)


def write_sample_dataset(out: Path, workflows: int, seed: int):
    """A sample world under ``out/recorded`` and its attributed trace dataset under ``out/dataset``;
    returns the world's summary (its ground truth)."""
    from collectors.cluster.recorded import RecordedSources
    from datasets.attribution import attribute
    from datasets.sample_world import generate
    from datasets.store import write_dataset

    summary = generate(out / "recorded", n_workflows=workflows, seed=seed)
    sources = RecordedSources(out / "recorded")
    runs, tasks = sources.workflows_and_tasks()
    machines, samples, containers = sources.machines(), sources.power_samples(), sources.container_samples()
    result = attribute(tasks, samples, machines, containers=containers)
    tables = {"workflows": runs, "tasks": tasks, "machines": machines, "task_energy": result.task_energy}
    write_dataset(out / "dataset", tables | {"container_samples": containers, "power_samples": samples})
    return summary


@pytest.fixture(scope="session")
def sample_dataset():
    """write_sample_dataset, for module-scoped fixtures that build a world once."""
    return write_sample_dataset
