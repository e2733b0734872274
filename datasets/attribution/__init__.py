"""Split the energy each device's meter read among the workflow tasks that ran on its node.

`attribute(tasks, samples, machines, options)` and `attribute_dataset(root, ..., options)` are the entry
points; `AttributionOptions` (options.py) is what a user chooses. docs/attribution.md states the rules and
which module holds each. The engine (compiled loops, numba) is imported when one of its names is first used,
not when a command only builds its options: `from datasets.attribution import attribute` loads it.
"""

from __future__ import annotations

import importlib

from datasets.attribution.options import (
    IDLE_POLICIES,
    OPTION_NAMES,
    SHARES,
    SPLITS,
    AttributionOptions,
    parse_idle_power,
)

__all__ = [
    "DIAGNOSTICS",
    "IDLE_POLICIES",
    "OPTION_NAMES",
    "SHARES",
    "SPLITS",
    "TRAILING_AVERAGE_SECONDS",
    "UNMAPPED_DEVICE",
    "Attribution",
    "AttributionOptions",
    "attribute",
    "attribute_dataset",
    "parse_idle_power",
    "unwrap_counter",
]


# The stage modules in the order data flows through them (docs/attribution.md maps the rules to them).
STAGES = (
    "constants",
    "common",
    "series",
    "tasks",
    "pieces",
    "segments",
    "fit",
    "skew",
    "split",
    "uncertainty",
    "rows",
    "engine",
    "streaming",
)
_HOMES = {
    "attribute": "engine",
    "attribute_dataset": "streaming",
    "unwrap_counter": "series",
    "Attribution": "common",
    "DIAGNOSTICS": "common",
}


def __getattr__(name: str):
    """The engine's names, loaded on first use: the public ones from their modules, any other (the
    constants) from the first stage module defining it."""
    if name.startswith("__"):
        raise AttributeError(name)
    for stage in (_HOMES[name],) if name in _HOMES else STAGES:
        module = importlib.import_module(f"datasets.attribution.{stage}")
        if hasattr(module, name):
            return getattr(module, name)
    raise AttributeError(f"module 'datasets.attribution' has no attribute {name!r}")
