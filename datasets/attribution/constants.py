"""The numbers the attribution rules use, each with why, in one place."""

from __future__ import annotations

import numpy as np

from schemas.kinds import (  # noqa: F401  (the stages import the source names from here)
    CPU_SECONDS_COUNTER,
    CPU_USAGE_SOURCES,
    ENERGY_COUNTER,
    GPU_BUSY_SECONDS_COUNTER,
    GPU_BUSY_SOURCES,
    KEPLER_SOURCE,
    POWER_SOURCES,
    TRAILING_AVERAGE_GAUGE,
)

# Accelerator kinds and the tasks column naming the devices a task holds.
ACCELERATOR_IDS = {"gpu": "gpu_ids", "fpga": "fpga_ids"}


# A device id standing for one device of the node whose id was not read (collectors/cluster/task_resources.py):
# the task requested it, but which of the node's devices it got is unknown.
UNMAPPED_DEVICE = "unmapped"


CPU_ZONE_DEVICES = {"cpu_package": "package", "dram": "dram"}


# Gauges whose reading is the mean power over this many seconds before it (NVML on Ampere+, DCGM): a
# property of the source, declared with every source in schemas.kinds.POWER_SOURCES.
TRAILING_AVERAGE_SECONDS = {
    source: seconds for source, (rule, seconds) in POWER_SOURCES.items() if rule == TRAILING_AVERAGE_GAUGE
}


USAGE_SOURCES = CPU_USAGE_SOURCES


CPU_SECONDS = CPU_SECONDS_COUNTER


# Seconds of SM activity of a container's processes on one GPU (the agent, from NVML per-process samples).
GPU_BUSY_SECONDS = GPU_BUSY_SECONDS_COUNTER


COUNTER = ENERGY_COUNTER


# Generous per-device bound: above it a counter jump is not energy but a wrap or a reset.
MAX_DEVICE_POWER_WATTS = 5000.0


GAP_FACTOR = 3.0


# A wrap that would mean this many times the neighbouring intervals' power is taken for a reset.
RESET_POWER_FACTOR = 10.0


MIN_IDLE_SECONDS = 30.0


IDLE_FALLBACK_QUANTILE = 0.05


# Relative standard error of an idle power taken from the 5th percentile instead of quiet time.
IDLE_FALLBACK_RELATIVE_ERROR = 0.1


FLAG_OK, FLAG_WRAP, FLAG_RESET = 0, 1, 2


US_PER_SECOND = 1_000_000


MICROCORES_PER_CORE = 1e6


MIN_RATE = 1e-9


NO_TEMPLATE = "(none)"


# Prior spread of a template's watts per unit around the common value, relative: sets the ridge.
TEMPLATE_SPREAD = 0.5


FIT_BOUNDS = (0.25, 4.0)


# Smallest ridge, relative to the median column norm: keeps nearly collinear columns from amplifying
# rounding (a template that only ever runs beside another).
RIDGE_FLOOR = 1e-6


# Relative uncertainty of an equal split (time-sliced GPU, tasks without requests): usage unknown.
EQUAL_SPLIT_RELATIVE_ERROR = 0.5


UNCERTAINTY_COVERAGE_FACTOR = 2.0


SPLIT_CALIBRATION = 2.0


# Candidate clock shifts per second of tolerance when estimating the skew.
SKEW_STEPS_PER_SECOND = 20


# Steps of the ramps that model a truncated start or end, and the resolution from which they are used.
RAMP_STEPS = 4


MIN_RAMP_RESOLUTION_US = 1000


BASIS_USAGE, BASIS_REQUESTS, BASIS_EQUAL, BASIS_KEPLER, BASIS_NONE = range(5)


FIT_BASES = 2  # usage and requests pieces get fitted columns


DAY_US = 86_400 * US_PER_SECOND


STREAM_MARGIN_SECONDS = 3600.0


# Segments (grid points over all series) that attribute() keeps from the fit pass for the split pass.
KEPT_CUT_POINTS = 30_000_000


# Readings from which the columns are scanned for runs side by side.
PARALLEL_SCAN_ROWS = 1_000_000


# Strings compared in one block when looking for runs, and below how many they are compared one by one.
SCAN_BLOCK_ROWS = 65_536


SCAN_ROW_BY_ROW = 256


# The emit range of a computation over all time (in memory): results for every instant.
EVERYTHING = (np.iinfo(np.int64).min, np.iinfo(np.int64).max)
