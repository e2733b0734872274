import pytest

from allocate.budget import average_catalog_seconds, share_budget, share_budget_with_floors
from allocate.decompose import SubWorkflow
from allocate.model import Catalog, Dag, Task, VmType

CATALOG = Catalog("c", (VmType("one", 1, 1.0, 1.0), VmType("two", 2, 3.0, 1.0)))


def sub(name, works, executions):
    dag = Dag.build(name, [Task(f"{name}{i}", w, 0.0) for i, w in enumerate(works)], [])
    return SubWorkflow(name, dag, executions)


def test_average_over_the_catalog_reads_t_on_the_whole_vm_or_one_cpu():
    dag = sub("g", [100.0, 300.0], {1: 1.0}).dag
    assert average_catalog_seconds(dag, CATALOG) == pytest.approx((400.0 + 200.0) / 2)
    assert average_catalog_seconds(dag, CATALOG, "one_cpu") == pytest.approx(400.0)
    with pytest.raises(ValueError):
        average_catalog_seconds(dag, CATALOG, "other")


def test_share_budget_follows_algorithm_1():
    subs = [
        sub("a", [600.0], {1: 1.0}),
        sub("b", [300.0], {1: 0.5, 3: 0.5}),
        sub("c", [900.0], {0: 0.95, 1: 0.05}),
    ]
    shares = share_budget(10.0, subs, CATALOG, confidence=0.9)
    averages = [450.0, 225.0, 675.0]
    counts = [1, 3, 0]
    omegas = [a * n for a, n in zip(averages, counts, strict=True)]
    star = sum(omegas)
    assert [s.n_executions for s in shares] == counts
    assert shares[0].budget == pytest.approx(10.0 * omegas[0] / star / 1)
    assert shares[1].budget == pytest.approx(10.0 * omegas[1] / star / 3)
    assert shares[2].budget == pytest.approx(10.0 * averages[2] / star)  # the limit when nExec = 0
    assert sum(s.budget * s.n_executions for s in shares) == pytest.approx(10.0)


def test_floors_come_first_then_the_rest_is_shared():
    subs = [sub("a", [600.0], {1: 1.0}), sub("b", [60.0], {2: 1.0})]
    floors = [1.0, 2.0]
    shares = share_budget_with_floors(10.0, subs, CATALOG, 0.9, floors)
    rest = share_budget(10.0 - (1.0 + 2 * 2.0), subs, CATALOG, 0.9)
    assert shares[1].budget == pytest.approx(2.0 + rest[1].budget)
    assert sum(s.budget * s.n_executions for s in shares) == pytest.approx(10.0)
    exact = share_budget_with_floors(5.0, subs, CATALOG, 0.9, floors)
    assert [s.budget for s in exact] == floors  # at exactly the floors' total, exactly the floors
    assert share_budget_with_floors(4.0, subs, CATALOG, 0.9, floors) == share_budget(4.0, subs, CATALOG, 0.9)
