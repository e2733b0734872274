"""Deferred [RECON]: several allocations kept per task, one chosen at mapping, the budget guaranteed.

As bi-CPA keeps one allocation per assumed cluster size, Deferred keeps one per budget level: the CPA loop
runs with T_A(c) for ``levels`` prices c from T_A^over's (the most expensive CPU-hour of work) down to
T_A^under's (the cheapest), geometrically spaced, allocations only growing from one level to the next.
The mapping takes, for each task, the largest kept CPU count that has an option passing the guarded budget
test (running cost + reserve for the remaining tasks <= B'), at its earliest finish; when none passes the
task goes on the fallback instance (see ``allocate.mapping``). So the cost never exceeds B' when
B' >= ``minimum_budget`` (the cheapest one-VM sequential schedule), at the price of evaluating every kept
count at mapping time.
"""

from allocate.cpa import budget_allocation_levels, price_levels
from allocate.mapping import Schedule, map_guarded
from allocate.model import Catalog, Dag


def deferred(dag: Dag, catalog: Catalog, budget: float, levels: int = 8, hours: str = "hourly") -> Schedule:
    kept = budget_allocation_levels(dag, catalog, budget, price_levels(catalog, levels), hours)
    return map_guarded(dag, catalog, budget, kept, rule="largest")
