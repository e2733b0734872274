"""Invariants of attribution on random readings and tasks: the balance closes and nothing is negative."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pyarrow as pa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from datasets.attribution import IDLE_POLICIES, attribute
from schemas.tables import UTC_TIMESTAMP
from schemas.validation import conform, validate

T0 = datetime(2026, 5, 1, 23, 50, tzinfo=UTC)
T0_US = int(T0.timestamp()) * 1_000_000
NODES = ("n1", "n2")


@st.composite
def worlds(draw) -> dict:
    """Readings of one to four devices (counters that may wrap or reset, or gauges) and tasks around them."""
    series = []
    for node in draw(st.lists(st.sampled_from(NODES), min_size=1, max_size=2, unique=True)):
        for kind, device_id in draw(
            st.lists(
                st.sampled_from([("cpu_package", "package-0"), ("dram", "dram-0"), ("gpu", "GPU-1")]),
                min_size=1,
                max_size=2,
                unique=True,
            )
        ):
            count = draw(st.integers(2, 60))
            steps = np.asarray(draw(st.lists(st.floats(0.05, 30.0), min_size=count, max_size=count)))
            times = draw(st.floats(-50.0, 50.0)) + np.cumsum(steps)
            watts = np.asarray(draw(st.lists(st.floats(0.0, 400.0), min_size=count, max_size=count)))
            counter = draw(st.booleans())
            if counter:
                maximum = draw(st.sampled_from([None, 5_000.0, 262_143.32885]))
                values = draw(st.floats(0.0, 4_000.0)) + np.cumsum(watts * steps)
                if draw(st.booleans()):  # a reset part-way
                    values[count // 2 :] -= values[count // 2] - draw(st.floats(0.0, 10.0))
                values = np.mod(values, maximum) if maximum else values
            else:
                maximum, values = None, watts
            order = np.arange(count)
            if draw(st.booleans()):  # unsorted, with an exact duplicate
                order = np.append(draw(st.permutations(list(range(count)))), 0)
            series.append(
                {
                    "host_node": [node] * order.size,
                    "device_kind": [kind] * order.size,
                    "device_id": [device_id] * order.size,
                    "timestamp": list(T0_US + np.rint(times[order] * 1e6).astype(np.int64)),
                    "value": list(values[order]),
                    "value_kind": ["energy_counter_joules" if counter else "power_watts"] * order.size,
                    "counter_max_joules": [maximum] * order.size,
                    "source": [draw(st.sampled_from(["rapl", "nvml", "hwmon"]))] * order.size,
                    "provenance": ["synthetic"] * order.size,
                }
            )
    tasks = []
    for number in range(draw(st.integers(0, 12))):
        start = draw(st.floats(-100.0, 1500.0))
        tasks.append(
            {
                "workflow_uid": "wf",
                "task_id": f"t{number}",
                "task_name": f"t{number}",
                "template_name": draw(st.sampled_from([None, "a", "b"])),
                "attempt": 0,
                "phase": "Succeeded",
                "pod_uid": f"uid-{number}",
                "host_node": draw(st.sampled_from([*NODES, "n3"])),
                "started_at": T0 + timedelta(seconds=start),
                "finished_at": T0 + timedelta(seconds=start + draw(st.floats(0.0, 600.0))),
                "time_resolution_seconds": draw(st.sampled_from([1e-6, 1.0])),
                "parents": [],
                "children": [],
                "cpu_request_cores": draw(st.sampled_from([None, 0.5, 1.0, 4.0])),
                "gpu_ids": ["GPU-1"] if draw(st.booleans()) else [],
                "fpga_ids": [],
                "provenance": "synthetic",
            }
        )
    usage = []
    for task in tasks:
        if draw(st.booleans()):
            continue
        begin = (task["started_at"] - T0).total_seconds()
        end = (task["finished_at"] - T0).total_seconds()
        polls = np.unique(np.linspace(begin - 1.0, end + 1.0, draw(st.integers(1, 8))))
        used = np.cumsum(
            np.asarray(draw(st.lists(st.floats(0.0, 8.0), min_size=polls.size, max_size=polls.size)))
        )
        usage.append((task, polls, used))
    return {
        "samples": _table("power_samples", series),
        "tasks": conform("tasks", tasks),
        "containers": _containers(usage) if usage else None,
        "options": {
            "idle_policy": draw(st.sampled_from(IDLE_POLICIES)),
            "split": draw(st.sampled_from(["fitted", "plain"])),
            "share": draw(st.sampled_from([None, "usage", "requests"])),
            "window_seconds": draw(st.sampled_from([60.0, 600.0, 3600.0])),
        },
    }


def _table(name: str, parts: list[dict]) -> pa.Table:
    columns = {key: [value for part in parts for value in part[key]] for key in parts[0]}
    columns["timestamp"] = pa.array(columns["timestamp"], pa.int64()).cast(UTC_TIMESTAMP)
    return conform(name, columns)


def _containers(usage: list) -> pa.Table:
    parts = []
    for task, polls, used in usage:
        count = polls.size
        parts.append(
            {
                "host_node": [task["host_node"]] * count,
                "namespace": ["ns"] * count,
                "pod_name": [task["task_id"]] * count,
                "pod_uid": [task["pod_uid"]] * count,
                "container_id": ["c"] * count,
                "device_kind": [None] * count,
                "timestamp": list(T0_US + np.rint(polls * 1e6).astype(np.int64)),
                "value": list(used),
                "value_kind": ["cpu_seconds_counter"] * count,
                "source": ["agent-cgroup"] * count,
                "provenance": ["synthetic"] * count,
            }
        )
    return _table("container_samples", parts)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(worlds())
def test_balance_closes_and_nothing_is_negative(world):
    result = attribute(world["tasks"], world["samples"], containers=world["containers"], **world["options"])
    energy = validate("task_energy", result.task_energy).to_pandas()
    balance = validate("node_energy_balance", result.node_energy_balance).to_pandas()

    measured = balance["measured_joules"].to_numpy()
    attributed = balance["attributed_joules"].to_numpy()
    scale = np.maximum(np.abs(measured), 1.0)
    np.testing.assert_allclose(measured, attributed + balance["unattributed_joules"], rtol=1e-9, atol=1e-9)
    assert (attributed >= -1e-9 * scale).all() and (attributed <= measured + 1e-9 * scale).all()

    for column in ("energy_joules", "dynamic_joules", "idle_joules", "uncertainty_joules"):
        assert (energy[column] >= 0).all(), column
    assert ((energy["coverage"] >= 0) & (energy["coverage"] <= 1)).all()
    np.testing.assert_allclose(
        energy["energy_joules"], energy["dynamic_joules"] + energy["idle_joules"], rtol=1e-9, atol=1e-9
    )
    by_device = energy.groupby(["device_kind", "device_id"])["energy_joules"].sum()
    windows = balance.groupby(["device_kind", "device_id"])["attributed_joules"].sum()
    for device, joules in windows.items():
        total = max(balance.loc[balance["device_id"] == device[1], "measured_joules"].sum(), 1.0)
        assert abs(by_device.get(device, 0.0) - joules) <= 1e-9 * total, device
    # Every task that ran has a row; one with nothing read in its window says why.
    assert set(energy["task_id"]) == set(world["tasks"]["task_id"].to_pylist())
    unread = energy[energy["coverage"] == 0]["method"]
    assert (unread.str.startswith("no-readings") | unread.str.contains(";gap;")).all()
