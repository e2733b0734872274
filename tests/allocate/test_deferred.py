import numpy as np

from allocate.deferred import deferred
from allocate.eager import eager
from allocate.generators import fft, random_dag, strassen
from allocate.mapping import minimum_budget

from .conftest import dag_of


def test_deferred_keeps_the_budget_from_the_minimum_up(catalog):
    rng = np.random.default_rng(5)
    for seed in range(30):
        dag = dag_of(random_dag(int(rng.integers(5, 60)), fat=float(rng.uniform(0.2, 0.8)), seed=seed))
        floor = minimum_budget(dag, catalog)
        for factor in (1.0, 1.2, 2.0, 7.0):
            assert deferred(dag, catalog, factor * floor).cost <= factor * floor


def test_eager_and_deferred_agree_when_money_is_plenty(catalog):
    for workflow in (fft(8), strassen(), random_dag(50, seed=3)):
        dag = dag_of(workflow)
        budget = 50 * minimum_budget(dag, catalog)
        e, d = eager(dag, catalog, budget), deferred(dag, catalog, budget)
        assert e.makespan_seconds == d.makespan_seconds and e.cost == d.cost


def test_more_levels_keep_more_choices(catalog):
    dag = dag_of(fft(16))
    budget = 3 * minimum_budget(dag, catalog)
    for levels in (1, 4, 12):
        assert deferred(dag, catalog, budget, levels=levels).cost <= budget
