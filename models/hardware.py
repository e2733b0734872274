"""Listed thermal design power (TDP) of common parts, for the TDP x runtime baseline (CodeCarbon's fallback).

CodeCarbon, without a meter, takes a CPU's TDP from its bundled table and assumes the machine draws half of it
(CONSUMPTION_PERCENTAGE_CONSTANT = 0.5), or 4 W per core when the model is not listed; RAM is a rule of thumb
(3 W per 8 GB). We use the same rules per task: the device's TDP x 0.5 x the task's share of the device.
The numbers are the vendors' listed TDPs (board power for GPUs and FPGA cards); a model not listed falls
back to the defaults below.
"""

from __future__ import annotations

import re

TDP_LOAD_FRACTION = 0.5
DEFAULT_WATTS_PER_CORE = 4.0
DRAM_WATTS_PER_GIB = 3.0 / 8.0
DEFAULT_GPU_WATTS = 250.0
DEFAULT_FPGA_WATTS = 75.0

# substring of the model name (case-insensitive) -> listed TDP in watts, per socket or per board
CPU_TDP_WATTS = {
    "gold 6346": 205.0,
    "gold 6338": 205.0,
    "silver 4316": 150.0,
    "gold 6248": 150.0,
    "gold 6148": 150.0,
    "gold 6230": 125.0,
    "gold 5218": 125.0,
    "e5-2670 v3": 120.0,
    "e5-2680 v4": 120.0,
    "platinum 8380": 270.0,
    "platinum 8480": 350.0,
    "epyc 7742": 225.0,
    "epyc 7763": 280.0,
    "epyc 9654": 360.0,
}
GPU_TDP_WATTS = {
    "a100-sxm": 400.0,
    "a100-pcie": 250.0,
    "a100 pcie": 250.0,
    "h100-pcie": 350.0,
    "h100-sxm": 700.0,
    "v100": 250.0,
    "t4": 70.0,
    "a10": 150.0,
    "l4": 72.0,
}
FPGA_TDP_WATTS = {"alveo u250": 225.0, "alveo u280": 225.0, "alveo u55c": 150.0, "alveo u50": 75.0}


def _lookup(table: dict[str, float], name: object) -> float | None:
    if not isinstance(name, str) or not name:
        return None
    text = re.sub(r"[_\s]+", " ", name.lower())
    for key in sorted(table, key=len, reverse=True):
        if key in text or key.replace(" ", "-") in text:
            return table[key]
    return None


def cpu_package_watts(cpu_model: object, sockets: float, cores: float) -> float:
    """Listed TDP of all the machine's sockets (4 W per core when the model is not listed)."""
    listed = _lookup(CPU_TDP_WATTS, cpu_model)
    if listed is not None:
        return listed * max(sockets, 1.0)
    return DEFAULT_WATTS_PER_CORE * max(cores, 1.0)


def gpu_watts(gpu_model: object) -> float:
    listed = _lookup(GPU_TDP_WATTS, gpu_model)
    return listed if listed is not None else DEFAULT_GPU_WATTS


def fpga_watts(fpga_model: object) -> float:
    listed = _lookup(FPGA_TDP_WATTS, fpga_model)
    return listed if listed is not None else DEFAULT_FPGA_WATTS
