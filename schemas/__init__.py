"""Arrow schemas of the jouletrace trace model, and their validation."""

from schemas.tables import (
    ADDITIVE_DEVICE_KINDS,
    CONTAINER_SAMPLES,
    CONTAINER_VALUE_KINDS,
    DEVICE_KINDS,
    MACHINES,
    NODE_ENERGY_BALANCE,
    POWER_SAMPLES,
    PROVENANCES,
    SCHEMA_VERSION,
    TABLES,
    TASK_ENERGY,
    TASKS,
    VALUE_KINDS,
    WORKFLOWS,
)
from schemas.validation import SchemaError, check, conform, empty, validate, validate_path

__all__ = [
    "ADDITIVE_DEVICE_KINDS",
    "CONTAINER_SAMPLES",
    "CONTAINER_VALUE_KINDS",
    "DEVICE_KINDS",
    "MACHINES",
    "NODE_ENERGY_BALANCE",
    "POWER_SAMPLES",
    "PROVENANCES",
    "SCHEMA_VERSION",
    "TABLES",
    "TASKS",
    "TASK_ENERGY",
    "VALUE_KINDS",
    "WORKFLOWS",
    "SchemaError",
    "check",
    "conform",
    "empty",
    "validate",
    "validate_path",
]
