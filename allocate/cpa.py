"""CPA and bi-CPA allocation, and the budget versions of CPA's stopping test (T_A^over, T_A^under).

The loop is the reference one (Suter's bi-CPA ``set_multiple_allocations``): every task starts on one CPU;
while the critical path T_CP (bottom level of the entry, task times only, no communication) exceeds T_A,
the critical-path task with the largest gain T(p)/p - T(p+1)/(p+1) gets one more CPU; it stops when
T_CP <= T_A or when no critical-path task can grow (saturation, p = the largest VM's ncpu here).
CPA uses T_A = W / P with W = sum_v T(v, p_v) * p_v; bi-CPA keeps the allocation reached for every
assumed size s = 1..P (T_A = W / s), allocations only growing with s.

Times in these loops are at the catalog's nominal speed (``Catalog.mean_speed``): the mapping decides the
VM type, and with it the real speed, later.

Budget reading ([RECON], reference section 1.3): in a cloud the budget B' of one execution decides how
many CPUs are affordable during the current critical path, at price c per CPU-hour of work:

    P_aff(c) = B' / (c * H(T_CP)),   T_A(c) = W / P_aff(c) = W * c * H(T_CP) / B'

    T_A^over  = T_A(max over types of c)   pessimistic: stops earlier, spends less
    T_A^under = T_A(min over types of c)   optimistic: grows more, may overspend

with c a type's ``cost_per_hour / (ncpu * speed)`` rescaled to the nominal speed. H is the started hours
``ceil(T_CP / 3600)`` (``hours="hourly"``, default, the billing model) or ``T_CP / 3600``
(``hours="fluid"``, the alternative reading without rounding).
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Callable

from allocate.model import SECONDS_PER_HOUR, Catalog, Dag

READINGS = ("over", "under")
HOURS = ("hourly", "fluid")

Threshold = Callable[[float, float], float]  # (W, T_CP) -> T_A, seconds


class CriticalPath:
    """Allocations with their bottom levels kept exact as tasks grow (only ancestors are revisited)."""

    def __init__(self, dag: Dag, speed: float, max_cpus: int):
        self.dag, self.speed, self.max_cpus = dag, speed, max_cpus
        self.cpus = [1] * len(dag)
        self.times = [dag.seconds(i, 1, speed) for i in range(len(dag))]
        self.area = sum(self.times)
        self.bottom = dag.bottom_levels(self.times)
        self.children = [tuple(v for v, _ in s) for s in dag.successors]
        self.parents = [tuple(u for u, _ in p) for p in dag.predecessors]
        self.entries = [i for i in range(len(dag)) if not dag.predecessors[i]]

    def length(self) -> float:
        return max((self.bottom[i] for i in self.entries), default=0.0)

    def path(self) -> list[int]:
        """The critical path top-down: from the longest entry, always the child with the largest level."""
        if not self.entries:
            return []
        u = max(self.entries, key=lambda i: self.bottom[i])
        path = [u]
        while self.children[u]:
            u = max(self.children[u], key=self.bottom.__getitem__)
            path.append(u)
        return path

    def gain(self, task: int) -> float:
        p = self.cpus[task]
        if p >= self.max_cpus:
            return 0.0
        return self.times[task] / p - self.dag.seconds(task, p + 1, self.speed) / (p + 1)

    def grow(self, task: int) -> None:
        p = self.cpus[task] + 1
        new_time = self.dag.seconds(task, p, self.speed)
        self.area += new_time * p - self.times[task] * (p - 1)
        self.cpus[task], self.times[task] = p, new_time
        bottom, times, children, parents = self.bottom, self.times, self.children, self.parents
        heap, queued = [-task], {task}
        while heap:
            u = -heapq.heappop(heap)
            queued.discard(u)
            old = bottom[u]
            level = times[u] + (max(map(bottom.__getitem__, children[u])) if children[u] else 0.0)
            if level == old:
                continue
            bottom[u] = level
            for parent in parents[u]:
                # a parent only changes if u was (or now is) its longest way to an exit
                if parent not in queued and (level > old or times[parent] + old >= bottom[parent]):
                    queued.add(parent)
                    heapq.heappush(heap, -parent)

    def allocate_until(self, threshold: Threshold) -> bool:
        """Grow while T_CP > T_A; True when it stopped on saturation."""
        while self.length() > threshold(self.area, self.length()):
            best, best_gain = None, 0.0
            for task in self.path():
                gain = self.gain(task)
                if gain > best_gain:
                    best, best_gain = task, gain
            if best is None:
                return True
            self.grow(best)
        return False


def cpa(dag: Dag, processors: int, speed: float = 1.0) -> list[int]:
    """CPA's allocation for a cluster of ``processors`` identical hosts."""
    path = CriticalPath(dag, speed, processors)
    path.allocate_until(lambda area, _: area / processors)
    return path.cpus


def bicpa_allocations(dag: Dag, processors: int, speed: float = 1.0) -> list[list[int]]:
    """bi-CPA's allocations for every assumed cluster size s = 1..P (index s - 1); the last one is CPA's."""
    path = CriticalPath(dag, speed, processors)
    kept = []
    for size in range(1, processors + 1):
        path.allocate_until(lambda area, _, s=size: area / s)
        kept.append(list(path.cpus))
    return kept


def nominal_work_price(catalog: Catalog, reading: str) -> float:
    """Price of one CPU-hour at the nominal speed: the most (over) or least (under) expensive type's."""
    if reading not in READINGS:
        raise ValueError(f"T_A reading must be one of {READINGS}, not {reading!r}")
    prices = [t.cost_per_work_hour * catalog.mean_speed for t in catalog.vm_types]
    return max(prices) if reading == "over" else min(prices)


def budget_threshold(budget: float, price_per_cpu_hour: float, hours: str = "hourly") -> Threshold:
    """T_A(c) = W * c * H(T_CP) / B' (see the module docstring)."""
    if hours not in HOURS:
        raise ValueError(f"hours reading must be one of {HOURS}, not {hours!r}")

    def t_a(area: float, t_cp: float) -> float:
        if budget <= 0.0:
            return math.inf
        h = math.ceil(t_cp / SECONDS_PER_HOUR) if hours == "hourly" else t_cp / SECONDS_PER_HOUR
        return area * price_per_cpu_hour * h / budget

    return t_a


def budget_allocation(
    dag: Dag, catalog: Catalog, budget: float, reading: str = "under", hours: str = "hourly"
) -> list[int]:
    """One CPU count per task from the CPA loop stopped by T_A^reading(B')."""
    path = CriticalPath(dag, catalog.mean_speed, catalog.max_cpus)
    path.allocate_until(budget_threshold(budget, nominal_work_price(catalog, reading), hours))
    return path.cpus


def price_levels(catalog: Catalog, levels: int, beyond_under: float = 1.0) -> list[float]:
    """``levels`` prices from T_A^over's down to T_A^under's (divided by ``beyond_under``), geometric."""
    high = nominal_work_price(catalog, "over")
    low = nominal_work_price(catalog, "under") / beyond_under
    if levels < 2:
        return [low]
    ratio = (low / high) ** (1.0 / (levels - 1))
    return [high * ratio**j for j in range(levels)]


def budget_allocation_levels(
    dag: Dag, catalog: Catalog, budget: float, prices: list[float], hours: str = "hourly"
) -> list[list[int]]:
    """bi-CPA's pattern with budget levels: the allocation reached at each price, from high to low.

    A price of 0 means "grow until saturation". Allocations only grow from one level to the next."""
    path = CriticalPath(dag, catalog.mean_speed, catalog.max_cpus)
    kept = []
    for price in sorted(prices, reverse=True):
        path.allocate_until(budget_threshold(budget, price, hours))
        kept.append(list(path.cpus))
    return kept
