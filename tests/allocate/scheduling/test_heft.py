"""HEFT against the worked example of Topcuoglu, Hariri and Wu (IEEE TPDS 2002, Fig. 2 and Fig. 5)."""

import pytest

from allocate.model import Edge, Task, Workflow
from allocate.scheduling.engine import priority_order, upward_rank
from allocate.scheduling.platform import Machine, Platform
from allocate.scheduling.problem import build_problem
from allocate.scheduling.schedulers import heft

# Computation costs of tasks n1..n10 on processors P1..P3, and the communication costs of the edges.
COSTS = {
    1: (14, 16, 9),
    2: (13, 19, 18),
    3: (11, 13, 19),
    4: (13, 8, 17),
    5: (12, 13, 10),
    6: (13, 16, 9),
    7: (7, 15, 11),
    8: (5, 11, 14),
    9: (18, 12, 20),
    10: (21, 7, 16),
}
COMMUNICATION = {
    (1, 2): 18, (1, 3): 12, (1, 4): 9, (1, 5): 11, (1, 6): 14, (2, 8): 19, (2, 9): 16, (3, 7): 23,
    (4, 8): 27, (4, 9): 23, (5, 9): 13, (6, 8): 15, (7, 10): 17, (8, 10): 11, (9, 10): 13,
}  # fmt: skip


@pytest.fixture
def textbook():
    tasks = {
        f"n{i}": Task(f"n{i}", None, runtime_seconds={f"P{k + 1}": c for k, c in enumerate(costs)})
        for i, costs in COSTS.items()
    }
    # Communication costs are times: one byte per second makes data_bytes read as seconds.
    edges = [Edge(f"n{u}", f"n{v}", cost) for (u, v), cost in COMMUNICATION.items()]
    platform = Platform("three-processors", tuple(Machine(f"P{k}") for k in (1, 2, 3)), 1.0)
    return build_problem(Workflow("topcuoglu-2002", tasks, edges), platform)


def test_upward_ranks_are_the_papers(textbook):
    ranks = dict(zip(textbook.task_ids, upward_rank(textbook), strict=True))
    expected = {"n1": 108, "n2": 77, "n3": 80, "n4": 80, "n5": 69, "n6": 63.333, "n7": 42.667,
                "n8": 35.667, "n9": 44.333, "n10": 14.667}  # fmt: skip
    assert ranks == pytest.approx(expected, abs=1e-3)


def test_order_breaks_the_n3_n4_tie_by_index(textbook):
    order = [textbook.task_ids[v] for v in priority_order(upward_rank(textbook))]
    assert order == ["n1", "n3", "n4", "n2", "n5", "n6", "n9", "n7", "n8", "n10"]


def test_heft_makespan_is_80_with_the_papers_placement(textbook):
    result = heft(textbook)
    assert result.simulation.valid
    assert result.simulation.makespan_seconds == 80
    placed = {a.task_id: (a.machine_id, a.start_seconds, a.end_seconds) for a in result.schedule.assignments}
    assert placed["n1"] == ("P3", 0, 9)
    assert placed["n4"] == ("P2", 18, 26)
    assert placed["n2"] == ("P1", 27, 40)
    assert placed["n9"] == ("P2", 56, 68)
    assert placed["n10"] == ("P2", 73, 80)


def test_insertion_fills_an_earlier_gap():
    """t waits on B for its parent's data, leaving B idle from 0 to 11: u, placed later, goes in that gap."""
    tasks = {
        "s": Task("s", None, runtime_seconds={"A": 1, "B": 100}),
        "t": Task("t", None, runtime_seconds={"A": 100, "B": 5}),
        "u": Task("u", None, runtime_seconds={"A": 50, "B": 5}),
    }
    platform = Platform("two", (Machine("A"), Machine("B")), 1.0)
    problem = build_problem(Workflow("gap", tasks, [Edge("s", "t", 10.0)]), platform)
    result = heft(problem)
    on = {a.task_id: (a.machine_id, a.start_seconds, a.end_seconds) for a in result.schedule.assignments}
    assert on["s"] == ("A", 0, 1)
    assert on["t"] == ("B", 11, 16)
    assert on["u"] == ("B", 0, 5)
    assert result.simulation.makespan_seconds == 16
