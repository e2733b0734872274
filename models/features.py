"""Features from a trace dataset: one row per (task, device kind), or per task for a runtime target.

What a row knows depends on the mode. ``before-run`` is what a scheduler knows before the task starts: its
type (template and name, normalised), its requests, the machine's hardware, the bytes it will read where
known (a workflow's input files exist before it runs; WfFormat lists their sizes in the specification) and
where it sits in its workflow. ``after-run`` adds what only the run tells: runtime, CPU and GPU busy seconds,
peak memory and bytes written. Identifiers (workflow, task, node names) are kept as columns for splitting
and joining but are never features, so a model can be asked about machines it has not seen by their
hardware alone.

Rows kept: task attempts that finished (any phase but Failed, Error, Skipped, Omitted, Pending, Running: an
imported WfFormat run says Unknown), with a runtime, and (energy targets) device kinds whose readings
covered at least MIN_COVERAGE of the task; what was dropped is counted in ``TrainingTable.dropped``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from models.errors import ModelInputError
from models.options import DATASET_TARGETS

MIN_COVERAGE = 0.95
UNFINISHED_PHASES = ("Failed", "Error", "Skipped", "Omitted", "Pending", "Running")
KEY_COLUMNS = ("workflow_uid", "task_id", "device_kind")
# Columns kept for splitting, joining and reports; never features.
ID_COLUMNS = ("workflow_uid", "task_id", "task_name", "host_node", "started_at", "provenance")
TASK_FEATURES = (
    "task_template",
    "task_name_type",
    "workflow_template",
    "attempt",
    "cpu_request_cores",
    "memory_request_bytes",
    "gpu_count",
    "fpga_count",
    "read_bytes",
    "depth_level",
    "fan_in",
    "fan_out",
    "workflow_task_count",
)
MACHINE_FEATURES = (
    "cpu_model",
    "machine_sockets",
    "machine_cores",
    "cpu_speed_mhz",
    "machine_memory_bytes",
    "gpu_model",
    "machine_gpu_count",
    "fpga_model",
    "machine_fpga_count",
)
# The task type on one device kind: its own category, since a type's joules differ by kind far more than
# between types.
DEVICE_FEATURES = ("device_kind", "devices_held", "task_device_type")
AFTER_RUN_FEATURES = (
    "runtime_seconds",
    "avg_cpu_percent",
    "cpu_seconds",
    "gpu_busy_seconds",
    "memory_peak_bytes",
    "written_bytes",
)
# Kubernetes' generateName suffix alphabet (no vowels, no look-alike digits).
_GENERATED_SUFFIX = re.compile(r"^[bcdfghjklmnpqrstvwxz2456789]{5}$")
_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", re.IGNORECASE)
_HASH = re.compile(r"^[0-9a-f]{6,}$")
_NUMBERED_ID = re.compile(r"^[a-z]{0,3}\d+$")


def normalise_name(name: object, generated_suffix: bool = False) -> str | None:
    """A task or workflow type from its name: lower case, without retry suffixes ``(1)``, loop items
    ``(0:x)``, step indices ``[0]``, UUIDs, hex hashes and numbered ids (``7``, ``c20``, ``ID0000012``);
    with ``generated_suffix``, also without a trailing Kubernetes generateName suffix (``-dksxf``)."""
    if not isinstance(name, str) or not name:
        return None
    text = _UUID.sub(" ", re.sub(r"\([^)]*\)|\[[^\]]*\]", " ", name.lower()))
    tokens = [t for t in re.split(r"[-_.:/\s]+", text) if t]
    if generated_suffix and len(tokens) > 1 and _GENERATED_SUFFIX.match(tokens[-1]):
        tokens = tokens[:-1]
    kept = [t for t in tokens if not (_NUMBERED_ID.match(t) or (_HASH.match(t) and re.search(r"\d", t)))]
    # A name made only of ids (WfInstances' "chr21_chr21_ID0000001") keeps its first token as its type.
    return "-".join(kept) or (tokens[0] if tokens else None)


def feature_columns(mode: str, target: str) -> list[str]:
    """The features of a mode for a target (a runtime target has one row per task: no device columns)."""
    columns = list(TASK_FEATURES + MACHINE_FEATURES)
    if target != "runtime_seconds":
        columns += DEVICE_FEATURES
    if mode == "after-run":
        columns += [c for c in AFTER_RUN_FEATURES if c != target]
    return columns


@dataclass
class TrainingTable:
    """Rows to learn from, the columns that are features, and what was left out and why."""

    frame: pd.DataFrame
    features: list[str]
    target: str
    dropped: dict[str, int] = field(default_factory=dict)


def _depths(tasks: pd.DataFrame) -> np.ndarray:
    """Longest chain of parents above each task, within its workflow (0 for an entry task)."""
    parents = {
        (uid, tid): [p for p in (ps if ps is not None else [])]
        for uid, tid, ps in zip(tasks["workflow_uid"], tasks["task_id"], tasks["parents"], strict=True)
    }
    depth: dict[tuple[str, str], int] = {}
    for key in parents:
        stack = [key]
        while stack:
            node = stack[-1]
            if node in depth:
                stack.pop()
                continue
            pending = [(node[0], p) for p in parents.get(node, []) if (node[0], p) in parents]
            waiting = [p for p in pending if p not in depth and p not in stack]
            if waiting:
                stack.extend(waiting)
                continue
            depth[node] = 1 + max((depth.get(p, 0) for p in pending), default=-1)
            stack.pop()
    return np.array([depth[k] for k in parents], dtype=np.int64)


def _first(values: object, drop_suffix: str = "") -> str | None:
    if values is None or len(values) == 0:
        return None
    first = str(values[0])
    return first[: -len(drop_suffix)] if drop_suffix and first.endswith(drop_suffix) else first


def machine_features(machines: pd.DataFrame | None) -> pd.DataFrame:
    """The hardware columns of each machine (``machines`` table rows), keyed by host_node."""
    columns = ["host_node", *MACHINE_FEATURES]
    if machines is None or machines.empty:
        return pd.DataFrame(columns=columns)
    return pd.DataFrame(
        {
            "host_node": machines["host_node"],
            "cpu_model": machines["cpu_model"],
            "machine_sockets": machines["sockets"].astype("float64"),
            "machine_cores": machines["cores"].astype("float64"),
            "cpu_speed_mhz": machines["cpu_speed_mhz"].astype("float64"),
            "machine_memory_bytes": machines["memory_bytes"].astype("float64"),
            # GPU Feature Discovery appends -SHARED under time-slicing: the hardware is the same part.
            "gpu_model": [_first(m, "-SHARED") for m in machines["gpu_models"]],
            "machine_gpu_count": [float(len(m)) if m is not None else 0.0 for m in machines["gpu_models"]],
            "fpga_model": [_first(m) for m in machines["fpga_models"]],
            "machine_fpga_count": [float(len(m)) if m is not None else 0.0 for m in machines["fpga_models"]],
        }
    )


def _usage_seconds(containers: pd.DataFrame | None) -> pd.DataFrame:
    """CPU and GPU busy seconds per pod: each container counter's last value (counters start with the
    container), summed over a pod's containers and GPUs."""
    out = pd.DataFrame(columns=["pod_uid", "cpu_seconds", "gpu_busy_seconds"])
    if containers is None or containers.empty:
        return out
    kinds = {"cpu_seconds_counter": "cpu_seconds", "gpu_busy_seconds_counter": "gpu_busy_seconds"}
    rows = containers[containers["value_kind"].isin(list(kinds)) & containers["pod_uid"].notna()]
    if rows.empty:
        return out
    last = rows.groupby(["pod_uid", "container_id", "device_id", "value_kind"], dropna=False)["value"].max()
    per_pod = last.groupby(level=["pod_uid", "value_kind"]).sum().unstack("value_kind")
    return per_pod.rename(columns=kinds).reset_index()


def task_features(
    workflows: pd.DataFrame,
    tasks: pd.DataFrame,
    machines: pd.DataFrame | None,
    containers: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """One row per task attempt with every task, machine and after-run feature, and its runtime."""
    frame = tasks.copy()
    frame["task_template"] = [
        normalise_name(t) or normalise_name(n)
        for t, n in zip(frame["template_name"], frame["task_name"], strict=True)
    ]
    frame["task_name_type"] = [normalise_name(n) for n in frame["task_name"]]
    names = dict(zip(workflows["workflow_uid"], workflows["workflow_name"], strict=True))
    frame["workflow_template"] = [
        normalise_name(names.get(u), generated_suffix=True) for u in frame["workflow_uid"]
    ]
    frame["gpu_count"] = [float(len(v)) if v is not None else 0.0 for v in frame["gpu_ids"]]
    frame["fpga_count"] = [float(len(v)) if v is not None else 0.0 for v in frame["fpga_ids"]]
    frame["fan_in"] = [float(len(v)) if v is not None else 0.0 for v in frame["parents"]]
    frame["fan_out"] = [float(len(v)) if v is not None else 0.0 for v in frame["children"]]
    frame["depth_level"] = _depths(frame).astype("float64") if len(frame) else []
    first_attempts = frame[frame["attempt"] == 0].groupby("workflow_uid")["task_id"].count()
    frame["workflow_task_count"] = frame["workflow_uid"].map(first_attempts).fillna(0).astype("float64")
    frame = frame.merge(machine_features(machines), on="host_node", how="left")
    usage = _usage_seconds(containers)
    frame = frame.merge(usage, on="pod_uid", how="left") if len(usage) else frame
    for column in ("cpu_seconds", "gpu_busy_seconds"):
        if column not in frame:
            frame[column] = np.nan
    for column in (
        "attempt",
        "cpu_request_cores",
        "memory_request_bytes",
        "read_bytes",
        "written_bytes",
        "memory_peak_bytes",
        "avg_cpu_percent",
        "runtime_seconds",
    ):
        frame[column] = pd.to_numeric(frame[column], errors="coerce").astype("float64")
    return frame


def _device_rows(energy: pd.DataFrame) -> pd.DataFrame:
    """task_energy summed per (task, device kind), with the devices held and the lowest coverage."""
    grouped = energy.groupby(list(KEY_COLUMNS), sort=False)
    rows = grouped.agg(
        energy_joules=("energy_joules", "sum"),
        devices_held=("device_id", "nunique"),
        coverage=("coverage", "min"),
        energy_provenance=("provenance", "first"),
    ).reset_index()
    rows["devices_held"] = rows["devices_held"].astype("float64")
    return rows


def build_training_table(
    tables: dict[str, pd.DataFrame], target: str, mode: str, device_kind: str | None = None
) -> TrainingTable:
    """The rows and features of a trace dataset for `target` (energy_joules, avg_power_watts or
    runtime_seconds) in `mode`, optionally of one device kind."""
    if target not in DATASET_TARGETS:
        raise ModelInputError(
            f"--target {target!r}: a trace dataset's targets are {', '.join(DATASET_TARGETS)}"
        )
    frame = task_features(
        tables["workflows"], tables["tasks"], tables.get("machines"), tables.get("container_samples")
    )
    dropped: dict[str, int] = {}
    # Imported traces (WfFormat) say "Unknown" for runs that completed: only phases that say the attempt did
    # not finish its work are left out.
    ran = ~frame["phase"].isin(UNFINISHED_PHASES) & (frame["runtime_seconds"] > 0)
    dropped["task attempts that did not finish or have no runtime"] = int((~ran).sum())
    frame = frame[ran]
    if target != "runtime_seconds":
        energy = tables.get("task_energy")
        if energy is None or energy.empty:
            raise ModelInputError(
                f"target {target}: the dataset has no task_energy rows (attribute it first)"
            )
        rows = _device_rows(energy)
        if device_kind is not None:
            if device_kind not in set(rows["device_kind"]):
                kinds = ", ".join(sorted(set(rows["device_kind"])))
                raise ModelInputError(f"--device-kind {device_kind!r}: the dataset has {kinds}")
            rows = rows[rows["device_kind"] == device_kind]
        covered = rows["coverage"] >= MIN_COVERAGE
        dropped[f"device rows whose readings covered under {MIN_COVERAGE:.0%} of the task"] = int(
            (~covered).sum()
        )
        frame = frame.merge(rows[covered], on=["workflow_uid", "task_id"], how="inner")
        frame["avg_power_watts"] = frame["energy_joules"] / frame["runtime_seconds"]
        frame["task_device_type"] = frame["task_template"].fillna("(none)") + "/" + frame["device_kind"]
        frame["provenance"] = frame["energy_provenance"]
    features = feature_columns(mode, target)
    keep = [c for c in dict.fromkeys([*ID_COLUMNS, "device_kind", *features, *DATASET_TARGETS]) if c in frame]
    frame = frame[keep].reset_index(drop=True)
    return TrainingTable(frame=frame, features=features, target=target, dropped=dropped)
