"""The plan of the world: which workflows arrive when, their pods, runtimes and planned failures.

What the workflows are (shapes, sizes, runtimes, which tasks fail) is decided here, before any
scheduling, so that the scheduler only adds timing and placement and the renderers only record.

A pod's planned runtime is lognormal around its type's median at its fan-in (`TaskType.median_runtime_at`,
fan-in = the number of upstream pods it waits on, `PodTask.parents`), and is its runtime on a Gold 6346 core:
the scheduler stretches it for the node the pod lands on (scheduler.py).
"""

from __future__ import annotations

import math
import uuid
from dataclasses import dataclass

import numpy as np

from datasets.sample_world.recipes import RECIPES, DagTemplate, Recipe, TaskType, as_steps

NAMESPACE = "science"
# Kubernetes' generateName alphabet: no vowels, no look-alike digits.
_NAME_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"
IDLE_LEAD_SECONDS = 150.0
MEAN_INTERARRIVAL_SECONDS = 180.0
RETRY_PROBABILITY = 0.015
MIN_RETRIED_TASKS = 3


@dataclass(frozen=True)
class WorkflowPlan:
    """One workflow run: its identity, its templates, when it is submitted and how it retries."""

    app: str
    name: str
    uid: str
    submitted_seconds: float
    recipe: Recipe
    retry_limit: int | None
    fail_fast: bool


@dataclass
class PodTask:
    """One leaf task (one Argo Pod node, or one Retry node and its attempts) of one workflow."""

    workflow: int
    node_name: str
    task_type: TaskType
    parents: tuple[int, ...]
    # Planned runtime on a Gold 6346 core (cluster.py); an attempt on a slower CPU runs longer (scheduler.py).
    runtime_seconds: float
    retry_limit: int | None
    failed_attempts: int = 0

    def attempt_node_name(self, number: int) -> str:
        """Argo names the attempts of a retried task `<task>(<n>)`; without retries the Pod is the task."""
        return self.node_name if self.retry_limit is None else f"{self.node_name}({number})"


def plan_world(rng: np.random.Generator, n_workflows: int) -> tuple[list[WorkflowPlan], list[PodTask]]:
    """Draw the workflows and their pods; with 6 or more workflows every app and feature is present."""
    apps = _app_sequence(rng, n_workflows)
    first_blast = apps.index("blast") if "blast" in apps else -1
    failing_candidates = [i for i, app in enumerate(apps) if app in ("montage", "1000genome")]
    failing = int(rng.choice(failing_candidates)) if failing_candidates else -1
    plans: list[WorkflowPlan] = []
    pods: list[PodTask] = []
    names: list[str] = []
    makers = {app: make for app, make, _ in RECIPES}
    submitted = IDLE_LEAD_SECONDS + rng.uniform(0.0, 30.0)
    for index, app in enumerate(apps):
        recipe = makers[app](rng)
        if index == first_blast:
            recipe = as_steps(recipe)
        name = _unique_name(rng, app, names)
        names.append(name)
        retry_limit = int(rng.integers(1, 3)) if index == failing or rng.random() < 0.5 else None
        plan = WorkflowPlan(
            app=app,
            name=name,
            uid=str(uuid.UUID(bytes=rng.bytes(16), version=4)),
            submitted_seconds=submitted,
            recipe=recipe,
            retry_limit=retry_limit,
            fail_fast=index != failing,
        )
        plans.append(plan)
        first_pod = len(pods)
        _flatten(rng, plan, index, recipe.entrypoint, name, (), pods)
        if index == failing:
            _plan_exhausted_task(rng, pods, first_pod)
        submitted += max(20.0, rng.exponential(MEAN_INTERARRIVAL_SECONDS))
    _plan_retries(rng, pods)
    return plans, pods


def _app_sequence(rng: np.random.Generator, n_workflows: int) -> list[str]:
    """Every app twice first (so even the accelerator apps recur), then apps drawn by weight."""
    names = [name for name, _, _ in RECIPES]
    weights = np.array([weight for _, _, weight in RECIPES])
    first = [names[i] for _ in range(2) for i in rng.permutation(len(names))]
    rest = rng.choice(names, size=max(0, n_workflows - len(first)), p=weights / weights.sum())
    return (first + [str(app) for app in rest])[:n_workflows]


def _unique_name(rng: np.random.Generator, app: str, taken: list[str]) -> str:
    while True:
        name = app + "-" + "".join(rng.choice(list(_NAME_ALPHABET), size=5))
        if name not in taken:
            return name


def _flatten(
    rng: np.random.Generator,
    plan: WorkflowPlan,
    workflow: int,
    template: str,
    node_name: str,
    upstream: tuple[int, ...],
    pods: list[PodTask],
) -> tuple[int, ...]:
    """Append the pods of `template` run as `node_name`; return the pods its dependents wait for."""
    recipe = plan.recipe
    if template in recipe.task_types:
        task_type = recipe.task_types[template]
        median = task_type.median_runtime_at(len(upstream))
        runtime = rng.lognormal(math.log(median), task_type.runtime_sigma)
        pods.append(
            PodTask(
                workflow,
                node_name,
                task_type,
                upstream,
                float(np.clip(runtime, 2.0, 1800.0)),
                plan.retry_limit,
            )
        )
        return (len(pods) - 1,)
    composite = recipe.composites[template]
    if isinstance(composite, DagTemplate):
        exits: dict[str, tuple[int, ...]] = {}
        for call in composite.tasks:
            waits = tuple(p for d in call.depends for p in exits[d]) if call.depends else upstream
            exits[call.name] = _flatten(
                rng, plan, workflow, call.template, f"{node_name}.{call.name}", waits, pods
            )
        depended = {d for call in composite.tasks for d in call.depends}
        return tuple(p for call in composite.tasks if call.name not in depended for p in exits[call.name])
    waits = upstream
    for i, group in enumerate(composite.groups):
        waits = tuple(
            p
            for call in group
            for p in _flatten(
                rng, plan, workflow, call.template, f"{node_name}[{i}].{call.name}", waits, pods
            )
        )
    return waits


def _plan_exhausted_task(rng: np.random.Generator, pods: list[PodTask], first_pod: int) -> None:
    """Make one task of the workflow fail on every attempt; pick one whose failure leaves others to omit."""
    has_children = {parent for pod in pods[first_pod:] for parent in pod.parents}
    candidates = [i for i in range(first_pod, len(pods)) if i in has_children and pods[i].parents]
    victim = pods[int(rng.choice(candidates))]
    victim.failed_attempts = victim.retry_limit + 1


def _plan_retries(rng: np.random.Generator, pods: list[PodTask]) -> None:
    """A few tasks fail once and succeed on their second attempt."""
    eligible = [i for i, pod in enumerate(pods) if pod.retry_limit is not None and pod.failed_attempts == 0]
    chosen = [i for i in eligible if rng.random() < RETRY_PROBABILITY]
    if len(chosen) < MIN_RETRIED_TASKS:
        rest = [i for i in eligible if i not in chosen]
        extra = rng.choice(rest, size=min(len(rest), MIN_RETRIED_TASKS - len(chosen)), replace=False)
        chosen += [int(i) for i in extra]
    for i in chosen:
        pods[i].failed_attempts = 1
