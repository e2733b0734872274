"""Attribution speed: jouletrace's engine against a pandas and a DuckDB baseline, on the same data.

Run: .venv/bin/python benchmarks/attribution.py [--samples N] [--tasks M] [--nodes K] [--large]

Data, made with numpy straight into Arrow tables of the trace schemas: K nodes (default 100), each with two
RAPL package counters read every ~1 s (jittered, both packages in the same agent step, wrapping at RAPL's
range), and M tasks with random windows (lognormal, median 60 s, whole seconds as Argo records them) and
random CPU requests. A package draws its idle power plus half of each running task's cores x W/core, with
a little noise, so the counters read like real ones.

Default mode (10M samples x 100k tasks) writes the tables as one Parquet file each and times, interleaved
--repeats times, whole processes on them: `jouletrace attribute` (exact, the default), `jouletrace attribute
--fast`, the careful pandas script and DuckDB's ASOF join (benchmarks/attribution_scripts.py), each with
Python's bytecode cache on as an installed package has it, after a warm-up run of each on a tiny input (also
their fixed cost). It then times the command's steps in this process, and the computations alone on tables
in memory: the pandas script's `compute_pandas` and `datasets.attribution.attribute(tasks, samples,
machines)` exact and fast, on one thread and on as many threads as DuckDB uses (all cores by default), each
the fastest of --repeats runs, and prints samples/s and the speed ratios. The baselines compute less with
the same readings than jouletrace (no fit, no idle/dynamic parts, no ramps, no uncertainty, coverage or
balance); so that the comparison is fair, a small case on which the quantities coincide (one task at a time
holding all of its node's cores, windows on reading times) is checked first.

--large (100M samples x 1M tasks) runs jouletrace only: the data is written node by node to a trace dataset
in a temporary folder and attributed by `datasets.attribution.attribute_dataset` on all cores, which streams
it one node-day at a time per thread (two passes: the pooled fit, then the split); it prints samples/s and
peak RSS.
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from attribution_baselines import (  # noqa: E402
    duckdb_task_joules,
    duckdb_threads,
    max_difference_joules,
    pandas_task_joules,
)
from attribution_scripts import as_frame, compute_pandas  # noqa: E402

import schemas  # noqa: E402
from datasets.attribution import attribute, attribute_dataset  # noqa: E402
from schemas.tables import UTC_TIMESTAMP  # noqa: E402

SOCKETS = 2
CORES_PER_NODE = 64
RAPL_MAX_JOULES = 262143.328850
READING_JITTER_SECONDS = 0.02
PACKAGE_IDLE_WATTS = (30.0, 50.0)
WATTS_PER_CORE = (4.0, 10.0)
POWER_NOISE = 0.05
MEDIAN_TASK_SECONDS = 60.0
TASK_SIGMA = 1.0
MAX_TASK_SECONDS = 3600.0
REQUEST_CORES = np.array([0.5, 1.0, 2.0, 4.0, 8.0])
TEMPLATES = [f"template-{i:02d}" for i in range(20)]
TASKS_PER_WORKFLOW = 50
WORLD_START_US = 1_793_000_000 * 1_000_000  # 2026-10-26T07:33:20Z
AGREEMENT_JOULES = 1e-6
GNU_TIME = "/usr/bin/time"  # peak RSS of a whole process (apt package `time`)
DEFAULT = {"samples": 10_000_000, "tasks": 100_000}
LARGE = {"samples": 100_000_000, "tasks": 1_000_000}


def strings(values: list[str], codes: np.ndarray) -> pa.Array:
    """values[codes] as a string array made from raw buffers: a Python string per row would dominate."""
    encoded = np.array([value.encode() for value in values])
    width = encoded.dtype.itemsize
    if any(len(value.encode()) != width for value in values) or len(codes) * width >= 2**31:
        raise ValueError("strings() takes values of one length and under 2 GiB of characters")
    offsets = np.arange(len(codes) + 1, dtype=np.int32) * np.int32(width)
    return pa.StringArray.from_buffers(
        len(codes), pa.py_buffer(offsets), pa.py_buffer(encoded[codes].tobytes())
    )


def constant(value: str, n: int) -> pa.Array:
    return strings([value], np.zeros(n, np.intp))


def empty_lists(n: int) -> pa.Array:
    return pa.ListArray.from_arrays(pa.array(np.zeros(n + 1, np.int32)), pa.array([], pa.string()))


def timestamps(seconds: np.ndarray) -> pa.Array:
    return pa.array(WORLD_START_US + np.round(seconds * 1e6).astype(np.int64), UTC_TIMESTAMP)


@dataclass(frozen=True)
class Node:
    """One node's readings (seconds after WORLD_START_US, both packages read in the same agent step) and tasks."""

    read_s: np.ndarray
    package_counters_joules: list[np.ndarray]
    start_s: np.ndarray
    end_s: np.ndarray
    cores: np.ndarray
    template: np.ndarray
    time_resolution_seconds: float


def simulate_node(rng: np.random.Generator, seconds: int, n_tasks: int, exclusive: bool = False) -> Node:
    """`seconds` readings per package and `n_tasks` tasks of one node.

    exclusive: tasks run one at a time, hold all the node's cores and start and end on reading times (their
    times exact, resolution 0), the case in which jouletrace's task energy is exactly the counter energy
    over the task window.
    """
    jitter_s = rng.uniform(-1, 1, seconds) * READING_JITTER_SECONDS
    read_s = np.round((np.arange(seconds) + 0.5 + jitter_s) * 1e6) / 1e6
    if exclusive:
        bounds = np.sort(rng.choice(np.arange(1, seconds - 1), 2 * n_tasks, replace=False))
        start_s, end_s = read_s[bounds[0::2]], read_s[bounds[1::2]]
        cores = np.full(n_tasks, float(CORES_PER_NODE))
    else:
        duration_s = np.ceil(
            np.clip(rng.lognormal(np.log(MEDIAN_TASK_SECONDS), TASK_SIGMA, n_tasks), 1.0, MAX_TASK_SECONDS)
        )
        duration_s = np.minimum(duration_s, seconds // 2)
        start_s = np.floor(rng.uniform(1.0, seconds - 1.0 - duration_s))
        end_s = start_s + duration_s
        cores = rng.choice(REQUEST_CORES, n_tasks)

    # Dynamic power on a 1 s grid: a task draws cores x W/core in every second it overlaps.
    task_watts = cores * rng.uniform(*WATTS_PER_CORE, n_tasks)
    step_watts = np.zeros(seconds + 1)
    np.add.at(step_watts, np.floor(start_s).astype(np.int64), task_watts)
    np.add.at(step_watts, np.minimum(np.ceil(end_s).astype(np.int64), seconds), -task_watts)
    dynamic_watts = np.cumsum(step_watts)[:seconds]
    second = np.minimum(np.floor(read_s).astype(np.int64), seconds - 1)
    max_uj = round(RAPL_MAX_JOULES * 1e6)
    counters = []
    for _ in range(SOCKETS):
        noise = rng.uniform(1 - POWER_NOISE, 1 + POWER_NOISE, seconds)
        watts = rng.uniform(*PACKAGE_IDLE_WATTS) + dynamic_watts / SOCKETS * noise
        grid_joules = np.concatenate([[0.0], np.cumsum(watts)])
        joules = grid_joules[second] + watts[second] * (read_s - second)
        counters.append(((rng.integers(0, max_uj) + np.round(joules * 1e6).astype(np.int64)) % max_uj) / 1e6)
    template = rng.integers(0, len(TEMPLATES), n_tasks)
    return Node(read_s, counters, start_s, end_s, cores, template, 0.0 if exclusive else 1.0)


def samples_table(hosts: list[str], nodes: list[Node]) -> pa.Table:
    """The nodes' RAPL package counters as `power_samples`, by node, package, then time."""
    readings = np.array([len(node.read_s) for node in nodes])
    n = int(SOCKETS * readings.sum())
    return pa.table(
        {
            "host_node": strings(hosts, np.repeat(np.arange(len(nodes)), SOCKETS * readings)),
            "device_kind": constant("cpu_package", n),
            "device_id": strings(
                [f"package-{p}" for p in range(SOCKETS)],
                np.concatenate([np.repeat(np.arange(SOCKETS), count) for count in readings]),
            ),
            "timestamp": timestamps(np.concatenate([np.tile(node.read_s, SOCKETS) for node in nodes])),
            "value": pa.array(np.concatenate([c for node in nodes for c in node.package_counters_joules])),
            "value_kind": constant("energy_counter_joules", n),
            "counter_max_joules": pa.array(np.full(n, RAPL_MAX_JOULES)),
            "source": constant("rapl", n),
            "provenance": constant("synthetic", n),
        },
        schema=schemas.POWER_SAMPLES,
    )


def tasks_table(hosts: list[str], nodes: list[Node], first_task: int) -> pa.Table:
    """The nodes' tasks as `tasks` (ids numbered from `first_task`), 50 to a workflow."""
    counts = np.array([len(node.start_s) for node in nodes])
    n = int(counts.sum())
    index = first_task + np.arange(n)
    start_s = np.concatenate([node.start_s for node in nodes])
    end_s = np.concatenate([node.end_s for node in nodes])
    template = np.concatenate([node.template for node in nodes])
    return pa.table(
        {
            "workflow_uid": pa.array([f"wf-{i // TASKS_PER_WORKFLOW:06d}" for i in index], pa.string()),
            "task_id": pa.array([f"task-{i:08d}" for i in index], pa.string()),
            "task_name": strings(TEMPLATES, template),
            "template_name": strings(TEMPLATES, template),
            "attempt": pa.array(np.zeros(n, np.int64)),
            "phase": constant("Succeeded", n),
            "reason": pa.nulls(n, pa.string()),
            "pod_name": pa.nulls(n, pa.string()),
            "pod_uid": pa.nulls(n, pa.string()),
            "host_node": strings(hosts, np.repeat(np.arange(len(nodes)), counts)),
            "started_at": timestamps(start_s),
            "finished_at": timestamps(end_s),
            "time_resolution_seconds": pa.array(
                np.repeat([node.time_resolution_seconds for node in nodes], counts).astype(float)
            ),
            "runtime_seconds": pa.array(end_s - start_s),
            "parents": empty_lists(n),
            "children": empty_lists(n),
            "cpu_request_cores": pa.array(np.concatenate([node.cores for node in nodes])),
            "memory_request_bytes": pa.nulls(n, pa.int64()),
            "gpu_ids": empty_lists(n),
            "fpga_ids": empty_lists(n),
            "avg_cpu_percent": pa.nulls(n, pa.float64()),
            "memory_peak_bytes": pa.nulls(n, pa.int64()),
            "read_bytes": pa.nulls(n, pa.int64()),
            "written_bytes": pa.nulls(n, pa.int64()),
            "provenance": constant("synthetic", n),
        },
        schema=schemas.TASKS,
    )


def machines_table(hosts: list[str]) -> pa.Table:
    n = len(hosts)
    return pa.table(
        {
            "host_node": pa.array(hosts, pa.string()),
            "cpu_model": pa.nulls(n, pa.string()),
            "sockets": pa.array(np.full(n, SOCKETS, np.int64)),
            "cores": pa.array(np.full(n, CORES_PER_NODE, np.int64)),
            "cpu_speed_mhz": pa.nulls(n, pa.float64()),
            "memory_bytes": pa.nulls(n, pa.int64()),
            "gpu_models": empty_lists(n),
            "fpga_models": empty_lists(n),
            "labels": pa.array([[]] * n, schemas.MACHINES.field("labels").type),
            "provenance": constant("synthetic", n),
        },
        schema=schemas.MACHINES,
    )


def hosts_of(nodes: int) -> list[str]:
    return [f"node-{i:04d}" for i in range(nodes)]


def split_evenly(total: int, parts: int) -> np.ndarray:
    return np.diff(np.linspace(0, total, parts + 1).round().astype(np.int64))


def cluster_tables(
    seed: int, nodes: int, samples: int, tasks: int, exclusive: bool = False
) -> tuple[pa.Table, pa.Table, pa.Table]:
    """`tasks`, `power_samples` and `machines` of the whole cluster, every column one contiguous array."""
    rng = np.random.default_rng(seed)
    seconds = samples // (nodes * SOCKETS)
    simulated = [simulate_node(rng, seconds, int(count), exclusive) for count in split_evenly(tasks, nodes)]
    hosts = hosts_of(nodes)
    return tasks_table(hosts, simulated, 0), samples_table(hosts, simulated), machines_table(hosts)


def timed(run, *args, **options):
    """run(*args, **options), its wall-clock seconds and this process's CPU seconds (all threads: other load
    on the machine slows the wall clock, not the CPU time of a single-threaded run)."""
    wall, cpu = time.perf_counter(), time.process_time()
    result = run(*args, **options)
    return result, time.perf_counter() - wall, time.process_time() - cpu


def best_of(repeats: int, run, *args, **options):
    """The result and the fastest (wall, CPU) of `repeats` runs: the first run of a size also pays for
    memory the process has never touched (page faults), which later runs, and a long-running service, do not.
    """
    best = None
    for _ in range(repeats):
        result, wall, cpu = timed(run, *args, **options)
        if best is None or wall < best[1]:
            best = (result, wall, cpu)
    return best


def peak_rss_gib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # ru_maxrss is in KiB on Linux


def check_same_quantity(duckdb_thread_count: int | None) -> float:
    """On the exclusive case (one task at a time holding its node), pandas, DuckDB, the pandas script and
    jouletrace give the same joules; the largest difference."""
    tasks, samples, machines = cluster_tables(
        seed=1, nodes=3, samples=3 * SOCKETS * 2000, tasks=30, exclusive=True
    )
    for name, table in (("tasks", tasks), ("power_samples", samples), ("machines", machines)):
        schemas.validate(name, table, "benchmark check data")
    pandas_joules = pandas_task_joules(tasks, samples)
    duckdb_joules = duckdb_task_joules(tasks, samples, duckdb_thread_count)
    engine = attribute(tasks, samples, machines).task_energy.to_pandas()
    engine = engine.rename(columns={"energy_joules": "joules"})
    # jouletrace also gives rows (energy 0, coverage 0) to the DRAM zones two sockets imply but nobody read.
    read = engine.merge(
        pandas_joules[["task_id", "device_id"]], on=["task_id", "device_id"], how="left", indicator=True
    )
    assert (read.loc[read["_merge"] == "left_only", "joules"] == 0).all(), (
        "jouletrace gave joules to an unread zone"
    )
    engine_joules = read[read["_merge"] == "both"]
    script_joules = compute_pandas(as_frame(tasks), as_frame(samples)).rename(
        columns={"energy_joules": "joules"}
    )
    difference = max(
        max_difference_joules(pandas_joules, duckdb_joules),
        max_difference_joules(pandas_joules, engine_joules),
        max_difference_joules(pandas_joules, script_joules),
    )
    assert difference <= AGREEMENT_JOULES, (
        f"baselines and jouletrace differ by {difference} J on the exclusive case"
    )
    return difference


def child_environment(folder: Path) -> dict[str, str]:
    """Every command's environment: Python's bytecode cache on (in the run's folder), as an installed
    package has it; a session that sets PYTHONDONTWRITEBYTECODE would otherwise compile every module of
    the bigger program from source at each start."""
    environment = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    return environment | {"PYTHONPYCACHEPREFIX": str(folder / "pycache")}


def process(command: list[str], environment: dict[str, str] | None = None) -> tuple[float, float, float]:
    """Run `command` as its own process: (wall seconds, CPU seconds of all its threads, peak RSS GiB).

    The peak RSS is GNU time's: a child's own ru_maxrss also counts this process's pages it was forked
    with, which GNU time's small process does not have."""
    with tempfile.TemporaryFile() as errors, tempfile.NamedTemporaryFile("r") as rss:
        started = time.perf_counter()
        measured = [GNU_TIME, "-f", "%M", "-o", rss.name, *command]
        child = subprocess.Popen(
            measured, stdout=subprocess.DEVNULL, stderr=errors, cwd=ROOT, env=environment
        )
        _, status, usage = os.wait4(child.pid, 0)
        wall = time.perf_counter() - started
        if os.waitstatus_to_exitcode(status) != 0:
            errors.seek(0)
            raise RuntimeError(f"{' '.join(command)} failed: {errors.read().decode()[-2000:]}")
        peak_kib = int(rss.read().split()[-1])
    return wall, usage.ru_utime + usage.ru_stime, peak_kib / 2**20


def write_inputs(folder: Path, tasks: pa.Table, samples: pa.Table, machines: pa.Table) -> dict[str, Path]:
    """The tables as one Parquet file each, as a user hands them to `jouletrace attribute`."""
    files = {name: folder / f"{name}.parquet" for name in ("tasks", "samples", "machines")}
    for name, table in (("tasks", tasks), ("samples", samples), ("machines", machines)):
        pq.write_table(table, files[name])
    return files


def commands(files: dict[str, Path], folder: Path, threads: int) -> dict[str, list[str]]:
    """The whole commands timed against each other, on the same files."""
    python, scripts = sys.executable, str(Path(__file__).resolve().parent / "attribution_scripts.py")
    inputs = [str(files["tasks"]), str(files["samples"])]
    attribute_command = [
        *(python, "-m", "pipelines.cli", "attribute", "--tasks", inputs[0], "--samples", inputs[1]),
        *("--machines", str(files["machines"])),
    ]
    return {
        "jouletrace attribute": [*attribute_command, "--out", str(folder / "jouletrace.parquet")],
        "jouletrace attribute --fast": [*attribute_command, "--fast", "--out", str(folder / "fast.parquet")],
        "pandas script (split by requests)": [
            python,
            scripts,
            "pandas",
            *inputs,
            str(folder / "pandas.parquet"),
        ],
        "DuckDB ASOF (counter energy)": [
            *(python, scripts, "duckdb", *inputs, str(folder / "duckdb.parquet"), "--threads", str(threads))
        ],
    }


def spread(values: list[float]) -> str:
    return f"{min(values):.2f}-{max(values):.2f}" if len(values) > 1 else f"{values[0]:.2f}"


def time_commands(
    files: dict[str, Path], folder: Path, threads: int, repeats: int, environment: dict[str, str]
) -> dict[str, list[tuple]]:
    """Each command `repeats` times, interleaved (the machine's load falls on all of them alike)."""
    runs: dict[str, list[tuple]] = {}
    for _ in range(repeats):
        for name, command in commands(files, folder, threads).items():
            runs.setdefault(name, []).append(process(command, environment))
    return runs


def print_commands(runs: dict[str, list[tuple]], n: int) -> None:
    print("whole processes on the same Parquet files (wall s, CPU s, peak RSS GiB; min-max over the runs):")
    for name, measured in runs.items():
        walls, cpus, rss = zip(*measured, strict=True)
        print(
            f"  {name:<36} {spread(list(walls)):>12} s wall  {spread(list(cpus)):>12} s CPU  "
            f"{max(rss):5.2f} GiB  {n / min(walls) / 1e6:5.2f} M samples/s"
        )
    for ours in ("jouletrace attribute", "jouletrace attribute --fast"):
        for name in [name for name in runs if not name.startswith("jouletrace")]:
            pairs = list(zip(runs[name], runs[ours], strict=True))
            walls = ", ".join(f"{theirs[0] / mine[0]:.2f}x" for theirs, mine in pairs)
            cpus = ", ".join(f"{theirs[1] / mine[1]:.2f}x" for theirs, mine in pairs)
            print(f"  {name} / {ours}, run by run: {walls} wall; {cpus} CPU")


def command_stages(files: dict[str, Path], folder: Path, repeats: int) -> dict[str, float]:
    """Where the whole command's time goes: its steps in this process, each the fastest of `repeats`."""
    from datasets.attribution.options import COLUMNS_READ, DICTIONARY_TABLES
    from datasets.store import write_task_energy
    from schemas.loading import coerce, read_file

    stages = {"read Parquet": 0.0, "validate": 0.0}
    tables = {}
    for name, table in (("tasks", "tasks"), ("samples", "power_samples"), ("machines", "machines")):
        keep = table in DICTIONARY_TABLES
        columns = COLUMNS_READ[table]
        raw, wall, _ = best_of(
            repeats, read_file, files[name], name, table, columns=columns, dictionaries=keep
        )
        stages["read Parquet"] += wall
        loaded, wall, _ = best_of(repeats, coerce, table, raw, name, columns=columns, keep_dictionaries=keep)
        stages["validate"] += wall
        tables[name] = loaded.table
    result, stages["attribute (engine)"], _ = best_of(
        repeats, attribute, tables["tasks"], tables["samples"], tables["machines"]
    )
    _, stages["attribute --fast (engine)"], _ = best_of(
        repeats, attribute, tables["tasks"], tables["samples"], tables["machines"], fast=True
    )
    _, stages["write task_energy"], _ = best_of(
        repeats, write_task_energy, result.task_energy, folder / "stages.parquet"
    )
    return stages


def start_up(folder: Path, threads: int, repeats: int, environment: dict[str, str]) -> dict[str, float]:
    """Each command's fixed cost: the fastest of `repeats` whole processes on a tiny input (30 tasks), after
    one run of each that fills the bytecode cache (and numba's, if the code changed)."""
    tiny = folder / "tiny"
    tiny.mkdir(exist_ok=True)
    files = write_inputs(tiny, *cluster_tables(seed=1, nodes=3, samples=3 * SOCKETS * 2000, tasks=30))
    runs = time_commands(files, tiny, threads, repeats + 1, environment)
    return {name: min(wall for wall, _, _ in measured[1:]) for name, measured in runs.items()}


def compute_alone(files: dict[str, Path], repeats: int, threads: int) -> list[tuple[str, float, float]]:
    """The computations alone on tables in memory, best of `repeats`: pandas' and the engine's."""
    from attribution_scripts import read_pandas

    from schemas.loading import load_table

    frames = read_pandas(str(files["tasks"]), str(files["samples"]))
    tasks = load_table("tasks", files["tasks"]).table
    samples = load_table("power_samples", files["samples"], dictionaries=True).table
    machines = load_table("machines", files["machines"]).table
    timed_runs = [("pandas compute_pandas (1 thread)", *best_of(repeats, compute_pandas, *frames)[1:])]
    for mode, options in (("", {}), (" --fast", {"fast": True})):
        for count in (1, threads):
            _, wall, cpu = best_of(repeats, attribute, tasks, samples, machines, threads=count, **options)
            timed_runs.append(
                (f"jouletrace attribute(){mode} ({count} thread{'s' * (count > 1)})", wall, cpu)
            )
    return timed_runs


def run_default(args: argparse.Namespace) -> None:
    (tasks, samples, machines), generate_s, _ = timed(
        cluster_tables, args.seed, args.nodes, args.samples, args.tasks
    )
    n = samples.num_rows
    per_series = n // (args.nodes * SOCKETS)
    print(
        f"data: {n:,} samples ({args.nodes} nodes x {SOCKETS} RAPL packages x {per_series:,} readings at ~1 s), "
        f"{tasks.num_rows:,} tasks; made in {generate_s:.1f} s"
    )
    threads = duckdb_threads(args.duckdb_threads)
    check = check_same_quantity(args.duckdb_threads)
    print(
        f"check: on the exclusive case pandas, DuckDB, the pandas script and jouletrace agree within {check:.1e} J"
    )
    with tempfile.TemporaryDirectory(prefix="jouletrace-bench-") as name:
        folder = Path(name)
        files = write_inputs(folder, tasks, samples, machines)
        del tasks, samples, machines
        environment = child_environment(folder)
        fixed = start_up(folder, threads, args.repeats, environment)
        runs = time_commands(files, folder, threads, args.repeats, environment)
        print_commands(runs, n)
        stages = command_stages(files, folder, args.repeats)
        alone = compute_alone(files, args.repeats, threads)
    whole = min(wall for wall, _, _ in runs["jouletrace attribute"])
    print(
        f"where the time of jouletrace attribute goes (fastest whole run {whole:.2f} s; steps in this process):"
    )
    print(f"  {'start-up (tiny input)':<26} {fixed['jouletrace attribute']:6.2f} s")
    for stage, seconds in stages.items():
        print(f"  {stage:<26} {seconds:6.2f} s")
    print(
        "start-up of the others on the same tiny input: "
        + ", ".join(
            f"{name} {seconds:.2f} s" for name, seconds in fixed.items() if name != "jouletrace attribute"
        )
    )
    print(f"computation alone, best of {args.repeats} (wall s, CPU s):")
    for label, seconds, cpu_seconds in alone:
        print(
            f"  {label:<42} {seconds:7.2f} s wall ({cpu_seconds:6.2f} s CPU)  {n / seconds / 1e6:6.2f} M samples/s"
        )
    pandas_s, pandas_cpu_s = alone[0][1], alone[0][2]
    for mode, one, every in (("exact", alone[1], alone[2]), ("fast", alone[3], alone[4])):
        print(
            f"pandas compute / engine ({mode}): {pandas_s / every[1]:.2f}x wall on all threads; "
            f"{pandas_cpu_s / one[2]:.2f}x in CPU time on one thread"
        )
    print(
        "note: the pandas script splits each node's counter energy among its tasks by requested cores (idle "
        "included); DuckDB computes only each task's counter energy over its window; jouletrace also fits "
        "watts per core by task type, separates idle from dynamic energy, ramps truncated edges, states "
        "uncertainty and coverage, and closes the per-window node balance."
    )


def write_node(root: Path, host: str, tables: dict[str, pa.Table]) -> None:
    """One node's tables as files of the trace dataset's hive layout (datasets/store.py), one per
    node and date, so a node's rows are written once and never held with another node's."""
    for name, table in tables.items():
        column = "started_at" if name == "tasks" else "timestamp"
        dates = pc.strftime(table[column], format="%Y-%m-%d")
        for date in pc.unique(dates).to_pylist():
            folder = root / name / f"date={date}"
            folder.mkdir(parents=True, exist_ok=True)
            pq.write_table(table.filter(pc.equal(dates, date)), folder / f"{host}.parquet")


def run_large(args: argparse.Namespace) -> None:
    """jouletrace only, through attribute_dataset: the data is written node by node to a trace dataset
    on disk, which the engine reads one node-day at a time."""
    rng = np.random.default_rng(args.seed)
    seconds = args.samples // (args.nodes * SOCKETS)
    counts = split_evenly(args.tasks, args.nodes)
    hosts = hosts_of(args.nodes)
    with tempfile.TemporaryDirectory(prefix="jouletrace-bench-") as folder:
        root = Path(folder)
        started = time.perf_counter()
        samples = 0
        for i, host in enumerate(hosts):
            node = simulate_node(rng, seconds, int(counts[i]))
            node_samples = samples_table([host], [node])
            write_node(
                root,
                host,
                {"tasks": tasks_table([host], [node], int(counts[:i].sum())), "power_samples": node_samples},
            )
            samples += node_samples.num_rows
        (root / "machines").mkdir()
        pq.write_table(machines_table(hosts), root / "machines" / "part-0.parquet")
        written_s = time.perf_counter() - started
        written_rss_gib = peak_rss_gib()
        result, engine_s, engine_cpu_s = timed(attribute_dataset, root)
    print(
        f"large: {samples:,} samples ({args.nodes} nodes x {SOCKETS} packages x {seconds:,} readings), "
        f"{args.tasks:,} tasks; made and written to a trace dataset in {written_s:.1f} s "
        f"(peak RSS {written_rss_gib:.2f} GiB)"
    )
    print(
        f"  jouletrace attribute_dataset() (one node-day at a time, Parquet reads included): {engine_s:.1f} s wall "
        f"({engine_cpu_s:.1f} s CPU), {samples / engine_s / 1e6:.2f} M samples/s, "
        f"{result.task_energy.num_rows:,} task_energy rows"
    )
    print(f"peak RSS {peak_rss_gib():.2f} GiB")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--large", action="store_true", help="100M samples x 1M tasks, jouletrace only")
    parser.add_argument("--samples", type=int, help="power samples in all (default 10M, --large 100M)")
    parser.add_argument("--tasks", type=int, help="tasks in all (default 100k, --large 1M)")
    parser.add_argument("--nodes", type=int, default=100)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument(
        "--duckdb-threads", type=int, help="DuckDB's and jouletrace's threads (default: all cores)"
    )
    parser.add_argument("--repeats", type=int, default=3, help="runs of each contender; the fastest counts")
    args = parser.parse_args()
    sizes = LARGE if args.large else DEFAULT
    args.samples = args.samples or sizes["samples"]
    args.tasks = args.tasks or sizes["tasks"]
    if args.samples < args.nodes * SOCKETS * 4 or args.tasks < args.nodes:
        parser.error("need at least 4 readings per package and one task per node")
    (run_large if args.large else run_default)(args)


if __name__ == "__main__":
    main()
