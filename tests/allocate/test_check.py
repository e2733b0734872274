import copy
import json

import pytest

from allocate.check import check_result
from allocate.generators import random_dag
from allocate.plan import allocate_workflow


@pytest.fixture(scope="module")
def case():
    from allocate.catalog import EC2_INSPIRED

    workflow = random_dag(40, seed=3)
    result = allocate_workflow(workflow, EC2_INSPIRED, 1.0, "deferred")
    return workflow, json.loads(json.dumps(result.to_json()))


def test_a_consistent_result_has_no_problem(case):
    workflow, result = case
    assert check_result(result, workflow) == []


def first_child_entry(workflow, result):
    edge = next(e for e in workflow.edges if e.data_bytes > 0)
    by_task = {e["task_id"]: e for e in result["schedule"]}
    return edge, by_task[edge.source], by_task[edge.target]


def test_the_checker_finds_precedence_capacity_cost_and_duration_errors(case):
    workflow, good = case
    result = copy.deepcopy(good)
    edge, parent, child = first_child_entry(workflow, result)
    took = child["end_seconds"] - child["start_seconds"]
    child["start_seconds"] = parent["start_seconds"]
    child["end_seconds"] = parent["start_seconds"] + took
    assert any(f"edge {edge.source} -> {edge.target}" in p for p in check_result(result, workflow))
    child["end_seconds"] += 1.0
    assert any("model time" in p for p in check_result(result, workflow))

    result = copy.deepcopy(good)
    result["cost"] *= 1.01
    assert any("recomputed cost" in p for p in check_result(result, workflow))

    result = copy.deepcopy(good)
    ncpu = {t["type"]: t["ncpu"] for t in result["catalog"]["vm_types"]}
    entry = result["schedule"][0]
    entry["cpus"] = ncpu[entry["vm_type"]] + 1
    result["allocations"][entry["task_id"]]["cpus"] = entry["cpus"]
    assert any("CPUs on a" in p for p in check_result(result, workflow))

    result = copy.deepcopy(good)
    vm = result["schedule"][0]
    twins = [e for e in result["schedule"] if e["vm_id"] == vm["vm_id"]]
    for e in result["schedule"]:  # put everything on the first VM, at the same time
        e["vm_id"], e["vm_type"] = vm["vm_id"], vm["vm_type"]
        result["allocations"][e["task_id"]]["vm_type"] = vm["vm_type"]
    assert twins and any("in use on a" in p for p in check_result(result, workflow))

    result = copy.deepcopy(good)
    result["schedule"].pop()
    result["within_budget"] = not result["within_budget"]
    problems = check_result(result, workflow)
    assert any("not scheduled" in p for p in problems) and any("within_budget" in p for p in problems)
