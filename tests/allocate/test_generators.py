import math

import pandas as pd
import pytest

from allocate.decompose import decompose
from allocate.generators import (
    STRASSEN_COMBINATIONS,
    STRASSEN_PRODUCTS,
    Branches,
    Loop,
    chain,
    fft,
    random_dag,
    random_nondeterministic,
    strassen,
    trace_workflows,
)

from .conftest import dag_of


@pytest.mark.parametrize("points", [1, 2, 4, 8, 16, 32, 64])
def test_fft_task_count_is_2m_minus_1_plus_m_log2_m(points):
    workflow = fft(points)
    assert len(workflow.tasks) == 2 * points - 1 + points * int(math.log2(points))
    dag = dag_of(workflow)
    assert sum(1 for p in dag.predecessors if not p) == 1  # the root call
    butterflies = [i for i, t in enumerate(dag.task_ids) if t.startswith("b")]
    assert all(len(dag.predecessors[i]) == 2 for i in butterflies)


def test_fft_rejects_non_powers_of_two():
    with pytest.raises(ValueError):
        fft(6)


def test_strassen_has_25_tasks_and_the_algorithms_dependencies():
    workflow = strassen()
    assert len(workflow.tasks) == 25
    dag = dag_of(workflow)
    entries = {dag.task_ids[i] for i, p in enumerate(dag.predecessors) if not p}
    assert entries == {f"S{i}" for i in range(1, 11)}
    assert len(STRASSEN_PRODUCTS) == 7 and len(STRASSEN_COMBINATIONS) == 8
    works = {t.id: t.work_seconds for t in workflow.tasks.values()}
    assert works["M1"] > 1000 * works["S1"]  # b^3 products against b^2 additions
    exits = {dag.task_ids[i] for i, s in enumerate(dag.successors) if not s}
    assert exits == {"C11", "C12", "C21", "C22"}


def test_random_dag_is_seeded_and_follows_its_parameters():
    a, b = random_dag(200, seed=9), random_dag(200, seed=9)
    assert [(e.source, e.target, e.data_bytes) for e in a.edges] == [
        (e.source, e.target, e.data_bytes) for e in b.edges
    ]
    assert [t.work_seconds for t in a.tasks.values()] == [t.work_seconds for t in b.tasks.values()]
    assert random_dag(200, seed=10).edges != a.edges
    assert len(a.tasks) == 200 and len(dag_of(a)) == 200
    assert all(0.0 <= t.alpha <= 0.2 for t in a.tasks.values())
    assert all(e.data_bytes % (8 * 1024 * 1024) == 0 for e in a.edges)  # 8 d^2 with d a multiple of 1024
    thin = dag_of(random_dag(200, fat=0.1, seed=1))
    wide = dag_of(random_dag(200, fat=0.9, seed=1))
    assert max(thin.bottom_levels([1.0] * 200)) > max(wide.bottom_levels([1.0] * 200))
    sparse = random_dag(200, density=0.05, seed=1)
    dense = random_dag(200, density=0.9, seed=1)
    assert len(dense.edges) > len(sparse.edges)
    far = dag_of(random_dag(200, fat=0.3, jump=4, seed=1))
    assert len(far) == 200


def test_chain_builds_splits_joins_and_loops():
    workflow = chain("w", [fft(2), Branches(((0.7, fft(2)), (0.3, None))), Loop(fft(1), {2: 1.0})])
    kinds = sorted(c.kind for c in workflow.controls.values())
    assert kinds == ["or_join", "or_join", "or_join", "or_join", "or_split", "or_split"]
    subs = decompose(workflow, samples=200)
    assert subs[-1].executions == {2: 1.0}
    nd = random_nondeterministic(seed=1, n=10)
    assert len(nd.tasks) == 50 and not nd.deterministic


def trace_rows():
    row = dict(
        workflow_uid="w1", attempt=0, phase="Succeeded", parents=[], written_bytes=None, host_node="fast"
    )
    return pd.DataFrame(
        [
            row | dict(task_id="n1", task_name="prep", runtime_seconds=100.0, cpu_request_cores=4.0,
                       avg_cpu_percent=250.0, children=["n2", "n3"], written_bytes=2e6),
            row | dict(task_id="n2", task_name="work", attempt=0, phase="Failed", runtime_seconds=10.0,
                       parents=["n1"], cpu_request_cores=1.0, avg_cpu_percent=None),
            row | dict(task_id="n3", task_name="work", attempt=1, runtime_seconds=50.0, parents=["n1"],
                       cpu_request_cores=2.0, avg_cpu_percent=None, children=["n4"]),
            row | dict(task_id="n4", task_name="skipped", phase="Omitted", runtime_seconds=0.0, parents=["n3"],
                       cpu_request_cores=None, avg_cpu_percent=None, children=["n5"], host_node=None),
            row | dict(task_id="n5", task_name="merge", runtime_seconds=30.0, parents=["n4"],
                       cpu_request_cores=None, avg_cpu_percent=None, host_node="unknown-node"),
        ]
    )  # fmt: skip


def test_trace_conversion_uses_the_last_successful_attempt_and_bridges_tasks_that_never_ran():
    machines = pd.DataFrame([{"host_node": "fast", "cpu_speed_mhz": 2000.0}])
    (workflow,) = trace_workflows(trace_rows(), machines, reference_mhz=1000.0, default_alpha=0.1)
    assert set(workflow.tasks) == {"prep", "work", "merge"}
    assert {(e.source, e.target) for e in workflow.edges} == {("prep", "work"), ("work", "merge")}
    prep, work, merge = workflow.tasks["prep"], workflow.tasks["work"], workflow.tasks["merge"]
    assert prep.work_seconds == pytest.approx(100.0 * 2.5 * 2.0)  # CPU seconds x clock ratio
    assert prep.alpha == pytest.approx((4 / 2.5 - 1) / 3)  # speedup on 4 cores is 2.5
    assert work.work_seconds == pytest.approx(50.0 / (0.1 + 0.9 / 2) * 2.0)
    assert merge.work_seconds == pytest.approx(30.0) and merge.alpha == 0.1
    assert next(e.data_bytes for e in workflow.edges if e.source == "prep") == pytest.approx(2e6)
