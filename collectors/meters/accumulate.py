"""Per-meter monotone energy totals that never lose a joule: counter wraps and resets corrected, gauges integrated.

Each update() covers the interval since the meter's previous reading. Time comes only from
reading.monotonic_seconds, never from the clock, so replays and tests drive it.

Counters (energy_counter_joules), with delta = value - previous value over dt seconds:
  1. With a wrap point M (counter_max_joules), k_min is the fewest wraps making delta + k*M >= 0 (0 or 1,
     as both values lie in [0, M]). The plausible counts are the k >= k_min whose mean power (delta + k*M)/dt
     lies within [min_power_watts, max_power_watts]. Counts under the floor are dropped unless that leaves
     none under the ceiling; then the highest count under the ceiling stands.
  2. One plausible count: use it. Several (only when dt > M / (max - min power)): the interval is
     AMBIGUOUS. Take the count whose power is nearest the previous interval's power, or the fewest wraps
     when there is none (a lower bound), and count it in ambiguous_intervals.
  3. Even k_min is above max_power_watts: a decrease is a RESET (the counter restarted, e.g. a driver
     reload), so add the value, the energy since the restart and a lower bound. An increase is kept as
     read, since the counter is the authority and the bound only chooses among wrap counts.
  4. Without a wrap point, a decrease is a RESET (add the value) and an increase adds delta.
Gauges (power_watts): trapezoid between consecutive readings, exact when power is linear between them.
The first reading of a meter starts its total at 0.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from collectors.meters.source import Meter, Reading
from schemas.kinds import ENERGY_COUNTER, POWER_GAUGE


@dataclass(frozen=True)
class AccumulatedEnergy:
    meter: Meter
    total_joules: float  # energy since the meter's first reading; never decreases
    power_watts: float | None  # the last interval's mean power (counter) or the gauge value; None if unknown
    wraps: int  # counter wraps counted in the last interval
    ambiguous: bool  # several wrap counts were plausible in the last interval
    reset: bool  # the counter restarted in the last interval
    unix_seconds: float  # time of the reading the total runs to


@dataclass(frozen=True)
class MeterCounts:
    """Corrections made on one meter since its first reading, for the agent's metrics."""

    wraps: int = 0
    ambiguous_intervals: int = 0
    resets: int = 0


@dataclass
class _MeterState:
    value: float
    monotonic_seconds: float
    latest: AccumulatedEnergy
    counts: MeterCounts
    known_power_watts: float | None  # the latest interval power known, to resolve ambiguous intervals


class EnergyAccumulator:
    """Monotone energy totals per meter from raw readings (rules in the module docstring).

    max_power_watts is the highest mean power one meter can plausibly draw. The 2000 W default is above
    any CPU package, DRAM domain or accelerator board in use, with margin. It caps how many wraps fit in an
    interval: a 262 kJ RAPL counter is never ambiguous over intervals shorter than 262143 J / 2000 W = 131 s.
    min_power_watts (default 0, none assumed) is the lowest. A floor such as a package's idle power lets
    a long interval holding several wraps resolve to one count when (max - min) * dt < M.
    """

    def __init__(self, max_power_watts: float = 2000.0, min_power_watts: float = 0.0):
        if not 0 <= min_power_watts < max_power_watts:
            raise ValueError(
                f"need 0 <= min_power_watts < max_power_watts, got {min_power_watts}, {max_power_watts}"
            )
        self.max_power_watts = max_power_watts
        self.min_power_watts = min_power_watts
        self._states: dict[Meter, _MeterState] = {}

    def update(self, reading: Reading) -> AccumulatedEnergy:
        meter = reading.meter
        if meter.value_kind not in (ENERGY_COUNTER, POWER_GAUGE):
            raise ValueError(f"{meter.device_id}: unknown value_kind {meter.value_kind!r}")
        gauge = meter.value_kind == POWER_GAUGE
        state = self._states.get(meter)
        if state is None:
            power_watts = reading.value if gauge else None
            first = AccumulatedEnergy(meter, 0.0, power_watts, 0, False, False, reading.unix_seconds)
            self._states[meter] = _MeterState(
                reading.value, reading.monotonic_seconds, first, MeterCounts(), power_watts
            )
            return first
        dt_seconds = reading.monotonic_seconds - state.monotonic_seconds
        if dt_seconds < 0:
            raise ValueError(
                f"{meter.device_id}: reading at monotonic {reading.monotonic_seconds} s precedes the previous "
                f"one at {state.monotonic_seconds} s"
            )
        if gauge:
            joules = (state.value + reading.value) / 2 * dt_seconds
            power_watts, wraps, ambiguous, reset = reading.value, 0, False, False
        else:
            joules, wraps, ambiguous, reset = self._counter_interval(
                state.value, reading.value, meter.counter_max_joules, dt_seconds, state.known_power_watts
            )
            power_watts = None if reset or dt_seconds == 0 else joules / dt_seconds
        state.latest = AccumulatedEnergy(
            meter,
            state.latest.total_joules + joules,
            power_watts,
            wraps,
            ambiguous,
            reset,
            reading.unix_seconds,
        )
        state.counts = MeterCounts(
            state.counts.wraps + wraps,
            state.counts.ambiguous_intervals + ambiguous,
            state.counts.resets + reset,
        )
        state.value, state.monotonic_seconds = reading.value, reading.monotonic_seconds
        if power_watts is not None:
            state.known_power_watts = power_watts
        return state.latest

    def _counter_interval(
        self,
        previous_joules: float,
        value_joules: float,
        max_joules: float | None,
        dt_seconds: float,
        known_power_watts: float | None,
    ) -> tuple[float, int, bool, bool]:
        """(joules, wraps, ambiguous, reset) of one counter interval, by rules 1-4 of the module docstring."""
        delta_joules = value_joules - previous_joules
        fewest = math.ceil(-delta_joules / max_joules) if max_joules and delta_joules < 0 else 0
        most = (
            math.floor((self.max_power_watts * dt_seconds - delta_joules) / max_joules) if max_joules else 0
        )
        if not max_joules or most < fewest:
            if delta_joules < 0:
                return value_joules, 0, False, True
            return delta_joules, 0, False, False
        above_floor = math.ceil((self.min_power_watts * dt_seconds - delta_joules) / max_joules)
        least = min(max(fewest, above_floor), most)
        wraps = least
        if most > least and known_power_watts is not None:
            nearest = round((known_power_watts * dt_seconds - delta_joules) / max_joules)
            wraps = min(max(nearest, least), most)
        return delta_joules + wraps * max_joules, wraps, most > least, False

    def totals(self) -> dict[Meter, AccumulatedEnergy]:
        """The latest state of every meter seen."""
        return {meter: state.latest for meter, state in self._states.items()}

    def counts(self) -> dict[Meter, MeterCounts]:
        """Wraps, ambiguous intervals and resets per meter since its first reading."""
        return {meter: state.counts for meter, state in self._states.items()}
