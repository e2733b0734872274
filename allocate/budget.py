"""Share_Budget (Algorithm 1 of the Caron-Desprez-Muresan-Suter deck): split B over the sub-workflows.

    nExec_i = CDF^-1(D_i, confidence)
    omega_i = (1/|C|) * sum_j sum_k T(v_j, vm_k) * nExec_i        (average work over the catalog)
    omega*  = sum_i omega_i                                         (the natural normalisation, [RECON])
    B_i     = B * omega_i / omega* * 1 / nExec_i                    (budget for ONE execution of G_i)

so that sum_i nExec_i * B_i = B. T(v_j, vm_k) reads as the task on the whole VM (``task_time="vm"``:
all ``ncpu`` vCPUs at the type's speed); ``task_time="one_cpu"`` selects the other reading (one vCPU).
A sub-workflow with nExec_i = 0 is not provisioned; it still gets the formula's limit B * avg_i / omega*
(nExec_i cancels) so that, if it does run, it runs at the same budget rate as the others.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from allocate.decompose import SubWorkflow, n_executions
from allocate.model import Catalog, Dag

TASK_TIMES = ("vm", "one_cpu")


@dataclass(frozen=True)
class BudgetShare:
    sub_workflow: str
    n_executions: int
    omega: float  # omega_i, seconds
    budget: float  # B_i, for one execution


def average_catalog_seconds(dag: Dag, catalog: Catalog, task_time: str = "vm") -> float:
    """(1/|C|) sum_j sum_k T(v_j, vm_k): the sub-workflow's work averaged over the catalog."""
    if task_time not in TASK_TIMES:
        raise ValueError(f"task_time must be one of {TASK_TIMES}")
    total = 0.0
    for vm in catalog.vm_types:
        cpus = vm.ncpu if task_time == "vm" else 1
        total += sum(dag.seconds(i, cpus, vm.speed) for i in range(len(dag)))
    return total / len(catalog.vm_types)


def share_budget(
    budget: float,
    sub_workflows: list[SubWorkflow],
    catalog: Catalog,
    confidence: float,
    task_time: str = "vm",
) -> list[BudgetShare]:
    averages = [average_catalog_seconds(s.dag, catalog, task_time) for s in sub_workflows]
    counts = [n_executions(s.executions, confidence) for s in sub_workflows]
    omegas = [a * n for a, n in zip(averages, counts, strict=True)]
    omega_star = sum(omegas)
    shares = []
    for s, average, count, omega in zip(sub_workflows, averages, counts, omegas, strict=True):
        if omega_star == 0.0:
            b = budget / len(sub_workflows)
        elif count == 0:
            b = budget * average / omega_star
        else:
            b = budget * omega / omega_star / count
        shares.append(BudgetShare(s.id, count, omega, b))
    return shares


def share_budget_with_floors(
    budget: float,
    sub_workflows: list[SubWorkflow],
    catalog: Catalog,
    confidence: float,
    floors: list[float],
    task_time: str = "vm",
) -> list[BudgetShare]:
    """refine's split: every sub-workflow first gets its floor (the least budget its guarded mapping can
    keep), the rest is shared as Share_Budget shares B. Proportional shares alone can leave a small
    sub-workflow below the billed hour it needs even when B covers the whole workflow's minimum; with
    floors, B >= sum_i nExec_i * floor_i is enough for every sub-workflow. Below that, Share_Budget's
    split is returned unchanged."""
    shares = share_budget(budget, sub_workflows, catalog, confidence, task_time)
    needed = math.fsum(s.n_executions * f for s, f in zip(shares, floors, strict=True))
    if budget < needed:
        return shares
    rest = share_budget(budget - needed, sub_workflows, catalog, confidence, task_time)
    return [
        BudgetShare(r.sub_workflow, r.n_executions, r.omega, f + r.budget)
        for r, f in zip(rest, floors, strict=True)
    ]
