"""Learning-stage speed: training time per model on 100k and 1M task rows, and prediction throughput on one core.

Run: .venv/bin/python -m benchmarks.models [--rows 100000,1000000] [--quick] [--repeats 3] [--rf-cap-seconds 300]

Data: a seeded synthetic table shaped like the trace dataset's training table (models.features.build_training_table,
mode before-run, target energy_joules): one row per (task, device kind), with every feature of
models.features.feature_columns("before-run", "energy_joules"), the identifiers workflow_uid and task_id, and
the target. 40 task templates (name variants make ~60 task_name_type levels), 8 workflow templates each using 5-12
of them, 5 hardware classes (3 CPU models, A100 and T4 GPU nodes, Alveo U250 FPGA nodes), so device_kind has 4
levels and task_device_type ~90. The energy is a stated physical model:

    runtime  = template median x lognormal(0, template sigma) x (read_bytes / template median)^0.3
               x (1 + 0.15 ln(1 + fan_in)) x (3100 MHz / cpu_speed_mhz)^0.8 [CPU] or x 2.5 on a T4 [GPU]
    cpu_package W = cores x utilisation x W per busy core (Gold 6346 7.7, Gold 6338 3.8, EPYC 7763 2.6)
                    + idle W per socket x sockets x cores / machine cores
    dram W   = 0.375 W/GiB x requested GiB x (0.3 + 0.7 x activity) + 0.2 W x busy cores
    gpu W    = GPUs x (idle + utilisation x (board power - idle))   (A100 35..250 W, T4 10..70 W)
    fpga W   = FPGAs x (25 W + utilisation x 50 W)
    energy_joules = W x runtime x lognormal(0, 0.1)                 (the meter's and the split's noise)

What is timed (wall clock by time.perf_counter, CPU time of the whole process by time.process_time):

1. Training, on every --rows size, the library using all cores (TabularRegressor(threads=None); it uses one
   thread below models.estimators.SMALL_TABLE_ROWS rows): TabularRegressor.fit per model name, against two
   baselines fitted in the same run on the same rows, the per-type median (models.baselines.GroupMedianBaseline
   by device_kind, task_template) and a plain scikit-learn LinearRegression on the linear model's one-hot matrix.
   The encodings (codes + cross-fitted target encoding for the trees, one-hot for the linear model) are timed on
   their own to show where the time goes. Then, on the smallest size, the whole models.training.train
   (--model xgboost: 5-fold grouped cross-validation + final fit + baselines) in this process, and the whole
   `jouletrace train --table` command as a process (which also writes the report and the model folder).
   Every timing is the fastest of --repeats runs, or one run if it takes longer than 10 s. Random forest on
   the largest size is fitted with 15 of its 150 trees first; if the 150 trees would take longer than
   --rf-cap-seconds, the full fit is skipped, its time extrapolated from the probe and its prediction times
   scaled from the probe's (all said so in the output).
2. Prediction on one core (threadpoolctl.threadpool_limits(1) and the library's own n_jobs/nthread = 1), on the
   largest size's rows with the models fitted on them: (a) the library's native batch prediction on the prepared
   matrix (estimator_.predict(matrix); for XGBoost also get_booster().inplace_predict(matrix)) against the
   1,000,000 rows/s goal and against LinearRegression.predict on its matrix; (b) the whole
   TabularRegressor.predict from the DataFrame (encoding included) against GroupMedianBaseline.predict;
   (c) the whole `jouletrace predict --table` command as a process on a Parquet file of those rows (the xgboost
   model folder written by `jouletrace train` in 1.), with OMP_NUM_THREADS=1 and on all cores, against a
   baseline process that only reads the same Parquet file with pandas and writes it back. Then a what-if: the
   one-core prediction speed and held-out error of each tree model as models/ has it and with other settings
   (fewer, shallower trees; XGBoost with category splits or codes as numbers), to say what the 1M rows/s goal
   would cost in accuracy.
3. Memory: the peak RSS of this process during each fit (Linux: VmHWM, reset just before the fit), and its
   rise over the RSS at the start of the fit; commands' peak RSS as processes.

Rows/s are also given per CPU second: on a machine other jobs share, the wall clock of a one-core run
stretches while its CPU time does not; the load average is printed with each section. The run prints a
fingerprint of models/*.py and warns if it changed before the end (the command processes then ran other code).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# Run as a script, this folder would come first on sys.path and this file would shadow the `models` package.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != ROOT / "benchmarks"]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from threadpoolctl import threadpool_limits  # noqa: E402

import models.estimators as estimators  # noqa: E402
from models.baselines import GroupMedianBaseline  # noqa: E402
from models.estimators import SMALL_TABLE_ROWS, TabularRegressor  # noqa: E402
from models.features import feature_columns  # noqa: E402
from models.options import MODEL_NAMES, TrainOptions  # noqa: E402
from models.training import train  # noqa: E402

TARGET = "energy_joules"
FEATURES = feature_columns("before-run", TARGET)
CATEGORICAL = (
    "task_template",
    "task_name_type",
    "workflow_template",
    "cpu_model",
    "gpu_model",
    "fpga_model",
    "device_kind",
    "task_device_type",
)
NUMERIC = tuple(c for c in FEATURES if c not in CATEGORICAL)
GOAL_ROWS_PER_S = 1_000_000
DEFAULT_ROWS = (100_000, 1_000_000)
QUICK_ROWS = (20_000, 100_000)
LONG_RUN_S = 10.0  # a fit, prediction or command slower than this runs once, not best of --repeats
RF_TREES = 150  # models/estimators.py's RandomForestRegressor(n_estimators=150)
RF_PROBE_TREES = 15
GIB = 1024.0**3

TEMPLATE_NAMES = [
    "align", "sort", "merge", "index", "call-variants", "filter", "annotate", "fft", "transpose", "reduce",
    "train", "infer", "render", "compress", "stage-in", "stage-out", "mosaic", "project", "diff-fit", "bgmodel",
    "background", "add", "shrink", "jpeg", "individuals", "sifting", "frequency", "mutation-overlap",
    "preprocess", "tokenize", "simulate", "analyse", "plot", "checksum", "convert", "extract", "cluster",
    "blast", "assemble", "quantify",
]  # fmt: skip
GPU_TEMPLATES = ("train", "infer", "render", "simulate", "cluster")
FPGA_TEMPLATES = ("fft", "compress", "checksum")
WORKFLOW_NAMES = ["blast", "bwa", "cycles", "epigenomics", "genome", "montage", "seismology", "soykb"]
# name, sockets, cores per socket, MHz, memory GiB, GPU model, GPUs, FPGA model, FPGAs, W per busy core,
# idle W per socket, share of CPU-only tasks placed there
HARDWARE = [
    ("Intel(R) Xeon(R) Gold 6346 CPU @ 3.10GHz", 2, 16, 3100.0, 256, None, 0, None, 0, 7.7, 60.0, 0.45),
    ("Intel(R) Xeon(R) Gold 6338 CPU @ 2.00GHz", 2, 32, 2000.0, 512, None, 0, None, 0, 3.8, 70.0, 0.35),
    ("AMD EPYC 7763 64-Core Processor", 2, 64, 2450.0, 1024, "NVIDIA-A100-PCIE-40GB", 4, None, 0, 2.6, 90.0, 0.1),
    ("AMD EPYC 7763 64-Core Processor", 1, 64, 2450.0, 512, "Tesla-T4", 4, None, 0, 2.6, 90.0, 0.05),
    ("Intel(R) Xeon(R) Gold 6346 CPU @ 3.10GHz", 2, 16, 3100.0, 384, None, 0, "Xilinx Alveo U250", 2, 7.7, 60.0, 0.05),
]  # fmt: skip
GPU_WATTS = {
    "NVIDIA-A100-PCIE-40GB": (35.0, 250.0, 1.0),
    "Tesla-T4": (10.0, 70.0, 2.5),
}  # idle, board, slowdown


# ----------------------------------------------------------------------------------------------- the table


def make_table(n: int, seed: int) -> pd.DataFrame:
    """`n` (task, device kind) rows of a seeded synthetic trace dataset: ids, the before-run features, the target."""
    rng = np.random.default_rng(seed)
    k = len(TEMPLATE_NAMES)
    median_s = np.exp(rng.uniform(np.log(5.0), np.log(1800.0), k))
    sigma = rng.uniform(0.2, 0.6, k)
    cores = rng.choice([0.5, 1.0, 2.0, 4.0, 8.0, 16.0], k)
    memory_gib = rng.choice([0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 32.0], k)
    cpu_util = rng.uniform(0.3, 1.0, k)
    dram_activity = rng.uniform(0.1, 1.0, k)
    read_median = np.exp(rng.uniform(np.log(1e6), np.log(1e10), k))
    is_gpu = np.isin(TEMPLATE_NAMES, GPU_TEMPLATES)
    is_fpga = np.isin(TEMPLATE_NAMES, FPGA_TEMPLATES)
    gpus = np.where(is_gpu, rng.choice([1.0, 2.0], k), 0.0)
    fpgas = is_fpga.astype(float)
    gpu_util = rng.uniform(0.3, 0.95, k)
    variants = rng.random(k) < 0.5  # half the templates also run under a second task name
    # Each workflow template uses 5-12 task templates; together they use all of them.
    uses = [rng.choice(k, rng.integers(5, 13), replace=False) for _ in WORKFLOW_NAMES]
    uses[0] = np.union1d(uses[0], np.setdiff1d(np.arange(k), np.concatenate(uses)))
    workflow_size = np.exp(rng.uniform(np.log(20), np.log(300), len(WORKFLOW_NAMES)))

    # Tasks, workflow by workflow (a task gives 2 rows, cpu_package and dram, plus gpu / fpga rows).
    tasks = n // 2 + 1
    n_workflows = int(tasks / 40) + 10
    wf_template = rng.integers(0, len(WORKFLOW_NAMES), n_workflows)
    wf_tasks = np.maximum(5, rng.lognormal(np.log(workflow_size[wf_template]), 0.5)).astype(int)
    while wf_tasks.sum() < tasks:
        wf_tasks *= 2
    wf_levels = rng.integers(3, 9, n_workflows)
    wf_of_task = np.repeat(np.arange(n_workflows), wf_tasks)[:tasks]
    w = wf_template[wf_of_task]
    template = np.array(
        [uses[t][i % len(uses[t])] for t, i in zip(w, rng.integers(0, 1 << 30, tasks), strict=True)]
    )
    attempt = rng.choice([0.0, 1.0, 2.0], tasks, p=[0.965, 0.03, 0.005])
    depth = np.floor(rng.random(tasks) * wf_levels[wf_of_task])
    fan_in = np.where(depth == 0, 0.0, 1.0 + rng.geometric(0.5, tasks) - 1)
    fan_out = rng.geometric(0.5, tasks) - 1.0
    read_bytes = np.round(read_median[template] * rng.lognormal(0.0, 0.7, tasks))
    read_bytes[rng.random(tasks) < 0.05] = np.nan  # sizes not recorded
    hardware_share = np.array([h[11] for h in HARDWARE])
    machine = rng.choice(len(HARDWARE), tasks, p=hardware_share / hardware_share.sum())
    machine = np.where(is_gpu[template], rng.choice([2, 3], tasks), machine)
    machine = np.where(is_fpga[template], 4, machine)
    hw = {
        name: np.array([h[i] for h in HARDWARE], dtype=object)[machine]
        for i, name in enumerate(
            ("cpu_model", "sockets", "per_socket", "mhz", "mem", "gpu_model", "gpus", "fpga_model", "fpgas", "wcore", "idle")
        )
    }  # fmt: skip
    sockets, machine_cores = hw["sockets"].astype(float), (hw["sockets"] * hw["per_socket"]).astype(float)
    mhz = hw["mhz"].astype(float)

    # The physical model (module docstring).
    slowdown = np.where(
        is_gpu[template],
        np.array([GPU_WATTS.get(m, (0, 0, 1.0))[2] for m in hw["gpu_model"]]),
        (3100.0 / mhz) ** 0.8,
    )
    reads = np.where(np.isnan(read_bytes), read_median[template], read_bytes)
    runtime = (
        median_s[template]
        * rng.lognormal(0.0, sigma[template])
        * (reads / read_median[template]) ** 0.3
        * (1.0 + 0.15 * np.log1p(fan_in))
        * slowdown
    )
    busy = cores[template] * cpu_util[template]
    package_w = (
        busy * hw["wcore"].astype(float)
        + hw["idle"].astype(float) * sockets * cores[template] / machine_cores
    )
    dram_w = 0.375 * memory_gib[template] * (0.3 + 0.7 * dram_activity[template]) + 0.2 * busy
    idle_gpu = np.array([GPU_WATTS.get(m, (0.0, 0.0, 1.0))[0] for m in hw["gpu_model"]])
    board_gpu = np.array([GPU_WATTS.get(m, (0.0, 0.0, 1.0))[1] for m in hw["gpu_model"]])
    gpu_w = gpus[template] * (idle_gpu + gpu_util[template] * (board_gpu - idle_gpu))
    fpga_w = fpgas[template] * (25.0 + gpu_util[template] * 50.0)

    # One row per (task, device kind), the first n of them.
    kinds = np.array(["cpu_package", "dram", "gpu", "fpga"])
    has = np.column_stack([np.ones(tasks, bool), np.ones(tasks, bool), is_gpu[template], is_fpga[template]])
    task_of_row, kind_of_row = np.nonzero(has)
    task_of_row, kind_of_row = task_of_row[:n], kind_of_row[:n]
    t = task_of_row
    watts = np.column_stack([package_w, dram_w, gpu_w, fpga_w])[t, kind_of_row]
    energy = watts * runtime[t] * rng.lognormal(0.0, 0.1, len(t))
    devices_held = np.column_stack([sockets, sockets, gpus[template], fpgas[template]])[t, kind_of_row]
    names = np.array(TEMPLATE_NAMES, dtype=object)
    name_type = np.where(
        variants[template] & (rng.random(tasks) < 0.4), names[template] + "-pe", names[template]
    )
    kind = kinds[kind_of_row]
    wf_uid = np.array([f"wf-{i:07d}" for i in range(n_workflows)], dtype=object)
    frame = pd.DataFrame(
        {
            "workflow_uid": wf_uid[wf_of_task[t]],
            "task_id": np.char.add("task-", np.arange(tasks).astype("U8"))[t],
            "task_template": names[template][t],
            "task_name_type": name_type[t],
            "workflow_template": np.array(WORKFLOW_NAMES, dtype=object)[w][t],
            "attempt": attempt[t],
            "cpu_request_cores": cores[template][t],
            "memory_request_bytes": (memory_gib[template] * GIB)[t],
            "gpu_count": gpus[template][t],
            "fpga_count": fpgas[template][t],
            "read_bytes": read_bytes[t],
            "depth_level": depth[t],
            "fan_in": fan_in[t],
            "fan_out": fan_out[t],
            "workflow_task_count": wf_tasks[wf_of_task].astype(float)[t],
            "cpu_model": hw["cpu_model"][t],
            "machine_sockets": sockets[t],
            "machine_cores": machine_cores[t],
            "cpu_speed_mhz": mhz[t],
            "machine_memory_bytes": (hw["mem"].astype(float) * GIB)[t],
            "gpu_model": hw["gpu_model"][t],
            "machine_gpu_count": hw["gpus"].astype(float)[t],
            "fpga_model": hw["fpga_model"][t],
            "machine_fpga_count": hw["fpgas"].astype(float)[t],
            "device_kind": kind,
            "devices_held": devices_held,
            "task_device_type": names[template][t] + "/" + kind,
            TARGET: energy,
        }
    )
    assert list(frame.columns[2:-1]) == FEATURES, "the table's features differ from models.features"
    return frame


# --------------------------------------------------------------------------------------------- measuring

# --------------------------------------------------------------------------------------------- measuring


def timed(run, *args, **options):
    """run(*args, **options), its wall-clock seconds and this process's CPU seconds (all its threads)."""
    wall, cpu = time.perf_counter(), time.process_time()
    result = run(*args, **options)
    return result, time.perf_counter() - wall, time.process_time() - cpu


def best_of(repeats: int, run, *args, **options):
    """The result, the fastest wall seconds with that run's CPU seconds, and the runs made: at most `repeats`,
    one if a run takes longer than LONG_RUN_S (the first run also pays for memory never touched before)."""
    best, runs = None, 0
    for _ in range(repeats):
        result, wall, cpu = timed(run, *args, **options)
        runs += 1
        if best is None or wall < best[1]:
            best = (result, wall, cpu)
        if wall > LONG_RUN_S:
            break
    return (*best, runs)


class PeakRss:
    """The peak resident set of this process between enter and exit (Linux: VmHWM, reset on enter by writing 5
    to /proc/self/clear_refs), and the resident set on enter; None where the peak cannot be reset."""

    def _kib(self, field: str) -> float:
        line = next(x for x in Path("/proc/self/status").read_text().splitlines() if x.startswith(field))
        return float(line.split()[1])

    def __enter__(self):
        self.peak_gib = self.before_gib = None
        try:
            Path("/proc/self/clear_refs").write_text("5")
            self.reset = True
            self.before_gib = self._kib("VmRSS:") / 2**20
        except OSError:
            self.reset = False
        return self

    def __exit__(self, *exc):
        if self.reset:
            self.peak_gib = self._kib("VmHWM:") / 2**20

    def text(self) -> str:
        if self.peak_gib is None:
            return "n/a"
        return f"{self.peak_gib:.2f} ({self.peak_gib - self.before_gib:+.2f})"


# A small launcher that forks and execs the command: the command's ru_maxrss then starts from the launcher's
# few MiB, not from this process's resident set (which a child inherits in ru_maxrss through fork or vfork).
LAUNCHER = """import json, os, sys, time
began = time.perf_counter()
pid = os.fork()
if pid == 0:
    os.execv(sys.argv[2], sys.argv[2:])
_, status, usage = os.wait4(pid, 0)
wall = time.perf_counter() - began
with open(sys.argv[1], "w") as out:
    json.dump({"code": os.waitstatus_to_exitcode(status), "wall": wall,
               "cpu": usage.ru_utime + usage.ru_stime, "rss_kib": usage.ru_maxrss}, out)
"""


def run_process(argv: list[str], env: dict[str, str] | None = None) -> tuple[float, float, float, str]:
    """A command as a child process: its wall seconds, CPU seconds (user + system), peak RSS in GiB, stdout."""
    with tempfile.TemporaryDirectory() as folder:
        report = Path(folder) / "usage.json"
        done = subprocess.run(
            [sys.executable, "-I", "-S", "-c", LAUNCHER, str(report), *argv],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
        )
        usage = json.loads(report.read_text()) if report.exists() else {"code": done.returncode}
    if done.returncode != 0 or usage["code"] != 0:
        raise RuntimeError(
            f"{' '.join(argv)} failed ({usage['code']}):\n{done.stdout}\n{done.stderr[-3000:]}"
        )
    return usage["wall"], usage["cpu"], usage["rss_kib"] / 2**20, done.stdout


def best_process(repeats: int, argv: list[str], env: dict[str, str] | None = None):
    """The fastest of up to `repeats` runs (one if it takes longer than LONG_RUN_S), and the runs made."""
    runs = []
    for _ in range(repeats):
        runs.append(run_process(argv, env))
        if runs[-1][0] > LONG_RUN_S:
            break
    return min(runs, key=lambda r: r[0]), len(runs)


def rate(rows: int, seconds: float) -> str:
    return f"{rows / seconds:>13,.0f} rows/s"


def load() -> str:
    one, five, _ = os.getloadavg()
    return f"load average {one:.2f} (1 min), {five:.2f} (5 min) on {os.cpu_count()} cores"


def one_core(model: TabularRegressor) -> None:
    """The library model's own threads set to 1 (threadpool_limits(1) around the calls does the rest)."""
    model.threads = 1
    if model.model in ("xgboost", "rf"):
        model.estimator_.set_params(n_jobs=1)
    if model.model == "xgboost":
        model.estimator_.get_booster().set_param({"nthread": 1})


def describe(model: TabularRegressor) -> str:
    """How big the fitted library model is: what its prediction time is proportional to."""
    estimator = model.estimator_
    if model.model == "xgboost":
        nodes = estimator.get_booster().trees_to_dataframe()
        splits = nodes[nodes["Feature"] != "Leaf"]
        categorical = splits["Category"].notna().sum() if "Category" in splits else 0
        return (
            f"{estimator.get_booster().num_boosted_rounds()} trees of depth <= {estimator.max_depth}, "
            f"{len(nodes) / nodes['Tree'].nunique():.0f} nodes per tree, {categorical / max(len(splits), 1):.0%} "
            "of splits on categories"
        )
    if model.model == "hgb":
        leaves = [p.get_n_leaf_nodes() for trees in estimator._predictors for p in trees]
        return f"{estimator.n_iter_} trees (early stopping; max {estimator.max_iter}), {np.mean(leaves):.0f} leaves per tree"
    if model.model == "rf":
        trees = [t.tree_ for t in estimator.estimators_]
        return (
            f"{len(trees)} trees, {np.mean([t.node_count for t in trees]):,.0f} nodes and depth "
            f"{np.mean([t.max_depth for t in trees]):.0f} per tree"
        )
    return f"{len(np.ravel(estimator.coef_))} coefficients"


class EncodingOnly:
    """Stands in for the library model: keeps the matrix TabularRegressor.fit hands it and learns nothing."""

    def fit(self, matrix: np.ndarray, z: np.ndarray) -> EncodingOnly:
        self.matrix = matrix
        return self


@contextmanager
def library_override(name: str, stub: bool = False, **params):
    """models.estimators._library_model with `params` changed for model `name` (a callable value is called with
    the model's FeatureEncoder), or (stub) replaced by EncodingOnly, so that TabularRegressor.fit times the
    library's own encoding alone."""
    original = estimators._library_model

    def build(model, encoder, *args, **options):
        if model != name:
            return original(model, encoder, *args, **options)
        if stub:
            return EncodingOnly()
        values = {key: value(encoder) if callable(value) else value for key, value in params.items()}
        return original(model, encoder, *args, **options).set_params(**values)

    estimators._library_model = build
    try:
        yield
    finally:
        estimators._library_model = original


def code_fingerprint() -> str:
    """SHA-256 (12 digits) of models/*.py: others edit them, and a run that spans an edit mixes versions."""
    digest = hashlib.sha256()
    for path in sorted((ROOT / "models").glob("*.py")):
        digest.update(path.name.encode() + path.read_bytes())
    return digest.hexdigest()[:12]


# ------------------------------------------------------------------------------------------------- training


def regressor(name: str, threads: int | None = None) -> TabularRegressor:
    return TabularRegressor(name, NUMERIC, CATEGORICAL, "log", seed=0, threads=threads)


def encode(name: str, frame: pd.DataFrame, y: np.ndarray) -> np.ndarray:
    """The matrix TabularRegressor(name).fit hands its library model, made by its own encoding (trees: codes +
    cross-fitted target means; linear: standardised numbers, missing flags, one-hot categories)."""
    with library_override(name, stub=True):
        return regressor(name).fit(frame, y).estimator_.matrix


def training(frame: pd.DataFrame, args, largest: bool) -> dict[str, TabularRegressor]:
    from sklearn.linear_model import LinearRegression

    n = len(frame)
    y = frame[TARGET].to_numpy()
    z = np.log(y)
    threads = os.cpu_count() if n >= SMALL_TABLE_ROWS else 1
    print(
        f"\ntraining on {n:,} rows, library threads {threads} (best of up to {args.repeats}, one run if > "
        f"{LONG_RUN_S:.0f} s; {load()})"
    )
    rows = []
    median = GroupMedianBaseline("task_type_median", ["device_kind", "task_template"])
    _, median_s, median_cpu, runs = best_of(args.repeats, median.fit, frame, y)
    rows.append(
        ("baseline GroupMedianBaseline.fit (device_kind, task_template)", median_s, median_cpu, runs, "")
    )
    one_hot, one_hot_s, one_hot_cpu, runs = best_of(args.repeats, encode, "linear", frame, y)
    rows.append(
        (f"  one-hot encoding (part of linear; {one_hot.shape[1]} columns)", one_hot_s, one_hot_cpu, runs, "")
    )
    with threadpool_limits(threads):
        _, ols_s, ols_cpu, runs = best_of(args.repeats, LinearRegression().fit, one_hot, z)
    rows.append(("baseline LinearRegression.fit on the one-hot matrix", ols_s, ols_cpu, runs, ""))
    del one_hot
    tree_matrix, tree_s, tree_cpu, runs = best_of(args.repeats, encode, "xgboost", frame, y)
    rows.append(
        (f"  tree encoding (part of trees; codes + 5-fold target means, {tree_matrix.shape[1]} columns)", tree_s, tree_cpu, runs, "")
    )  # fmt: skip
    del tree_matrix
    fitted = {}
    for name in args.models:
        model = regressor(name)
        if name == "rf" and largest:
            probe = regressor(name)
            with library_override("rf", n_estimators=RF_PROBE_TREES), PeakRss() as peak:
                _, probe_s, probe_cpu = timed(probe.fit, frame, y)
            estimate = tree_s + (probe_s - tree_s) * RF_TREES / RF_PROBE_TREES
            rows.append(
                (
                    f"  rf with {RF_PROBE_TREES} of its {RF_TREES} trees (probe)",
                    probe_s,
                    probe_cpu,
                    1,
                    peak.text(),
                )
            )
            if estimate > args.rf_cap_seconds:
                what = f"rf TabularRegressor.fit NOT RUN: extrapolated (> cap {args.rf_cap_seconds:.0f} s)"
                rows.append((what, estimate, float("nan"), 0, ""))
                probe.probe_trees = RF_PROBE_TREES  # prediction scales the probe's time, and says so
                fitted[name] = probe
                continue
        with PeakRss() as peak:
            _, fit_s, fit_cpu, runs = best_of(args.repeats, model.fit, frame, y)
        rows.append((f"{name} TabularRegressor.fit", fit_s, fit_cpu, runs, peak.text()))
        fitted[name] = model
    print(
        f"  {'what':<86} {'wall s':>8} {'CPU s':>8} {'runs':>4} {'x median':>9} {'x OLS':>7} {'k rows/s':>9}  "
        "peak RSS GiB (+ over start)"
    )
    for what, wall, cpu, runs, rss in rows:
        print(
            f"  {what:<86} {wall:8.2f} {cpu:8.2f} {runs:4d} {wall / median_s:9.1f} {wall / ols_s:7.1f} "
            f"{n / wall / 1e3:9.1f}  {rss}"
        )
    print(
        "  x median, x OLS: wall time as a multiple of the baselines' fits on the same rows (GroupMedianBaseline, "
        "LinearRegression on the one-hot matrix); an indented encoding row is part of the fits below it."
    )
    for name, model in fitted.items():
        print(f"  {name}: {describe(model)}")
    return fitted


def whole_training(frame: pd.DataFrame, table: Path, model_dir: Path, args) -> None:
    """models.training.train in this process and `jouletrace train` as a process, xgboost, on the same table."""
    from models.report import write_report
    from models.store import save_model

    options = TrainOptions(
        target=TARGET, features=tuple(FEATURES), split="group:workflow_uid", model="xgboost"
    )
    stamps: list[tuple[float, str]] = []
    print(f"\nwhole training, --model xgboost, {len(frame):,} rows ({load()}):")
    result, train_s, train_cpu = timed(
        train, frame, options, "benchmark table", progress=lambda m: stamps.append((time.perf_counter(), m))
    )
    done = time.perf_counter()
    m = result.metrics
    folds = len([s for s in stamps if s[1].startswith("cross-validating")])
    with tempfile.TemporaryDirectory() as folder:
        _, report_s, report_cpu = timed(write_report, folder, result, "benchmark", [], seed=0)
        _, save_s, save_cpu = timed(save_model, folder, result.model, {}, m)
    print(
        f"  models.training.train (in process)          {train_s:8.2f} s wall ({train_cpu:7.2f} s CPU): "
        f"{stamps[-1][0] - stamps[0][0]:.2f} s for {folds} cross-validation fits (each on ~{m['n_train'] * (folds - 1) // folds:,} rows), "
        f"{done - stamps[-1][0]:.2f} s for the final fit on {m['n_train']:,} rows + test prediction + baselines"
    )
    print(
        f"  + models.report.write_report (in process)   {report_s:8.2f} s wall ({report_cpu:7.2f} s CPU): "
        "permutation importance (3 repeats x 25 features on the test rows) and 3 plots"
    )
    print(f"  + models.store.save_model (in process)      {save_s:8.2f} s wall ({save_cpu:7.2f} s CPU)")
    argv = [
        str(Path(sys.executable).with_name("jouletrace")), "train", "--table", str(table), "--target", TARGET,
        "--features", ",".join(FEATURES), "--split", "group:workflow_uid", "--model", "xgboost", "--out", str(model_dir),
    ]  # fmt: skip
    wall, cpu, rss, _ = run_process(argv)
    inside = train_s + report_s + save_s
    print(
        f"  jouletrace train --model xgboost (process)  {wall:8.2f} s wall ({cpu:7.2f} s CPU, peak RSS {rss:.2f} GiB): "
        f"{wall / train_s:.2f}x the in-process train, {wall / inside:.2f}x train + report + save "
        f"(the rest: interpreter, imports, reading the Parquet file)"
    )
    best = min(m["baselines"], key=lambda b: m["baselines"][b]["mae"])
    print(
        f"  (sanity: test MAPE {m['mape']:.1%}, median APE {m['median_ape']:.1%}; best baseline {best}: MAPE "
        f"{m['baselines'][best]['mape']:.1%}; {m['interval_level']:.0%} intervals cover {m['interval_coverage']:.1%})"
    )


# ----------------------------------------------------------------------------------------------- prediction


def prediction(
    frame: pd.DataFrame, fitted: dict[str, TabularRegressor], args
) -> dict[str, tuple[float, float]]:
    """One-core rows/s (wall, CPU) of every native batch prediction; prints the table."""
    from sklearn.linear_model import LinearRegression

    n = len(frame)
    y = frame[TARGET].to_numpy()
    features = frame[FEATURES]
    native: dict[str, tuple[float, float]] = {}
    print(
        f"\nprediction on one core, {n:,} rows (best of up to {args.repeats}, one run if > {LONG_RUN_S:.0f} s; {load()}):"
    )
    header = f"  {'what':<62} {'wall s':>8} {'CPU s':>8} {'runs':>4} {'rows/s':>18} {'rows/CPU s':>12} {'x baseline':>10}"

    def line(what: str, wall: float, cpu: float, runs: int, baseline: float | None = None) -> None:
        ratio = f"{wall / baseline:9.1f}x" if baseline else ""
        print(f"  {what:<62} {wall:8.3f} {cpu:8.3f} {runs:4d} {rate(n, wall)} {n / cpu:12,.0f} {ratio}")

    with threadpool_limits(1):
        median = GroupMedianBaseline("task_type_median", ["device_kind", "task_template"]).fit(frame, y)
        _, median_s, median_cpu, median_runs = best_of(args.repeats, median.predict, features)
        one_hot = encode("linear", frame, y)
        ols = LinearRegression().fit(one_hot, np.log(y))
        _, ols_s, ols_cpu, ols_runs = best_of(args.repeats, ols.predict, one_hot)
        del one_hot
        print(header)
        line("baseline (a): LinearRegression.predict(one-hot matrix)", ols_s, ols_cpu, ols_runs)
        line("baseline (b): GroupMedianBaseline.predict(frame)", median_s, median_cpu, median_runs)
        for name, model in fitted.items():
            one_core(model)
            scale = RF_TREES / getattr(model, "probe_trees", RF_TREES)
            note = f" [{model.probe_trees} trees, time x {scale:.0f}]" if scale != 1 else ""
            matrix, matrix_s, matrix_cpu, runs = best_of(args.repeats, model.matrix, features)
            calls = [("estimator_.predict(matrix)", model.estimator_.predict)]
            if name == "xgboost":
                calls.append(
                    ("get_booster().inplace_predict(matrix)", model.estimator_.get_booster().inplace_predict)
                )
            for label, call in calls:
                _, call_s, call_cpu, runs = best_of(args.repeats, call, matrix)
                call_s, call_cpu = call_s * scale, call_cpu * scale
                native[f"{name} {label}"] = (n / call_s, n / call_cpu)
                line(f"(a) {name} {label}{note}", call_s, call_cpu, runs, ols_s)
            line(f"    {name} .matrix(frame): the encoding in (b)", matrix_s, matrix_cpu, runs)
            del matrix
            _, whole_s, whole_cpu, runs = best_of(args.repeats, model.predict, features)
            if scale != 1:
                whole_s = matrix_s + (whole_s - matrix_s) * scale
                whole_cpu = matrix_cpu + (whole_cpu - matrix_cpu) * scale
            line(f"(b) {name} TabularRegressor.predict(frame){note}", whole_s, whole_cpu, runs, median_s)
    print(
        "  x baseline: wall time as a multiple of (a) LinearRegression.predict on its matrix, (b) "
        "GroupMedianBaseline.predict on the same DataFrame; rows/CPU s: rows per second of this process's CPU time"
    )
    return native


def settings(model: TabularRegressor) -> str:
    """The library parameters that set a tree model's prediction cost."""
    p = model.estimator_.get_params()
    if model.model == "xgboost":
        splits = "category splits" if p.get("enable_categorical") else "codes as numbers"
        return f"{p['n_estimators']} trees, depth {p['max_depth']}, learning rate {p['learning_rate']:g}, {splits}"
    if model.model == "hgb":
        trees = model.estimator_.n_iter_
        return f"{trees} trees (max {p['max_iter']}) of {p['max_leaf_nodes']} leaves, learning rate {p['learning_rate']:g}"
    depth = "unlimited" if p["max_depth"] is None else p["max_depth"]
    return f"{p['n_estimators']} trees, depth {depth}, min_samples_leaf {p['min_samples_leaf']}"


def category_types(encoder) -> list[str]:
    """XGBoost feature types with the category-code columns as categories (the target-mean columns numbers)."""
    return ["c" if c else "q" for c in encoder.categorical_mask()] + ["q"] * len(encoder.categorical)


NUMBERS = {"feature_types": None, "enable_categorical": False}
SMALLER = {
    "xgboost": [
        {"n_estimators": 400, "learning_rate": 0.05, "feature_types": category_types, "enable_categorical": True, "max_cat_to_onehot": 1},
        {"n_estimators": 100, "learning_rate": 0.2, **NUMBERS},
        {"n_estimators": 50, "learning_rate": 0.3, **NUMBERS},
        {"n_estimators": 50, "max_depth": 4, "learning_rate": 0.3, **NUMBERS},
        {"n_estimators": 30, "learning_rate": 0.4, **NUMBERS},
    ],
    "hgb": [
        {"max_iter": 100, "learning_rate": 0.2},
        {"max_iter": 50, "learning_rate": 0.3, "max_leaf_nodes": 15},
    ],
    "rf": [
        {"n_estimators": 50, "max_depth": 12, "min_samples_leaf": 5},
        {"n_estimators": 20, "max_depth": 10, "min_samples_leaf": 10},
    ],
}  # fmt: skip


def smaller_models(frame: pd.DataFrame, args) -> None:
    """What prediction speed other settings of the tree models would give, and at what accuracy: each model as
    models/estimators.py has it and with some library parameters changed, through TabularRegressor (its own
    encoding), fitted on the first half of up to 200k rows (whole workflows: rows are in workflow order), scored
    and timed (native batch prediction) on the second half, all on one core."""
    rows = min(len(frame), 200_000)
    half = rows // 2
    fit_part, test_part = frame.iloc[:half], frame.iloc[half:rows]
    y_fit, y_test = fit_part[TARGET].to_numpy(), test_part[TARGET].to_numpy()
    print(
        f"\nwhat-if, other settings of the tree models (fitted on {half:,} rows, scored and timed on the next "
        f"{rows - half:,}; native batch prediction on one core; {load()}):"
    )
    print(
        f"  {'model':<84} {'fit CPU s':>9} {'rows/s':>18} {'rows/CPU s':>12} {'test MAPE':>9} {'median APE':>10}"
    )
    with threadpool_limits(1):
        for name in [m for m in SMALLER if m in args.models]:
            seen = set()
            for index, params in enumerate([{}, *SMALLER[name]]):
                model = regressor(name, threads=1)
                with library_override(name, **params):
                    _, _, fit_cpu = timed(model.fit, fit_part, y_fit)
                if settings(model) in seen:
                    continue  # models/ has these settings already
                seen.add(settings(model))
                one_core(model)
                matrix = model.matrix(test_part[FEATURES])
                _, wall, cpu, _ = best_of(args.repeats, model.estimator_.predict, matrix)
                ape = np.abs(model.inverse(model.estimator_.predict(matrix)) - y_test) / y_test
                what = f"{name} {settings(model)}" + (" (as models/ has it)" if index == 0 else "")
                print(
                    f"  {what:<84} {fit_cpu:9.1f} {rate(len(matrix), wall)} {len(matrix) / cpu:12,.0f} "
                    f"{ape.mean():9.1%} {np.median(ape):10.1%}"
                )


def command_prediction(frame: pd.DataFrame, model_dir: Path, folder: Path, args) -> None:
    n = len(frame)
    table = folder / "predict.parquet"
    frame.drop(columns=[TARGET]).to_parquet(table, index=False)
    size_mib = table.stat().st_size / 2**20
    python = sys.executable
    copy = [python, "-c", "import sys, pandas as p; p.read_parquet(sys.argv[1]).to_parquet(sys.argv[2], index=False)",
            str(table), str(folder / "copy.parquet")]  # fmt: skip
    predict = [str(Path(python).with_name("jouletrace")), "predict", "--model", str(model_dir), "--table", str(table),
               "--out", str(folder / "predicted.parquet")]  # fmt: skip
    single = {**os.environ, "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    print(
        f"\ncommands as processes on a {n:,}-row Parquet file ({size_mib:.0f} MiB; the xgboost model folder "
        f"written by jouletrace train above), best of up to {args.repeats} ({load()}):"
    )
    imports = [python, "-c", "import models.api, models.store, pipelines.cli, xgboost"]
    base = best_process(args.repeats, copy, single)
    runs = [
        ("baseline: python -c read_parquet(...).to_parquet(...), 1 thread", base),
        (
            "for scale: python -c import models.api, pipelines.cli, xgboost",
            best_process(args.repeats, imports, single),
        ),
        ("jouletrace predict --table, OMP_NUM_THREADS=1", best_process(args.repeats, predict, single)),
        (f"jouletrace predict --table, all {os.cpu_count()} cores", best_process(args.repeats, predict)),
    ]
    print(
        f"  {'what':<64} {'wall s':>8} {'CPU s':>8} {'runs':>4} {'RSS GiB':>8} {'rows/s':>18} {'x baseline':>10}"
    )
    for what, ((wall, cpu, rss, _), count) in runs:
        print(
            f"  {what:<64} {wall:8.2f} {cpu:8.2f} {count:4d} {rss:8.2f} {rate(n, wall)} {wall / base[0][0]:9.2f}x"
        )
    added = runs[2][1][0][0] - base[0][0]
    print(
        f"  prediction adds {added:.2f} s on one core to reading and writing the file ({n / added:,.0f} rows/s of "
        "added time: model loading, imports, feature checks, encoding, prediction, intervals)"
    )


# --------------------------------------------------------------------------------------------------- main


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", help="comma list of table sizes (default 100000,1000000)")
    parser.add_argument("--quick", action="store_true", help="20000,100000 rows")
    parser.add_argument("--models", default=",".join(MODEL_NAMES), help="comma list of model names")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--repeats", type=int, default=3, help="runs of each timing; the fastest counts")
    parser.add_argument(
        "--rf-cap-seconds",
        type=float,
        default=300.0,
        help="longest random-forest fit run on the largest size",
    )
    args = parser.parse_args()
    sizes = (
        sorted(int(r) for r in args.rows.split(","))
        if args.rows
        else list(QUICK_ROWS if args.quick else DEFAULT_ROWS)
    )
    args.models = [m.strip() for m in args.models.split(",") if m.strip()]
    unknown = set(args.models) - set(MODEL_NAMES)
    if unknown or "xgboost" not in args.models:
        parser.error(f"--models: names among {', '.join(MODEL_NAMES)}, xgboost included")
    import sklearn
    import xgboost

    cpu = next((x.split(":", 1)[1].strip() for x in Path("/proc/cpuinfo").read_text().splitlines() if x.startswith("model name")), platform.processor())  # fmt: skip
    print(
        f"{os.cpu_count()} cores ({cpu}); Python {platform.python_version()}, xgboost {xgboost.__version__}, "
        f"scikit-learn {sklearn.__version__}, pandas {pd.__version__}, numpy {np.__version__}; {load()}"
    )
    print(
        f"features ({len(FEATURES)}): {len(NUMERIC)} numeric, {len(CATEGORICAL)} categorical ({', '.join(CATEGORICAL)})"
    )
    fingerprint = code_fingerprint()
    print(f"models/*.py fingerprint {fingerprint}")
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="jouletrace-bench-models-") as tmp:
        folder = Path(tmp)
        model_dir = folder / "xgboost-model"
        for index, n in enumerate(sizes):
            frame, made_s, _ = timed(make_table, n, args.seed)
            levels = ", ".join(f"{c} {frame[c].nunique()}" for c in CATEGORICAL)
            kinds = ", ".join(
                f"{k} {v:.0%}" for k, v in frame["device_kind"].value_counts(normalize=True).items()
            )
            print(
                f"\n=== {n:,} rows: {frame['task_id'].nunique():,} tasks in {frame['workflow_uid'].nunique():,} workflows, "
                f"made in {made_s:.1f} s; rows by device kind: {kinds}; levels: {levels}; energy_joules median "
                f"{frame[TARGET].median():,.0f} J (5-95%: {frame[TARGET].quantile(0.05):,.0f}-{frame[TARGET].quantile(0.95):,.0f} J)"
            )
            fitted = training(frame, args, largest=index == len(sizes) - 1)
        # The whole training writes the model folder that `jouletrace predict` reads next, so that the two
        # commands run close together (the process loads models/ as it is then).
        print("\n=== whole commands and prediction")
        small = make_table(sizes[0], args.seed)
        table = folder / "train.parquet"
        small.to_parquet(table, index=False)
        whole_training(small, table, model_dir, args)
        del small
        command_prediction(frame, model_dir, folder, args)
        native = prediction(frame, fitted, args)
        del fitted
        smaller_models(frame, args)
        del frame
    print(f"\nfinished in {time.perf_counter() - started:.0f} s; {load()}")
    if code_fingerprint() != fingerprint:
        print(
            f"WARNING: models/*.py changed during the run ({fingerprint} -> {code_fingerprint()}): this process "
            "timed the code it imported at the start; the command processes timed the code of their own time"
        )
    for label, (wall_rate, cpu_rate) in native.items():
        name, call = label.split(" ", 1)
        if name == "linear":
            continue
        verdict = "met" if wall_rate >= GOAL_ROWS_PER_S else "not met"
        print(
            f"native batch prediction, {name} {call}, 1 core: {wall_rate:,.0f} rows/s "
            f"({cpu_rate:,.0f} per CPU second) (goal {GOAL_ROWS_PER_S:,}: {verdict})"
        )


if __name__ == "__main__":
    main()
