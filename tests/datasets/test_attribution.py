"""Attribution on synthetic series whose true energy is known in closed form."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest

from datasets.attribution import (
    FLAG_OK,
    FLAG_RESET,
    FLAG_WRAP,
    IDLE_POLICIES,
    SPLITS,
    Attribution,
    attribute,
    unwrap_counter,
)
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
        "source": ["rapl" if kind != "gpu" else "nvml"] * times_s.size,
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
    resolution_s: float = 1.0,
    template: str | None = None,
) -> dict:
    return {
        "workflow_uid": "wf-1",
        "task_id": task_id,
        "task_name": task_id,
        "template_name": template,
        "attempt": 0,
        "phase": "Succeeded",
        "host_node": host,
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


def _machines(**cores_by_node: int) -> pa.Table:
    return conform(
        "machines",
        [
            {
                "host_node": node,
                "cores": cores,
                "gpu_models": [],
                "fpga_models": [],
                "labels": [],
                "provenance": "synthetic",
            }
            for node, cores in cores_by_node.items()
        ],
    )


def _run(tasks: pa.Table, samples: pa.Table, machines: pa.Table | None = None, **options) -> Attribution:
    """Attribute and validate; the plain rules are tested under split="requests" unless a test says fitted."""
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


def test_gauge_integrates_piecewise_linear_power_exactly():
    times = np.arange(0.0, 2001.0, 2.0)
    ramp = 100.0 + 0.05 * times

    def integral(a: float, b: float) -> float:
        return 100.0 * (b - a) + 0.025 * (b * b - a * a)

    samples = _samples(_gauge(times, ramp))
    result = _run(_tasks(_task("a", 500.5, 1500.25, cores=8.0)), samples, _machines(n1=8))
    row = _row(result, "a")
    assert row["energy_joules"] == pytest.approx(integral(500.5, 1500.25), rel=1e-9)
    assert row["method"].startswith("gauge-trapezoid;split=requests;")
    total = pc.sum(result.node_energy_balance["measured_joules"]).as_py()
    assert total == pytest.approx(integral(0.0, 2000.0), rel=1e-12)


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
    assert t1["method"] == "counter-interpolated;split=holders;idle=holders;idle_power=median-idle-segments"
    for task_id in ("t2", "t3"):  # a shared GPU is split equally between its holders
        row = _row(result, task_id, "GPU-b")
        assert row["energy_joules"] == pytest.approx(175.0 * 200.0 / 2, rel=1e-9)
        assert row["method"].startswith("gauge-trapezoid;split=holders;")
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
    assert set(IDLE_POLICIES) == {"none", "requests"}
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
    assert h2["method"].startswith("counter-interpolated;split=fitted;idle=requests/capacity=machines;")
    true_peak_w = 2.0 * WATTS_PER_CORE["heavy"] + 50.0 * 2.0 / 32
    assert h2["peak_power_watts"] == pytest.approx(true_peak_w, rel=0.02)
    assert h2["peak_power_watts"] >= h2["avg_power_watts"]
    _assert_balance_closes(fitted)


def test_fitted_split_spreads_a_long_reading_interval_by_the_modelled_power():
    # 3 s heavy tasks inside 10 s counter intervals: a uniform spread would give them the interval's mean power.
    tasks, samples, truth = _two_templates(reading_s=10.0, short_tasks=10)
    fitted = _errors(_run(tasks, samples, _machines(n1=32), split="fitted"), truth)
    requests = _errors(_run(tasks, samples, _machines(n1=32)), truth)
    short = [f"s{k}" for k in range(10)]
    assert max(fitted[task] for task in short) < 0.03
    assert min(requests[task] for task in short) > 0.45


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
        assert fitted_row["method"] == requests_row["method"].replace("split=requests", "split=fitted")
    assert {row["task_id"]: row["method"].split(";")[1] for row in fitted} == {
        "a": "split=fitted",
        "b": "split=fitted",
        "c": "split=fitted",
        "d": "split=equal",
    }


def test_splits_and_an_unknown_split():
    assert SPLITS == ("requests", "fitted")
    times = np.arange(0.0, 101.0)
    samples = _samples(_counter(times, _energy(times, 50.0, [])))
    with pytest.raises(ValueError, match="split"):
        attribute(_tasks(_task("a", 10.0, 20.0, cores=1.0)), samples, split="templates")
    nobody = _run(_tasks(_task("a", 10.0, 20.0, host="n2", cores=1.0)), samples, split="fitted")
    assert nobody.task_energy.num_rows == 0
    assert pc.sum(nobody.node_energy_balance["unattributed_joules"]).as_py() == pytest.approx(5000.0)


# attribute: short tasks, gaps, missing readings


def test_task_shorter_than_the_reading_interval_gets_interpolated_energy_within_its_uncertainty():
    times = np.arange(0.0, 601.0, 5.0)
    start, end, idle_watts, task_watts = 302.0, 304.5, 50.0, 200.0
    samples = _samples(_counter(times, _energy(times, idle_watts, [(start, end, task_watts)])))
    row = _row(_run(_tasks(_task("a", start, end, cores=2.0)), samples, _machines(n1=2)), "a")
    truth = (idle_watts + task_watts) * (end - start)
    interval = 5.0 * idle_watts + task_watts * (end - start)  # the one reading interval holding the task
    assert row["energy_joules"] == pytest.approx(interval * (end - start) / 5.0, rel=1e-9)
    assert row["samples"] == 0
    assert row["coverage"] == 1.0
    assert abs(row["energy_joules"] - truth) <= row["uncertainty_joules"]


def test_zero_length_task_has_no_energy_and_no_average_power():
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
    assert gapped["uncertainty_joules"] == pytest.approx(
        full["uncertainty_joules"] + 0.5 * 150.0 * 100.0, rel=1e-9
    )
    assert gapped["energy_joules"] == pytest.approx(150.0 * 1000.0, rel=1e-9)
    outside = _row(result, "outside")  # a task outside the readings: a row with nothing measured
    assert (outside["energy_joules"], outside["coverage"], outside["samples"]) == (0.0, 0.0, 0)
    assert set(result.task_energy["task_id"].to_pylist()) == {"a", "outside"}


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
    assert measured["GPU-1"] == pytest.approx(np.trapezoid(gpu_watts, gauge_times), rel=1e-12)
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


def test_no_readings_gives_empty_valid_tables():
    result = _run(_tasks(_task("a", 0.0, 10.0, cores=1.0)), empty("power_samples"))
    assert result.task_energy.num_rows == 0 and result.node_energy_balance.num_rows == 0


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
