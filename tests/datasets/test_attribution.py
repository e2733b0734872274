"""Attribution on synthetic series whose true energy is known in closed form."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from datasets.attribution import (
    FLAG_OK,
    FLAG_RESET,
    FLAG_WRAP,
    IDLE_POLICIES,
    SHARES,
    SPLITS,
    Attribution,
    attribute,
    unwrap_counter,
)
from datasets.reports import rows_by_split
from schemas.tables import UTC_TIMESTAMP
from schemas.validation import conform, empty, validate

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
T0_US = int(T0.timestamp()) * 1_000_000
RAPL_MAX_JOULES = 262143.328850


def _energy(times_s: np.ndarray, idle_watts: float, bursts: list[tuple[float, float, float]]) -> np.ndarray:
    """Exact joules since t=0 of idle power plus piecewise-constant bursts (start_s, end_s, watts)."""
    times_s = np.asarray(times_s, dtype=float)
    joules = idle_watts * times_s
    for start, end, watts in bursts:
        joules = joules + watts * np.clip(times_s - start, 0.0, end - start)
    return joules


def _series(
    times_s,
    values,
    value_kind: str,
    *,
    host: str = "n1",
    kind: str = "cpu_package",
    device_id: str = "package-0",
    counter_max: float | None = None,
    provenance: str = "synthetic",
    source: str | None = None,
) -> dict[str, list]:
    times_s = np.asarray(times_s, dtype=float)
    return {
        "host_node": [host] * times_s.size,
        "device_kind": [kind] * times_s.size,
        "device_id": [device_id] * times_s.size,
        "timestamp": list(T0_US + np.rint(times_s * 1e6).astype(np.int64)),
        "value": list(np.asarray(values, dtype=float)),
        "value_kind": [value_kind] * times_s.size,
        "counter_max_joules": [counter_max] * times_s.size,
        "source": [source or ("rapl" if kind != "gpu" else "nvml")] * times_s.size,
        "provenance": [provenance] * times_s.size if isinstance(provenance, str) else list(provenance),
    }


def _counter(times_s, joules, *, counter_max=None, offset_joules=0.0, **device) -> dict[str, list]:
    """Raw counter readings of a true cumulative energy, wrapping at counter_max like the hardware."""
    raw = offset_joules + np.asarray(joules, dtype=float)
    if counter_max:
        raw = np.mod(raw, counter_max)
    return _series(times_s, raw, "energy_counter_joules", counter_max=counter_max, **device)


def _gauge(times_s, watts, **device) -> dict[str, list]:
    return _series(times_s, watts, "power_watts", **device)


def _samples(*series: dict[str, list]) -> pa.Table:
    columns = {name: [value for part in series for value in part[name]] for name in series[0]}
    columns["timestamp"] = pa.array(columns["timestamp"], pa.int64()).cast(UTC_TIMESTAMP)
    return conform("power_samples", columns)


def _task(
    task_id: str,
    start_s: float | None,
    end_s: float | None,
    *,
    host: str | None = "n1",
    cores: float | None = None,
    gpu_ids: tuple[str, ...] = (),
    resolution_s: float = 1e-6,
    template: str | None = None,
    pod_uid: str | None = None,
) -> dict:
    return {
        "workflow_uid": "wf-1",
        "task_id": task_id,
        "task_name": task_id,
        "template_name": template,
        "attempt": 0,
        "phase": "Succeeded",
        "host_node": host,
        "pod_uid": pod_uid,
        "started_at": None if start_s is None else T0 + timedelta(seconds=start_s),
        "finished_at": None if end_s is None else T0 + timedelta(seconds=end_s),
        "time_resolution_seconds": resolution_s,
        "parents": [],
        "children": [],
        "cpu_request_cores": cores,
        "gpu_ids": list(gpu_ids),
        "fpga_ids": [],
        "provenance": "synthetic",
    }


def _tasks(*rows: dict) -> pa.Table:
    return conform("tasks", list(rows))


def _machines(sockets: int | None = None, labels: dict | None = None, **cores_by_node: int) -> pa.Table:
    return conform(
        "machines",
        [
            {
                "host_node": node,
                "sockets": sockets,
                "cores": cores,
                "gpu_models": [],
                "fpga_models": [],
                "labels": list((labels or {}).items()),
                "provenance": "synthetic",
            }
            for node, cores in cores_by_node.items()
        ],
    )


def _cpu_seconds(
    pod_uid: str, times_s, cpu_seconds, *, host: str = "n1", source: str = "agent-cgroup"
) -> dict:
    """One container's cumulative CPU-seconds (or, with value_kind, Kepler joules) readings."""
    times_s = np.asarray(times_s, dtype=float)
    return {
        "host_node": [host] * times_s.size,
        "namespace": ["ns"] * times_s.size,
        "pod_name": [f"pod-{pod_uid}"] * times_s.size,
        "pod_uid": [pod_uid] * times_s.size,
        "container_id": [f"c-{pod_uid}"] * times_s.size,
        "device_kind": [None] * times_s.size,
        "timestamp": list(T0_US + np.rint(times_s * 1e6).astype(np.int64)),
        "value": list(np.asarray(cpu_seconds, dtype=float)),
        "value_kind": ["cpu_seconds_counter"] * times_s.size,
        "source": [source] * times_s.size,
        "provenance": ["synthetic"] * times_s.size,
    }


def _containers(*series: dict[str, list]) -> pa.Table:
    columns = {name: [value for part in series for value in part[name]] for name in series[0]}
    columns["timestamp"] = pa.array(columns["timestamp"], pa.int64()).cast(UTC_TIMESTAMP)
    return conform("container_samples", columns)


def _run(tasks: pa.Table, samples: pa.Table, machines: pa.Table | None = None, **options) -> Attribution:
    """Attribute and validate; the plain rules are tested under split="requests" unless a test says fitted.

    Task times are exact (resolution 1 us) unless a test truncates them as Argo does."""
    options.setdefault("split", "requests")
    result = attribute(tasks, samples, machines, **options)
    validate("task_energy", result.task_energy)
    validate("node_energy_balance", result.node_energy_balance)
    return result


def _row(result: Attribution, task_id: str, device_id: str = "package-0") -> dict:
    rows = [
        row
        for row in result.task_energy.to_pylist()
        if row["task_id"] == task_id and row["device_id"] == device_id
    ]
    assert len(rows) == 1, f"{task_id}/{device_id}: {len(rows)} rows"
    return rows[0]


def _devices_of(result: Attribution, task_id: str) -> set[str]:
    return {row["device_id"] for row in result.task_energy.to_pylist() if row["task_id"] == task_id}


def _assert_balance_closes(result: Attribution) -> None:
    """measured = attributed + unattributed per window, and windows sum to the task rows, per device."""
    balance = result.node_energy_balance.to_pandas()
    energy = result.task_energy.to_pandas()
    np.testing.assert_allclose(
        balance["measured_joules"], balance["attributed_joules"] + balance["unattributed_joules"], rtol=1e-12
    )
    assert (balance["unattributed_joules"] >= -1e-6 * balance["measured_joules"]).all()
    windows = balance.groupby(["device_kind", "device_id"])["attributed_joules"].sum()
    tasks = (
        energy.groupby(["device_kind", "device_id"])["energy_joules"]
        .sum()
        .reindex(windows.index, fill_value=0)
    )
    np.testing.assert_allclose(tasks.to_numpy(), windows.to_numpy(), rtol=1e-9, atol=1e-6)


# unwrap_counter


def test_unwrap_without_wrap_is_the_difference_from_the_first_reading():
    times = np.arange(0.0, 20.0)
    values = 1000.0 + 75.0 * times
    cumulative, flags = unwrap_counter(values, times, RAPL_MAX_JOULES)
    np.testing.assert_allclose(cumulative, values - values[0])
    assert flags.tolist() == [FLAG_OK] * 19


def test_unwrap_corrects_one_wrap():
    times = np.arange(0.0, 50.0)
    truth = _energy(times, 120.0, [])
    raw = np.mod(RAPL_MAX_JOULES - 3000.0 + truth, RAPL_MAX_JOULES)
    cumulative, flags = unwrap_counter(raw, times, RAPL_MAX_JOULES)
    np.testing.assert_allclose(cumulative, truth, rtol=1e-12, atol=1e-6)
    assert np.flatnonzero(flags).tolist() == [int(np.argmax(np.diff(raw) < 0))]
    assert set(flags.tolist()) == {FLAG_OK, FLAG_WRAP}


@pytest.mark.parametrize(("start_joules", "wraps"), [(200.0, 2), (700.0, 1)])
def test_unwrap_counts_several_wraps_in_a_long_interval_from_the_neighbours_power(start_joules, wraps):
    # 1 s readings at 150 W around one 10 s interval: 1500 J through a 1000 J counter. The bound (500 W)
    # makes every 1 s count unique but allows up to 5 wraps in 10 s; the neighbours' power picks the count,
    # both for two wraps (the counter reads lower) and for one wrap hidden in a rise.
    times = np.concatenate([np.arange(0.0, 10.0), np.arange(19.0, 30.0)])
    truth = _energy(times, 150.0, [])
    raw = np.mod(start_joules + truth, 1000.0)
    long_interval = 9
    passed = (start_joules + truth[long_interval : long_interval + 2]) // 1000.0
    assert passed[1] - passed[0] == wraps
    assert (raw[long_interval + 1] < raw[long_interval]) == (wraps == 2)
    cumulative, flags = unwrap_counter(raw, times, 1000.0, max_power_watts=500.0)
    np.testing.assert_allclose(cumulative, truth, atol=1e-9)
    assert flags[long_interval] == FLAG_WRAP
    short_rises = (np.diff(times) == 1.0) & (np.diff(raw) >= 0)
    assert (flags[short_rises] == FLAG_OK).all()


def test_unwrap_reset_without_counter_max_uses_the_neighbours_power():
    times = np.arange(0.0, 20.0)
    truth = _energy(times, 100.0, [])
    reset_at = 9.4  # the counter restarts from 0 inside the interval [9, 10]
    raw = np.where(times < reset_at, 5000.0 + truth, truth - 100.0 * reset_at)
    cumulative, flags = unwrap_counter(raw, times, None)
    assert flags.tolist() == [FLAG_RESET if i == 9 else FLAG_OK for i in range(19)]
    np.testing.assert_allclose(cumulative, truth, atol=1e-9)


def test_unwrap_reset_keeps_the_counter_value_when_it_exceeds_the_neighbours_estimate():
    times = np.array([0.0, 1.0, 2.0, 3.0])
    raw = np.array([500.0, 600.0, 450.0, 550.0])  # 100 W around a reset reading 450 J after 1 s
    cumulative, flags = unwrap_counter(raw, times, None)
    assert flags.tolist() == [FLAG_OK, FLAG_RESET, FLAG_OK]
    np.testing.assert_allclose(np.diff(cumulative), [100.0, 450.0, 100.0])


def test_unwrap_implausible_wrap_is_a_reset():
    times = np.arange(0.0, 6.0)
    raw = np.array([1000.0, 1100.0, 1200.0, 1190.0, 1290.0, 1390.0])
    cumulative, flags = unwrap_counter(raw, times, RAPL_MAX_JOULES)  # one wrap would mean 262 kW
    assert flags.tolist() == [FLAG_OK, FLAG_OK, FLAG_RESET, FLAG_OK, FLAG_OK]
    np.testing.assert_allclose(np.diff(cumulative), [100.0, 100.0, 1190.0, 100.0, 100.0])


def test_unwrap_of_short_series():
    cumulative, flags = unwrap_counter(np.array([5.0]), np.array([0.0]), None)
    assert cumulative.tolist() == [0.0] and flags.size == 0
    cumulative, flags = unwrap_counter(np.array([]), np.array([]), None)
    assert cumulative.size == 0 and flags.size == 0


# attribute: counters and gauges


def test_single_task_on_a_one_second_counter_gets_its_exact_energy_through_a_wrap():
    times = np.arange(0.0, 3001.0)
    start, end, idle_watts, task_watts = 1000.3, 2000.7, 40.0, 110.0
    joules = _energy(times, idle_watts, [(start, end, task_watts)])
    tasks = _tasks(_task("a", start, end, cores=4.0))
    wrapped = _samples(
        _counter(times, joules, counter_max=RAPL_MAX_JOULES, offset_joules=RAPL_MAX_JOULES - 50_000)
    )
    plain = _samples(_counter(times, joules))
    result = _run(tasks, wrapped, _machines(n1=4))

    row = _row(result, "a")
    duration = end - start
    truth = (idle_watts + task_watts) * duration
    assert abs(row["energy_joules"] - truth) / truth < 1e-3
    assert abs(row["dynamic_joules"] - task_watts * duration) / (task_watts * duration) < 1e-3
    assert abs(row["idle_joules"] - idle_watts * duration) / (idle_watts * duration) < 1e-3
    assert abs(row["energy_joules"] - truth) <= row["uncertainty_joules"]
    assert row["avg_power_watts"] == pytest.approx(row["energy_joules"] / duration)
    assert row["coverage"] == 1.0
    assert row["samples"] == int(((times > start) & (times < end)).sum())
    assert row["method"].startswith("counter-interpolated;wraps-corrected;split=requests;")
    assert row["method"].endswith("idle=requests/capacity=machines;idle_power=median-idle-segments")
    assert row["provenance"] == "synthetic"
    unwrapped = _row(_run(tasks, plain, _machines(n1=4)), "a")
    assert row["energy_joules"] == pytest.approx(unwrapped["energy_joules"], rel=1e-9)
    assert "wraps-corrected" not in unwrapped["method"]


def test_counter_reset_inside_a_task_is_estimated_and_recorded():
    times = np.arange(0.0, 2001.0)
    joules = _energy(times, 50.0, [(500.0, 1500.0, 100.0)])
    raw = np.where(times < 1000.5, 7000.0 + joules, joules - joules[1000] - 75.0)  # restart at 1000.5
    samples = _samples(_series(times, raw, "energy_counter_joules"))
    row = _row(_run(_tasks(_task("a", 500.0, 1500.0, cores=2.0)), samples, _machines(n1=2)), "a")
    truth = 150.0 * 1000.0
    assert "reset-estimated" in row["method"]
    assert abs(row["energy_joules"] - truth) / truth < 1e-3


def test_instantaneous_gauge_integrates_piecewise_linear_power_exactly():
    times = np.arange(0.0, 2001.0, 2.0)
    ramp = 100.0 + 0.05 * times

    def integral(a: float, b: float) -> float:
        return 100.0 * (b - a) + 0.025 * (b * b - a * a)

    samples = _samples(_gauge(times, ramp, source="hwmon"))
    result = _run(_tasks(_task("a", 500.0, 1500.0, cores=8.0)), samples, _machines(n1=8))
    row = _row(result, "a")
    assert row["energy_joules"] == pytest.approx(integral(500.0, 1500.0), rel=1e-9)
    assert row["method"].startswith("gauge-trapezoid;split=requests;")
    total = pc.sum(result.node_energy_balance["measured_joules"]).as_py()
    assert total == pytest.approx(integral(0.0, 2000.0), rel=1e-12)


def test_nvml_gauge_is_a_trailing_average_held_over_the_second_before_it():
    # NVML's power is the mean of the second before the reading: a step at 100.5 s is read as 150 W at 101.
    times = np.arange(0.0, 301.0)
    watts = 50.0 + np.where(times >= 101.0, 150.0, 0.0) - np.where(times == 101.0, 75.0, 0.0)
    watts = np.where(times >= 201.0, 50.0, watts) + np.where(times == 201.0, 75.0, 0.0)
    device = {"kind": "gpu", "device_id": "GPU-a"}
    task = _tasks(_task("a", 100.5, 200.5, gpu_ids=("GPU-a",)))
    trailing = _row(_run(task, _samples(_gauge(times, watts, source="nvml", **device))), "a", "GPU-a")
    assert trailing["method"].startswith("gauge-trailing-average-1s;split=exclusive;")
    # The halves of the readings at 101 and 201 s inside the task follow the modelled power: close to exact.
    assert trailing["energy_joules"] == pytest.approx(200.0 * 100.0, rel=1e-4)
    for source in ("dcgm", "agent/nvml"):
        same = _row(_run(task, _samples(_gauge(times, watts, source=source, **device))), "a", "GPU-a")
        assert same["energy_joules"] == pytest.approx(trailing["energy_joules"], rel=1e-12)
    instantaneous = _row(_run(task, _samples(_gauge(times, watts, source="hwmon", **device))), "a", "GPU-a")
    assert instantaneous["method"].startswith("gauge-trapezoid;")


def test_counter_is_preferred_over_a_gauge_of_the_same_device():
    times = np.arange(0.0, 601.0)
    joules = _energy(times, 30.0, [(100.0, 400.0, 200.0)])
    device = {"kind": "gpu", "device_id": "GPU-a"}
    samples = _samples(_counter(times, joules, **device), _gauge(times, np.full(times.size, 999.0), **device))
    row = _row(_run(_tasks(_task("a", 100.0, 400.0, gpu_ids=("GPU-a",))), samples), "a", "GPU-a")
    assert row["method"].startswith("counter-interpolated;")
    assert row["energy_joules"] == pytest.approx(230.0 * 300.0, rel=1e-9)


# attribute: splits and idle policies


def test_co_located_tasks_split_dynamic_energy_by_requested_cores():
    times = np.arange(0.0, 3001.0)
    idle_watts = 50.0
    joules = _energy(times, idle_watts, [(1000.0, 2000.0, 160.0), (2000.0, 2500.0, 90.0)])
    tasks = _tasks(_task("a", 1000.0, 2000.0, cores=2.0), _task("b", 1000.0, 2500.0, cores=6.0))
    result = _run(tasks, _samples(_counter(times, joules)), _machines(n1=16))
    a, b = _row(result, "a"), _row(result, "b")
    assert a["dynamic_joules"] == pytest.approx(160.0 * 1000.0 * 2 / 8, rel=1e-9)
    assert b["dynamic_joules"] == pytest.approx(160.0 * 1000.0 * 6 / 8 + 90.0 * 500.0, rel=1e-9)
    assert a["idle_joules"] == pytest.approx(idle_watts * 1000.0 * 2 / 16, rel=1e-9)
    assert b["idle_joules"] == pytest.approx(idle_watts * 1500.0 * 6 / 16, rel=1e-9)
    assert a["peak_power_watts"] == pytest.approx(160.0 * 2 / 8 + idle_watts * 2 / 16, rel=1e-9)
    assert b["peak_power_watts"] == pytest.approx(max(160.0 * 6 / 8, 90.0) + idle_watts * 6 / 16, rel=1e-9)
    _assert_balance_closes(result)


def test_tasks_without_requests_split_dynamic_energy_equally():
    times = np.arange(0.0, 2001.0)
    joules = _energy(times, 20.0, [(500.0, 1500.0, 100.0)])
    tasks = _tasks(_task("a", 500.0, 1500.0), _task("b", 500.0, 1500.0))
    result = _run(tasks, _samples(_counter(times, joules)), _machines(n1=4))
    for task_id in ("a", "b"):
        row = _row(result, task_id)
        assert row["dynamic_joules"] == pytest.approx(100.0 * 1000.0 / 2, rel=1e-9)
        assert row["idle_joules"] == 0.0
        assert ";split=equal;" in row["method"]
    _assert_balance_closes(result)


def test_requests_exceeding_capacity_share_all_idle_energy():
    times = np.arange(0.0, 2001.0)
    joules = _energy(times, 60.0, [(500.0, 1500.0, 100.0)])
    tasks = _tasks(_task("a", 500.0, 1500.0, cores=6.0), _task("b", 500.0, 1500.0, cores=2.0))
    result = _run(tasks, _samples(_counter(times, joules)), _machines(n1=4))
    assert _row(result, "a")["idle_joules"] == pytest.approx(60.0 * 1000.0 * 6 / 8, rel=1e-9)
    assert _row(result, "b")["idle_joules"] == pytest.approx(60.0 * 1000.0 * 2 / 8, rel=1e-9)


def test_gpu_energy_goes_only_to_its_holders():
    times = np.arange(0.0, 601.0)
    gpu_a = _energy(times, 30.0, [(100.0, 400.0, 200.0)])
    gpu_b = 25.0 + np.where((times >= 200.0) & (times <= 500.0), 150.0, 0.0)
    samples = _samples(
        _counter(times, _energy(times, 45.0, [(0.0, 600.0, 20.0)])),
        _counter(times, gpu_a, kind="gpu", device_id="GPU-a"),
        _gauge(times, gpu_b, kind="gpu", device_id="GPU-b"),
    )
    tasks = _tasks(
        _task("t1", 100.0, 400.0, cores=1.0, gpu_ids=("GPU-a",)),
        _task("t2", 250.0, 450.0, cores=1.0, gpu_ids=("GPU-b",)),
        _task("t3", 250.0, 450.0, cores=1.0, gpu_ids=("GPU-b",)),
        _task("t4", 0.0, 600.0, cores=2.0),
    )
    result = _run(tasks, samples, _machines(n1=4))
    assert _devices_of(result, "t1") == {"package-0", "GPU-a"}
    assert _devices_of(result, "t2") == {"package-0", "GPU-b"}
    assert _devices_of(result, "t4") == {"package-0"}
    t1 = _row(result, "t1", "GPU-a")
    assert t1["energy_joules"] == pytest.approx(230.0 * 300.0, rel=1e-9)
    assert t1["dynamic_joules"] == pytest.approx(200.0 * 300.0, rel=1e-9)
    assert t1["method"] == "counter-interpolated;split=exclusive;idle=holders;idle_power=median-idle-segments"
    for task_id in ("t2", "t3"):  # a time-sliced GPU is split equally between its holders
        row = _row(result, task_id, "GPU-b")
        assert row["energy_joules"] == pytest.approx(175.0 * 200.0 / 2, rel=1e-9)
        assert row["method"].startswith("gauge-trailing-average-1s;split=time-sliced-equal;")
    _assert_balance_closes(result)


def test_idle_policies():
    times = np.arange(0.0, 3001.0)
    idle_watts, task_watts, duration = 60.0, 100.0, 1000.0
    samples = _samples(_counter(times, _energy(times, idle_watts, [(1000.0, 2000.0, task_watts)])))
    tasks = _tasks(_task("a", 1000.0, 2000.0, cores=4.0))

    none = _run(tasks, samples, _machines(n1=16), idle_policy="none")
    row = _row(none, "a")
    assert row["idle_joules"] == 0.0
    assert row["energy_joules"] == row["dynamic_joules"] == pytest.approx(task_watts * duration, rel=1e-9)
    assert ";idle=none;" in row["method"]
    unattributed = pc.sum(none.node_energy_balance["unattributed_joules"]).as_py()
    assert unattributed == pytest.approx(idle_watts * 3000.0, rel=1e-9)

    row = _row(_run(tasks, samples, _machines(n1=16), idle_policy="requests"), "a")
    assert row["idle_joules"] == pytest.approx(idle_watts * 4 / 16 * duration, rel=1e-9)
    assert row["dynamic_joules"] == pytest.approx(task_watts * duration, rel=1e-9)
    assert ";idle=requests/capacity=machines;" in row["method"]

    row = _row(_run(tasks, samples), "a")  # capacity = the node's peak requested cores = 4
    assert row["idle_joules"] == pytest.approx(idle_watts * duration, rel=1e-9)
    assert ";idle=requests/capacity=peak-requests;" in row["method"]
    assert set(IDLE_POLICIES) == {"none", "requests", "time"}
    with pytest.raises(ValueError, match="idle_policy"):
        attribute(tasks, samples, idle_policy="equal")


def test_idle_power_falls_back_to_a_low_percentile_without_quiet_time():
    times = np.arange(0.0, 1001.0)
    samples = _samples(_counter(times, _energy(times, 40.0, [(0.0, 1000.0, 100.0)])))
    row = _row(_run(_tasks(_task("a", 0.0, 1000.0, cores=1.0)), samples), "a")
    assert row["method"].endswith("idle_power=p5-segments")
    assert row["energy_joules"] == pytest.approx(140.0 * 1000.0, rel=1e-9)


# attribute: fitted split

WATTS_PER_CORE = {"heavy": 12.0, "light": 6.0}


def _two_templates(reading_s: float, short_tasks: int = 0) -> tuple[pa.Table, pa.Table, dict[str, float]]:
    """Heavy and light tasks alone and together (+ short heavy ones inside l1) on a 32-core node.

    Returns the tasks, a counter read every reading_s and each task's true energy (idle share by requests).
    """
    plan = [  # task, template, cores, start s, end s
        ("h1", "heavy", 2.0, 100.3, 700.3),
        ("l1", "light", 4.0, 800.6, 1400.6),
        ("h2", "heavy", 2.0, 1600.2, 2200.2),
        ("l2", "light", 4.0, 1600.2, 2200.2),
        ("h3", "heavy", 4.0, 2300.5, 2700.5),
        ("l3", "light", 2.0, 2500.5, 2900.5),
        *(
            (f"s{k}", "heavy", 2.0, 802.0 + 40 * k + k % 5, 805.0 + 40 * k + k % 5)
            for k in range(short_tasks)
        ),
    ]
    idle_watts = 50.0
    times = np.arange(0.0, 3001.0, reading_s)
    bursts = [(start, end, cores * WATTS_PER_CORE[template]) for _, template, cores, start, end in plan]
    tasks = _tasks(
        *(
            _task(task, start, end, cores=cores, template=template)
            for task, template, cores, start, end in plan
        )
    )
    truth = {
        task: (cores * WATTS_PER_CORE[template] + idle_watts * cores / 32) * (end - start)
        for task, template, cores, start, end in plan
    }
    return tasks, _samples(_counter(times, _energy(times, idle_watts, bursts))), truth


def _errors(result: Attribution, truth: dict[str, float]) -> dict[str, float]:
    return {
        task: abs(_row(result, task)["energy_joules"] - joules) / joules for task, joules in truth.items()
    }


def test_fitted_split_recovers_the_templates_watts_per_core_ratio():
    tasks, samples, truth = _two_templates(reading_s=1.0)
    fitted = _run(tasks, samples, _machines(n1=32), split="fitted")
    requests = _run(tasks, samples, _machines(n1=32), split="requests")
    # h2 and l2 always run together, so their split is the fitted ratio (the ridge pulls it a little to 1).
    h2, l2 = _row(fitted, "h2"), _row(fitted, "l2")
    ratio = (h2["dynamic_joules"] / 2.0) / (l2["dynamic_joules"] / 4.0)
    assert ratio == pytest.approx(WATTS_PER_CORE["heavy"] / WATTS_PER_CORE["light"], rel=0.03)
    fitted_errors, requests_errors = _errors(fitted, truth), _errors(requests, truth)
    assert max(fitted_errors.values()) < 0.025
    assert min(requests_errors["h2"], requests_errors["l2"]) > 0.25
    assert np.median(list(fitted_errors.values())) < 0.1 * np.median(list(requests_errors.values()))
    for task in truth:  # the split moves dynamic energy only
        assert _row(fitted, task)["idle_joules"] == pytest.approx(
            _row(requests, task)["idle_joules"], rel=1e-9
        )
    assert h2["method"].startswith(
        "counter-interpolated;split=requests-fitted;idle=requests/capacity=machines;"
    )
    true_peak_w = 2.0 * WATTS_PER_CORE["heavy"] + 50.0 * 2.0 / 32
    assert h2["peak_power_watts"] == pytest.approx(true_peak_w, rel=0.02)
    assert h2["peak_power_watts"] >= h2["avg_power_watts"]
    _assert_balance_closes(fitted)


def test_fitted_split_spreads_a_long_reading_interval_by_the_modelled_power():
    # 3 s heavy tasks inside 10 s counter intervals of a light task: the plain model spreads by requested
    # cores at the common watts per core, the fitted one by each template's own.
    tasks, samples, truth = _two_templates(reading_s=10.0, short_tasks=10)
    fitted = _errors(_run(tasks, samples, _machines(n1=32), split="fitted"), truth)
    plain = _errors(_run(tasks, samples, _machines(n1=32), split="plain"), truth)
    short = [f"s{k}" for k in range(10)]
    assert max(fitted[task] for task in short) < 1e-6  # exact data, exact fit: the ridge vanishes
    assert min(plain[task] for task in short) > 0.3


def test_fitted_split_of_a_single_template_equals_the_requests_split():
    times = np.arange(0.0, 3001.0)
    joules = _energy(times, 50.0, [(1000.0, 2000.0, 160.0), (1500.0, 2500.0, 90.0), (2600.0, 2700.0, 30.0)])
    tasks = _tasks(
        _task("a", 1000.0, 2000.0, cores=2.0),
        _task("b", 1000.0, 2500.0, cores=6.0),
        _task("c", 1500.0, 2700.0, cores=1.0),
        _task("d", 2600.0, 2700.0),
    )
    samples = _samples(_counter(times, joules))
    fitted = _run(tasks, samples, _machines(n1=16), split="fitted").task_energy.to_pylist()
    requests = _run(tasks, samples, _machines(n1=16)).task_energy.to_pylist()
    for fitted_row, requests_row in zip(fitted, requests, strict=True):
        for column in ("energy_joules", "dynamic_joules", "idle_joules", "peak_power_watts"):
            assert fitted_row[column] == pytest.approx(requests_row[column], rel=1e-9)
        assert fitted_row["method"] == requests_row["method"].replace(
            "split=requests", "split=requests-fitted"
        )
    assert {row["task_id"]: row["method"].split(";")[1] for row in fitted} == {
        "a": "split=requests-fitted",
        "b": "split=requests-fitted",
        "c": "split=requests-fitted",
        "d": "split=equal",
    }


def test_splits_shares_and_bad_options():
    assert SPLITS == ("fitted", "plain", "requests") and SHARES == ("usage", "requests", "kepler")
    times = np.arange(0.0, 101.0)
    samples = _samples(_counter(times, _energy(times, 50.0, [])))
    tasks = _tasks(_task("a", 10.0, 20.0, cores=1.0))
    for options, match in (
        ({"split": "templates"}, "split"),
        ({"share": "cores"}, "share"),
        ({"split": "requests", "share": "usage"}, "split"),
        ({"window_seconds": 0.0}, "window_seconds"),
        ({"correct_skew": True}, "skew"),
        ({"idle_power_watts": {"n1": 5.0}}, "idle_power_watts"),
    ):
        with pytest.raises(ValueError, match=match):
            attribute(tasks, samples, **options)
    nobody = _run(_tasks(_task("a", 10.0, 20.0, host="n2", cores=1.0)), samples, split="fitted")
    assert pc.sum(nobody.node_energy_balance["unattributed_joules"]).as_py() == pytest.approx(5000.0)


# attribute: short tasks, gaps, missing readings


def test_task_shorter_than_the_reading_interval_gets_the_modelled_part_of_its_interval():
    times = np.arange(0.0, 601.0, 5.0)
    start, end, idle_watts, task_watts = 302.0, 304.5, 50.0, 200.0
    samples = _samples(_counter(times, _energy(times, idle_watts, [(start, end, task_watts)])))
    row = _row(_run(_tasks(_task("a", start, end, cores=2.0)), samples, _machines(n1=2)), "a")
    # The interval's energy above idle is what the one running task drew: the model places it inside the task.
    truth = (idle_watts + task_watts) * (end - start)
    assert row["energy_joules"] == pytest.approx(truth, rel=1e-9)
    assert row["samples"] == 0
    assert row["coverage"] == 1.0
    assert abs(row["energy_joules"] - truth) <= row["uncertainty_joules"]


@pytest.mark.parametrize("reading_s", [1.0, 5.0])
def test_argo_second_truncation_is_modelled_and_covered_by_the_uncertainty(reading_s):
    # Argo writes whole seconds: the true start and end lie in [t, t + 1). Lone tasks of 0.3 .. 40 s.
    rng = np.random.default_rng(4)
    times = np.arange(0.0, 4001.0, reading_s)
    plan, bursts = [], []
    cursor = 20.0
    for number in range(60):
        start = cursor + rng.uniform(0.0, 5.0)
        end = start + rng.choice([0.3, 0.8, 2.5, 7.0, 40.0])
        plan.append((f"t{number}", start, end))
        bursts.append((start, end, 120.0))
        cursor = end + 20.0
    samples = _samples(_counter(times, _energy(times, 40.0, bursts)))
    rows = [
        _task(task, float(np.floor(start)), float(np.floor(end)), cores=4.0, resolution_s=1.0)
        for task, start, end in plan
    ]
    result = _run(_tasks(*rows), samples, _machines(n1=4))
    errors, covered = [], []
    for task, start, end in plan:
        row = _row(result, task)
        truth = 160.0 * (end - start)
        assert row["energy_joules"] > 0.0, f"{task}: a short task is never a silent zero"
        errors.append(abs(row["energy_joules"] - truth) / truth)
        covered.append(abs(row["energy_joules"] - truth) <= row["uncertainty_joules"])
    assert np.mean(covered) >= 0.95
    long_tasks = [error for (_, start, end), error in zip(plan, errors, strict=True) if end - start > 30]
    assert max(long_tasks) < 0.01


def test_zero_length_task_with_exact_times_has_no_energy_and_no_average_power():
    times = np.arange(0.0, 101.0)
    samples = _samples(_counter(times, _energy(times, 50.0, [])))
    row = _row(_run(_tasks(_task("a", 40.5, 40.5, cores=1.0)), samples), "a")
    assert row["energy_joules"] == 0.0 and row["avg_power_watts"] is None and row["peak_power_watts"] is None
    assert row["coverage"] == 1.0


def test_gap_in_the_readings_lowers_coverage_and_widens_the_uncertainty():
    times = np.arange(0.0, 3001.0)
    joules = _energy(times, 50.0, [(1000.0, 2000.0, 100.0)])
    kept = (times <= 1400.0) | (times >= 1500.0)
    tasks = _tasks(
        _task("a", 1000.0, 2000.0, cores=2.0),
        _task("outside", 4000.0, 4100.0, cores=2.0),
        _task("elsewhere", 1000.0, 2000.0, host="n2", cores=2.0),
        _task("skipped", None, None, host=None),
        _task("never-started", None, None),
    )
    full = _row(_run(tasks, _samples(_counter(times, joules)), _machines(n1=2)), "a")
    result = _run(tasks, _samples(_counter(times[kept], joules[kept])), _machines(n1=2))
    gapped = _row(result, "a")
    assert full["coverage"] == 1.0
    assert gapped["coverage"] == pytest.approx(0.9, rel=1e-12)
    assert gapped["samples"] == int(((times[kept] > 1000.0) & (times[kept] < 2000.0)).sum())
    # The counter still reads the gap's total; where in the gap it fell is the model's guess.
    assert gapped["uncertainty_joules"] > full["uncertainty_joules"] + 0.5 * 150.0 * 100.0
    assert ";gap;" in gapped["method"]
    assert gapped["energy_joules"] == pytest.approx(150.0 * 1000.0, rel=1e-9)
    outside = _row(result, "outside")  # a task outside the readings: a row with nothing measured
    assert (outside["energy_joules"], outside["coverage"], outside["samples"]) == (0.0, 0.0, 0)
    assert outside["method"].startswith("no-readings: outside readings;")
    assert outside["uncertainty_joules"] > 0.0
    elsewhere = _row(result, "elsewhere", "unknown")  # a node without any series and no machine sockets
    assert (elsewhere["energy_joules"], elsewhere["coverage"], elsewhere["device_kind"]) == (
        0.0,
        0.0,
        "cpu_package",
    )
    assert elsewhere["method"] == "no-readings: node has no series"
    assert set(result.task_energy["task_id"].to_pylist()) == {"a", "outside", "elsewhere"}


# attribute: balance, provenance, validation, scale


@pytest.mark.parametrize("split", SPLITS)
@pytest.mark.parametrize("idle_policy", IDLE_POLICIES)
def test_balance_closes_and_its_attributed_energy_equals_the_task_rows(idle_policy, split):
    rng = np.random.default_rng(7)
    offset, length, window = 1234.5, 3000.0, 600.0
    times = offset + np.arange(0.0, length + 1.0)
    gauge_times = offset + np.arange(0.0, length + 1.0, 2.0)
    rows, bursts_by_node = [], {"n1": [], "n2": []}
    for number in range(24):
        node = "n1" if number % 2 else "n2"
        start = offset + rng.uniform(-200.0, length - 100.0)
        end = start + rng.uniform(0.5, 900.0)
        cores = None if number % 5 == 0 else float(rng.integers(1, 9))
        gpus = ("GPU-1",) if node == "n1" and number % 3 == 0 else ()
        template = None if number % 7 == 0 else f"k{number % 3}"
        rows.append(_task(f"t{number}", start, end, host=node, cores=cores, gpu_ids=gpus, template=template))
        bursts_by_node[node].append((start, end, rng.uniform(5.0, 80.0)))
    series = []
    for node, bursts in bursts_by_node.items():
        series.append(_counter(times, _energy(times, 70.0, bursts), host=node, counter_max=RAPL_MAX_JOULES))
        series.append(
            _counter(times, _energy(times, 9.0, bursts), host=node, kind="dram", device_id="dram-0")
        )
    gpu_watts = 40.0 + 30.0 * np.sin(gauge_times / 97.0) ** 2
    series.append(_gauge(gauge_times, gpu_watts, kind="gpu", device_id="GPU-1"))
    result = _run(
        _tasks(*rows),
        _samples(*series),
        _machines(n1=8),
        idle_policy=idle_policy,
        window_seconds=window,
        split=split,
    )
    _assert_balance_closes(result)

    table = result.node_energy_balance
    balance = table.select(["host_node", "device_kind", "device_id", "measured_joules"]).to_pandas()
    balance["start_us"] = table["window_start"].cast(pa.int64()).to_numpy()
    balance["end_us"] = table["window_end"].cast(pa.int64()).to_numpy()
    window_us = round(window * 1e6)
    for _, device in balance.groupby(["host_node", "device_kind", "device_id"]):
        starts, ends = device["start_us"].to_numpy(), device["end_us"].to_numpy()
        assert (starts[1:] == ends[:-1]).all()
        assert (starts[0], ends[-1]) == (T0_US + round(offset * 1e6), T0_US + round((offset + length) * 1e6))
        assert (starts[1:] % window_us == 0).all() and (ends - starts <= window_us).all()
    measured = balance.groupby("device_id")["measured_joules"].sum()
    # NVML power is the mean of the interval before each reading.
    assert measured["GPU-1"] == pytest.approx(np.sum(gpu_watts[1:] * np.diff(gauge_times)), rel=1e-12)
    packages = balance[balance["device_id"] == "package-0"].groupby("host_node")["measured_joules"].sum()
    for node, bursts in bursts_by_node.items():
        assert packages[node] == pytest.approx(
            _energy(times, 70.0, bursts)[-1] - _energy(times, 70.0, bursts)[0]
        )


def test_provenance_follows_the_readings():
    times = np.arange(0.0, 201.0)
    joules = _energy(times, 50.0, [])
    mixed = ["measured"] * 100 + ["synthetic"] * (times.size - 100)
    samples = _samples(
        _counter(times, joules, provenance="measured"),
        _counter(times, joules, kind="dram", device_id="dram-0", provenance=mixed),
    )
    result = _run(_tasks(_task("a", 50.0, 150.0, cores=1.0)), samples)
    assert _row(result, "a")["provenance"] == "measured"
    assert _row(result, "a", "dram-0")["provenance"] == "estimated"
    by_device = dict(
        zip(
            result.node_energy_balance["device_id"].to_pylist(),
            result.node_energy_balance["provenance"].to_pylist(),
            strict=True,
        )
    )
    assert by_device == {"package-0": "measured", "dram-0": "estimated"}


def test_no_readings_at_all_gives_a_reasoned_row_and_no_balance():
    result = _run(_tasks(_task("a", 0.0, 10.0, cores=1.0)), empty("power_samples"))
    assert result.node_energy_balance.num_rows == 0
    assert result.task_energy.to_pylist()[0]["method"] == "no-readings: node has no series"


@pytest.mark.parametrize("split", SPLITS)
def test_thousand_tasks_and_300k_samples_in_a_few_seconds(split):
    rng = np.random.default_rng(3)
    nodes, readings = 10, 10_000
    times = np.arange(float(readings))
    series, rows = [], []
    for node in range(nodes):
        host = f"n{node}"
        bursts = []
        for number in range(100):
            start = rng.uniform(0.0, readings - 600.0)
            end = start + rng.uniform(1.0, 600.0)
            gpus = (f"GPU-{node}",) if number % 4 == 0 else ()
            rows.append(
                _task(
                    f"{host}-t{number}",
                    start,
                    end,
                    host=host,
                    cores=float(rng.integers(1, 5)),
                    gpu_ids=gpus,
                    template=f"k{number % 20}",
                )
            )
            bursts.append((start, end, rng.uniform(5.0, 50.0)))
        series.append(_counter(times, _energy(times, 60.0, bursts), host=host, counter_max=RAPL_MAX_JOULES))
        series.append(
            _counter(times, _energy(times, 8.0, bursts), host=host, kind="dram", device_id="dram-0")
        )
        series.append(
            _gauge(times, 50.0 + 20.0 * rng.random(readings), host=host, kind="gpu", device_id=f"GPU-{node}")
        )
    tasks, samples = _tasks(*rows), _samples(*series)
    assert samples.num_rows == 300_000
    began = time.perf_counter()
    result = attribute(tasks, samples, _machines(**{f"n{node}": 32 for node in range(nodes)}), split=split)
    elapsed = time.perf_counter() - began
    assert elapsed < 5.0, f"{elapsed:.1f} s"
    assert result.task_energy.num_rows == 1000 * 2 + 250
    _assert_balance_closes(result)


# attribute: devices without readings


def test_every_device_a_task_should_draw_on_gets_a_row_with_a_reason():
    times = np.arange(0.0, 601.0)
    samples = _samples(_counter(times, _energy(times, 50.0, [(100.0, 200.0, 40.0)])))
    tasks = _tasks(
        _task("here", 100.0, 200.0, cores=1.0, gpu_ids=("GPU-x",)),
        _task("there", 100.0, 200.0, host="n2", cores=1.0),
    )
    machines = conform(
        "machines",
        [
            {"host_node": node, "sockets": 2, "cores": 8, "gpu_models": [], "fpga_models": [], "labels": []}
            | {"provenance": "synthetic"}
            for node in ("n1", "n2")
        ],
    )
    result = _run(tasks, samples, machines)
    rows = {(row["task_id"], row["device_id"]): row for row in result.task_energy.to_pylist()}
    # package-0 is metered, so the node's cpu_package is (one series may meter all sockets); dram is not.
    assert set(rows) == {
        ("here", "package-0"),
        ("here", "dram-0"),
        ("here", "dram-1"),
        ("here", "GPU-x"),
        ("there", "package-0"),
        ("there", "package-1"),
        ("there", "dram-0"),
        ("there", "dram-1"),
    }
    assert rows[("here", "package-0")]["energy_joules"] > 0.0
    for key, reason in (
        (("here", "dram-1"), "no-readings: node has no dram series for dram-1"),
        (("here", "GPU-x"), "no-readings: node has no gpu series for GPU-x"),
        (("there", "package-0"), "no-readings: node has no cpu_package series for package-0"),
    ):
        row = rows[key]
        assert row["method"] == reason
        assert (row["energy_joules"], row["coverage"], row["samples"], row["provenance"]) == (
            0.0,
            0.0,
            0,
            "estimated",
        )
    # Nothing was read: the interval spans what the node's other package rows drew in as long.
    package_w = rows[("here", "package-0")]["avg_power_watts"]
    assert rows[("there", "package-0")]["uncertainty_joules"] == pytest.approx(100.0 * package_w, rel=1e-9)


# attribute: measured usage, Kepler


def _co_located_usage() -> tuple[pa.Table, pa.Table, pa.Table, dict[str, float]]:
    """Two tasks requesting 4 cores each on one node but using 1 and 3 CPU-seconds per second."""
    times = np.arange(0.0, 1001.0)
    watts_per_cpu_second = 10.0
    samples = _samples(
        _counter(
            times,
            _energy(
                times,
                30.0,
                [(200.0, 700.0, watts_per_cpu_second * 1.0), (300.0, 800.0, watts_per_cpu_second * 3.0)],
            ),
        )
    )
    usage = _containers(
        _cpu_seconds("uid-a", times[199:701], np.clip(times[199:701] - 200.0, 0, None) * 1.0),
        _cpu_seconds("uid-b", times[299:801], np.clip(times[299:801] - 300.0, 0, None) * 3.0),
    )
    tasks = _tasks(
        _task("a", 200.0, 700.0, cores=4.0, pod_uid="uid-a"),
        _task("b", 300.0, 800.0, cores=4.0, pod_uid="uid-b"),
        _task("c", 900.0, 950.0, cores=4.0),
    )
    truth = {"a": 10.0 * 500.0, "b": 30.0 * 500.0}
    return tasks, samples, usage, truth


@pytest.mark.parametrize("split", ["fitted", "plain"])
def test_co_located_tasks_split_by_measured_cpu_usage(split):
    tasks, samples, usage, truth = _co_located_usage()
    result = _run(tasks, samples, _machines(n1=8), containers=usage, split=split)
    for task_id, dynamic in truth.items():
        row = _row(result, task_id)
        assert row["dynamic_joules"] == pytest.approx(dynamic, rel=1e-9)
        assert row["method"].startswith(
            f"counter-interpolated;split=usage{'-fitted' if split == 'fitted' else ''};"
        )
    fallback = _row(result, "c")  # no usage series: its requested cores, and the method says so
    assert ";split=requests" in fallback["method"] and "(no-usage-series)" in fallback["method"]
    by_requests = _run(tasks, samples, _machines(n1=8), containers=usage, share="requests", split=split)
    assert _row(by_requests, "a")["dynamic_joules"] == pytest.approx(
        10.0 * 100.0 + 40.0 * 400.0 / 2, rel=1e-9
    )
    assert "share" in set(result.diagnostics["item"].to_pylist())
    _assert_balance_closes(result)


def test_usage_joins_on_pod_name_when_the_uid_is_missing_and_cadvisor_is_second_choice():
    tasks, samples, usage, truth = _co_located_usage()
    named = usage.set_column(
        usage.schema.get_field_index("pod_uid"), "pod_uid", pa.nulls(usage.num_rows, pa.string())
    )
    tasks = tasks.set_column(
        tasks.schema.get_field_index("pod_name"), "pod_name", pa.array(["pod-uid-a", "pod-uid-b", None])
    )
    noisy = _containers(_cpu_seconds("uid-a", [250.0, 260.0], [0.0, 500.0], source="cadvisor"))
    result = _run(tasks, samples, _machines(n1=8), containers=pa.concat_tables([named, noisy]), split="plain")
    assert _row(result, "a")["dynamic_joules"] == pytest.approx(truth["a"], rel=1e-9)


def test_kepler_share_takes_the_pods_joules_as_they_are_and_leaves_the_rest():
    tasks, samples, _, truth = _co_located_usage()
    times = np.arange(0.0, 1001.0)

    def kepler(uid: str, start: float, end: float, watts: float) -> dict:
        window = times[int(start) - 1 : int(end) + 2]
        series = _cpu_seconds(uid, window, np.clip(window - start, 0.0, end - start) * watts, source="kepler")
        return series | {
            "value_kind": ["energy_counter_joules"] * window.size,
            "device_kind": ["cpu_package"] * window.size,
        }

    pods = _containers(kepler("uid-a", 200.0, 700.0, 12.0), kepler("uid-b", 300.0, 800.0, 25.0))
    result = _run(tasks, samples, _machines(n1=8), containers=pods, share="kepler", split="plain")
    a, b, c = _row(result, "a"), _row(result, "b"), _row(result, "c")
    assert a["energy_joules"] == pytest.approx(12.0 * 500.0, rel=1e-6)
    assert b["energy_joules"] == pytest.approx(25.0 * 500.0, rel=1e-6)
    assert a["idle_joules"] == 0.0 and ";split=kepler;idle=none;" in a["method"]
    assert c["energy_joules"] == 0.0 and ";split=kepler(no-series);" in c["method"]
    _assert_balance_closes(result)


# attribute: idle


def test_idle_policy_time_and_configured_idle_power():
    times = np.arange(0.0, 3001.0)
    samples = _samples(_counter(times, _energy(times, 60.0, [(1000.0, 2000.0, 100.0)])))
    tasks = _tasks(_task("a", 1000.0, 2000.0, cores=4.0), _task("b", 1500.0, 2000.0, cores=12.0))
    timed = _run(tasks, samples, _machines(n1=16), idle_policy="time")
    # Idle power is shared equally by the tasks running: a alone for 500 s, then with b.
    assert _row(timed, "a")["idle_joules"] == pytest.approx(60.0 * 500.0 + 60.0 * 500.0 / 2, rel=1e-9)
    assert _row(timed, "b")["idle_joules"] == pytest.approx(60.0 * 500.0 / 2, rel=1e-9)
    assert ";idle=time;idle_power=median-idle-segments" in _row(timed, "a")["method"]
    configured = _run(tasks, samples, _machines(n1=16), idle_power_watts={("n1", "cpu_package"): 50.0})
    a = _row(configured, "a")
    assert a["method"].endswith("idle_power=configured")
    assert a["idle_joules"] == pytest.approx(50.0 * 1000.0 * 4 / 16, rel=1e-9)
    items = configured.diagnostics.to_pandas().set_index("item")
    assert (
        items.loc["idle_power_watts", "value"] == 50.0
        and items.loc["idle_power_watts", "detail"] == "configured"
    )
    _assert_balance_closes(timed)
    _assert_balance_closes(configured)


# attribute: clock skew


def test_clock_skew_is_estimated_reported_and_corrected_when_asked():
    rng = np.random.default_rng(11)
    times = np.arange(0.0, 3001.0)
    skew = 2.4  # the node's clock runs 2.4 s ahead of Argo's
    plan, bursts = [], []
    for number in range(40):
        start = 30.0 + number * 70.0 + rng.uniform(0.0, 20.0)
        end = start + rng.uniform(5.0, 40.0)
        plan.append(_task(f"t{number}", start, end, cores=2.0))
        bursts.append((start + skew, end + skew, 80.0))
    samples = _samples(_counter(times, _energy(times, 40.0, bursts)))
    tasks = _tasks(*plan)
    plain = _run(tasks, samples, _machines(n1=2))
    estimated = _run(tasks, samples, _machines(n1=2), skew_tolerance_seconds=5.0)
    corrected = _run(tasks, samples, _machines(n1=2), skew_tolerance_seconds=5.0, correct_skew=True)
    items = estimated.diagnostics.to_pandas().set_index("item")
    assert items.loc["skew_seconds", "value"] == pytest.approx(skew, abs=0.1)
    assert (
        ";skew=+2.4" in _row(estimated, "t0")["method"] and "(estimated)" in _row(estimated, "t0")["method"]
    )
    assert "(corrected)" in _row(corrected, "t0")["method"]

    def error(result: Attribution) -> float:
        return sum(
            abs(
                _row(result, task["task_id"])["dynamic_joules"]
                - 80.0 * (task["finished_at"] - task["started_at"]).total_seconds()
            )
            for task in plan
        )

    assert error(corrected) < 0.1 * error(plain)
    assert _row(estimated, "t0")["uncertainty_joules"] > _row(plain, "t0")["uncertainty_joules"]


# attribute: GPUs


def test_time_sliced_and_mig_gpus_are_named_in_the_method():
    times = np.arange(0.0, 601.0)
    gpu = _counter(
        times,
        _energy(times, 30.0, [(100.0, 300.0, 100.0), (200.0, 400.0, 100.0)]),
        kind="gpu",
        device_id="GPU-m",
    )
    tasks = _tasks(
        _task("a", 100.0, 300.0, gpu_ids=("GPU-m",)),
        _task("b", 200.0, 400.0, gpu_ids=("GPU-m",)),
        _task("c", 500.0, 550.0, gpu_ids=("GPU-m",)),
    )
    result = _run(tasks, _samples(gpu), _machines(labels={"nvidia.com/mig.strategy": "single"}, n1=8))
    assert _row(result, "a", "GPU-m")["method"].startswith("counter-interpolated;split=time-sliced-equal;")
    assert _row(result, "c", "GPU-m")["method"].startswith("counter-interpolated;split=exclusive;")
    assert _row(result, "c", "GPU-m")["method"].endswith(";mig")
    # Alone for 100 s, then sharing 200 W equally for 100 s.
    assert _row(result, "a", "GPU-m")["dynamic_joules"] == pytest.approx(
        100.0 * 100.0 + 200.0 * 100.0 / 2, rel=1e-9
    )


def _gpu_busy(pod_uid: str, times_s, busy_seconds, device_id: str) -> dict:
    """One container's cumulative GPU busy-seconds on one GPU, as the agent exports them from NVML."""
    series = _cpu_seconds(pod_uid, times_s, busy_seconds, source="agent-nvml")
    count = len(series["value"])
    return series | {
        "device_kind": ["gpu"] * count,
        "device_id": [device_id] * count,
        "value_kind": ["gpu_busy_seconds_counter"] * count,
    }


@pytest.mark.parametrize("split", ["fitted", "plain"])
def test_time_sliced_gpu_splits_by_each_containers_busy_time(split):
    """a keeps the GPU 60% busy over [100, 300], b 20% over [200, 400], at 250 W per busy-second."""
    times = np.arange(0.0, 601.0)
    watts_per_busy_second = 250.0
    gpu = _counter(
        times,
        _energy(
            times,
            40.0,
            [(100.0, 300.0, 0.6 * watts_per_busy_second), (200.0, 400.0, 0.2 * watts_per_busy_second)],
        ),
        kind="gpu",
        device_id="GPU-m",
    )
    tasks = _tasks(
        _task("a", 100.0, 300.0, gpu_ids=("GPU-m",), pod_uid="uid-a"),
        _task("b", 200.0, 400.0, gpu_ids=("GPU-m",), pod_uid="uid-b"),
    )
    busy_a = _gpu_busy("uid-a", times[99:302], 0.6 * np.clip(times[99:302] - 100.0, 0, 200.0), "GPU-m")
    busy_b = _gpu_busy("uid-b", times[199:402], 0.2 * np.clip(times[199:402] - 200.0, 0, 200.0), "GPU-m")
    # The same container's counter on another GPU says nothing about this one.
    elsewhere = _gpu_busy("uid-b", times[199:402], np.clip(times[199:402] - 200.0, 0, 200.0), "GPU-other")
    result = _run(tasks, _samples(gpu), containers=_containers(busy_a, busy_b, elsewhere), split=split)
    for task_id, busy in (("a", 0.6), ("b", 0.2)):
        row = _row(result, task_id, "GPU-m")
        assert row["dynamic_joules"] == pytest.approx(busy * watts_per_busy_second * 200.0, rel=1e-6)
        assert ";split=time-sliced-usage;idle=holders;" in row["method"]
        # Idle: alone for 100 s, sharing 40 W for 100 s.
        assert row["idle_joules"] == pytest.approx(40.0 * 100.0 + 40.0 * 100.0 / 2, rel=1e-6)
        assert row["uncertainty_joules"] < 0.01 * row["energy_joules"]
    _assert_balance_closes(result)
    # The node has no CPU series: those rows say so, and the summary the Dagster asset shows counts them.
    assert rows_by_split(result.task_energy) == {"no-readings": 2, "time-sliced-usage": 2}
    if split == "fitted":
        fit = [r for r in result.diagnostics.to_pylist() if r["item"] == "fit_watts_per_unit"]
        assert [(r["device_kind"], r["detail"]) for r in fit] == [("gpu", "(none)/usage")]
        assert fit[0]["value"] == pytest.approx(watts_per_busy_second, rel=1e-6)

    # Without b's counter the busy times cannot be compared: the GPU is split equally, and says so.
    equal = _run(tasks, _samples(gpu), containers=_containers(busy_a, elsewhere), split=split)
    a = _row(equal, "a", "GPU-m")
    assert ";split=time-sliced-equal;" in a["method"]
    assert a["dynamic_joules"] == pytest.approx(150.0 * 100.0 + 200.0 * 100.0 / 2, rel=1e-6)
    _assert_balance_closes(equal)


# attribute: bad input


def test_unsorted_and_repeated_readings_give_the_same_result_and_are_counted():
    times = np.arange(0.0, 601.0)
    series = _counter(times, _energy(times, 50.0, [(100.0, 300.0, 80.0)]))
    tasks = _tasks(_task("a", 100.0, 300.0, cores=1.0))
    clean = _row(_run(tasks, _samples(series)), "a")
    order = np.random.default_rng(0).permutation(times.size)
    shuffled = {name: [values[i] for i in order] for name, values in series.items()}
    repeated = {name: values + values[:10] for name, values in series.items()}
    for messy in (shuffled, repeated):
        result = _run(tasks, _samples(messy))
        assert _row(result, "a")["energy_joules"] == pytest.approx(clean["energy_joules"], rel=1e-12)
    notes = _run(tasks, _samples(repeated)).diagnostics.to_pandas().set_index("item")
    assert notes.loc["readings_dropped", "detail"] == "10 duplicate"


def test_conflicting_readings_at_one_instant_are_an_error_naming_the_series_and_time():
    times = np.arange(0.0, 11.0)
    series = _counter(times, 10.0 * times)
    series = {name: values + values[3:4] for name, values in series.items()}
    series["value"][-1] += 1.0
    with pytest.raises(ValueError, match=r"n1/cpu_package/package-0: conflicting .* at 2026-03-02T09:00:03"):
        attribute(_tasks(_task("a", 1.0, 5.0, cores=1.0)), _samples(series))


def test_nan_and_negative_readings_are_dropped_and_counted():
    times = np.arange(0.0, 201.0)
    watts = np.full(times.size, 100.0)
    watts[[10, 11]] = np.nan
    watts[50] = -5.0
    result = _run(
        _tasks(_task("a", 0.0, 200.0, cores=1.0)),
        _samples(_gauge(times, watts, source="hwmon")),
        _machines(n1=1),
    )
    assert _row(result, "a")["energy_joules"] == pytest.approx(100.0 * 200.0, rel=1e-9)
    notes = result.diagnostics.to_pandas().set_index("item")
    assert notes.loc["readings_dropped", "value"] == 3.0
    assert notes.loc["readings_dropped", "detail"] == "2 nan, 1 negative"


def test_tasks_finishing_before_they_start_are_an_error_naming_them():
    times = np.arange(0.0, 11.0)
    backwards = _task("late", 8.0, 8.0, cores=1.0) | {"finished_at": T0 + timedelta(seconds=3)}
    with pytest.raises(ValueError, match="1 tasks finish before they start: wf-1/late"):
        attribute(_tasks(backwards), _samples(_counter(times, 10.0 * times)))


@pytest.mark.parametrize("threads", [1, 2])
def test_bad_tasks_and_bad_readings_together_name_the_tasks_first(threads):
    """The tasks and the readings are read side by side on threads; the error is the same as one after the
    other: the tasks'."""
    times = np.arange(0.0, 11.0)
    backwards = _task("late", 8.0, 8.0, cores=1.0) | {"finished_at": T0 + timedelta(seconds=3)}
    series = _counter(times, 10.0 * times)
    series = {name: values + values[3:4] for name, values in series.items()}
    series["value"][-1] += 1.0
    with pytest.raises(ValueError, match="1 tasks finish before they start: wf-1/late"):
        attribute(_tasks(backwards), _samples(series), threads=threads)


# streaming a dataset by node and day


def test_streaming_a_dataset_by_node_and_day_equals_attributing_in_memory(tmp_path):
    from datasets.attribution import attribute_dataset
    from datasets.store import write_dataset

    # Two nodes, readings from 22:00 to 02:00 across midnight, tasks on both days and over midnight.
    rng = np.random.default_rng(5)
    start_s = 13.0 * 3600.0  # T0 is 09:00 UTC
    times = start_s + np.arange(0.0, 4 * 3600.0 + 1.0, 2.0)
    rows, series, usage = [], [], []
    for node in ("n1", "n2"):
        bursts = []
        for number in range(30):
            start = start_s + rng.uniform(60.0, 4 * 3600.0 - 700.0)
            end = start + rng.uniform(1.0, 600.0)
            uid = f"{node}-{number}"
            rows.append(
                _task(
                    uid,
                    start,
                    end,
                    host=node,
                    cores=float(rng.integers(1, 4)),
                    template=f"k{number % 3}",
                    pod_uid=uid,
                )
            )
            rate = float(rng.uniform(0.5, 2.0))
            bursts.append((start, end, 9.0 * rate))
            if number % 4:
                polls = times[(times >= start - 2.0) & (times <= end + 2.0)]
                usage.append(
                    _cpu_seconds(uid, polls, np.clip(polls - start, 0.0, end - start) * rate, host=node)
                )
        series.append(_counter(times, _energy(times, 45.0, bursts), host=node, counter_max=RAPL_MAX_JOULES))
        series.append(
            _gauge(
                times,
                20.0 + 5.0 * rng.random(times.size),
                host=node,
                kind="fpga",
                device_id="F",
                source="hwmon",
            )
        )
    tasks, samples, containers = _tasks(*rows), _samples(*series), _containers(*usage)
    workflows = conform(
        "workflows",
        [
            {
                "workflow_uid": "wf-1",
                "workflow_name": "wf",
                "cluster": "c",
                "phase": "Succeeded",
                "started_at": T0,
                "task_count": len(rows),
                "provenance": "synthetic",
            }
        ],
    )
    machines = _machines(n1=8, n2=8)
    write_dataset(
        tmp_path,
        {
            "workflows": workflows,
            "tasks": tasks,
            "machines": machines,
            "power_samples": samples,
            "container_samples": containers,
        },
    )
    assert len(list((tmp_path / "power_samples").iterdir())) == 2  # two days
    memory = attribute(tasks, samples, machines, containers=containers)
    streamed = attribute_dataset(tmp_path, tmp_path / "out")
    # Nodes attributed side by side give the very numbers of one after another.
    for threads in (1, 3):
        again = attribute(tasks, samples, machines, containers=containers, threads=threads)
        assert again.task_energy.equals(memory.task_energy)
        assert again.node_energy_balance.equals(memory.node_energy_balance)
        assert again.diagnostics.equals(memory.diagnostics)
    one_by_one = attribute_dataset(tmp_path, threads=1)
    assert one_by_one.task_energy.equals(streamed.task_energy)
    assert one_by_one.node_energy_balance.equals(streamed.node_energy_balance)
    # Agents spool a file per node and day: each node then reads only its own files, to the same result.
    for folder in sorted((tmp_path / "power_samples").iterdir()):
        day = pq.read_table(folder / "part-0.parquet")
        for node in ("n1", "n2"):
            pq.write_table(day.filter(pc.equal(day["host_node"], node)), folder / f"{node}.parquet")
        (folder / "part-0.parquet").unlink()
    per_node = attribute_dataset(tmp_path)
    assert per_node.task_energy.equals(streamed.task_energy)
    assert per_node.node_energy_balance.equals(streamed.node_energy_balance)
    with pytest.raises(ValueError, match="threads must be at least 1"):
        attribute(tasks, samples, threads=0)
    for name in ("task_energy", "node_energy_balance"):
        expected, got = getattr(memory, name), getattr(streamed, name)
        assert got.num_rows == expected.num_rows
        for column in expected.column_names:
            if pa.types.is_floating(expected[column].type):
                np.testing.assert_allclose(
                    got[column].to_numpy(zero_copy_only=False),
                    expected[column].to_numpy(zero_copy_only=False),
                    rtol=1e-7,
                    atol=1e-6,
                )
            else:
                assert got[column].equals(expected[column]), column
    assert (tmp_path / "out" / "task_energy").exists()
