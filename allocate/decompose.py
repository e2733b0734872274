"""Cut a non-DAG workflow into DAG sub-workflows, each with its distribution of execution counts.

Sub-workflows are the groups of compute tasks joined by task-to-task edges, by feeding the same OR-split
(it fires once per execution of what feeds it) or by being fed by the same OR-join (one arrival starts
them together); a workflow without control vertices is one sub-workflow that runs once. Control flow between them goes through OR-splits
and OR-joins: a finished sub-workflow sends one arrival to each control successor, an OR-join passes
every arrival on, an OR-split sends it along one outgoing edge (by probability, or by its loop counter),
and every arrival at a sub-workflow runs it once.

The counts of different sub-workflows are correlated (the two branches of one split add up to the split's
arrivals, a loop body's count is a sum of per-entry iteration counts), so they are obtained by simulating
the control flow ``samples`` times with a seeded generator rather than by convolving independent laws:
any graph is handled exactly in distribution, up to the sampling error of the quantiles.
"""

from __future__ import annotations

import bisect
import itertools
from collections import Counter, deque
from dataclasses import dataclass

import numpy as np

from allocate.model import OR_SPLIT, Dag, Edge, Workflow

MAX_ARRIVALS_PER_RUN = 100_000


@dataclass(frozen=True)
class SubWorkflow:
    id: str
    dag: Dag
    executions: dict[int, float]  # probability of each number of executions in one workflow run


def n_executions(executions: dict[int, float], confidence: float) -> int:
    """CDF^-1 at ``confidence``: the fewest executions covering that probability."""
    if not 0.0 < confidence <= 1.0:
        raise ValueError(f"confidence must be in (0, 1], not {confidence}")
    total = 0.0
    for count in sorted(executions):
        total += executions[count]
        if total >= confidence - 1e-12:
            return count
    return max(executions)


def _regions(workflow: Workflow) -> list[list[str]]:
    """Task ids of each sub-workflow, in the workflow's task order."""
    ids = list(workflow.tasks)
    if workflow.deterministic:
        return [ids] if ids else []
    parent = {t: t for t in ids}

    def root(t: str) -> str:
        while parent[t] != t:
            parent[t] = parent[parent[t]]
            t = parent[t]
        return t

    feeding: dict[str, str] = {}  # control vertex -> one task that shares its arrival
    for e in workflow.edges:
        if e.source in workflow.tasks and e.target in workflow.tasks:
            pair = (e.source, e.target)
        elif e.source in workflow.tasks and workflow.controls[e.target].kind == OR_SPLIT:
            pair = (e.source, feeding.setdefault(e.target, e.source))
        elif e.target in workflow.tasks and workflow.controls[e.source].kind != OR_SPLIT:
            pair = (e.target, feeding.setdefault(e.source, e.target))
        else:
            continue
        parent[root(pair[0])] = root(pair[1])
    groups: dict[str, list[str]] = {}
    for t in ids:
        groups.setdefault(root(t), []).append(t)
    return list(groups.values())


class _ControlFlow:
    """The graph of sub-workflows (ints) and control vertices (ids) that arrivals travel on."""

    def __init__(self, workflow: Workflow, regions: list[list[str]]):
        self.workflow = workflow
        region_of = {t: k for k, members in enumerate(regions) for t in members}
        self.next: dict[object, list[object]] = {k: [] for k in range(len(regions))}
        self.next.update({c: [] for c in workflow.controls})
        self.choices: dict[str, list[tuple[object, float]]] = {}
        self.loop_targets: dict[str, tuple[object, object]] = {}
        incoming: set[object] = set()
        for e in workflow.edges:
            source = region_of.get(e.source, e.source)
            target = region_of.get(e.target, e.target)
            if e.source in workflow.tasks and e.target in workflow.tasks:
                continue
            incoming.add(target)
            if e.source in workflow.controls and workflow.controls[e.source].kind == OR_SPLIT:
                self._add_split_edge(e, target)
            elif target not in self.next[source]:
                self.next[source].append(target)
        self.iteration_laws: dict[str, tuple[list[int], list[float]]] = {}
        for split in self.loop_targets:
            law = workflow.controls[split].iterations
            counts = sorted(law)
            self.iteration_laws[split] = (counts, list(itertools.accumulate(law[c] for c in counts)))
        self.starts = [node for node in self.next if node not in incoming]
        if not self.starts:
            raise ValueError(f"{workflow.name}: no entry vertex (every vertex has an incoming edge)")
        self._check_reachable()

    def _add_split_edge(self, edge: Edge, target: object) -> None:
        split = self.workflow.controls[edge.source]
        if split.iterations is None:
            self.choices.setdefault(split.id, []).append((target, float(edge.probability)))
            return
        back, exit_ = self.loop_targets.get(split.id, (None, None))
        self.loop_targets[split.id] = (target, exit_) if edge.loop else (back, target)

    def _check_reachable(self) -> None:
        seen, todo = set(self.starts), list(self.starts)
        while todo:
            node = todo.pop()
            followers = list(self.next[node])
            followers += [t for t, _ in self.choices.get(node, [])]
            followers += list(self.loop_targets.get(node, ()))
            for nxt in followers:
                if nxt not in seen:
                    seen.add(nxt)
                    todo.append(nxt)
        missing = [str(n) for n in self.next if n not in seen]
        if missing:
            raise ValueError(f"{self.workflow.name}: vertices unreachable from an entry: {missing[:5]}")

    def run_counts(self, n_regions: int, rng: np.random.Generator) -> list[int]:
        counts = [0] * n_regions
        loops_left: dict[str, int] = {}
        queue = deque(self.starts)
        arrivals = 0
        while queue:
            arrivals += 1
            if arrivals > MAX_ARRIVALS_PER_RUN:
                raise ValueError(f"{self.workflow.name}: control flow does not terminate")
            node = queue.popleft()
            if isinstance(node, int):
                counts[node] += 1
                queue.extend(self.next[node])
            elif node in self.loop_targets:
                queue.append(self._loop_step(node, loops_left, rng))
            elif node in self.choices:
                queue.append(self._branch(node, rng))
            else:
                queue.extend(self.next[node])
        return counts

    def _branch(self, split: str, rng: np.random.Generator) -> object:
        u, total = rng.random(), 0.0
        for target, probability in self.choices[split]:
            total += probability
            if u < total:
                return target
        return self.choices[split][-1][0]

    def _loop_step(self, split: str, loops_left: dict[str, int], rng: np.random.Generator) -> object:
        back, exit_ = self.loop_targets[split]
        if split not in loops_left:
            counts, cumulative = self.iteration_laws[split]
            loops_left[split] = (
                counts[min(bisect.bisect_right(cumulative, rng.random()), len(counts) - 1)] - 1
            )
        if loops_left[split] > 0:
            loops_left[split] -= 1
            return back
        del loops_left[split]
        return exit_


def decompose(workflow: Workflow, samples: int = 10_000, seed: int = 0) -> list[SubWorkflow]:
    """DAG sub-workflows (ids ``g0, g1, ...`` in task order) with their execution-count distributions."""
    regions = _regions(workflow)
    inside = [set(members) for members in regions]
    dags = [
        Dag.build(
            f"g{k}",
            (workflow.tasks[t] for t in members),
            (e for e in workflow.edges if e.source in inside[k] and e.target in inside[k]),
        )
        for k, members in enumerate(regions)
    ]
    if workflow.deterministic:
        return [SubWorkflow(d.name, d, {1: 1.0}) for d in dags]
    flow = _ControlFlow(workflow, regions)
    rng = np.random.default_rng(seed)
    tallies = [Counter() for _ in regions]
    for _ in range(samples):
        for k, count in enumerate(flow.run_counts(len(regions), rng)):
            tallies[k][count] += 1
    return [
        SubWorkflow(d.name, d, {c: n / samples for c, n in sorted(t.items())})
        for d, t in zip(dags, tallies, strict=True)
    ]
