"""GPUs whose holders are known only from the pods' requests (no device ids: DCGM exporter without its
Kubernetes mapping, no PodResources annotation): tasks hold UNMAPPED_DEVICE once per requested GPU."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pyarrow as pa
import pytest

from collectors.cluster.task_resources import UNMAPPED_DEVICE as COLLECTED_TOKEN
from datasets.attribution import UNMAPPED_DEVICE, attribute
from schemas.tables import UTC_TIMESTAMP
from schemas.validation import conform, validate

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
T0_US = int(T0.timestamp()) * 1_000_000
IDLE_WATTS = 50.0
STEP_S = 1.0
END_S = 1200.0


def _gpu(uuid: str, bursts: list[tuple[float, float, float]], host: str = "g1") -> dict[str, list]:
    """A GPU's NVML energy counter: IDLE_WATTS plus bursts (start_s, end_s, watts), read every second."""
    times = np.arange(0.0, END_S + STEP_S, STEP_S)
    joules = IDLE_WATTS * times
    for start, end, watts in bursts:
        joules = joules + watts * np.clip(times - start, 0.0, end - start)
    n = times.size
    return {
        "host_node": [host] * n,
        "device_kind": ["gpu"] * n,
        "device_id": [uuid] * n,
        "timestamp": list(T0_US + np.rint(times * 1e6).astype(np.int64)),
        "value": list(joules),
        "value_kind": ["energy_counter_joules"] * n,
        "counter_max_joules": [None] * n,
        "source": ["dcgm"] * n,
        "provenance": ["measured"] * n,
    }


def _samples(*series: dict[str, list]) -> pa.Table:
    columns = {name: [value for part in series for value in part[name]] for name in series[0]}
    columns["timestamp"] = pa.array(columns["timestamp"], pa.int64()).cast(UTC_TIMESTAMP)
    return conform("power_samples", columns)


def _task(task_id: str, start_s: float, end_s: float, gpu_ids: list[str], host: str = "g1") -> dict:
    return {
        "workflow_uid": "wf",
        "task_id": task_id,
        "task_name": task_id,
        "attempt": 0,
        "phase": "Succeeded",
        "host_node": host,
        "started_at": T0 + timedelta(seconds=start_s),
        "finished_at": T0 + timedelta(seconds=end_s),
        "time_resolution_seconds": 1e-6,
        "parents": [],
        "children": [],
        "cpu_request_cores": 1.0,
        "gpu_ids": gpu_ids,
        "fpga_ids": [],
        "provenance": "measured",
    }


def _run(tasks: list[dict], samples: pa.Table, **options):
    result = attribute(conform("tasks", tasks), samples, split="plain", **options)
    validate("task_energy", result.task_energy)
    validate("node_energy_balance", result.node_energy_balance)
    return result


def _rows(result, task_id: str) -> dict[str, dict]:
    """The task's GPU rows by device (the nodes here have no CPU readings: their rows say so)."""
    rows = result.task_energy.to_pylist()
    return {r["device_id"]: r for r in rows if r["task_id"] == task_id and r["device_kind"] == "gpu"}


def _split(row: dict) -> str:
    return row["method"].split(";split=")[1].split(";")[0]


def test_the_collector_and_the_engine_use_one_token():
    assert COLLECTED_TOKEN == UNMAPPED_DEVICE


def test_a_sole_holder_of_unmapped_gpus_gets_all_their_dynamic_energy_and_its_share_of_idle():
    """One task held one of the node's two GPUs at a time (600 s quiet before, for the idle estimate): it
    drew 200 W on GPU-b (which, nobody knows); it gets both GPUs' dynamic energy and one GPU's idle."""
    samples = _samples(_gpu("GPU-a", []), _gpu("GPU-b", [(700.0, 1000.0, 200.0)]))
    result = _run([_task("t", 700.0, 1000.0, [UNMAPPED_DEVICE])], samples)
    rows = _rows(result, "t")
    assert set(rows) == {"GPU-a", "GPU-b"}
    assert {_split(r) for r in rows.values()} == {"unmapped-sole-holder"}
    assert sum(r["dynamic_joules"] for r in rows.values()) == pytest.approx(200.0 * 300.0, rel=1e-6)
    # Under "requests" a holder of 1 of the 2 GPUs pays half of each GPU's idle: one GPU's worth.
    assert sum(r["idle_joules"] for r in rows.values()) == pytest.approx(IDLE_WATTS * 300.0, rel=1e-6)
    assert all("idle=holders-by-request" in r["method"] for r in rows.values())
    assert sum(r["uncertainty_joules"] for r in rows.values()) < 0.01 * 200.0 * 300.0


def test_overlapping_holders_split_the_node_gpus_by_request_with_an_uncertainty_that_says_so():
    """On four GPUs, a 1-GPU task and a 3-GPU task overlap for 200 s: there the dynamic energy is split
    1:3; alone each gets all of it. The stated interval covers the truth even though the 1-GPU task drew
    more per GPU than its request share gives it."""
    t1 = (300.0, 700.0, 250.0)  # the 1-GPU task on GPU-0
    t3 = [(500.0, 900.0, 100.0)] * 3  # the 3-GPU task on GPU-1..3
    samples = _samples(
        _gpu("GPU-0", [t1]), *(_gpu(f"GPU-{i}", [burst]) for i, burst in enumerate(t3, start=1))
    )
    tasks = [
        _task("one", 300.0, 700.0, [UNMAPPED_DEVICE]),
        _task("three", 500.0, 900.0, [UNMAPPED_DEVICE] * 3),
    ]
    result = _run(tasks, samples)
    one, three = _rows(result, "one"), _rows(result, "three")
    assert set(one) == set(three) == {f"GPU-{i}" for i in range(4)}
    assert {_split(r) for r in one.values()} == {"unmapped-by-request"}
    overlap_j = (250.0 + 300.0) * 200.0
    want_one = 250.0 * 200.0 + overlap_j / 4
    want_three = 300.0 * 200.0 + overlap_j * 3 / 4
    assert sum(r["dynamic_joules"] for r in one.values()) == pytest.approx(want_one, rel=1e-6)
    assert sum(r["dynamic_joules"] for r in three.values()) == pytest.approx(want_three, rel=1e-6)
    truth_one = 250.0 * 400.0
    got_one = sum(r["dynamic_joules"] for r in one.values())
    stated = sum(r["uncertainty_joules"] for r in one.values())
    assert stated > 0.5 * abs(got_one - truth_one) and abs(got_one - truth_one) <= stated
    balance = result.node_energy_balance.to_pandas()
    energy = result.task_energy.to_pandas()
    assert energy["energy_joules"].sum() <= balance["measured_joules"].sum() + 1e-6
    np.testing.assert_allclose(
        balance["attributed_joules"].sum(), energy["energy_joules"].sum(), rtol=1e-9, atol=1e-6
    )


def test_on_a_single_gpu_node_unmapped_holders_time_share_it():
    samples = _samples(_gpu("GPU-only", [(100.0, 500.0, 120.0)]))
    tasks = [_task("a", 100.0, 300.0, [UNMAPPED_DEVICE]), _task("b", 300.0, 500.0, [UNMAPPED_DEVICE])]
    result = _run(tasks, samples)
    for task_id in ("a", "b"):
        (row,) = _rows(result, task_id).values()
        assert row["device_id"] == "GPU-only" and _split(row) == "unmapped-sole-holder"
        assert row["dynamic_joules"] == pytest.approx(120.0 * 200.0, rel=1e-6)
        assert row["idle_joules"] == pytest.approx(IDLE_WATTS * 200.0, rel=1e-6)


def test_mapped_holders_are_unchanged_beside_unmapped_ones_on_other_nodes():
    samples = _samples(
        _gpu("GPU-m", [(100.0, 400.0, 150.0)], host="mapped"),
        _gpu("GPU-u", [(100.0, 400.0, 150.0)], host="g1"),
    )
    tasks = [
        _task("known", 100.0, 400.0, ["GPU-m"], host="mapped"),
        _task("pooled", 100.0, 400.0, [UNMAPPED_DEVICE], host="g1"),
    ]
    result = _run(tasks, samples)
    known, pooled = _rows(result, "known")["GPU-m"], _rows(result, "pooled")["GPU-u"]
    assert _split(known) == "exclusive" and ";idle=holders;" in known["method"]
    assert known["energy_joules"] == pytest.approx(pooled["energy_joules"], rel=1e-9)


def test_unmapped_gpus_on_a_node_without_gpu_readings_are_said_not_silent():
    samples = _samples(_gpu("GPU-elsewhere", [], host="other"))
    result = _run([_task("t", 100.0, 200.0, [UNMAPPED_DEVICE] * 2)], samples)
    (row,) = _rows(result, "t").values()
    assert row["device_id"] == UNMAPPED_DEVICE and row["energy_joules"] == 0.0
    assert row["method"] == "no-readings: node has no gpu series (device ids unmapped)"
