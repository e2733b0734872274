"""Small workflows shared by the allocation tests."""

import pytest

from allocate.catalog import EC2_INSPIRED
from allocate.model import Catalog, Dag, Edge, Task, VmType, Workflow


def dag_of(workflow: Workflow) -> Dag:
    return Dag.build(workflow.name, workflow.tasks.values(), workflow.edges)


@pytest.fixture
def catalog() -> Catalog:
    return EC2_INSPIRED


@pytest.fixture
def one_type() -> Catalog:
    """One 4-CPU type at speed 1, $1 an hour, infinite-ish bandwidth: times are easy to do by hand."""
    return Catalog("test", (VmType("quad", 4, 1.0, 1.0),), bandwidth_bytes_per_second=1e12)


@pytest.fixture
def diamond() -> Workflow:
    """a -> (b, c) -> d, one hour of reference work each, no serial fraction."""
    tasks = {t: Task(t, 3600.0, 0.0) for t in "abcd"}
    edges = [Edge("a", "b"), Edge("a", "c"), Edge("b", "d"), Edge("c", "d")]
    return Workflow("diamond", tasks, edges)
