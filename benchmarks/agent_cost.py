"""What the node agent costs: CPU time per sampling step on a fake 2-socket node with 4 GPUs and an FPGA.

Run: .venv/bin/python benchmarks/agent_cost.py [--steps N]

A step is what the agent does every interval: read every source, accumulate, render /metrics (as if
scraped every step, the worst case). Costs are process CPU time (time.process_time), so they do not
depend on how busy the machine is. The baseline reads the same files with a bare open().read() loop and
calls the same fake NVML functions, which is the least any agent in Python can do; the ratio to it is
the price of the agent's bookkeeping. The fake NVML answers from memory, so GPU costs here are the
agent's share only, not the driver's (a real nvmlDeviceGetPowerUsage takes tens of microseconds).
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from collectors.agent.metrics import Metrics  # noqa: E402
from collectors.agent.server import Sampler  # noqa: E402
from collectors.meters.accumulate import EnergyAccumulator  # noqa: E402
from collectors.meters.cgroups import cgroup_root, scan_containers  # noqa: E402
from collectors.meters.fpga import HwmonFpgaSource  # noqa: E402
from collectors.meters.nvml import NvmlSource  # noqa: E402
from collectors.meters.rapl import RaplSource  # noqa: E402

SOCKETS = 2
GPUS = 4
PODS = 30
CONTAINERS_PER_POD = 2
MAX_ENERGY_RANGE_UJ = 262_143_328_850


def write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def build_node(root: Path) -> None:
    """Powercap zones (package, core, uncore, dram per socket; psys), an Alveo hwmon, pod cgroups."""
    powercap = root / "class" / "powercap"
    zones = []
    for socket_index in range(SOCKETS):
        package = f"intel-rapl:{socket_index}"
        zones.append((package, f"package-{socket_index}", powercap / package))
        for sub, name in enumerate(("core", "uncore", "dram")):
            zone = f"{package}:{sub}"
            zones.append((zone, name, powercap / zone))
            zones.append((zone, name, powercap / package / zone))  # the kernel shows sub-zones twice
    zones.append((f"intel-rapl:{SOCKETS}", "psys", powercap / f"intel-rapl:{SOCKETS}"))
    for index, (_, name, folder) in enumerate(zones):
        write(folder / "name", f"{name}\n")
        write(folder / "max_energy_range_uj", f"{MAX_ENERGY_RANGE_UJ}\n")
        write(folder / "energy_uj", f"{1_000_000 * (index + 1)}\n")
    hwmon = root / "class" / "hwmon" / "hwmon3"
    write(hwmon / "name", "xclmgmt_microblaze\n")
    write(hwmon / "power1_input", "31500000\n")
    write(hwmon / "power1_label", "POWER\n")
    device = root / "devices" / "pci0000:00" / "0000:af:00.0"
    device.mkdir(parents=True)
    (hwmon / "device").symlink_to(device)
    pods = cgroup_root(root) / "kubepods.slice" / "kubepods-burstable.slice"
    for pod in range(PODS):
        for container in range(CONTAINERS_PER_POD):
            folder = pods / f"kubepods-burstable-pod{pod:08x}_0000_0000_0000_000000000000.slice"
            write(
                folder / f"cri-containerd-{pod:032x}{container:032x}.scope" / "cpu.stat", "usage_usec 12345\n"
            )


class FakeNvml:
    """The pynvml names NvmlSource calls, for GPUS Volta-or-newer GPUs answering from memory."""

    NVML_ERROR_NOT_SUPPORTED = 3
    NVML_DEVICE_MIG_ENABLE = 1

    class NVMLError(Exception):
        def __init__(self, value: int):
            super().__init__(value)
            self.value = value

    def __init__(self):
        self.energy_mj = [1_000_000 + 1000 * i for i in range(GPUS)]

    def nvmlInit(self) -> None: ...

    def nvmlShutdown(self) -> None: ...

    def nvmlDeviceGetCount(self) -> int:
        return GPUS

    def nvmlDeviceGetHandleByIndex(self, index: int) -> int:
        return index

    def nvmlDeviceGetUUID(self, handle: int) -> str:
        return f"GPU-{handle:08d}-0000-0000-0000-000000000000"

    def nvmlDeviceGetName(self, handle: int) -> str:
        return "NVIDIA A100-SXM4-40GB"

    def nvmlDeviceGetMigMode(self, handle: int) -> tuple[int, int]:
        return 0, 0

    def nvmlDeviceGetTotalEnergyConsumption(self, handle: int) -> int:
        self.energy_mj[handle] += 250  # 250 W for 1 s in millijoules
        return self.energy_mj[handle]

    def nvmlDeviceGetPowerUsage(self, handle: int) -> int:
        return 250_000


def cpu_seconds_per_step(step, steps: int) -> float:
    started = time.process_time()
    for _ in range(steps):
        step()
    return (time.process_time() - started) / steps


def bare_reads(files: list[Path], nvml: FakeNvml):
    """The floor: open().read() of every file the sources read and one call per NVML meter, nothing kept."""

    def step() -> None:
        for path in files:
            with open(path) as file:
                file.read()
        for handle in range(GPUS):
            nvml.nvmlDeviceGetTotalEnergyConsumption(handle)
            nvml.nvmlDeviceGetPowerUsage(handle)

    return step


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=3000, help="sampling steps per measurement")
    args = parser.parse_args(argv)

    root = Path(tempfile.mkdtemp(prefix="jouletrace-bench-"))
    try:
        build_node(root)
        nvml = FakeNvml()
        sources = [RaplSource(root), NvmlSource(nvml), HwmonFpgaSource(root)]
        files = [Path(m.path) for source in sources if source.name != "nvml" for m in source.meters()]
        meters = sum(len(source.meters()) for source in sources)
        devices = len({(m.device_kind, m.device_id) for source in sources for m in source.meters()})
        metrics = Metrics("bench-node", "bench")
        sampler = Sampler(sources, EnergyAccumulator(), metrics)

        def agent_step() -> None:
            sampler.step()
            metrics.render()

        rows = [
            (
                "bare open().read() + NVML calls (baseline)",
                cpu_seconds_per_step(bare_reads(files, nvml), args.steps),
            ),
            ("sources read()", cpu_seconds_per_step(sampler.read, args.steps)),
            ("agent step: read + accumulate + metrics", cpu_seconds_per_step(sampler.step, args.steps)),
            ("agent step + /metrics render", cpu_seconds_per_step(agent_step, args.steps)),
            (
                f"cgroup scan, {PODS * CONTAINERS_PER_POD} containers (optional)",
                cpu_seconds_per_step(lambda: scan_containers(cgroup_root(root)), max(args.steps // 10, 1)),
            ),
        ]
    finally:
        shutil.rmtree(root, ignore_errors=True)

    baseline = rows[0][1]
    print(f"fake node: {meters} meters on {devices} devices ({SOCKETS} sockets' RAPL, {GPUS} GPUs, 1 FPGA)")
    print(f"{'CPU time per step':<48} {'us/step':>9} {'us/device':>9} {'core @1s':>9} {'x base':>7}")
    for what, seconds in rows:
        print(
            f"{what:<48} {seconds * 1e6:>9.1f} {seconds * 1e6 / devices:>9.2f} "
            f"{seconds / 1.0:>9.4%} {seconds / baseline:>7.1f}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
