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
