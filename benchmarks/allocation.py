"""Eager, Deferred and refine: seconds per budget point on a 1,000-task daggen workflow (goal < 2 s for Eager
and Deferred), and the within-budget / violation counts of 200 random seeded cases.

Run: .venv/bin/python benchmarks/allocation.py [--tasks N] [--cases N]

Times are the process CPU time (time.process_time, so they do not depend on how busy the machine is) of
one allocation, including the CPA loops and the mapping; the budget points are multiples of the
workflow's minimum budget. The 200 cases are daggen DAGs of 10-80
tasks with random shapes and budgets of 1-50 times their minimum (log-uniform, so that the tight budgets
where the algorithms differ are well covered), each R.json checked by check_result.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from allocate.catalog import EC2_INSPIRED  # noqa: E402
from allocate.check import check_result  # noqa: E402
from allocate.generators import random_dag  # noqa: E402
from allocate.mapping import minimum_budget  # noqa: E402
from allocate.model import Dag  # noqa: E402
from allocate.plan import allocate_workflow  # noqa: E402

GOAL_SECONDS = 2.0
FACTORS = (1, 2, 5, 10, 20, 50)


def timing(tasks: int) -> bool:
    workflow = random_dag(tasks, seed=1)
    dag = Dag.build(workflow.name, workflow.tasks.values(), workflow.edges)
    floor = minimum_budget(dag, EC2_INSPIRED)
    print(f"{tasks}-task daggen DAG ({len(workflow.edges)} edges), minimum budget {floor:.2f}")
    print(f"{'budget':>8} {'algorithm':>9} {'seconds':>8} {'makespan_s':>11} {'cost/B':>7}")
    ok = True
    for factor in FACTORS:
        for algorithm in ("eager", "deferred", "refine"):
            began = time.process_time()
            result = allocate_workflow(workflow, EC2_INSPIRED, factor * floor, algorithm)
            seconds = time.process_time() - began
            if algorithm != "refine":
                ok &= seconds < GOAL_SECONDS
            print(
                f"{factor:>7}x {algorithm:>9} {seconds:8.3f} {result.makespan_seconds:11.0f} "
                f"{result.cost / result.budget:7.3f}"
            )
    return ok


def cases(count: int) -> bool:
    rng = np.random.default_rng(2026)
    within = {"eager": 0, "deferred": 0, "refine": 0}
    violations = dict.fromkeys(within, 0)
    faster = 0
    for case in range(count):
        workflow = random_dag(
            int(rng.integers(10, 81)),
            fat=float(rng.uniform(0.2, 0.8)),
            density=float(rng.uniform(0.1, 0.9)),
            regularity=float(rng.uniform(0.2, 0.9)),
            jump=int(rng.integers(1, 4)),
            seed=case,
        )
        dag = Dag.build(workflow.name, workflow.tasks.values(), workflow.edges)
        budget = float(np.exp(rng.uniform(0.0, np.log(50.0)))) * minimum_budget(dag, EC2_INSPIRED)
        makespans = {}
        for algorithm in within:
            result = allocate_workflow(workflow, EC2_INSPIRED, budget, algorithm)
            data = result.to_json()
            within[algorithm] += data["within_budget"]
            violations[algorithm] += bool(check_result(data, workflow))
            makespans[algorithm] = data["makespan_seconds"]
        faster += makespans["refine"] < makespans["deferred"] - 1e-9
    print(f"\n{count} random seeded cases (10-80 tasks, budget 1-50 x minimum, log-uniform):")
    for algorithm in within:
        print(
            f"  {algorithm:>9}: within budget {within[algorithm]}/{count}, schedules with violations {violations[algorithm]}"
        )
    print(f"  refine faster than deferred in {faster}/{count}")
    return (
        within["deferred"] == within["refine"] == count
        and not violations["deferred"]
        and not violations["refine"]
    )


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--tasks", type=int, default=1000)
    p.add_argument("--cases", type=int, default=200)
    args = p.parse_args()
    ok = timing(args.tasks)
    ok &= cases(args.cases)
    print(
        f"\n{'PASS' if ok else 'FAIL'}: Eager and Deferred < {GOAL_SECONDS} s per budget point; Deferred and refine within budget"
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
