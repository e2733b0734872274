"""Node meters: one small interface (`source.PowerSource`) and one module per backend (RAPL, NVML, FPGA
boards), plus per-container CPU time (cgroup v2) and the wrap-correcting energy accumulator the agent uses."""
