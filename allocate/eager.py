"""Eager [RECON]: one allocation per task, fast, the budget only known after mapping.

The CPA loop is stopped by one fixed T_A reading of the sub-workflow budget B' (default T_A^under: the
cheapest price per CPU-hour of work, so allocations grow as much as the budget could pay for if every task
ran on the most cost-efficient type; ``reading="over"`` selects the pessimistic reading). The allocation is
then list-scheduled with the unguarded budget test: each task takes its earliest-finishing option among
those keeping the running cost <= B', or the cheapest option when none does. Nothing is reserved for the
tasks still to place, and hourly rounding and idle gaps are only seen once the tasks are mapped, so the
final cost may exceed B' (the deck: Eager "cannot guarantee the budget after mapping").
"""

from allocate.cpa import budget_allocation
from allocate.mapping import Schedule, map_unguarded
from allocate.model import Catalog, Dag


def eager(
    dag: Dag, catalog: Catalog, budget: float, reading: str = "under", hours: str = "hourly"
) -> Schedule:
    cpus = budget_allocation(dag, catalog, budget, reading, hours)
    return map_unguarded(dag, catalog, budget, cpus)
