import pytest

from allocate.generators import fft, random_dag
from allocate.mapping import (
    Instance,
    Mapper,
    fallback_type,
    list_order,
    map_guarded,
    map_unguarded,
    minimum_budget,
    replay,
    sequential_seconds,
)
from allocate.model import Catalog, Dag, Edge, Task, VmType, billed_hours

from .conftest import dag_of


def test_cpu_choice_is_the_references_tightest_fit():
    vm = Instance(0, 4, 1.0)
    vm.free_at = [0.0, 5.0, 8.0, 20.0]
    vm.occupy(ready=10.0, cpus=2, start=10.0, finish=30.0)
    assert vm.free_at == [0.0, 20.0, 30.0, 30.0]  # the two freed latest before 10 s, not the idle one
    vm.occupy(ready=1.0, cpus=3, start=30.0, finish=40.0)  # one free at 1 s plus the two earliest busy
    assert vm.free_at == [30.0, 40.0, 40.0, 40.0]
    assert (vm.start, vm.end, vm.hours) == (10.0, 40.0, 1)


def test_list_order_is_topological_even_with_zero_work():
    dag = Dag.build("z", [Task("a", 0.0), Task("b", 0.0), Task("c", 5.0)], [Edge("a", "b"), Edge("b", "c")])
    assert list_order(dag, [1, 1, 1], 1.0) == [0, 1, 2]


def test_minimum_budget_is_the_cheapest_sequential_schedule(catalog):
    dag = dag_of(fft(8))
    k = fallback_type(dag, catalog)
    cost = billed_hours(sequential_seconds(dag, catalog, k)) * catalog.vm_types[k].cost_per_hour
    assert minimum_budget(dag, catalog) == cost
    for other in range(len(catalog.vm_types)):
        vm = catalog.vm_types[other]
        assert billed_hours(sequential_seconds(dag, catalog, other)) * vm.cost_per_hour >= cost


def test_guarded_mapping_at_the_minimum_budget_keeps_it(catalog):
    for seed in range(5):
        dag = dag_of(random_dag(40, seed=seed))
        budget = minimum_budget(dag, catalog)
        levels = [[1] * len(dag), [catalog.max_cpus] * len(dag)]
        for rule in ("largest", "fastest"):
            assert map_guarded(dag, catalog, budget, levels, rule).cost <= budget
    with pytest.raises(ValueError):
        map_guarded(dag, catalog, budget, levels, "random")


def test_the_reserve_bound_covers_the_fallback(catalog):
    """Before anything is placed, the guarded cost of the fallback option is the minimum budget."""
    dag = dag_of(random_dag(30, seed=1))
    mapper = Mapper(dag, catalog, list_order(dag, [1] * len(dag), 1.0))
    task = mapper.order[0]
    remote, local = mapper.ready_times(task)
    assert mapper.guarded_cost(mapper.fallback_option(task, remote, local)) == pytest.approx(
        minimum_budget(dag, catalog)
    )


def test_unguarded_mapping_can_overspend_and_replay_reproduces_schedules(catalog):
    dag = dag_of(random_dag(60, seed=7))
    budget = minimum_budget(dag, catalog)
    schedule = map_unguarded(dag, catalog, budget, [4] * len(dag))
    assert schedule.cost > budget
    again = replay(dag, catalog, schedule.instance_types, schedule.plan())
    assert again.placements == schedule.placements and again.hours_by_type == schedule.hours_by_type


def test_data_transfers_delay_children_on_other_vms():
    catalog = Catalog("slow-net", (VmType("one", 1, 1.0, 1.0),), bandwidth_bytes_per_second=20.0)
    dag = Dag.build(
        "d",
        [Task("a", 10.0), Task("b", 10.0), Task("c", 10.0)],
        [Edge("a", "b", 100.0), Edge("a", "c", 100.0)],
    )
    schedule = map_unguarded(dag, catalog, 100.0, [1, 1, 1])
    starts = sorted((p.start, p.instance) for p in schedule.placements)
    assert starts[0] == (0.0, 0)
    same = [p for p in schedule.placements if p.task != 0 and p.instance == 0]
    other = [p for p in schedule.placements if p.task != 0 and p.instance != 0]
    assert same[0].start == 10.0 and other[0].start == 15.0  # 100 bytes at 20 B/s
