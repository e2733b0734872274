"""`jouletrace demo`: the whole pipeline on the sample world, checked against its ground truth."""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import dagster as dg
import pyarrow.parquet as pq

from datasets.accuracy import ErrorSummary, per_task_errors, summarize
from datasets.attribution import attribute
from datasets.reports import accuracy_plot_png, joules_by_device_kind
from datasets.sample_world import generate
from datasets.store import read_table, write_bytes_atomic
from pipelines.instance import prepare_dagster_home
from pipelines.run import materialize_everything, recorded_days, run_config
from pipelines.settings import Settings

# Sub-folders of --out that the demo owns and rebuilds on every run.
DEMO_OUTPUTS = ("sample-world", "assets", "dataset", "report", "exports", "models")


@dataclass
class DemoReport:
    out_dir: str
    dataset_dir: str
    dagster_home: str
    workflows: int
    tasks: int
    tasks_with_energy: int
    power_samples: int
    joules_by_device_kind: dict[str, float]
    checks_passed: int
    checks_failed: list[str]
    accuracy: ErrorSummary
    accuracy_requests_split: ErrorSummary
    elapsed_seconds: float
    plots: list[str]


def dagster_instance(out_dir: Path) -> dg.DagsterInstance:
    """A persistent instance under <out>/dagster_home, so `jouletrace ui` shows the demo's runs."""
    return dg.DagsterInstance.from_config(str(prepare_dagster_home(out_dir / "dagster_home")))


def run_demo(
    out_dir: str | Path, workflows: int, seed: int, echo: Callable[[str], None] = print
) -> DemoReport:
    started = time.monotonic()
    out_dir = Path(out_dir)
    for name in DEMO_OUTPUTS:
        shutil.rmtree(out_dir / name, ignore_errors=True)
    settings = Settings.under(out_dir, seed=seed, workflows=workflows)

    echo(f"[1/3] generating the sample world ({workflows} workflows, seed {seed}) in {settings.recorded_dir}")
    world = generate(settings.recorded_dir, n_workflows=workflows, seed=seed)
    echo(
        f"      {world.n_workflows} workflows, {world.n_tasks} task attempts, {world.n_power_samples} readings"
    )

    echo("[2/3] materializing every asset and running every check in process")
    with dagster_instance(out_dir) as instance:
        outcome = materialize_everything(settings, run_config(), instance, recorded_days(settings))
    if outcome.step_errors:
        raise RuntimeError("the demo run failed:\n" + "\n".join(outcome.step_errors))

    echo("[3/3] comparing attributed energy with the sample world's ground truth")
    task_energy = read_table(settings.dataset_dir, "task_energy")
    tasks = read_table(settings.dataset_dir, "tasks")
    truth = pq.read_table(settings.recorded_dir / "truth" / "task_energy.parquet")
    errors = per_task_errors(task_energy, truth)
    accuracy = summarize(errors)
    # The same readings split by requested cores alone (no usage, no fit), to show what those add.
    machines = read_table(settings.dataset_dir, "machines")
    samples = read_table(settings.dataset_dir, "power_samples")
    plain = attribute(tasks, samples, machines, split="requests").task_energy
    accuracy_requests_split = summarize(per_task_errors(plain, truth))
    report_dir = out_dir / "report"
    plots = [
        str(write_bytes_atomic(accuracy_plot_png(errors), report_dir / "attribution_vs_truth.png")),
        str(settings.dataset_dir / "plots" / "energy_by_task_type.png"),
    ]
    report = DemoReport(
        out_dir=str(out_dir),
        dataset_dir=str(settings.dataset_dir),
        dagster_home=str((out_dir / "dagster_home").resolve()),
        workflows=read_table(settings.dataset_dir, "workflows").num_rows,
        tasks=tasks.num_rows,
        tasks_with_energy=len(
            set(zip(*task_energy.select(["workflow_uid", "task_id"]).to_pydict().values(), strict=True))
        ),
        power_samples=samples.num_rows,
        joules_by_device_kind=joules_by_device_kind(task_energy),
        checks_passed=outcome.checks_passed,
        checks_failed=outcome.checks_failed,
        accuracy=accuracy,
        accuracy_requests_split=accuracy_requests_split,
        elapsed_seconds=round(time.monotonic() - started, 1),
        plots=plots,
    )
    write_bytes_atomic(json.dumps(asdict(report), indent=2).encode(), report_dir / "summary.json")
    return report


def energy_model_line(out_dir: str | Path) -> str | None:
    """The energy regressor's MAPE on held-out workflows against the best baseline's, if it was trained."""
    path = Settings.under(out_dir).models_dir / "energy_joules" / "metrics.json"
    if not path.exists():
        return None
    m = json.loads(path.read_text())
    mapes = {name: b["mape"] for name, b in m["baselines"].items() if b["mape"] is not None}
    if m["mape"] is None or not mapes:
        return None
    best = min(mapes, key=mapes.get)
    held_out = "held-out workflows" if m["split"] == "group:workflow_uid" else f"held-out rows ({m['split']})"
    return (
        f"  energy model   {m['model']} on {held_out}: MAPE {m['mape']:.1%} vs best baseline {best} "
        f"{mapes[best]:.1%}  ({path.parent / 'report.md'})"
    )


def scheduling_line(out_dir: str | Path) -> str | None:
    """What the energy-aware schedulers saved against HEFT on the dataset's workflows, if evaluated."""
    from allocate.scheduling.evaluate import summary

    path = Settings.under(out_dir).asset_dir / "scheduling_evaluation.parquet"
    if not path.exists():
        return None
    results = pq.read_table(path).to_pandas()
    traced = results[results["platform"] != "reference-9"]
    if traced.empty:
        return None
    table = summary(traced)
    best = table.sort_values("saved_within_5pct").iloc[-1]
    return (
        f"  scheduling     {traced['workflow'].nunique()} traced workflows, {len(results)} schedules "
        f"({'all valid' if results['valid'].all() else 'SOME INVALID'}): energy saved vs HEFT within 5% "
        f"longer makespan, median over families {table['saved_within_5pct'].median():.1%}, best "
        f"{best['family']} {best['saved_within_5pct']:.1%}"
    )


def format_report(report: DemoReport) -> str:
    acc = report.accuracy
    kinds = ", ".join(
        f"{kind} {joules / 1e6:.2f} MJ" for kind, joules in report.joules_by_device_kind.items()
    )
    checks = "all passed" if not report.checks_failed else f"FAILED: {', '.join(report.checks_failed)}"
    return "\n".join(
        [
            "",
            "jouletrace demo: done",
            f"  dataset        {report.dataset_dir}  (hive-partitioned Parquet; `jouletrace validate` it)",
            f"  contents       {report.workflows} workflows, {report.tasks} tasks "
            f"({report.tasks_with_energy} with energy), {report.power_samples} power readings",
            f"  energy         {kinds}",
            f"  checks         {report.checks_passed + len(report.checks_failed)} asset checks, {checks}",
            f"  accuracy       per-task relative error vs ground truth over {acc.tasks} tasks: "
            f"median {acc.median_relative_error:.2%}, p95 {acc.p95_relative_error:.2%}, "
            f"max {acc.max_relative_error:.2%}  (co-located CPU/DRAM energy split by measured container CPU "
            "time x each task type's fitted joules per CPU-second; pods sharing a time-sliced GPU by their GPU "
            "busy time)",
            f"                 split by requested cores alone instead: "
            f"median {report.accuracy_requests_split.median_relative_error:.2%}, "
            f"p95 {report.accuracy_requests_split.p95_relative_error:.2%}",
            f"  totals         attributed {acc.total_attributed_joules / 1e6:.3f} MJ, "
            f"truth {acc.total_truth_joules / 1e6:.3f} MJ",
            *filter(None, [energy_model_line(report.out_dir), scheduling_line(report.out_dir)]),
            f"  plots          {', '.join(report.plots)}",
            f"  summary        {Path(report.out_dir) / 'report' / 'summary.json'}",
            f"  UI             .venv/bin/jouletrace ui --data {report.out_dir}  (instance {report.dagster_home})",
            f"  took           {report.elapsed_seconds:.1f} s",
        ]
    )
