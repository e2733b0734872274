"""Allocate a whole workflow: decompose, Share_Budget, one algorithm per sub-workflow, and R.json.

Each sub-workflow execution is mapped on its own VMs with budget B_i, so a run provisioned at the given
confidence costs sum_i nExec_i * cost_i (<= B when every cost_i <= B_i) and takes at most
sum_i nExec_i * makespan_i (exact when sub-workflows run one after another, as the generators' wrappers
do). A deterministic workflow is one sub-workflow run once: cost and makespan are its schedule's.
Eager and Deferred split B with Share_Budget; refine gives each sub-workflow its minimum budget first
(``share_budget_with_floors``), so it keeps B whenever B >= ``minimum_workflow_budget``.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from functools import partial

from allocate.budget import BudgetShare, share_budget, share_budget_with_floors
from allocate.decompose import SubWorkflow, decompose, n_executions
from allocate.deferred import deferred
from allocate.eager import eager
from allocate.mapping import Schedule, minimum_budget
from allocate.model import Catalog, Workflow, billed_hours, cost_of_hours, within_budget
from allocate.refine import refine

RESULT_FORMAT = "jouletrace.allocation/1"


def algorithms(reading: str = "under", hours: str = "hourly", levels: int = 8) -> dict:
    """The allocators by name, with the T_A readings they use."""
    return {
        "eager": partial(eager, reading=reading, hours=hours),
        "deferred": partial(deferred, levels=levels, hours=hours),
        "refine": partial(refine, levels=levels, hours=hours),
    }


ALGORITHMS = tuple(algorithms())


@dataclass
class Part:
    sub_workflow: SubWorkflow
    share: BudgetShare
    schedule: Schedule


@dataclass
class Allocation:
    workflow: str
    algorithm: str
    budget: float
    confidence: float
    catalog: Catalog
    parts: list[Part]
    seconds_to_allocate: float

    @property
    def cost(self) -> float:
        hours = [0] * len(self.catalog.vm_types)
        for part in self.parts:
            for k, h in enumerate(part.schedule.hours_by_type):
                hours[k] += part.share.n_executions * h
        return cost_of_hours(hours, self.catalog.prices)

    @property
    def makespan_seconds(self) -> float:
        return math.fsum(p.share.n_executions * p.schedule.makespan_seconds for p in self.parts)

    @property
    def within_budget(self) -> bool:
        return within_budget(self.cost, self.budget)

    @property
    def minimum_budget(self) -> float:
        return minimum_workflow_budget([p.sub_workflow for p in self.parts], self.catalog, self.confidence)

    def to_json(self) -> dict:
        """R.json: enough, with WF.json, to recompute the cost and check every constraint."""
        vm_types = self.catalog.vm_types
        schedule, vms, allocations, subs, used = [], [], {}, [], set()
        several = len(self.parts) > 1
        for part in self.parts:
            s, sub = part.schedule, part.sub_workflow
            prefix = f"{sub.id}/" if several else ""
            spans: dict[int, list[float]] = {}
            for p in s.placements:
                vm = vm_types[s.instance_types[p.instance]]
                task_id = sub.dag.task_ids[p.task]
                schedule.append(
                    {
                        "task_id": task_id,
                        "sub_workflow": sub.id,
                        "vm_id": f"{prefix}vm{p.instance}",
                        "vm_type": vm.name,
                        "cpus": p.cpus,
                        "start_seconds": p.start,
                        "end_seconds": p.finish,
                    }
                )
                allocations[task_id] = {"vm_type": vm.name, "cpus": p.cpus}
                span = spans.setdefault(p.instance, [p.start, p.finish])
                span[0], span[1] = min(span[0], p.start), max(span[1], p.finish)
                used.add(vm.name)
            for j, (start, end) in sorted(spans.items()):
                vm = vm_types[s.instance_types[j]]
                hours = billed_hours(end - start)
                vms.append(
                    {
                        "vm_id": f"{prefix}vm{j}",
                        "vm_type": vm.name,
                        "sub_workflow": sub.id,
                        "start_seconds": start,
                        "end_seconds": end,
                        "billed_hours": hours,
                        "cost": hours * vm.cost_per_hour,
                    }
                )
            subs.append(
                {
                    "id": sub.id,
                    "tasks": len(sub.dag),
                    "executions": {str(k): v for k, v in sub.executions.items()},
                    "n_executions": part.share.n_executions,
                    "budget": part.share.budget,
                    "cost": s.cost,
                    "makespan_seconds": s.makespan_seconds,
                }
            )
        return {
            "format": RESULT_FORMAT,
            "workflow": self.workflow,
            "algorithm": self.algorithm,
            "budget": self.budget,
            "confidence": self.confidence,
            "cost": self.cost,
            "makespan_seconds": self.makespan_seconds,
            "within_budget": self.within_budget,
            "minimum_budget": self.minimum_budget,
            "seconds_to_allocate": self.seconds_to_allocate,
            "catalog": {
                "name": self.catalog.name,
                "bandwidth_bytes_per_second": self.catalog.bandwidth_bytes_per_second,
                "vm_types": [
                    {"type": t.name, "ncpu": t.ncpu, "cost_per_hour": t.cost_per_hour, "speed": t.speed}
                    for t in vm_types
                    if t.name in used
                ],
            },
            "sub_workflows": subs,
            "allocations": allocations,
            "schedule": schedule,
            "vms": vms,
        }


def minimum_workflow_budget(subs: list[SubWorkflow], catalog: Catalog, confidence: float) -> float:
    """sum_i nExec_i * minimum_budget(G_i): below it no guarded allocation can promise the budget (above
    it each B_i must still reach its own minimum, which Share_Budget's proportional split may not give)."""
    return math.fsum(n_executions(s.executions, confidence) * minimum_budget(s.dag, catalog) for s in subs)


def allocate_workflow(
    workflow: Workflow,
    catalog: Catalog,
    budget: float,
    algorithm: str = "deferred",
    confidence: float = 0.9,
    reading: str = "under",
    hours: str = "hourly",
    samples: int = 10_000,
    seed: int = 0,
    subs: list[SubWorkflow] | None = None,
) -> Allocation:
    """``subs`` lets callers reuse one decomposition for many budgets (the sampling dominates then)."""
    chosen = algorithms(reading, hours).get(algorithm)
    if chosen is None:
        raise ValueError(f"algorithm must be one of {ALGORITHMS}, not {algorithm!r}")
    if budget < 0:
        raise ValueError("budget must be >= 0")
    began = time.perf_counter()
    subs = subs if subs is not None else decompose(workflow, samples=samples, seed=seed)
    if algorithm == "refine":
        floors = [minimum_budget(sub.dag, catalog) for sub in subs]
        shares = share_budget_with_floors(budget, subs, catalog, confidence, floors)
    else:
        shares = share_budget(budget, subs, catalog, confidence)
    parts = [
        Part(sub, share, chosen(sub.dag, catalog, share.budget))
        for sub, share in zip(subs, shares, strict=True)
    ]
    return Allocation(
        workflow.name, algorithm, budget, confidence, catalog, parts, time.perf_counter() - began
    )
