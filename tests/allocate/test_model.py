import math

import pytest

from allocate.model import (
    OR_JOIN,
    OR_SPLIT,
    Catalog,
    Control,
    Dag,
    Edge,
    Task,
    VmType,
    Workflow,
    billed_hours,
    cost_of_hours,
    execution_seconds,
)


def test_amdahl_time_and_speed():
    assert execution_seconds(100.0, 0.0, 4, 1.0) == 25.0
    assert execution_seconds(100.0, 0.2, 4, 2.0) == pytest.approx((0.2 + 0.8 / 4) * 50.0)
    assert execution_seconds(100.0, 1.0, 8, 1.0) == 100.0


def test_billing_counts_every_started_hour_and_at_least_one():
    assert billed_hours(0.0) == 1
    assert billed_hours(3600.0) == 1
    assert billed_hours(3600.5) == 2
    assert cost_of_hours([2, 0, 3], [0.1, 5.0, 0.2]) == pytest.approx(0.8)


def test_dag_indices_are_a_topological_order_and_duplicate_edges_add_data():
    tasks = [Task("z", 1.0), Task("y", 1.0), Task("x", 1.0)]
    edges = [Edge("x", "y", 10.0), Edge("y", "z", 1.0), Edge("x", "y", 5.0)]
    dag = Dag.build("t", tasks, edges)
    assert dag.task_ids == ("x", "y", "z")
    assert dag.successors[0] == ((1, 15.0),)
    assert dag.bottom_levels([1.0, 2.0, 3.0]) == [6.0, 5.0, 3.0]


def test_dag_rejects_cycles():
    with pytest.raises(ValueError, match="cycle"):
        Dag.build("t", [Task("a", 1.0), Task("b", 1.0)], [Edge("a", "b"), Edge("b", "a")])


def test_workflow_checks_splits():
    tasks = {"a": Task("a", 1.0), "b": Task("b", 1.0)}
    with pytest.raises(ValueError, match="sum to"):
        Workflow(
            "w",
            tasks,
            [Edge("s", "a", probability=0.5), Edge("s", "b", probability=0.4)],
            {"s": Control("s", OR_SPLIT)},
        )
    with pytest.raises(ValueError, match="back edge"):
        Workflow("w", tasks, [Edge("s", "a"), Edge("s", "b")], {"s": Control("s", OR_SPLIT, {1: 1.0})})
    with pytest.raises(ValueError, match="unknown vertex"):
        Workflow("w", tasks, [Edge("a", "nowhere")])
    with pytest.raises(ValueError, match="kind"):
        Workflow("w", tasks, [], {"j": Control("j", "and_join")})
    ok = Workflow("w", tasks, [Edge("a", "j"), Edge("j", "b")], {"j": Control("j", OR_JOIN)})
    assert not ok.deterministic


def test_catalog_and_vm_type_validation():
    with pytest.raises(ValueError):
        VmType("bad", 0, 1.0)
    with pytest.raises(ValueError, match="repeats"):
        Catalog("c", (VmType("a", 1, 1.0), VmType("a", 2, 1.0)))
    catalog = Catalog("c", (VmType("a", 1, 1.0, 1.0), VmType("b", 4, 2.0, 3.0)))
    assert catalog.max_cpus == 4
    assert catalog.mean_speed == 2.0
    assert catalog.vm_types[1].cost_per_work_hour == pytest.approx(2.0 / 12.0)
    assert math.isclose(sum(catalog.prices), 3.0)
