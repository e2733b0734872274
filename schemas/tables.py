"""The trace data model: one versioned Arrow schema per table, shared by every stage.

Every number carries its unit in its column name, every timestamp is tz-aware UTC
(microsecond precision), energies are joules, and every table into which numbers
enter has a ``provenance`` column (``measured`` | ``estimated`` | ``synthetic``).
"""

from __future__ import annotations

import pyarrow as pa

from schemas.kinds import (  # noqa: F401  re-exported: the enumerations belong to the model
    ADDITIVE_DEVICE_KINDS,
    CONTAINER_VALUE_KINDS,
    DEVICE_KINDS,
    POWER_SOURCES,
    PROVENANCES,
    VALUE_KINDS,
)

SCHEMA_VERSION = "1"

UTC_TIMESTAMP = pa.timestamp("us", tz="UTC")
ID_LIST = pa.list_(pa.string())


def _field(name: str, type_: pa.DataType, nullable: bool, doc: str) -> pa.Field:
    return pa.field(name, type_, nullable=nullable, metadata={"doc": doc})


def _schema(table: str, fields: list[pa.Field]) -> pa.Schema:
    return pa.schema(
        fields,
        metadata={"jouletrace.table": table, "jouletrace.schema_version": SCHEMA_VERSION},
    )


WORKFLOWS = _schema(
    "workflows",
    [
        _field("workflow_uid", pa.string(), False, "Argo metadata.uid (namespace/name when absent)"),
        _field("workflow_name", pa.string(), False, "Argo metadata.name"),
        _field("namespace", pa.string(), True, "Kubernetes namespace"),
        _field("cluster", pa.string(), False, "cluster the run came from"),
        _field("phase", pa.string(), False, "Argo status.phase"),
        _field("started_at", UTC_TIMESTAMP, True, "status.startedAt, UTC"),
        _field("finished_at", UTC_TIMESTAMP, True, "status.finishedAt, UTC"),
        _field("makespan_seconds", pa.float64(), True, "finished_at - started_at"),
        _field("task_count", pa.int64(), False, "rows of this workflow in `tasks`"),
        _field("energy_joules", pa.float64(), True, "sum of attributed task energy, null before attribution"),
        _field("provenance", pa.string(), False, "measured, estimated or synthetic"),
    ],
)

TASKS = _schema(
    "tasks",
    [
        _field("workflow_uid", pa.string(), False, "owning workflow"),
        _field("task_id", pa.string(), False, "Argo node id"),
        _field("task_name", pa.string(), False, "displayName without the retry suffix"),
        _field("template_name", pa.string(), True, "Argo templateName"),
        _field("attempt", pa.int64(), False, "retry attempt, 0 for the first"),
        _field("phase", pa.string(), False, "Argo node phase"),
        _field("reason", pa.string(), True, "why a task has no energy (skipped, never ran), else null"),
        _field("pod_name", pa.string(), True, "Kubernetes pod name"),
        _field("pod_uid", pa.string(), True, "Kubernetes pod uid: joins per-container usage and energy"),
        _field("host_node", pa.string(), True, "Kubernetes node the pod ran on"),
        _field("started_at", UTC_TIMESTAMP, True, "node startedAt, UTC"),
        _field("finished_at", UTC_TIMESTAMP, True, "node finishedAt, UTC"),
        _field("time_resolution_seconds", pa.float64(), False, "precision of started_at/finished_at"),
        _field("runtime_seconds", pa.float64(), True, "finished_at - started_at"),
        _field("parents", ID_LIST, False, "task ids this task depends on"),
        _field("children", ID_LIST, False, "task ids depending on this task"),
        _field("cpu_request_cores", pa.float64(), True, "sum of container cpu requests"),
        _field("memory_request_bytes", pa.int64(), True, "sum of container memory requests"),
        _field("gpu_ids", ID_LIST, False, "GPU UUIDs held by the pod"),
        _field("fpga_ids", ID_LIST, False, "FPGA device ids (PCI BDF) held by the pod"),
        _field("avg_cpu_percent", pa.float64(), True, "measured CPU use, 100 = one core"),
        _field("memory_peak_bytes", pa.int64(), True, "measured peak memory"),
        _field("read_bytes", pa.int64(), True, "measured bytes read"),
        _field("written_bytes", pa.int64(), True, "measured bytes written"),
        _field("provenance", pa.string(), False, "measured, estimated or synthetic"),
    ],
)

MACHINES = _schema(
    "machines",
    [
        _field("host_node", pa.string(), False, "Kubernetes node name"),
        _field("cpu_model", pa.string(), True, "CPU model name"),
        _field("sockets", pa.int64(), True, "CPU sockets (RAPL packages)"),
        _field("cores", pa.int64(), True, "CPU cores allocatable to pods"),
        _field("cpu_speed_mhz", pa.float64(), True, "nominal CPU frequency"),
        _field("memory_bytes", pa.int64(), True, "node memory capacity"),
        _field("gpu_models", ID_LIST, False, "one entry per GPU"),
        _field("fpga_models", ID_LIST, False, "one entry per FPGA board"),
        _field("labels", pa.map_(pa.string(), pa.string()), False, "Kubernetes node labels"),
        _field("provenance", pa.string(), False, "measured, estimated or synthetic"),
    ],
)

POWER_SAMPLES = _schema(
    "power_samples",
    [
        _field("host_node", pa.string(), False, "node the meter is on"),
        _field("device_kind", pa.string(), False, ", ".join(DEVICE_KINDS)),
        _field("device_id", pa.string(), False, "package-N, dram-N, GPU UUID, FPGA PCI BDF"),
        _field("timestamp", UTC_TIMESTAMP, False, "time of the reading, UTC"),
        _field("value", pa.float64(), False, "joules (counter) or watts (gauge), see value_kind"),
        _field("value_kind", pa.string(), False, ", ".join(VALUE_KINDS)),
        _field("counter_max_joules", pa.float64(), True, "counter wrap point, null if unknown/none"),
        _field("source", pa.string(), False, "rapl, nvml, hwmon, xrt, ..."),
        _field("provenance", pa.string(), False, "measured, estimated or synthetic"),
    ],
)

CONTAINER_SAMPLES = _schema(
    "container_samples",
    [
        _field("host_node", pa.string(), True, "node the container ran on, when the source says"),
        _field("namespace", pa.string(), True, "pod namespace"),
        _field("pod_name", pa.string(), True, "pod name"),
        _field("pod_uid", pa.string(), True, "pod uid"),
        _field("container_id", pa.string(), True, "container id without the runtime prefix"),
        _field("device_kind", pa.string(), True, "for per-container energy: the zone or device it is of"),
        _field("device_id", pa.string(), True, "for per-device counters (GPU busy time): the GPU UUID"),
        _field("timestamp", UTC_TIMESTAMP, False, "time of the reading, UTC"),
        _field(
            "value",
            pa.float64(),
            False,
            "CPU seconds, joules or GPU busy seconds since the container started, see value_kind",
        ),
        _field("value_kind", pa.string(), False, ", ".join(CONTAINER_VALUE_KINDS)),
        _field("source", pa.string(), False, "cadvisor, agent-cgroup, kepler, ..."),
        _field("provenance", pa.string(), False, "measured, estimated or synthetic"),
    ],
)

TASK_ENERGY = _schema(
    "task_energy",
    [
        _field("workflow_uid", pa.string(), False, "owning workflow"),
        _field("task_id", pa.string(), False, "Argo node id"),
        _field("device_kind", pa.string(), False, ", ".join(DEVICE_KINDS)),
        _field("device_id", pa.string(), False, "device the energy was read on"),
        _field("energy_joules", pa.float64(), False, "dynamic_joules + idle_joules"),
        _field("dynamic_joules", pa.float64(), False, "energy above the device's idle power"),
        _field("idle_joules", pa.float64(), False, "share of idle energy under the idle policy"),
        _field("avg_power_watts", pa.float64(), True, "energy_joules / runtime"),
        _field("peak_power_watts", pa.float64(), True, "highest attributed power over a segment"),
        _field("coverage", pa.float64(), False, "0..1 of the task window covered by readings"),
        _field("samples", pa.int64(), False, "readings inside the task window"),
        _field("method", pa.string(), False, "how the number was made"),
        _field("uncertainty_joules", pa.float64(), False, "half-width of the stated interval"),
        _field("provenance", pa.string(), False, "measured, estimated or synthetic"),
    ],
)

NODE_ENERGY_BALANCE = _schema(
    "node_energy_balance",
    [
        _field("host_node", pa.string(), False, "node"),
        _field("device_kind", pa.string(), False, ", ".join(DEVICE_KINDS)),
        _field("device_id", pa.string(), False, "device"),
        _field("window_start", UTC_TIMESTAMP, False, "start of the balance window, UTC"),
        _field("window_end", UTC_TIMESTAMP, False, "end of the balance window, UTC"),
        _field("measured_joules", pa.float64(), False, "energy the meter read in the window"),
        _field("attributed_joules", pa.float64(), False, "energy given to tasks"),
        _field("unattributed_joules", pa.float64(), False, "measured - attributed"),
        _field("provenance", pa.string(), False, "measured, estimated or synthetic"),
    ],
)

TABLES: dict[str, pa.Schema] = {
    "workflows": WORKFLOWS,
    "tasks": TASKS,
    "machines": MACHINES,
    "power_samples": POWER_SAMPLES,
    "container_samples": CONTAINER_SAMPLES,
    "task_energy": TASK_ENERGY,
    "node_energy_balance": NODE_ENERGY_BALANCE,
}

# Value rules checked by validation, per table: enumerations and bounds.
ENUMS: dict[str, dict[str, tuple[str, ...]]] = {
    "workflows": {"provenance": PROVENANCES},
    "tasks": {"provenance": PROVENANCES},
    "machines": {"provenance": PROVENANCES},
    "power_samples": {
        "device_kind": DEVICE_KINDS,
        "value_kind": VALUE_KINDS,
        "source": tuple(POWER_SOURCES),
        "provenance": PROVENANCES,
    },
    "container_samples": {
        "device_kind": DEVICE_KINDS,
        "value_kind": CONTAINER_VALUE_KINDS,
        "provenance": PROVENANCES,
    },
    "task_energy": {"device_kind": DEVICE_KINDS, "provenance": PROVENANCES},
    "node_energy_balance": {"device_kind": DEVICE_KINDS, "provenance": PROVENANCES},
}
NON_NEGATIVE: dict[str, tuple[str, ...]] = {
    "workflows": ("makespan_seconds", "task_count", "energy_joules"),
    "tasks": (
        "attempt",
        "time_resolution_seconds",
        "runtime_seconds",
        "cpu_request_cores",
        "memory_request_bytes",
        "avg_cpu_percent",
        "memory_peak_bytes",
        "read_bytes",
        "written_bytes",
    ),
    "machines": ("sockets", "cores", "cpu_speed_mhz", "memory_bytes"),
    "power_samples": ("value", "counter_max_joules"),
    "container_samples": ("value",),
    "task_energy": (
        "energy_joules",
        "dynamic_joules",
        "idle_joules",
        "avg_power_watts",
        "peak_power_watts",
        "coverage",
        "samples",
        "uncertainty_joules",
    ),
    "node_energy_balance": ("measured_joules", "attributed_joules"),
}
UNIT_INTERVAL: dict[str, tuple[str, ...]] = {"task_energy": ("coverage",)}
# (start, end) pairs where end must not precede start.
ORDERED_TIMES: dict[str, tuple[tuple[str, str], ...]] = {
    "workflows": (("started_at", "finished_at"),),
    "tasks": (("started_at", "finished_at"),),
    "node_energy_balance": (("window_start", "window_end"),),
}
# Natural keys: a table never holds two rows with the same key.
KEYS: dict[str, tuple[str, ...]] = {
    "workflows": ("workflow_uid",),
    "tasks": ("workflow_uid", "task_id"),
    "machines": ("host_node",),
    "power_samples": ("host_node", "device_kind", "device_id", "value_kind", "timestamp"),
    "container_samples": (
        "host_node",
        "namespace",
        "pod_name",
        "container_id",
        "device_kind",
        "device_id",
        "value_kind",
        "source",
        "timestamp",
    ),
    "task_energy": ("workflow_uid", "task_id", "device_kind", "device_id"),
    "node_energy_balance": ("host_node", "device_kind", "device_id", "window_start"),
}
