"""`jouletrace agent --probe`: every meter, readable or not and why, and the containers whose usage is read."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from collectors.meters.cgroups import ContainerCpu, PidContainers, scan_containers
from collectors.meters.fpga import HwmonFpgaSource, XrtFpgaSource
from collectors.meters.nvml import DEFAULT_MAX_SAMPLE_PERIOD_SECONDS, READY, GpuProcessBusy, NvmlSource
from collectors.meters.rapl import RaplSource
from collectors.meters.source import PowerSource, ProbeLine

if TYPE_CHECKING:
    pass


def build_sources(sysfs_root: str | Path, nvml=None, xrt_devices: Sequence[str] = ()) -> list[PowerSource]:
    """Every source the agent knows; one finding no device simply has no meters."""
    sysfs_root = Path(sysfs_root)
    sources: list[PowerSource] = [RaplSource(sysfs_root), NvmlSource(nvml), HwmonFpgaSource(sysfs_root)]
    if xrt_devices:
        sources.append(XrtFpgaSource(list(xrt_devices)))
    return sources


# ---------------------------------------------------------------------------------------------- probe


def probe_lines(sources: Iterable[PowerSource]) -> list[ProbeLine]:
    lines = []
    for source in sources:
        try:
            lines.extend(source.probe())
        except Exception as exc:  # a source must not hide the others' answers
            lines.append(ProbeLine(source.name, "probe()", False, f"raised {type(exc).__name__}: {exc}"))
    return lines


def format_probe(lines: Sequence[ProbeLine], containers: Sequence[ContainerCpu] | None = None) -> str:
    """One line per meter: readable or not, and the value read or why not."""
    what_width = max((len(line.what) for line in lines), default=0)
    source_width = max((len(line.source) for line in lines), default=0)
    out = [
        f"{line.source:<{source_width}}  {line.what:<{what_width}}  "
        f"{'readable' if line.readable else 'NOT readable':<12}  {line.detail}"
        for line in lines
    ]
    readable = sum(line.readable for line in lines)
    out.append(f"{readable} readable, {len(lines) - readable} not readable")
    if containers is not None:
        out.append(f"cgroup v2: CPU time of {len(containers)} pod containers readable")
    return "\n".join(out)


def gpu_busy_reader(sources: Iterable[PowerSource], interval_seconds: float) -> GpuProcessBusy | None:
    """Per-process GPU time through the NVML source's driver session; None without a working driver."""
    nvml = next((source for source in sources if isinstance(source, NvmlSource)), None)
    if nvml is None or nvml.status != READY:
        return None
    return GpuProcessBusy(nvml, max(DEFAULT_MAX_SAMPLE_PERIOD_SECONDS, 2 * interval_seconds))


def gpu_busy_probe_lines(reader: GpuProcessBusy, proc_root: Path) -> list[ProbeLine]:
    """Per GPU whether per-process utilisation reads, and whether its pids are found in `proc_root`."""

    def describe(pids: list[int]) -> str:
        in_pods = sum(ids is not None for ids in PidContainers(proc_root).lookup(pids).values())
        absent = sum(not (proc_root / str(pid)).is_dir() for pid in pids)
        text = f"{in_pods} in pod containers"
        if absent:
            text += f", {absent} not in {proc_root} (NVML reports host PIDs: does the pod have hostPID?)"
        return text

    return reader.probe(describe)


def probe_report(sources: Iterable[PowerSource], cgroup_folder: Path | None = None) -> str:
    """The ``--probe`` text: every source's probe lines, and optionally the containers whose CPU is read."""
    containers = scan_containers(cgroup_folder) if cgroup_folder is not None else None
    return format_probe(probe_lines(sources), containers)
