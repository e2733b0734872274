"""The energy accumulator against true cumulative energy, with time driven by the readings only."""

from __future__ import annotations

import time

import pytest

from collectors.meters.accumulate import EnergyAccumulator, MeterCounts
from collectors.meters.source import Meter, Reading
from schemas.kinds import ENERGY_COUNTER, POWER_GAUGE

RAPL_MAX_JOULES = 262_143.328850


def counter(max_joules: float | None, device_id: str = "package-0") -> Meter:
    return Meter("cpu_package", device_id, "rapl", ENERGY_COUNTER, counter_max_joules=max_joules)


def counter_readings(
    meter: Meter, start_joules: float, intervals: list[tuple[float, float]]
) -> tuple[list[Reading], float]:
    """Readings of a counter advanced by (seconds, watts) intervals, and the true energy they add up to."""
    t_seconds, energy_joules, true_joules = 100.0, start_joules, 0.0
    readings = [Reading(meter, t_seconds, 1.7e9 + t_seconds, start_joules)]
    for seconds, watts in intervals:
        t_seconds += seconds
        energy_joules += seconds * watts
        true_joules += seconds * watts
        value = energy_joules % meter.counter_max_joules if meter.counter_max_joules else energy_joules
        readings.append(Reading(meter, t_seconds, 1.7e9 + t_seconds, value))
    return readings, true_joules


def feed(accumulator: EnergyAccumulator, readings: list[Reading]):
    return [accumulator.update(reading) for reading in readings]


def test_first_reading_starts_at_zero_and_the_clock_is_never_called(monkeypatch):
    def no_clock():
        raise AssertionError("the accumulator must take time from the readings")

    monkeypatch.setattr(time, "monotonic", no_clock)
    monkeypatch.setattr(time, "time", no_clock)
    readings, true_joules = counter_readings(counter(RAPL_MAX_JOULES), 5_000.0, [(1.0, 100.0), (1.0, 150.0)])
    results = feed(EnergyAccumulator(), readings)
    assert results[0].total_joules == 0.0 and results[0].power_watts is None
    assert results[-1].total_joules == pytest.approx(true_joules, rel=1e-6)
    assert [r.power_watts for r in results[1:]] == pytest.approx([100.0, 150.0])
    assert results[-1].unix_seconds == readings[-1].unix_seconds


def test_one_wrap_per_interval_is_counted():
    meter = counter(RAPL_MAX_JOULES)
    readings, true_joules = counter_readings(
        meter, RAPL_MAX_JOULES - 150.0, [(1.0, 400.0)] * 3 + [(0.5, 90.0)]
    )
    accumulator = EnergyAccumulator()
    results = feed(accumulator, readings)
    assert [r.wraps for r in results] == [0, 1, 0, 0, 0]
    assert results[-1].total_joules == pytest.approx(true_joules, rel=1e-6)
    assert results[1].power_watts == pytest.approx(400.0)
    assert accumulator.counts()[meter] == MeterCounts(wraps=1, ambiguous_intervals=0, resets=0)


def test_several_wraps_in_one_interval_resolve_when_the_power_bounds_allow_one_count():
    # 10 s at 350 W on a 1000 J counter: 3 wraps + 500 J. With power in [320, 400] W the window
    # 3200..4000 J holds one count only.
    meter = counter(1_000.0)
    readings, true_joules = counter_readings(meter, 0.0, [(1.0, 350.0), (10.0, 350.0), (1.0, 350.0)])
    accumulator = EnergyAccumulator(max_power_watts=400.0, min_power_watts=320.0)
    results = feed(accumulator, readings)
    assert [r.wraps for r in results] == [0, 0, 3, 1]
    assert not any(r.ambiguous for r in results)
    assert results[-1].total_joules == pytest.approx(true_joules, rel=1e-6)


def test_a_long_interval_within_the_max_only_is_ambiguous_and_resolved_by_the_previous_power():
    meter = counter(1_000.0)
    readings, true_joules = counter_readings(meter, 0.0, [(1.0, 350.0), (10.0, 350.0)])
    accumulator = EnergyAccumulator(max_power_watts=400.0)
    results = feed(accumulator, readings)
    assert results[2].ambiguous and results[2].wraps == 3
    assert results[-1].total_joules == pytest.approx(true_joules, rel=1e-6)
    assert accumulator.counts()[meter].ambiguous_intervals == 1

    # Without a previous interval the fewest wraps stand: a flagged lower bound.
    fresh = feed(EnergyAccumulator(max_power_watts=400.0), readings[1:])
    assert fresh[1].ambiguous and fresh[1].wraps == 0
    assert fresh[1].total_joules == pytest.approx(500.0)


def test_short_intervals_are_never_ambiguous_under_the_default_max():
    meter = counter(RAPL_MAX_JOULES)
    intervals = [(1.0, 1_900.0)] * 300  # a wrap every ~138 s at near the maximum power
    readings, true_joules = counter_readings(meter, 1.0, intervals)
    accumulator = EnergyAccumulator()
    results = feed(accumulator, readings)
    assert results[-1].total_joules == pytest.approx(true_joules, rel=1e-6)
    assert accumulator.counts()[meter] == MeterCounts(wraps=2, ambiguous_intervals=0, resets=0)


def test_a_decrease_without_a_wrap_point_is_a_reset():
    meter = counter(None)
    values = [100.0, 150.0, 20.0, 50.0]  # restarted between the 2nd and 3rd reading
    readings = [Reading(meter, float(t), 1.7e9 + t, v) for t, v in enumerate(values)]
    accumulator = EnergyAccumulator()
    results = feed(accumulator, readings)
    assert [r.reset for r in results] == [False, False, True, False]
    assert results[2].power_watts is None and results[3].power_watts == pytest.approx(30.0)
    assert results[-1].total_joules == pytest.approx(50.0 + 20.0 + 30.0)
    assert accumulator.counts()[meter] == MeterCounts(wraps=0, ambiguous_intervals=0, resets=1)


def test_a_decrease_too_fast_to_be_a_wrap_is_a_reset():
    # One wrap would mean 261 kJ in 1 s: far above max_power_watts, so the counter restarted.
    meter = counter(RAPL_MAX_JOULES)
    readings = [
        Reading(meter, 0.0, 0.0, 1_000.0),
        Reading(meter, 1.0, 1.0, 500.0),
        Reading(meter, 2.0, 2.0, 600.0),
    ]
    results = feed(EnergyAccumulator(), readings)
    assert results[1].reset and results[1].wraps == 0
    assert results[-1].total_joules == pytest.approx(500.0 + 100.0)


def test_a_forward_jump_above_the_max_is_kept_as_read():
    meter = counter(RAPL_MAX_JOULES)
    results = feed(EnergyAccumulator(), [Reading(meter, 0.0, 0.0, 0.0), Reading(meter, 1.0, 1.0, 5_000.0)])
    assert results[1].total_joules == 5_000.0 and not results[1].reset


def test_gauges_integrate_piecewise_linear_power_exactly():
    meter = Meter("fpga", "0000:3b:00.0", "hwmon", POWER_GAUGE)
    samples = [(0.0, 100.0), (1.0, 200.0), (3.0, 50.0), (3.5, 50.0), (4.0, 0.0)]
    true_joules = 150.0 + 250.0 + 25.0 + 12.5  # areas of the trapezoids between the samples
    results = feed(EnergyAccumulator(), [Reading(meter, t, 1.7e9 + t, w) for t, w in samples])
    assert results[0].total_joules == 0.0 and results[0].power_watts == 100.0
    assert [r.power_watts for r in results] == [w for _, w in samples]
    assert results[-1].total_joules == pytest.approx(true_joules, rel=1e-12)


def test_meters_accumulate_independently_and_totals_hold_the_latest_state():
    package, dram = counter(RAPL_MAX_JOULES), counter(RAPL_MAX_JOULES, "dram-0")
    package_readings, package_joules = counter_readings(package, 10.0, [(1.0, 200.0), (2.0, 100.0)])
    dram_readings, dram_joules = counter_readings(dram, 20.0, [(1.0, 10.0), (2.0, 12.0)])
    accumulator = EnergyAccumulator()
    for pair in zip(package_readings, dram_readings, strict=True):
        feed(accumulator, list(pair))
    totals = accumulator.totals()
    assert totals[package].total_joules == pytest.approx(package_joules)
    assert totals[dram].total_joules == pytest.approx(dram_joules)
    assert totals[dram].power_watts == pytest.approx(12.0)


def test_readings_out_of_time_order_are_refused():
    meter = counter(RAPL_MAX_JOULES)
    accumulator = EnergyAccumulator()
    accumulator.update(Reading(meter, 10.0, 10.0, 1.0))
    with pytest.raises(ValueError, match="precedes"):
        accumulator.update(Reading(meter, 9.0, 9.0, 2.0))


def test_power_bounds_are_checked():
    with pytest.raises(ValueError):
        EnergyAccumulator(max_power_watts=100.0, min_power_watts=100.0)
