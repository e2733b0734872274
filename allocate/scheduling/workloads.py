"""Workloads to schedule: the reference platform, and generated workflows of known shapes.

The reference platform stands for a small heterogeneous cluster whose machines trade speed for power:
two fast, power-hungry servers; four mid-range ones; two low-power, slower ones; and one GPU server. It is
a documented choice (docs/scheduling.md), not a measured cluster: speeds are relative to one reference
core, powers are whole-machine watts at idle and with every core busy, prices are per machine hour.

Generated workflows: FFT, Strassen and daggen-style random DAGs (allocate/generators.py), and WfCommons
recipe instances (Montage, Epigenomics, 1000Genome, ...: `wfcommons` WfChef recipes, seeded), whose task
runtimes become ``work_seconds`` on the reference core.
"""

from __future__ import annotations

import json
import random
import re
import tempfile
from pathlib import Path

import numpy as np

from allocate import generators
from allocate.model import Workflow
from allocate.scheduling.platform import Machine, Platform

GENERATED = ("fft", "strassen", "random")
RECIPES = {
    "montage": "MontageRecipe",
    "epigenomics": "EpigenomicsRecipe",
    "genome": "GenomeRecipe",
    "1000genome": "GenomeRecipe",
    "blast": "BlastRecipe",
    "bwa": "BwaRecipe",
    "cycles": "CyclesRecipe",
    "seismology": "SeismologyRecipe",
    "soykb": "SoykbRecipe",
    "srasearch": "SrasearchRecipe",
}
WORKLOADS = GENERATED + tuple(RECIPES)


def reference_platform() -> Platform:
    """Nine machines of four kinds, 10 Gb/s between them (docs/scheduling.md has the table)."""
    kinds = [
        # id prefix, count, speed, cores, idle W, busy W, $/h, gpus
        ("fast", 2, 2.0, 4, 120.0, 400.0, 1.20, 0),
        ("mid", 4, 1.3, 4, 70.0, 220.0, 0.50, 0),
        ("eco", 2, 0.8, 4, 25.0, 85.0, 0.20, 0),
        ("gpu", 1, 1.5, 4, 150.0, 450.0, 2.50, 1),
    ]
    machines = [
        Machine(
            id=f"{prefix}-{k}",
            speed=speed,
            cores=cores,
            idle_watts=idle,
            busy_watts=busy,
            cost_per_hour=price,
            gpus=gpus,
            labels={"kubernetes.io/hostname": f"{prefix}-{k}"},
        )
        for prefix, count, speed, cores, idle, busy, price, gpus in kinds
        for k in range(count)
    ]
    return Platform("reference-9", tuple(machines), bandwidth_bytes_per_second=1.25e9)


def generated_workflow(family: str, tasks: int, seed: int) -> Workflow:
    """One workflow of a generated family; ``tasks`` sizes random DAGs and recipes (FFT takes the power of
    two whose graph comes closest, Strassen is always 25 tasks)."""
    if family == "fft":
        points = min((2**k for k in range(1, 11)), key=lambda m: abs(2 * m - 1 + m * np.log2(m) - tasks))
        workflow = generators.fft(points, seed=seed)
    elif family == "strassen":
        workflow = generators.strassen(seed=seed)
    elif family == "random":
        workflow = generators.random_dag(tasks, seed=seed)
    elif family in RECIPES:
        return recipe_workflow(family, tasks, seed)
    else:
        raise ValueError(f"unknown workload {family!r}; choose from {', '.join(WORKLOADS)}")
    if family != "random":  # random DAG names carry their seed already
        workflow.name = f"{workflow.name}-s{seed}"
    return workflow


def recipe_workflow(family: str, tasks: int, seed: int) -> Workflow:
    """A WfCommons recipe instance of about ``tasks`` tasks (or of the recipe's smallest base graph, when
    WfChef picks one larger than that), read back through the WfFormat importer."""
    try:
        import wfcommons.wfchef.recipes as recipes
        from wfcommons import WorkflowGenerator
    except ImportError:
        raise ValueError(
            f"--workloads {family}: WfCommons recipes need the wfcommons package (pip install 'jouletrace[recipes]')"
        ) from None

    from allocate.scheduling.build_workflow import workflow_from_wfformat

    recipe_class = getattr(recipes, RECIPES[family])
    random.seed(seed)  # WfChef draws from both generators
    np.random.seed(seed)  # noqa: NPY002 - the recipe library reads the global state
    try:
        generated = WorkflowGenerator(recipe_class.from_num_tasks(tasks)).build_workflow()
    except ValueError as exc:  # the base graph WfChef picked is larger than ``tasks``: take its size
        base = re.search(r"base graph with (\d+) nodes", str(exc))
        if base is None:
            raise ValueError(f"WfCommons {family} recipe with {tasks} tasks: {exc}") from exc
        random.seed(seed)
        np.random.seed(seed)  # noqa: NPY002
        generated = WorkflowGenerator(recipe_class.from_num_tasks(int(base.group(1)))).build_workflow()
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / f"{family}-{seed}.json"
        generated.write_json(path)
        data = json.loads(path.read_text())
        data["name"] = f"{family}-{tasks}-{seed}"
        path.write_text(json.dumps(data))
        workflow = workflow_from_wfformat(path)
    workflow.name = f"{family}-{len(workflow.tasks)}-s{seed}"
    return workflow
