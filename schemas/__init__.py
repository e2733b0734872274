"""Arrow schemas of the jouletrace trace model, and their validation.

The enumerations (schemas.kinds) load without Arrow; the schemas and validation load on first use, so
light readers such as the node agent can use the model's names without importing pyarrow.
"""

import importlib

from schemas.kinds import ADDITIVE_DEVICE_KINDS, CONTAINER_VALUE_KINDS, DEVICE_KINDS, PROVENANCES, VALUE_KINDS

_LAZY = {
    **dict.fromkeys(
        [
            "CONTAINER_SAMPLES",
            "MACHINES",
            "NODE_ENERGY_BALANCE",
            "POWER_SAMPLES",
            "SCHEMA_VERSION",
            "TABLES",
            "TASKS",
            "TASK_ENERGY",
            "WORKFLOWS",
        ],
        "schemas.tables",
    ),
    **dict.fromkeys(
        ["SchemaError", "check", "check_path", "conform", "empty", "validate", "validate_path"],
        "schemas.validation",
    ),
    **dict.fromkeys(
        ["DEFAULTS", "Loaded", "Note", "SchemaNote", "coerce", "conform_read", "load_table"],
        "schemas.loading",
    ),
}

__all__ = [
    "ADDITIVE_DEVICE_KINDS",
    "CONTAINER_VALUE_KINDS",
    "DEVICE_KINDS",
    "PROVENANCES",
    "VALUE_KINDS",
    *_LAZY,
]


def __getattr__(name: str):
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'schemas' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value
