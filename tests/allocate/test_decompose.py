import pytest

from allocate.decompose import decompose, n_executions
from allocate.generators import Branches, Loop, chain, fft, random_dag, random_nondeterministic, strassen
from allocate.model import OR_JOIN, OR_SPLIT, Control, Edge, Task, Workflow


def test_a_dag_is_one_sub_workflow_run_once_even_if_disconnected():
    workflow = Workflow("w", {"a": Task("a", 1.0), "b": Task("b", 1.0)}, [])
    (sub,) = decompose(workflow)
    assert sub.executions == {1: 1.0} and len(sub.dag) == 2


def test_quantiles_of_the_execution_count():
    law = {0: 0.25, 1: 0.5, 2: 0.25}
    assert [n_executions(law, c) for c in (0.1, 0.25, 0.5, 0.75, 0.9, 1.0)] == [0, 0, 1, 1, 2, 2]
    with pytest.raises(ValueError):
        n_executions(law, 0.0)


def test_branches_and_a_counted_loop():
    workflow = chain(
        "w",
        [
            strassen(),
            Branches(((0.3, fft(4)), (0.5, fft(2)), (0.2, None))),
            Loop(fft(2), {1: 0.2, 2: 0.5, 4: 0.3}),
            fft(1),
        ],
    )
    subs = decompose(workflow, samples=20_000, seed=1)
    assert [len(s.dag) for s in subs] == [25, 15, 5, 5, 1]
    entry, left, right, body, last = (s.executions for s in subs)
    assert entry == {1: 1.0} and last == {1: 1.0}
    assert left[1] == pytest.approx(0.3, abs=0.015) and right[1] == pytest.approx(0.5, abs=0.015)
    assert set(body) == {1, 2, 4}
    assert body[2] == pytest.approx(0.5, abs=0.015) and body[4] == pytest.approx(0.3, abs=0.015)
    assert n_executions(body, 0.9) == 4 and n_executions(left, 0.9) == 1


def test_a_loop_inside_a_branch_compounds_counts():
    inner = chain("inner", [Loop(fft(1), {3: 1.0})])
    tasks = {**inner.tasks, "start": Task("start", 1.0)}
    controls = {**inner.controls, "s": Control("s", OR_SPLIT), "out": Control("out", OR_JOIN)}
    edges = [*inner.edges, Edge("start", "s"), Edge("s", "0.head", probability=0.5)]
    edges += [Edge("s", "out", probability=0.5)]
    subs = decompose(Workflow("w", tasks, edges, controls), samples=4000)
    body = next(s for s in subs if s.dag.task_ids == ("0.r1",))
    assert set(body.executions) == {0, 3}


def test_geometric_loop_from_a_probabilistic_back_edge():
    tasks = {"a": Task("a", 1.0)}
    controls = {"h": Control("h", OR_JOIN), "s": Control("s", OR_SPLIT), "x": Control("x", OR_JOIN)}
    edges = [Edge("h", "a"), Edge("a", "s"), Edge("s", "h", probability=0.5), Edge("s", "x", probability=0.5)]
    with pytest.raises(ValueError, match="no entry"):
        decompose(Workflow("w", tasks, edges, controls))
    tasks["go"] = Task("go", 1.0)
    edges.append(Edge("go", "h"))
    subs = decompose(Workflow("w", tasks, edges, controls), samples=20_000)
    loop = next(s for s in subs if s.dag.task_ids == ("a",))
    assert loop.executions[1] == pytest.approx(0.5, abs=0.015)
    assert loop.executions[2] == pytest.approx(0.25, abs=0.015)


def test_a_split_back_to_itself_without_exit_never_terminates():
    tasks = {"go": Task("go", 1.0), "a": Task("a", 1.0)}
    controls = {"h": Control("h", OR_JOIN), "s": Control("s", OR_SPLIT)}
    edges = [Edge("go", "h"), Edge("h", "a"), Edge("a", "s"), Edge("s", "h", probability=1.0)]
    with pytest.raises(ValueError, match="does not terminate"):
        decompose(Workflow("w", tasks, edges, controls), samples=1)


def test_disconnected_random_dags_stay_one_sub_workflow_per_stage():
    workflow = random_nondeterministic(seed=3)
    assert len(random_dag(20, seed=30).tasks) == 20
    subs = decompose(workflow, samples=500)
    assert [len(s.dag) for s in subs] == [20] * 5
