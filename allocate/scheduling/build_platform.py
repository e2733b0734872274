"""A platform (P.json) from a trace dataset: machines as recorded, speed and power fitted to the trace.

One machine per ``machines`` row: ``cores``, ``gpus``/``fpgas`` (one per model entry) and ``labels`` (the
node's Kubernetes labels) as recorded; ``speed``, ``idle_watts`` and ``busy_watts`` fitted; ``cost_per_hour``
and the bandwidth only as given (no dataset records them). Each machine entry also carries ``sources`` (where
each number came from), ``fit`` (how, and how well) and ``hardware`` (its machines row, so that the
regressors of docs/models.md can predict a task on it); platform_from_json ignores the three.

Speed: log T = w(type) - log s(CPU) for every successful CPU-only run (no GPU or FPGA held), fitted by least
squares (alternating means); only task types that ran on two or more CPUs inform it. Machines with the same
recorded CPU (model, sockets, cores, nominal MHz) share one speed: the trace's runtime noise cannot tell them
apart (about +-10% per node on the sample world). The reference (speed 1.0, what ``work_seconds`` are
measured on) is the CPU with the most such runs, so speeds rest on the most data. A machine sharing no task
type with it, directly or through other CPUs, gets its nominal cpu_speed_mhz over the reference's.

Power, per node, in windows of WINDOW_SECONDS (at least two reading intervals; windows over a reading gap
> 3x the median interval are left out): the watts of its CPU zones (cpu_package + dram, every socket)
against the cores busy (the containers' CPU-seconds counters, else the cores requested by the tasks
running). CPU idle = the median power of the windows no task ran in; watts per busy core = the dynamic
energy over the busy CPU-seconds of all windows, so that idle + slope x busy cores gives back the node's
measured energy (heavier tasks draw more per core, which tilts a least-squares line: it is reported beside,
and used when no window is free of tasks). A GPU's or FPGA's idle power is the median of its power over
windows no task held it in. idle_watts = CPU idle + accelerators' idle; busy_watts = idle_watts + slope x
cores (every core busy, accelerators idle: what a GPU or FPGA task adds is in its energy). A node without
readings keeps the watts the caller passes (else none are written) and is named in ``warnings``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from datasets.store import read_table

DEFAULT_BANDWIDTH_BYTES_PER_SECOND = 1.25e9  # 10 Gbit/s, used (and said) when the caller gives none
WINDOW_SECONDS = 30.0
GAP_FACTOR = 3.0
MIN_WINDOWS = 5
MIN_BUSY_SPREAD_CORES = 0.5
MIN_FREE_WINDOWS = 3
MIN_QUIET_WINDOWS = 3
QUIET_BUSY_CORES = 0.05
CPU_ZONES = ("cpu_package", "dram")
ACCELERATORS = {"gpu": "gpu_ids", "fpga": "fpga_ids"}
UNFINISHED_PHASES = ("Failed", "Error", "Skipped", "Omitted", "Pending", "Running")


# ------------------------------------------------------------------------------------------------ speed


@dataclass
class Speeds:
    """Speed per machine, the reference, and per machine where the number came from and how it was fitted."""

    reference: str | None
    speed: dict[str, float] = field(default_factory=dict)
    source: dict[str, str] = field(default_factory=dict)
    fit: dict[str, dict] = field(default_factory=dict)


def task_type(template: object, name: object) -> str | None:
    """A task's type: its template, else its display name, normalised as the regressors do."""
    from models.features import normalise_name

    return normalise_name(template) or normalise_name(name)


def cpu_runs(tasks: pd.DataFrame) -> pd.DataFrame:
    """Successful runs holding no GPU or FPGA, with a runtime: what says how fast a machine's cores are."""
    held = [
        len(g if g is not None else ()) + len(f if f is not None else ())
        for g, f in zip(tasks["gpu_ids"], tasks["fpga_ids"], strict=True)
    ]
    runtime = pd.to_numeric(tasks["runtime_seconds"], errors="coerce")
    keep = (
        (np.asarray(held) == 0)
        & (runtime > 0).to_numpy()
        & ~tasks["phase"].isin(UNFINISHED_PHASES).to_numpy()
        & tasks["host_node"].notna().to_numpy()
    )
    runs = tasks.loc[keep, ["host_node", "template_name", "task_name"]].copy()
    runs["runtime_seconds"] = runtime[keep].astype(float)
    runs["type"] = [task_type(t, n) for t, n in zip(runs["template_name"], runs["task_name"], strict=True)]
    return runs[runs["type"].notna()]


def _components(pairs: pd.DataFrame) -> dict[str, str]:
    """Machines linked by a shared task type, as a representative per machine (union-find)."""
    parent: dict[str, str] = {}

    def find(x: str) -> str:
        while parent.setdefault(x, x) != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for _, hosts in pairs.groupby("type")["host_node"]:
        first = hosts.iloc[0]
        for other in hosts.iloc[1:]:
            parent[find(other)] = find(first)
    return {m: find(m) for m in list(parent)}


def hardware_groups(machines: pd.DataFrame) -> dict[str, str]:
    """Machines with the same recorded CPU (model, sockets, cores, nominal MHz) share one speed; a machine
    whose CPU model is not recorded is a group of its own."""
    out = {}
    for row in machines.itertuples():
        if row.cpu_model is None or pd.isna(row.cpu_model):
            out[str(row.host_node)] = f"machine {row.host_node}"
        else:
            out[str(row.host_node)] = (
                f"{row.cpu_model} x{row.sockets} ({row.cores} cores, {row.cpu_speed_mhz} MHz)"
            )
    return out


def estimate_speeds(tasks: pd.DataFrame, machines: pd.DataFrame) -> Speeds:
    """Relative core speed of every machine from the trace's CPU-only runs (module docstring)."""
    group = hardware_groups(machines)
    mhz = dict(zip(group, pd.to_numeric(machines["cpu_speed_mhz"], errors="coerce"), strict=True))
    runs = cpu_runs(tasks)
    runs = runs[runs["host_node"].isin(list(group))]
    per_machine = runs["host_node"].value_counts()
    runs = runs.assign(host_node=runs["host_node"].map(group))  # fitted per hardware group
    counts = runs["host_node"].value_counts()
    out = Speeds(reference=None)
    reference = None
    if len(counts):
        reference = sorted(counts[counts == counts.max()].index)[0]
        members = [m for m in group if group[m] == reference]
        out.reference = max(members, key=lambda m: (per_machine.get(m, 0), m))
    informative = runs[runs.groupby("type")["host_node"].transform("nunique") >= 2]
    fitted: dict[str, tuple[float, float, int, int]] = {}
    if reference is not None and len(informative):
        component = _components(informative.drop_duplicates(["type", "host_node"]))
        linked = informative[informative["host_node"].map(component) == component.get(reference, reference)]
        if len(linked):
            fitted = _fit_log_speeds(linked, reference)
    for m, g in group.items():
        pooled = sum(1 for other in group.values() if other == g)
        if g == reference:
            out.speed[m] = 1.0
            out.source[m] = "reference: the CPU with the most CPU-only runs (speed 1 by definition)"
            out.fit[m] = {"reference": True, "runs": int(counts.get(g, 0)), "machines_pooled": pooled}
        elif g in fitted:
            log_speed, se, n, types = fitted[g]
            out.speed[m] = math.exp(log_speed)
            out.source[m] = "fitted from task runtimes: CPU-only runs of types that also ran on other CPUs"
            out.fit[m] = {"runs": n, "task_types": types, "log_speed_standard_error": se}
            out.fit[m]["machines_pooled"] = pooled
        elif out.reference is not None and _positive(mhz.get(m)) and _positive(mhz.get(out.reference)):
            out.speed[m] = float(mhz[m] / mhz[out.reference])
            out.source[m] = f"nominal cpu_speed_mhz over {out.reference}'s: no comparable CPU-only runs"
        else:
            out.speed[m] = 1.0
            out.source[m] = "not in the dataset: no comparable runs and no cpu_speed_mhz; 1.0 written"
    return out


def _positive(value) -> bool:
    return value is not None and not pd.isna(value) and value > 0


def _fit_log_speeds(runs: pd.DataFrame, reference: str) -> dict[str, tuple[float, float, int, int]]:
    """log T = w(type) - s(machine), s(reference) = 0, by alternating means; (s, its standard error, runs,
    types) per machine."""
    types, type_index = np.unique(runs["type"].to_numpy(), return_inverse=True)
    hosts, host_index = np.unique(runs["host_node"].to_numpy(), return_inverse=True)
    y = np.log(runs["runtime_seconds"].to_numpy(dtype=float))
    ref = int(np.searchsorted(hosts, reference))
    s = np.zeros(len(hosts))
    n_type = np.bincount(type_index, minlength=len(types))
    n_host = np.bincount(host_index, minlength=len(hosts))
    for _ in range(2000):
        w = np.bincount(type_index, y + s[host_index], minlength=len(types)) / n_type
        new = np.bincount(host_index, w[type_index] - y, minlength=len(hosts)) / n_host
        new -= new[ref]
        done = np.max(np.abs(new - s)) < 1e-10
        s = new
        if done:
            break
    residual = y - (w[type_index] - s[host_index])
    dof = max(len(y) - len(types) - len(hosts) + 1, 1)
    sigma = math.sqrt(float(residual @ residual) / dof)
    out = {}
    for i, host in enumerate(hosts):
        n_types = len(np.unique(type_index[host_index == i]))
        out[str(host)] = (float(s[i]), sigma / math.sqrt(n_host[i]), int(n_host[i]), n_types)
    return out


# ------------------------------------------------------------------------------------------------ power


def _seconds(column: pd.Series) -> np.ndarray:
    """UTC timestamps as float seconds since the epoch."""
    values = pd.to_datetime(column, utc=True)
    return (values - pd.Timestamp(0, tz="UTC")).dt.total_seconds().to_numpy(dtype=float)


@dataclass
class _Cumulative:
    """Energy (or CPU-seconds) since the first point, at the points' times."""

    times: np.ndarray
    values: np.ndarray
    gaps: np.ndarray  # reading intervals longer than GAP_FACTOR x the median (start, end)

    def between(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        return np.interp(b, self.times, self.values) - np.interp(a, self.times, self.values)

    def covers(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        ok = (a >= self.times[0]) & (b <= self.times[-1])
        for start, end in self.gaps:
            ok &= (b <= start) | (a >= end)
        return ok


def _series_energy(rows: pd.DataFrame) -> _Cumulative | None:
    """One device's cumulative joules from its counter readings (wraps undone), else its power gauge."""
    from datasets.attribution import TRAILING_AVERAGE_SECONDS, unwrap_counter  # numba: load when used

    counters = rows[rows["value_kind"] == "energy_counter_joules"]
    use = counters if len(counters) else rows[rows["value_kind"] == "power_watts"]
    use = use.sort_values("timestamp").drop_duplicates("timestamp")
    if len(use) < 2:
        return None
    t = _seconds(use["timestamp"])
    v = use["value"].to_numpy(dtype=float)
    dt = np.diff(t)
    if len(counters):
        limit = use["counter_max_joules"].dropna()
        cumulative, _ = unwrap_counter(v, t, float(limit.iloc[0]) if len(limit) else None)
    elif str(use["source"].iloc[0]) in TRAILING_AVERAGE_SECONDS:
        cumulative = np.concatenate([[0.0], np.cumsum(v[1:] * dt)])
    else:
        cumulative = np.concatenate([[0.0], np.cumsum((v[:-1] + v[1:]) / 2 * dt)])
    long = dt > GAP_FACTOR * np.median(dt)
    gaps = np.column_stack([t[:-1][long], t[1:][long]])
    return _Cumulative(t, cumulative, gaps)


def _cpu_seconds(counters: pd.DataFrame, tasks: pd.DataFrame) -> list[_Cumulative]:
    """Per container: CPU-seconds since it started, with its pod's start (value 0) and its end (last rate
    held) added from the tasks table where the pod joins."""
    rows = counters[counters["value_kind"] == "cpu_seconds_counter"]
    times = {}
    for task in tasks.itertuples():
        if isinstance(task.pod_uid, str) and not pd.isna(task.started_at) and not pd.isna(task.finished_at):
            half = (task.time_resolution_seconds or 0.0) / 2
            start = pd.Timestamp(task.started_at).timestamp() + half
            times[task.pod_uid] = (start, pd.Timestamp(task.finished_at).timestamp() + half)
    out = []
    key = rows["container_id"].fillna("") + "/" + rows["pod_uid"].fillna("")
    for _, one in rows.groupby(key, sort=False):
        one = one.sort_values("timestamp").drop_duplicates("timestamp")
        t = _seconds(one["timestamp"])
        v = one["value"].to_numpy(dtype=float)
        step = np.diff(v)
        step = np.where(step >= 0, step, v[1:])  # a drop is a restart: the new value counts
        cumulative = v[0] + np.concatenate([[0.0], np.cumsum(step)])
        start, end = times.get(one["pod_uid"].iloc[0], (None, None))
        if start is not None and start < t[0]:
            t, cumulative = np.r_[start, t], np.r_[0.0, cumulative]
        if end is not None and end > t[-1] and len(t) > 1 and t[-1] > t[-2]:
            rate = (cumulative[-1] - cumulative[-2]) / (t[-1] - t[-2])
            t, cumulative = np.r_[t, end], np.r_[cumulative, cumulative[-1] + rate * (end - t[-1])]
        if len(t) >= 2:
            out.append(_Cumulative(t, cumulative, np.empty((0, 2))))
    return out


def _task_windows(tasks: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    ran = tasks.dropna(subset=["started_at", "finished_at"])
    start = _seconds(ran["started_at"])
    end = _seconds(ran["finished_at"]) + ran["time_resolution_seconds"].fillna(0.0).to_numpy(dtype=float)
    return start, end


def _held_seconds(a: np.ndarray, b: np.ndarray, start: np.ndarray, end: np.ndarray, weight: np.ndarray):
    """Per window [a, b]: the integral over it of sum(weight of the intervals [start, end] running)."""
    if not len(start):
        return np.zeros(len(a))
    times = np.concatenate([start, end])
    order = np.argsort(times, kind="stable")
    times = times[order]
    level = np.cumsum(np.concatenate([weight, -weight])[order])
    integral = np.concatenate([[0.0], np.cumsum(level[:-1] * np.diff(times))])
    return np.interp(b, times, integral) - np.interp(a, times, integral)


def _cpu_windows(node: str, readings: pd.DataFrame) -> tuple[dict, np.ndarray, np.ndarray, float] | None:
    """The node's CPU-zone series and the windows [a, b] every one of them covers (gaps left out)."""
    cpu = {
        device: _series_energy(rows)
        for (kind, device), rows in readings.groupby(["device_kind", "device_id"])
        if kind in CPU_ZONES
    }
    cpu = {d: s for d, s in cpu.items() if s is not None}
    if not cpu:
        return None
    length = max(WINDOW_SECONDS, 2 * max(float(np.median(np.diff(s.times))) for s in cpu.values()))
    first = max(s.times[0] for s in cpu.values())
    last = min(s.times[-1] for s in cpu.values())
    a = first + length * np.arange(max(int((last - first) // length), 0))
    b = a + length
    ok = np.ones(len(a), bool)
    for series in cpu.values():
        ok &= series.covers(a, b)
    return cpu, a[ok], b[ok], length


def fit_node_power(
    node: str, readings: pd.DataFrame, counters: pd.DataFrame | None, tasks: pd.DataFrame
) -> tuple[dict | None, str | None]:
    """(the fit of one node's CPU idle and per-busy-core watts, or None; a warning if something is missing).

    Idle: the median power of the windows in which no task ran (at least MIN_QUIET_WINDOWS of them), else
    the intercept of the least-squares line. Watts per busy core: the dynamic energy over the busy
    CPU-seconds of all windows (idle + slope x busy cores then gives back the node's measured energy),
    else the least-squares slope. The least-squares line is reported beside them."""
    found = _cpu_windows(node, readings)
    if found is None:
        return None, f"{node}: no cpu_package or dram readings in power_samples: power not fitted"
    cpu, a, b, length = found
    if len(a) < MIN_WINDOWS:
        return None, f"{node}: only {len(a)} covered {length:g} s windows of CPU readings: power not fitted"
    watts = sum(s.between(a, b) for s in cpu.values()) / length
    node_tasks = tasks[tasks["host_node"] == node]
    start, end = _task_windows(node_tasks)
    running = _held_seconds(a, b, start, end, np.ones(len(start))) / length
    series = _cpu_seconds(counters, node_tasks) if counters is not None and len(counters) else []
    if series:
        busy = sum(s.between(a, b) for s in series) / length
        basis = "the containers' CPU-seconds counters (container_samples)"
    else:
        cores = node_tasks.dropna(subset=["started_at", "finished_at"])["cpu_request_cores"]
        busy = _held_seconds(a, b, start, end, cores.fillna(1.0).to_numpy(dtype=float)) / length
        basis = "the cores requested by the tasks running (no CPU-seconds counters)"
    quiet = (running <= 0) & (busy < QUIET_BUSY_CORES)
    fit: dict = {"window_seconds": length, "windows": len(a), "quiet_windows": int(quiet.sum())}
    fit |= {"cpu_zones": sorted(cpu), "busy_cores_from": basis}
    fit["busy_cores_range"] = [float(np.min(busy)), float(np.max(busy))]
    if np.max(busy) - np.min(busy) < MIN_BUSY_SPREAD_CORES:
        fit |= {"cpu_idle_watts": float(np.median(watts)), "idle_method": "median power (never busy)"}
        return fit, f"{node}: no busy time in the readings: busy_watts not fitted"
    x = np.column_stack([np.ones(len(busy)), busy])
    coef, *_ = np.linalg.lstsq(x, watts, rcond=None)
    residual = watts - x @ coef
    covariance = float(residual @ residual) / max(len(watts) - 2, 1) * np.linalg.inv(x.T @ x)
    fit["least_squares"] = {
        "idle_watts": float(coef[0]),
        "idle_watts_standard_error": math.sqrt(covariance[0, 0]),
        "watts_per_busy_core": float(coef[1]),
        "watts_per_busy_core_standard_error": math.sqrt(covariance[1, 1]),
        "r2": _r2(watts, residual),
    }
    if quiet.sum() >= MIN_QUIET_WINDOWS:
        idle = float(np.median(watts[quiet]))
        slope = float((watts - idle).sum() / busy.sum())
        fit["idle_method"] = f"median power of the {int(quiet.sum())} windows with no task running"
        fit["slope_method"] = "dynamic joules / busy CPU-seconds over all windows"
    else:
        idle, slope = float(coef[0]), float(coef[1])
        fit["idle_method"] = "least-squares intercept (no window without a task)"
        fit["slope_method"] = "least-squares slope"
    residual = watts - idle - slope * busy
    fit |= {
        "cpu_idle_watts": idle,
        "watts_per_busy_core": slope,
        "r2": _r2(watts, residual),
        "rmse_watts": math.sqrt(float(residual @ residual) / len(watts)),
    }
    if slope < 0:
        return fit, f"{node}: fitted watts per busy core is negative ({slope:.3g}); busy_watts = idle_watts"
    return fit, None


def _r2(values: np.ndarray, residual: np.ndarray) -> float | None:
    total = float(((values - values.mean()) ** 2).sum())
    return 1.0 - float(residual @ residual) / total if total > 0 else None


def fit_accelerator_idle(readings: pd.DataFrame, tasks: pd.DataFrame) -> dict[str, dict]:
    """Idle watts of every GPU and FPGA: the median of its power over windows no task held it in (else the
    5th percentile of its power, said in the method)."""
    out = {}
    for (kind, device), rows in readings.groupby(["device_kind", "device_id"]):
        if kind not in ACCELERATORS:
            continue
        series = _series_energy(rows)
        if series is None:
            continue
        length = max(WINDOW_SECONDS, 2 * float(np.median(np.diff(series.times))))
        a = series.times[0] + length * np.arange(int((series.times[-1] - series.times[0]) // length))
        b = a + length
        a, b = a[series.covers(a, b)], b[series.covers(a, b)]
        if not len(a):
            continue
        watts = series.between(a, b) / length
        column = ACCELERATORS[kind]
        holders = tasks[[device in (ids if ids is not None else ()) for ids in tasks[column]]]
        start, end = _task_windows(holders)
        free = _held_seconds(a, b, start, end, np.ones(len(start))) <= 0
        enough = free.sum() >= MIN_FREE_WINDOWS
        idle = float(np.median(watts[free]) if enough else np.percentile(watts, 5))
        method = "median power while no task held it" if enough else "5th percentile (never free long enough)"
        out[str(device)] = {
            "kind": kind,
            "idle_watts": idle,
            "free_windows": int(free.sum()),
            "method": method,
        }
    return out


# ------------------------------------------------------------------------------------------------ platform


def _optional(root: Path, name: str, node: str | None = None) -> pd.DataFrame | None:
    import pyarrow.dataset as ds

    try:
        where = None if node is None else ds.field("host_node") == node
        return read_table(root, name, where).to_pandas()
    except FileNotFoundError:
        return None


def _count(value) -> int:
    return 0 if value is None else len(value)


def _labels(value) -> dict[str, str]:
    if value is None:
        return {}
    items = value.items() if isinstance(value, dict) else value
    return {str(k): str(v) for k, v in items}


def hardware_of(row) -> dict:
    """The machines row (what the regressors read of a machine), JSON-ready."""

    def plain(value):
        return None if value is None or (isinstance(value, float) and math.isnan(value)) else value

    return {
        "cpu_model": plain(row.cpu_model),
        "sockets": None if pd.isna(row.sockets) else int(row.sockets),
        "cores": None if pd.isna(row.cores) else int(row.cores),
        "cpu_speed_mhz": None if pd.isna(row.cpu_speed_mhz) else float(row.cpu_speed_mhz),
        "memory_bytes": None if pd.isna(row.memory_bytes) else int(row.memory_bytes),
        "gpu_models": [str(m) for m in (row.gpu_models if row.gpu_models is not None else [])],
        "fpga_models": [str(m) for m in (row.fpga_models if row.fpga_models is not None else [])],
    }


def read_machines(root: str | Path) -> pd.DataFrame:
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: no such trace dataset folder")
    machines = read_table(root, "machines").to_pandas()
    if machines.empty:
        raise ValueError(f"{root / 'machines'}: the dataset's machines table has no rows")
    return machines


def platform_from_dataset(
    root: str | Path,
    bandwidth_bytes_per_second: float | None = None,
    cost_per_hour: float | None = None,
    idle_watts: float | None = None,
    busy_watts: float | None = None,
    name: str | None = None,
) -> dict:
    """P.json data for the machines of a trace dataset (module docstring); ``idle_watts``/``busy_watts`` are
    used only for machines whose power cannot be fitted."""
    root = Path(root)
    if idle_watts is not None and busy_watts is not None and busy_watts < idle_watts:
        raise ValueError(f"busy_watts ({busy_watts}) must be >= idle_watts ({idle_watts})")
    machines = read_machines(root)
    tasks = read_table(root, "tasks").to_pandas()
    speeds = estimate_speeds(tasks, machines)
    warnings: list[str] = []
    if not (root / "power_samples").is_dir():
        warnings.append(f"{root}: no power_samples table: no machine's power could be fitted")
    entries = []
    for row in machines.itertuples():
        entry, warning = _machine_entry(root, row, tasks, speeds, cost_per_hour, idle_watts, busy_watts)
        warnings += warning
        entries.append(entry)
    given = bandwidth_bytes_per_second is not None
    return {
        "format": "jouletrace.platform/1",
        "name": name or root.resolve().name,
        "bandwidth_bytes_per_second": float(
            bandwidth_bytes_per_second if given else DEFAULT_BANDWIDTH_BYTES_PER_SECOND
        ),
        "reference_machine": speeds.reference,
        "sources": {
            "dataset": str(root),
            "bandwidth_bytes_per_second": "given"
            if given
            else "default 10 Gbit/s: the dataset does not record the network",
        },
        "machines": entries,
        "warnings": warnings,
    }


def _machine_entry(
    root: Path,
    row,
    tasks: pd.DataFrame,
    speeds: Speeds,
    cost_per_hour: float | None,
    idle_watts: float | None,
    busy_watts: float | None,
) -> tuple[dict, list[str]]:
    node = str(row.host_node)
    warnings: list[str] = []
    hardware = hardware_of(row)
    entry: dict = {"id": node, "speed": speeds.speed[node]}
    sources: dict = {"speed": speeds.source[node]}
    if hardware["cores"] is not None and hardware["cores"] >= 1:
        entry["cores"], sources["cores"] = hardware["cores"], "machines.cores"
    else:
        sources["cores"] = "not in the dataset (P.json readers take 1)"
        warnings.append(f"{node}: machines.cores is empty")
    readings = _optional(root, "power_samples", node)
    counters = _optional(root, "container_samples", node)
    fit: dict = {"speed": speeds.fit.get(node, {})}
    power, warning = (None, None)
    if readings is not None and len(readings):
        power, warning = fit_node_power(node, readings, counters, tasks)
        accelerators = fit_accelerator_idle(readings, tasks)
    else:
        accelerators = {}
        if (root / "power_samples").is_dir():
            warning = f"{node}: no readings of it in power_samples: power not fitted"
    if warning:
        warnings.append(warning)
    if power is not None:
        fit["power"] = power | {"accelerators": accelerators}
        accelerator_idle = sum(a["idle_watts"] for a in accelerators.values())
        entry["idle_watts"] = power["cpu_idle_watts"] + accelerator_idle
        what = f"CPU zones: {power['idle_method']}"
        if accelerators:
            what += "; GPUs/FPGAs: their power while no task held them"
        sources["idle_watts"] = f"fitted from power_samples ({what})"
        if "watts_per_busy_core" in power and "cores" in entry:
            slope = max(power["watts_per_busy_core"], 0.0)
            entry["busy_watts"] = entry["idle_watts"] + slope * entry["cores"]
            how = power["slope_method"]
            sources["busy_watts"] = (
                f"fitted from power_samples: idle_watts + cores x watts per busy core ({how})"
            )
    for key, value in (("idle_watts", idle_watts), ("busy_watts", busy_watts)):
        if key not in entry:
            if value is not None:
                entry[key], sources[key] = float(value), "given (could not be fitted from the dataset)"
            else:
                sources[key] = "not in the dataset and not given (P.json readers take 0 / idle_watts)"
    if "busy_watts" in entry and "idle_watts" in entry and entry["busy_watts"] < entry["idle_watts"]:
        entry["busy_watts"] = entry["idle_watts"]
    if cost_per_hour is not None:
        entry["cost_per_hour"], sources["cost_per_hour"] = float(cost_per_hour), "given"
    else:
        sources["cost_per_hour"] = "not in the dataset (P.json readers take 0)"
    entry["gpus"] = _count(row.gpu_models)
    entry["fpgas"] = _count(row.fpga_models)
    entry["labels"] = _labels(row.labels)
    sources |= {
        "gpus": "machines.gpu_models (one per entry)",
        "fpgas": "machines.fpga_models (one per entry)",
        "labels": "machines.labels (the node's Kubernetes labels as recorded)",
    }
    entry |= {"hardware": hardware, "sources": sources, "fit": fit}
    return entry, warnings
