"""The enumerations of the trace model, in plain Python so light readers (the node agent) need no Arrow."""

PROVENANCES = ("measured", "estimated", "synthetic")
DEVICE_KINDS = ("cpu_package", "cpu_core", "dram", "psys", "gpu", "fpga")
# Meters that never overlap, so their joules add up to a total: cpu_core lies inside cpu_package and
# psys contains it, so those two are reported but never summed into task or workflow totals.
ADDITIVE_DEVICE_KINDS = ("cpu_package", "dram", "gpu", "fpga")
VALUE_KINDS = ("energy_counter_joules", "power_watts")
# Per-container counters: CPU time, energy (Kepler), and GPU busy time (the seconds of SM activity a
# container's processes had on one GPU: its share of a time-sliced GPU).
CONTAINER_VALUE_KINDS = ("cpu_seconds_counter", "energy_counter_joules", "gpu_busy_seconds_counter")
