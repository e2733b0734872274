from allocate.cpa import budget_allocation
from allocate.eager import eager
from allocate.generators import fft, random_dag
from allocate.mapping import minimum_budget

from .conftest import dag_of


def test_eager_overspends_at_low_budgets_and_not_at_high_ones(catalog):
    over = 0
    for seed in range(6):
        dag = dag_of(random_dag(60, seed=seed))
        floor = minimum_budget(dag, catalog)
        over += eager(dag, catalog, 1.5 * floor).cost > 1.5 * floor
        assert eager(dag, catalog, 50 * floor).cost <= 50 * floor
    assert over >= 1


def test_eager_maps_its_single_allocation(catalog):
    dag = dag_of(fft(8))
    budget = 3 * minimum_budget(dag, catalog)
    cpus = budget_allocation(dag, catalog, budget, "under")
    schedule = eager(dag, catalog, budget)
    assert sorted((p.task, p.cpus) for p in schedule.placements) == list(enumerate(cpus))
    pessimistic = eager(dag, catalog, budget, reading="over")
    assert sum(p.cpus for p in pessimistic.placements) <= sum(cpus)
