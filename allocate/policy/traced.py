"""The traced noise mode: how much real tasks' runtimes vary around their type's typical runtime.

From a trace dataset's task table, each task that ran (runtime > 0) is divided by the median runtime of
its task type (the Argo template) on the same machine, over groups of at least ``min_group`` runs; those
ratios are the factors NoiseOptions draws actual runtimes from. They include what makes one run of a type
longer than another (its input size), which a scheduler also does not know in advance.
"""

from __future__ import annotations

from datasets.store import read_table


def traced_runtime_factors(root: str, min_group: int = 3) -> tuple[float, ...]:
    tasks = read_table(root, "tasks").to_pandas()
    tasks = tasks[tasks["runtime_seconds"] > 0]
    groups = tasks.groupby(["template_name", "host_node"])["runtime_seconds"]
    ratio = tasks["runtime_seconds"] / groups.transform("median")
    factors = ratio[groups.transform("size") >= min_group]
    if factors.empty:
        raise ValueError(
            f"{root}: no task type ran {min_group} times or more on one machine; the traced noise mode needs them"
        )
    return tuple(float(f) for f in factors.sort_values())
