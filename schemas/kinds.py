"""The enumerations of the trace model, in plain Python so light readers (the node agent) need no Arrow."""

PROVENANCES = ("measured", "estimated", "synthetic")
DEVICE_KINDS = ("cpu_package", "cpu_core", "dram", "psys", "gpu", "fpga")
# Meters that never overlap, so their joules add up to a total: cpu_core lies inside cpu_package and
# psys contains it, so those two are reported but never summed into task or workflow totals.
ADDITIVE_DEVICE_KINDS = ("cpu_package", "dram", "gpu", "fpga")
# How a power reading is read: a counter of joules (may wrap or reset; energy is its differences) or a
# gauge of watts (energy is its integral).
ENERGY_COUNTER = "energy_counter_joules"
POWER_GAUGE = "power_watts"
VALUE_KINDS = (ENERGY_COUNTER, POWER_GAUGE)
# Per-container counters: CPU time, energy (Kepler), and GPU busy time (the seconds of SM activity a
# container's processes had on one GPU: its share of a time-sliced GPU).
CPU_SECONDS_COUNTER = "cpu_seconds_counter"
GPU_BUSY_SECONDS_COUNTER = "gpu_busy_seconds_counter"
CONTAINER_VALUE_KINDS = (CPU_SECONDS_COUNTER, ENERGY_COUNTER, GPU_BUSY_SECONDS_COUNTER)

# How each power source's readings are read. Counters are always differenced; a gauge's reading is either
# the mean power over the interval before it (the driver averages: NVML, DCGM) or the power at its instant,
# integrated as a trapezoid. The rule belongs to the source, so a source missing here is an error naming it
# (schemas.validation refuses it), never silently read with one rule or the other.
TRAILING_AVERAGE_GAUGE = "trailing-average"
INSTANTANEOUS_GAUGE = "instantaneous"
# source -> (gauge rule, seconds a trailing-average reading covers)
POWER_SOURCES: dict[str, tuple[str, float]] = {
    # read by the node agent itself (its spool) or written by the sample world
    "rapl": (INSTANTANEOUS_GAUGE, 0.0),
    "nvml": (TRAILING_AVERAGE_GAUGE, 1.0),
    "hwmon": (INSTANTANEOUS_GAUGE, 0.0),
    "xrt": (INSTANTANEOUS_GAUGE, 0.0),
    # read from Prometheus: the agent's metrics (source label kept after "agent/") and other exporters
    "agent": (INSTANTANEOUS_GAUGE, 0.0),
    "agent/rapl": (INSTANTANEOUS_GAUGE, 0.0),
    "agent/nvml": (TRAILING_AVERAGE_GAUGE, 1.0),
    "agent/hwmon": (INSTANTANEOUS_GAUGE, 0.0),
    "agent/xrt": (INSTANTANEOUS_GAUGE, 0.0),
    "node_exporter": (INSTANTANEOUS_GAUGE, 0.0),
    "dcgm": (TRAILING_AVERAGE_GAUGE, 1.0),
    "kepler": (INSTANTANEOUS_GAUGE, 0.0),
    "kepler-legacy": (INSTANTANEOUS_GAUGE, 0.0),
}

# Sources of per-container readings (container_samples), by what they measure.
AGENT_CGROUP_SOURCE = "agent-cgroup"  # CPU seconds, from the agent's cgroup v2 reads
AGENT_GPU_BUSY_SOURCE = "agent-nvml"  # GPU busy seconds, from the agent's NVML per-process utilisation
CADVISOR_SOURCE = "cadvisor"  # CPU seconds, from cAdvisor
KEPLER_SOURCE = "kepler"  # Kepler's per-pod joules (also a power source of node energy)
KEPLER_LEGACY_SOURCE = "kepler-legacy"  # Kepler before 0.10; per-container rows add "/<mode>"
CPU_USAGE_SOURCES = (AGENT_CGROUP_SOURCE, CADVISOR_SOURCE)
GPU_BUSY_SOURCES = (AGENT_GPU_BUSY_SOURCE,)
