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


def __getattr__(name: str):
    """The engine's names (and the private ones its tests use), loaded on first use."""
    if name.startswith("__"):
        raise AttributeError(name)
    return getattr(importlib.import_module("datasets.attribution.engine"), name)
