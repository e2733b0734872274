import math
import random

import pytest

from allocate.cpa import (
    CriticalPath,
    bicpa_allocations,
    budget_allocation,
    budget_allocation_levels,
    budget_threshold,
    cpa,
    nominal_work_price,
    price_levels,
)
from allocate.generators import fft, random_dag
from allocate.model import Dag, Edge, Task

from .conftest import dag_of


def chain_and_side():
    """a -> b on the critical path, c alone and short."""
    tasks = [Task("a", 1000.0, 0.0), Task("b", 2000.0, 0.1), Task("c", 100.0, 0.0)]
    return Dag.build("t", tasks, [Edge("a", "b")])


def test_cpa_grows_only_critical_tasks_by_best_gain_until_t_cp_le_t_a():
    dag = chain_and_side()
    cpus = cpa(dag, processors=4)
    assert cpus[2] == 1  # never on the critical path
    times = [dag.seconds(i, p, 1.0) for i, p in enumerate(cpus)]
    area = sum(t * p for t, p in zip(times, cpus, strict=True))
    assert max(dag.bottom_levels(times)) <= area / 4
    # the first growth goes to the task with the largest T(p)/p - T(p+1)/(p+1): b (2000 s) before a
    path = CriticalPath(dag, 1.0, 4)
    assert path.path() == [0, 1]
    assert path.gain(1) > path.gain(0)


def test_saturation_stops_the_loop():
    dag = chain_and_side()
    path = CriticalPath(dag, 1.0, 2)
    assert path.allocate_until(lambda area, t_cp: 0.0) is True
    assert path.cpus[:2] == [2, 2]


def test_incremental_bottom_levels_match_a_full_recomputation():
    dag = dag_of(random_dag(80, seed=4))
    path = CriticalPath(dag, 1.5, 8)
    rng = random.Random(0)
    for _ in range(200):
        task = rng.randrange(len(dag))
        if path.cpus[task] < 8:
            path.grow(task)
    assert path.bottom == pytest.approx(dag.bottom_levels(path.times))
    assert path.area == pytest.approx(sum(t * p for t, p in zip(path.times, path.cpus, strict=True)))


def test_bicpa_allocations_grow_with_the_assumed_size_and_end_with_cpa():
    dag = dag_of(fft(8))
    kept = bicpa_allocations(dag, 6)
    assert len(kept) == 6 and kept[0] == [1] * len(dag)
    for smaller, larger in zip(kept, kept[1:], strict=False):
        assert all(s <= t for s, t in zip(smaller, larger, strict=True))
    assert kept[-1] == cpa(dag, 6)


def test_budget_threshold_readings(catalog):
    over, under = nominal_work_price(catalog, "over"), nominal_work_price(catalog, "under")
    assert over > under
    hourly = budget_threshold(2.0, over)
    fluid = budget_threshold(2.0, over, "fluid")
    assert hourly(7200.0, 5400.0) == pytest.approx(7200.0 * over * 2 / 2.0)
    assert fluid(7200.0, 5400.0) == pytest.approx(7200.0 * over * 1.5 / 2.0)
    assert budget_threshold(0.0, over)(1.0, 1.0) == math.inf
    with pytest.raises(ValueError):
        nominal_work_price(catalog, "middle")
    with pytest.raises(ValueError):
        budget_threshold(1.0, over, "daily")


def test_the_optimistic_reading_allocates_at_least_as_much(catalog):
    dag = dag_of(random_dag(60, seed=2))
    for budget in (0.5, 2.0, 8.0):
        eager_over = budget_allocation(dag, catalog, budget, "over")
        eager_under = budget_allocation(dag, catalog, budget, "under")
        assert sum(eager_under) >= sum(eager_over)
    assert sum(budget_allocation(dag, catalog, 1e6)) > sum(budget_allocation(dag, catalog, 0.01))


def test_levels_run_from_over_to_under_and_only_grow(catalog):
    prices = price_levels(catalog, 5)
    assert prices[0] == pytest.approx(nominal_work_price(catalog, "over"))
    assert prices[-1] == pytest.approx(nominal_work_price(catalog, "under"))
    assert price_levels(catalog, 1) == [pytest.approx(nominal_work_price(catalog, "under"))]
    dag = dag_of(random_dag(60, seed=2))
    kept = budget_allocation_levels(dag, catalog, 3.0, prices)
    for smaller, larger in zip(kept, kept[1:], strict=False):
        assert all(s <= t for s, t in zip(smaller, larger, strict=True))
    assert kept[-1] == budget_allocation(dag, catalog, 3.0, "under")
