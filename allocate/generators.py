"""Workloads: FFT, Strassen and daggen-style random PTGs, non-deterministic wrappers, trace workflows.

Work is seconds on one reference vCPU; flop counts are turned into seconds at ``flops_per_second`` (1
Gflop/s, the biCPA reference hosts' speed). Every generator is deterministic for a given seed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from allocate.model import OR_JOIN, OR_SPLIT, Control, Edge, Task, Workflow

GFLOPS = 1e9


def fft(
    points: int,
    seed: int = 0,
    work_seconds: float = 1800.0,
    data_bytes: float = 256e6,
    alpha: tuple[float, float] = (0.0, 0.2),
) -> Workflow:
    """FFT task graph (Topcuoglu et al.) on ``points`` = 2^k: 2m - 1 recursive calls, m log2 m butterflies.

    Recursive calls form a binary tree (``r1`` the root, ``r<2i>`` and ``r<2i+1>`` the children of
    ``r<i>``, leaves ``r<m>..r<2m-1>``). Butterfly stage s task j (``b<s>_<j>``) reads tasks j and
    j XOR 2^s of the previous level (the leaves for s = 0), so that the k stages mix all m points. Task
    work is ``work_seconds`` times U[0.5, 1.5), edge data ``data_bytes`` times U[0.5, 1.5), alpha ~ U(alpha).
    """
    if points < 1 or points & (points - 1):
        raise ValueError(f"FFT points must be a power of two, not {points}")
    rng = np.random.default_rng(seed)
    stages = int(math.log2(points))
    ids = [f"r{i}" for i in range(1, 2 * points)]
    ids += [f"b{s}_{j}" for s in range(stages) for j in range(points)]
    tasks = {i: Task(i, work_seconds * rng.uniform(0.5, 1.5), rng.uniform(*alpha)) for i in ids}
    pairs = [(f"r{i}", f"r{c}") for i in range(1, points) for c in (2 * i, 2 * i + 1)]
    previous = [f"r{points + j}" for j in range(points)]
    for s in range(stages):
        for j in range(points):
            pairs += [(previous[j], f"b{s}_{j}"), (previous[j ^ (1 << s)], f"b{s}_{j}")]
        previous = [f"b{s}_{j}" for j in range(points)]
    edges = [Edge(u, v, data_bytes * rng.uniform(0.5, 1.5)) for u, v in pairs]
    return Workflow(f"fft-{points}", tasks, edges)


# S1..S10 = A11+A22, B11+B22, A21+A22, B12-B22, B21-B11, A11+A12, A21-A11, B11+B12, A12-A22, B21+B22
STRASSEN_SUMS = tuple(f"S{i}" for i in range(1, 11))  # read only input blocks: entry tasks
STRASSEN_PRODUCTS = {  # M_i reads the sums it multiplies (input blocks need no task)
    "M1": ("S1", "S2"),
    "M2": ("S3",),
    "M3": ("S4",),
    "M4": ("S5",),
    "M5": ("S6",),
    "M6": ("S7", "S8"),
    "M7": ("S9", "S10"),
}
STRASSEN_COMBINATIONS = {  # C11 = M1+M4-M5+M7, C12 = M3+M5, C21 = M2+M4, C22 = M1-M2+M3+M6
    "U1": ("M1", "M4"),
    "U2": ("U1", "M5"),
    "C11": ("U2", "M7"),
    "C12": ("M3", "M5"),
    "C21": ("M2", "M4"),
    "V1": ("M1", "M2"),
    "V2": ("V1", "M3"),
    "C22": ("V2", "M6"),
}


def strassen(
    seed: int = 0,
    block_size: int = 12_000,
    flops_per_second: float = GFLOPS,
    multiply_alpha: tuple[float, float] = (0.0, 0.1),
    add_alpha: tuple[float, float] = (0.2, 0.5),
) -> Workflow:
    """One recursion level of Strassen's algorithm: 10 pre-additions, 7 products, 8 post-additions.

    A product of two b x b blocks costs 2 b^3 flops, an addition b^2; every edge carries one block
    (8 b^2 bytes). Additions are memory-bound, hence their larger Amdahl fractions."""
    rng = np.random.default_rng(seed)
    b = float(block_size)
    tasks = {}
    for name in STRASSEN_SUMS:
        tasks[name] = Task(name, b * b / flops_per_second, rng.uniform(*add_alpha))
    for name in STRASSEN_PRODUCTS:
        tasks[name] = Task(name, 2 * b**3 / flops_per_second, rng.uniform(*multiply_alpha))
    for name in STRASSEN_COMBINATIONS:
        tasks[name] = Task(name, b * b / flops_per_second, rng.uniform(*add_alpha))
    edges = [
        Edge(u, v, 8 * b * b)
        for table in (STRASSEN_PRODUCTS, STRASSEN_COMBINATIONS)
        for v, sources in table.items()
        for u in sources
    ]
    return Workflow("strassen", tasks, edges)


def random_dag(
    n: int = 100,
    fat: float = 0.5,
    density: float = 0.5,
    regularity: float = 0.9,
    jump: int = 1,
    seed: int = 0,
    data: tuple[int, int] = (2048, 11264),
    complexity: int = 0,
    alpha: tuple[float, float] = (0.0, 0.2),
    flops_per_second: float = GFLOPS,
) -> Workflow:
    """daggen's rules (Suter and Hunold), ported from the reference, with a seeded generator.

    Levels hold about n^fat tasks (varied by +-100(1 - regularity)%); a task of level i gets
    1 + U[0, density * |level i-1|) parents (at most that level's size), each from a level up to ``jump``
    above, at a random index moved to the next free one if taken. A task's data size d is a multiple of
    1024 in ``data``; its cost is a d^2 (complexity 1), 2 a d^2 log2 d (2) or d^3 (3) flops, a ~ U[64,
    512), complexity 0 drawing one of the three per task; an edge carries 8 d^2 bytes of its parent's d.
    """
    if n < 1:
        raise ValueError("n must be >= 1")
    rng = np.random.default_rng(seed)
    ideal = max(1, int(math.exp(fat * math.log(n))))
    spread = 100.0 * (1.0 - regularity)
    levels: list[list[int]] = []
    total = 0
    while total < n:
        count = max(1, int(ideal * (1.0 + rng.uniform(-spread, spread) / 100.0)))
        count = min(count, n - total)
        levels.append(list(range(total, total + count)))
        total += count
    sizes, tasks = [], {}
    for i in range(n):
        d = int(rng.uniform(*data) / 1024) * 1024
        kind = complexity or int(rng.integers(1, 4))
        a = rng.uniform(64, 512)
        flops = {1: a * d * d, 2: 2 * a * d * d * math.log2(d), 3: float(d) ** 3}[kind]
        sizes.append(d)
        tasks[f"t{i}"] = Task(f"t{i}", flops / flops_per_second, rng.uniform(*alpha))
    edges = []
    for i in range(1, len(levels)):
        for task in levels[i]:
            wanted = min(1 + int(rng.uniform(0, density * len(levels[i - 1]))), len(levels[i - 1]))
            parents: set[int] = set()
            for _ in range(wanted):
                level = levels[max(0, i - int(rng.uniform(1, jump + 1)))]
                free = [p for p in level if p not in parents]
                if not free:
                    continue
                index = int(rng.integers(len(level)))
                while level[index] in parents:
                    index = (index + 1) % len(level)
                parents.add(level[index])
            edges += [Edge(f"t{p}", f"t{task}", 8.0 * sizes[p] ** 2) for p in sorted(parents)]
    name = f"random-n{n}-fat{fat}-d{density}-r{regularity}-j{jump}-s{seed}"
    return Workflow(name, tasks, edges)


@dataclass(frozen=True)
class Branches:
    """An OR-split choosing one option (``None``: skip) with its probability, then an OR-join; each
    option's DAG is entered through its own OR-join so that all its entry tasks start together."""

    options: tuple[tuple[float, Workflow | None], ...]


@dataclass(frozen=True)
class Loop:
    """A DAG run ``n`` times in a row with probability ``iterations[n]`` (a counted-loop OR-split)."""

    body: Workflow
    iterations: dict[int, float]


def chain(name: str, stages: list[Workflow | Branches | Loop]) -> Workflow:
    """Stages one after the other; each DAG's ids get the prefix ``<stage>.`` (``<stage>.<option>.``)."""
    tasks: dict[str, Task] = {}
    edges: list[Edge] = []
    controls: dict[str, Control] = {}
    tails: list[str] = []

    def add(dag: Workflow, prefix: str) -> tuple[list[str], list[str]]:
        if dag.controls:
            raise ValueError(f"{dag.name}: only DAGs can be wrapped")
        for task in dag.tasks.values():
            tasks[prefix + task.id] = Task(prefix + task.id, task.work_seconds, task.alpha)
        edges.extend(Edge(prefix + e.source, prefix + e.target, e.data_bytes) for e in dag.edges)
        has_parent = {e.target for e in dag.edges}
        has_child = {e.source for e in dag.edges}
        return [prefix + t for t in dag.tasks if t not in has_parent], [
            prefix + t for t in dag.tasks if t not in has_child
        ]

    def link(sources: list[str], targets: list[str]) -> None:
        edges.extend(Edge(s, t) for s in sources for t in targets)

    for k, stage in enumerate(stages):
        if isinstance(stage, Workflow):
            entries, exits = add(stage, f"{k}.")
            link(tails, entries)
            tails = exits
        elif isinstance(stage, Branches):
            split, join = f"{k}.split", f"{k}.join"
            controls[split], controls[join] = Control(split, OR_SPLIT), Control(join, OR_JOIN)
            link(tails, [split])
            for option, (probability, dag) in enumerate(stage.options):
                if dag is None:
                    edges.append(Edge(split, join, probability=probability))
                    continue
                enter = f"{k}.{option}.enter"
                controls[enter] = Control(enter, OR_JOIN)
                edges.append(Edge(split, enter, probability=probability))
                entries, exits = add(dag, f"{k}.{option}.")
                link([enter], entries)
                link(exits, [join])
            tails = [join]
        else:
            head, split, leave = f"{k}.head", f"{k}.loop", f"{k}.exit"
            controls[head], controls[leave] = Control(head, OR_JOIN), Control(leave, OR_JOIN)
            controls[split] = Control(split, OR_SPLIT, dict(stage.iterations))
            entries, exits = add(stage.body, f"{k}.")
            link(tails, [head])
            link([head], entries)
            link(exits, [split])
            edges += [Edge(split, head, loop=True), Edge(split, leave)]
            tails = [leave]
    return Workflow(name, tasks, edges, controls)


def random_nondeterministic(seed: int = 0, n: int = 20, **daggen) -> Workflow:
    """A random DAG, a two-way OR-split over random DAGs, a loop (1-3 iterations) and a last DAG."""
    rng = np.random.default_rng(seed)
    p = float(rng.uniform(0.2, 0.8))
    weights = rng.dirichlet([1.0, 1.0, 1.0])

    def dag(k: int) -> Workflow:
        return random_dag(n=n, seed=seed * 10 + k, **daggen)

    stages = [
        dag(0),
        Branches(((p, dag(1)), (1.0 - p, dag(2)))),
        Loop(dag(3), dict(zip((1, 2, 3), map(float, weights), strict=True))),
        dag(4),
    ]
    return chain(f"random-nd-s{seed}", stages)


def trace_workflows(
    tasks: pd.DataFrame,
    machines: pd.DataFrame | None = None,
    reference_mhz: float = 1000.0,
    default_alpha: float = 0.1,
) -> list[Workflow]:
    """Every workflow of a ``tasks`` table (plus ``machines``) as a DAG of moldable tasks.

    A task is a ``task_name`` of a workflow; its last succeeded attempt (else its last attempt that ran)
    gives the runtime T on its node. Tasks that never ran (omitted, skipped) are dropped and their parents
    linked to their children. With r requested cores (at least 1) and e = avg_cpu_percent / 100:

    - measured e: work = T * max(e, 1) CPU-seconds (exact under Amdahl, whose CPU time is the work) and
      alpha from speedup(r) = e, i.e. alpha = (r / e - 1) / (r - 1) clipped to [0, 1] (default if r = 1);
    - unmeasured: alpha = ``default_alpha`` and work = T * speedup(r) = T / (alpha + (1 - alpha) / r).

    Work is then scaled by the node's cpu_speed_mhz / ``reference_mhz`` (a clock-ratio approximation; the
    reference vCPU, speed 1.0, is taken as 1 GHz, about one EC2 compute unit). Edge data is the parent's
    written_bytes shared over its children (0 when unknown).
    """
    speeds = {}
    if machines is not None and len(machines):
        speeds = {
            row.host_node: row.cpu_speed_mhz / reference_mhz
            for row in machines.itertuples()
            if row.cpu_speed_mhz is not None and not pd.isna(row.cpu_speed_mhz)
        }
    return [
        _trace_workflow(str(uid), rows, speeds, default_alpha)
        for uid, rows in tasks.groupby("workflow_uid", sort=True)
    ]


def _number(value) -> float | None:
    return None if value is None or pd.isna(value) else float(value)


def _trace_workflow(uid: str, rows: pd.DataFrame, speeds: dict[str, float], default_alpha: float) -> Workflow:
    name_of = dict(zip(rows["task_id"], rows["task_name"], strict=True))
    chosen = {}
    for name, attempts in rows.sort_values("attempt").groupby("task_name", sort=False):
        ran = attempts[attempts["runtime_seconds"].fillna(0) > 0]
        succeeded = ran[ran["phase"] == "Succeeded"]
        if len(ran):
            chosen[name] = (succeeded if len(succeeded) else ran).iloc[-1]
    children: dict[str, set[str]] = {n: set() for n in rows["task_name"]}
    for row in rows.itertuples():
        for parent in row.parents:
            if parent in name_of and name_of[parent] != row.task_name:
                children[name_of[parent]].add(row.task_name)
    parents: dict[str, set[str]] = {n: set() for n in children}
    for u, vs in children.items():
        for v in vs:
            parents[v].add(u)
    for dropped in [n for n in children if n not in chosen]:
        ups, downs = parents.pop(dropped), children.pop(dropped)
        for u in ups:
            children[u].discard(dropped)
            children[u] |= downs - {u}
        for v in downs:
            parents[v].discard(dropped)
            parents[v] |= ups - {v}
    tasks = {}
    for name, row in chosen.items():
        work, alpha = _work_and_alpha(row, default_alpha)
        tasks[name] = Task(name, work * speeds.get(row["host_node"], 1.0), alpha)
    edges = []
    for u in sorted(tasks):
        written = _number(chosen[u]["written_bytes"])
        share = written / len(children[u]) if written and children[u] else 0.0
        edges += [Edge(u, v, share) for v in sorted(children[u])]
    return Workflow(uid, tasks, edges)


def _work_and_alpha(row: pd.Series, default_alpha: float) -> tuple[float, float]:
    runtime = float(row["runtime_seconds"])
    cores = max(1.0, _number(row["cpu_request_cores"]) or 1.0)
    used = _number(row["avg_cpu_percent"])
    if used is None:
        return runtime / (default_alpha + (1.0 - default_alpha) / cores), default_alpha
    speedup = max(used / 100.0, 1.0)
    if cores <= 1.0:
        return runtime * speedup, default_alpha
    alpha = min(1.0, max(0.0, (cores / speedup - 1.0) / (cores - 1.0)))
    return runtime * speedup, alpha
