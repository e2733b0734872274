"""Check an R.json against its WF.json alone: coverage, durations, precedence, VM capacity, cost.

Everything is recomputed from the two files (the catalog section of R.json gives each used type's ncpu,
price and speed, and the bandwidth): a task must run for exactly its Amdahl time on its VM, start after
each parent's end plus the transfer (none on the same VM), the CPUs of the tasks running on a VM at any
instant must fit its ncpu, and the cost is sum over VMs of nExec(sub-workflow) * max(1, ceil(span /
3600 s)) * cost_per_hour, summed as integer hours per type like the allocator does.
"""

from __future__ import annotations

import math
from collections import defaultdict

from allocate.model import Workflow, billed_hours, cost_of_hours, execution_seconds, within_budget

TIME_TOLERANCE_SECONDS = 1e-6
COST_TOLERANCE = 1e-9


def check_result(result: dict, workflow: Workflow) -> list[str]:
    """Every violation found, as a sentence; an empty list means the result is consistent."""
    problems: list[str] = []
    types = {t["type"]: t for t in result["catalog"]["vm_types"]}
    bandwidth = float(result["catalog"]["bandwidth_bytes_per_second"])
    runs = {s["id"]: int(s["n_executions"]) for s in result["sub_workflows"]}
    entries: dict[str, dict] = {}
    for entry in result["schedule"]:
        if entry["task_id"] in entries:
            problems.append(f"task {entry['task_id']} is scheduled twice")
        entries[entry["task_id"]] = entry
    missing = workflow.tasks.keys() - entries.keys()
    unknown = entries.keys() - workflow.tasks.keys()
    if missing:
        problems.append(f"{len(missing)} tasks are not scheduled, e.g. {sorted(missing)[:3]}")
    if unknown:
        problems.append(f"{len(unknown)} scheduled tasks are not in the workflow, e.g. {sorted(unknown)[:3]}")
    vms: dict[str, list[dict]] = defaultdict(list)
    for task_id, entry in entries.items():
        problems += _check_entry(task_id, entry, result["allocations"], types, workflow, runs)
        vms[entry["vm_id"]].append(entry)
    problems += _check_precedence(workflow, entries, bandwidth)
    hours_by_type: dict[str, int] = defaultdict(int)
    for vm_id, tasks in vms.items():
        if len({(e["vm_type"], e["sub_workflow"]) for e in tasks}) != 1:
            problems.append(f"VM {vm_id} has several types or sub-workflows")
            continue
        problems += _check_capacity(vm_id, tasks, types)
        span = max(e["end_seconds"] for e in tasks) - min(e["start_seconds"] for e in tasks)
        hours_by_type[tasks[0]["vm_type"]] += runs.get(tasks[0]["sub_workflow"], 0) * billed_hours(span)
    names = sorted(n for n in hours_by_type if n in types)
    cost = cost_of_hours([hours_by_type[n] for n in names], [types[n]["cost_per_hour"] for n in names])
    if not math.isclose(cost, result["cost"], rel_tol=COST_TOLERANCE, abs_tol=COST_TOLERANCE):
        problems.append(f"recomputed cost {cost!r} differs from the reported {result['cost']!r}")
    if result["within_budget"] != within_budget(result["cost"], result["budget"]):
        problems.append("within_budget does not match cost <= budget")
    problems += _check_makespan(result, entries, runs)
    return problems


def _check_entry(task_id, entry, allocations, types, workflow, runs) -> list[str]:
    problems = []
    vm = types.get(entry["vm_type"])
    if vm is None:
        return [f"task {task_id}: VM type {entry['vm_type']} is not in the result's catalog"]
    if entry["sub_workflow"] not in runs:
        problems.append(f"task {task_id}: unknown sub-workflow {entry['sub_workflow']}")
    allocation = allocations.get(task_id)
    if allocation != {"vm_type": entry["vm_type"], "cpus": entry["cpus"]}:
        problems.append(f"task {task_id}: allocation {allocation} does not match its schedule entry")
    if not 1 <= entry["cpus"] <= vm["ncpu"]:
        problems.append(f"task {task_id}: {entry['cpus']} CPUs on a {vm['ncpu']}-CPU VM")
        return problems
    task = workflow.tasks.get(task_id)
    if task is not None:
        expected = execution_seconds(task.work_seconds, task.alpha, entry["cpus"], vm["speed"])
        took = entry["end_seconds"] - entry["start_seconds"]
        if not math.isclose(took, expected, rel_tol=1e-9, abs_tol=TIME_TOLERANCE_SECONDS):
            problems.append(f"task {task_id}: runs {took} s, its model time is {expected} s")
    return problems


def _check_precedence(workflow: Workflow, entries: dict[str, dict], bandwidth: float) -> list[str]:
    data: dict[tuple[str, str], float] = defaultdict(float)
    for e in workflow.edges:
        if e.source in workflow.tasks and e.target in workflow.tasks:
            data[(e.source, e.target)] += e.data_bytes
    problems = []
    for (u, v), size in data.items():
        if u not in entries or v not in entries:
            continue
        parent, child = entries[u], entries[v]
        if parent["sub_workflow"] != child["sub_workflow"]:
            problems.append(f"edge {u} -> {v} crosses sub-workflows")
            continue
        transfer = 0.0 if parent["vm_id"] == child["vm_id"] else size / bandwidth
        if child["start_seconds"] < parent["end_seconds"] + transfer - TIME_TOLERANCE_SECONDS:
            problems.append(f"edge {u} -> {v}: {v} starts before {u}'s data can arrive")
    return problems


def _check_capacity(vm_id: str, tasks: list[dict], types: dict) -> list[str]:
    ncpu = types[tasks[0]["vm_type"]]["ncpu"]
    events = sorted(
        [(e["end_seconds"], -e["cpus"]) for e in tasks] + [(e["start_seconds"], e["cpus"]) for e in tasks]
    )  # at equal times the ends (negative) come first
    busy = 0
    for _, delta in events:
        busy += delta
        if busy > ncpu:
            return [f"VM {vm_id}: {busy} CPUs in use on a {ncpu}-CPU VM"]
    return []


def _check_makespan(result: dict, entries: dict[str, dict], runs: dict[str, int]) -> list[str]:
    ends: dict[str, float] = defaultdict(float)
    for e in entries.values():
        ends[e["sub_workflow"]] = max(ends[e["sub_workflow"]], e["end_seconds"])
    makespan = math.fsum(runs[s] * end for s, end in ends.items() if s in runs)
    if not math.isclose(makespan, result["makespan_seconds"], rel_tol=1e-9, abs_tol=TIME_TOLERANCE_SECONDS):
        return [f"recomputed makespan {makespan} differs from the reported {result['makespan_seconds']}"]
    return []
