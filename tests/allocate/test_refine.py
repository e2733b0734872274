import numpy as np

from allocate.deferred import deferred
from allocate.eager import eager
from allocate.generators import fft, random_dag, strassen
from allocate.mapping import minimum_budget
from allocate.refine import critical_chain, refine, spend_leftover

from .conftest import dag_of


def test_refine_is_never_slower_than_deferred_and_keeps_the_budget(catalog):
    rng = np.random.default_rng(11)
    faster = 0
    cases = 0
    for workflow in [fft(8, seed=1), strassen(seed=2)] + [random_dag(40, seed=s) for s in range(4)]:
        dag = dag_of(workflow)
        for factor in np.exp(rng.uniform(0, np.log(20), 3)):
            budget = float(factor) * minimum_budget(dag, catalog)
            mine, theirs = refine(dag, catalog, budget), deferred(dag, catalog, budget)
            assert mine.cost <= budget
            assert mine.makespan_seconds <= theirs.makespan_seconds
            faster += mine.makespan_seconds < theirs.makespan_seconds
            cases += 1
            e = eager(dag, catalog, budget)
            if e.cost <= budget:
                assert mine.makespan_seconds <= e.makespan_seconds
    assert faster > cases / 2


def test_refine_below_the_minimum_takes_the_cheapest(catalog):
    dag = dag_of(random_dag(30, seed=1))
    budget = 0.5 * minimum_budget(dag, catalog)
    assert refine(dag, catalog, budget).cost <= deferred(dag, catalog, budget).cost


def test_the_critical_chain_ends_at_the_makespan_and_links_back(catalog):
    dag = dag_of(random_dag(40, seed=6))
    schedule = deferred(dag, catalog, 3 * minimum_budget(dag, catalog))
    chain = critical_chain(schedule)
    placed = {p.task: p for p in schedule.placements}
    assert placed[chain[0]].finish == schedule.makespan_seconds
    for later, earlier in zip(chain, chain[1:], strict=False):
        assert placed[earlier].finish <= placed[later].start + 1e-6


def test_leftover_spending_only_accepts_cheaper_than_budget_and_faster(catalog):
    dag = dag_of(fft(8))
    budget = 4 * minimum_budget(dag, catalog)
    start = deferred(dag, catalog, budget)
    better = spend_leftover(start, budget, max_replays=60)
    assert better.cost <= budget and better.makespan_seconds <= start.makespan_seconds
    assert spend_leftover(start, start.cost, max_replays=0) is start
