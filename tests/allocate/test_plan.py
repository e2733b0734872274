"""End to end: allocate_workflow -> R.json -> check_result, and the 200-case property test."""

import json

import numpy as np
import pytest

from allocate.catalog import EC2_INSPIRED
from allocate.check import check_result
from allocate.generators import random_dag, random_nondeterministic
from allocate.mapping import minimum_budget
from allocate.plan import ALGORITHMS, allocate_workflow

from .conftest import dag_of

R_JSON_KEYS = {"makespan_seconds", "cost", "budget", "within_budget", "allocations", "schedule", "catalog"}


def test_r_json_has_what_the_issue_asks(diamond, one_type):
    result = json.loads(json.dumps(allocate_workflow(diamond, one_type, 2.0, "deferred").to_json()))
    assert set(result) >= R_JSON_KEYS
    assert set(result["allocations"]) == set("abcd")
    assert set(result["schedule"][0]) >= {"task_id", "vm_id", "vm_type", "start_seconds", "end_seconds"}
    assert result["catalog"]["vm_types"] == [{"type": "quad", "ncpu": 4, "cost_per_hour": 1.0, "speed": 1.0}]
    assert check_result(result, diamond) == []


def test_the_diamond_by_hand(diamond, one_type):
    """One 4-CPU VM at $1/h: $1 buys one hour; a, (b | c) and d each take 3600 / p seconds."""
    cheap = allocate_workflow(diamond, one_type, 1.0, "deferred").to_json()
    assert cheap["cost"] == 1.0 and cheap["within_budget"]
    assert cheap["makespan_seconds"] <= 3600.0
    assert len(cheap["vms"]) == 1


def test_unknown_algorithm_and_negative_budget(diamond, one_type):
    with pytest.raises(ValueError, match="algorithm"):
        allocate_workflow(diamond, one_type, 1.0, "heft")
    with pytest.raises(ValueError, match="budget"):
        allocate_workflow(diamond, one_type, -1.0)


def test_non_deterministic_costs_are_provisioned_executions():
    workflow = random_nondeterministic(seed=4, n=12)
    for algorithm in ALGORITHMS:
        result = allocate_workflow(workflow, EC2_INSPIRED, 4.0, algorithm, samples=2000).to_json()
        assert check_result(result, workflow) == []
        subs = result["sub_workflows"]
        assert len(subs) == 5 and sum(s["n_executions"] for s in subs) >= 5
        total = sum(s["n_executions"] * s["cost"] for s in subs)
        assert result["cost"] == pytest.approx(total)
        if algorithm != "eager":
            assert result["within_budget"]


def test_refine_keeps_a_non_deterministic_budget_from_its_minimum():
    workflow = random_nondeterministic(seed=8, n=15)
    floor = allocate_workflow(workflow, EC2_INSPIRED, 0.0, "refine", samples=2000).minimum_budget
    for factor in (1.0, 1.3, 3.0):
        result = allocate_workflow(workflow, EC2_INSPIRED, factor * floor, "refine", samples=2000)
        assert result.within_budget


def test_200_random_seeded_cases_keep_budget_precedence_capacity_and_cost():
    """The acceptance property: Deferred and refine within budget in 100% of 200 cases, every R.json
    (Eager's too) passing the checker; budgets 1-50 x the minimum, log-uniform."""
    rng = np.random.default_rng(2026)
    for case in range(200):
        workflow = random_dag(
            int(rng.integers(10, 81)),
            fat=float(rng.uniform(0.2, 0.8)),
            density=float(rng.uniform(0.1, 0.9)),
            regularity=float(rng.uniform(0.2, 0.9)),
            jump=int(rng.integers(1, 4)),
            seed=case,
        )
        budget = float(np.exp(rng.uniform(0.0, np.log(50.0)))) * minimum_budget(
            dag_of(workflow), EC2_INSPIRED
        )
        for algorithm in ALGORITHMS:
            result = json.loads(
                json.dumps(allocate_workflow(workflow, EC2_INSPIRED, budget, algorithm).to_json())
            )
            assert check_result(result, workflow) == [], (case, algorithm)
            if algorithm != "eager":
                assert result["within_budget"], (case, algorithm, result["cost"], budget)
