"""The learned policy against the online baselines on the same workflows, noise draws and weights.

Every scheduler runs each workflow once per seed (the seed draws the actual runtimes, the same draw for
every scheduler); ``weighted`` and the policy run once per weight, the others once (their choice does not
depend on w). Each row has the replayed makespan and energy and, per weight, the objective
``w * makespan / makespan_ref + (1 - w) * energy / energy_ref`` (HEFT's plan as reference). The summary
gives, per set, noise and weight, the geometric means of makespan and energy relative to dynamic HEFT's
on the same run, and their spread over seeds (standard deviation of the per-seed geometric means).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from allocate.policy.baselines import (
    ONLINE_BASELINES,
    baseline_chooser,
    noise_factors,
    replayed,
    run_online,
)
from allocate.policy.env import objective, reference
from allocate.policy.network import GraphPolicyNetwork
from allocate.policy.online import NoiseOptions
from allocate.policy.scheduler import policy_chooser
from allocate.scheduling.problem import Problem

REFERENCE = "heft-dynamic"


@dataclass(frozen=True)
class PolicyEvaluationOptions:
    weights: tuple[float, ...] = (0.0, 0.5, 1.0)
    seeds: int = 3
    noise_spread: float = 0.3
    baselines: tuple[str, ...] = ONLINE_BASELINES
    traced_factors: tuple[float, ...] = ()  # the traced noise mode (traced.py) when given
    ray_address: str | None = None  # the sweep as Ray tasks on this cluster ("auto": the local node's)

    @property
    def noise(self) -> NoiseOptions:
        return NoiseOptions(self.noise_spread, self.traced_factors)

    @property
    def noise_label(self) -> str:
        return "traced" if self.traced_factors else f"+-{self.noise_spread:.0%}"

    def __post_init__(self):
        if self.seeds < 1 or not self.weights:
            raise ValueError("evaluation needs at least one seed and one weight")
        if any(not 0 <= w <= 1 for w in self.weights):
            raise ValueError("weights must be in [0, 1]")


@dataclass(frozen=True)
class EvaluationCase:
    set_name: str  # e.g. in-distribution, out-of-distribution, wfinstances
    family: str
    problem: Problem


def _groups(network, options: PolicyEvaluationOptions) -> list[float | None]:
    """The runs of one (workflow, noise draw) in parts: the baselines that ignore w (None), then each
    weight (the weighted rule and the policy at it)."""
    weighted = "weighted" in options.baselines or network is not None
    return [None, *(options.weights if weighted else ())]


def run_rows(
    network, case: EvaluationCase, options: PolicyEvaluationOptions, seed: int, weight
) -> list[dict]:
    """The rows of one part of the sweep: ``case`` under noise draw ``seed``, the baselines that ignore w
    (``weight`` None) or the weighted rule and the policy at ``weight``. A Ray task runs this as it is."""
    problem = case.problem
    factors = noise_factors(problem, options.noise, seed)
    runs = []
    if weight is None:
        for name in (b for b in options.baselines if b != "weighted"):
            runs.append(
                (name, None, run_online(problem, factors, baseline_chooser(problem, name, 0.5, seed)))
            )
    else:
        if "weighted" in options.baselines:
            chooser = baseline_chooser(problem, "weighted", weight, seed)
            runs.append(("weighted", weight, run_online(problem, factors, chooser)))
        if network is not None:
            runs.append(
                ("policy", weight, run_online(problem, factors, policy_chooser(network, problem, weight)))
            )
    ref = reference(problem)
    rows = []
    for name, run_weight, run in runs:
        simulation = replayed(run, name)
        rows.append(
            {
                "set": case.set_name,
                "family": case.family,
                "workflow": problem.name,
                "tasks": len(problem),
                "noise": options.noise_label,
                "seed": seed,
                "scheduler": name,
                "weight": np.nan if run_weight is None else run_weight,
                "makespan_seconds": simulation.makespan_seconds,
                "energy_joules": simulation.energy_joules,
                "reference_makespan_seconds": ref[0],
                "reference_energy_joules": ref[1],
                "provenance": "simulated",  # replayed by the simulator on the drawn runtimes
            }
        )
    return rows


def evaluate(
    network: GraphPolicyNetwork | None,
    cases: Iterable[EvaluationCase],
    options: PolicyEvaluationOptions,
    progress: Callable[[int, int], None] = lambda done, total: None,
) -> pd.DataFrame:
    """One row per (case, seed, scheduler, weight the scheduler ran with): replayed figures. The sweep's
    parts (run_rows) run here, or as Ray tasks with ``options.ray_address``: the same rows in the same
    order either way. ``progress(done, total)`` is called as parts finish."""
    jobs = [
        (network, case, options, seed, weight)
        for case in cases
        for seed in range(options.seeds)
        for weight in _groups(network, options)
    ]
    done = iter(range(1, len(jobs) + 1))
    if options.ray_address:
        from allocate.policy.distributed import ray_session, run_tasks

        with ray_session(options.ray_address) as ray:
            parts = run_tasks(ray, run_rows, jobs, lambda: progress(next(done), len(jobs)))
    else:
        parts = []
        for job in jobs:
            parts.append(run_rows(*job))
            progress(next(done), len(jobs))
    return pd.DataFrame([row for part in parts for row in part])


def _geomean(values: pd.Series) -> float:
    return float(np.exp(np.log(values.to_numpy(dtype=float)).mean()))


def summary(results: pd.DataFrame, weights: Sequence[float]) -> pd.DataFrame:
    """Per set, noise, weight and scheduler: geometric-mean makespan and energy relative to dynamic HEFT
    on the same run, the weighted objective (HEFT's plan = 1 on each term), spread over seeds."""
    keys = ["workflow", "seed", "noise"]
    base = results[results["scheduler"] == REFERENCE].set_index(keys)[["makespan_seconds", "energy_joules"]]
    out = []
    for weight in weights:
        # schedulers that ignore w count at every weight; weighted and the policy at their own
        chosen = results[results["weight"].isna() | np.isclose(results["weight"].fillna(-1), weight)]
        joined = chosen.merge(base, left_on=keys, right_index=True, suffixes=("", "_reference"))
        joined = joined.assign(
            makespan_ratio=joined["makespan_seconds"] / joined["makespan_seconds_reference"],
            energy_ratio=joined["energy_joules"] / joined["energy_joules_reference"],
            objective=objective(
                weight,
                joined["makespan_seconds"],
                joined["energy_joules"],
                (joined["reference_makespan_seconds"], joined["reference_energy_joules"]),
            ),
        )
        for (set_name, noise, scheduler), group in joined.groupby(["set", "noise", "scheduler"]):
            per_seed = group.groupby("seed")
            out.append(
                {
                    "set": set_name,
                    "noise": noise,
                    "weight": weight,
                    "scheduler": scheduler,
                    "workflows": group["workflow"].nunique(),
                    "makespan_vs_dynamic_heft": _geomean(group["makespan_ratio"]),
                    "energy_vs_dynamic_heft": _geomean(group["energy_ratio"]),
                    "objective_vs_heft_plan": _geomean(group["objective"]),
                    "makespan_spread_over_seeds": float(
                        per_seed["makespan_ratio"].apply(_geomean).std(ddof=0)
                    ),
                    "energy_spread_over_seeds": float(per_seed["energy_ratio"].apply(_geomean).std(ddof=0)),
                }
            )
    return pd.DataFrame(out)


def makespan_lower_bound(problem: Problem, factors: np.ndarray) -> float:
    """No scheduler, not even one that knows the actual runtimes in advance, finishes the run with these
    runtime ``factors`` sooner: the larger of the critical path with every task on its fastest machine and
    no transfer time, and the total work (runtime x speed, at its least) spread over every core in
    proportion to speed. How much room there is below dynamic HEFT's makespan (benchmarks/policy.py)."""
    runtime = np.where(problem.feasible, problem.runtime_seconds * np.asarray(factors)[:, None], np.inf)
    fastest = runtime.min(axis=1)
    finish = np.zeros(len(problem))
    for task in range(len(problem)):  # tasks are indexed in a topological order
        finish[task] = fastest[task] + max((finish[p] for p in problem.parents[task]), default=0.0)
    speeds = np.array([m.speed for m in problem.platform.machines])
    cores = np.array([m.cores for m in problem.platform.machines])
    work = np.where(np.isfinite(runtime), runtime * speeds, np.inf).min(axis=1)
    return max(float(finish.max(initial=0.0)), float(work.sum() / (speeds * cores).sum()))


def held_out_ratio(network: GraphPolicyNetwork, problems: Sequence[Problem], noise: NoiseOptions) -> float:
    """Geometric-mean makespan of the policy at w = 1 over dynamic HEFT's, one noise draw per workflow:
    the number train-policy shows while it trains."""
    options = PolicyEvaluationOptions(
        weights=(1.0,),
        seeds=1,
        noise_spread=noise.spread,
        baselines=(REFERENCE,),
        traced_factors=noise.traced_factors,
    )
    results = evaluate(network, [EvaluationCase("held-out", "", p) for p in problems], options)
    table = summary(results, (1.0,))
    return float(table.loc[table["scheduler"] == "policy", "makespan_vs_dynamic_heft"].iloc[0])
