"""Honest evaluation on a trace dataset: the same model choice scored on held-out workflows, held-out task
types and later runs, and across machines (a task type predicted on hardware it never ran on).

Cross-machine: machines are grouped by hardware (CPU, GPU and FPGA models). For each hardware group and each
of K folds of workflows, the model is trained on the rows of the *other* hardware in the other workflows
and scored on this hardware's rows in the held-out workflows, for task types that ran elsewhere in
training (a type never seen anywhere is the task-type split's question, not this one). The table says how
far each test was from what training saw: the CPU speeds in training against the held-out machine's.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd

from models.baselines import GroupMedianBaseline
from models.errors import ModelInputError
from models.estimators import TabularRegressor
from models.options import SplitSpec, TrainOptions
from models.splits import folds
from models.training import (
    FeatureSpec,
    Progress,
    clean_target,
    resolve_features,
    scores,
    target_transform,
    train,
)

HONEST_SPLITS = {
    "held-out workflows": "group:workflow_uid",
    "held-out task types": "group:task_template",
    "later runs (time)": "time:started_at",
}
HARDWARE_COLUMNS = ("cpu_model", "gpu_model", "fpga_model")


def evaluate_splits(
    frame: pd.DataFrame,
    options: TrainOptions,
    features: list[str],
    source: str,
    progress: Progress | None = None,
) -> dict[str, dict]:
    """Metrics of the model (chosen anew inside each training part) and the baselines, per split kind."""
    results = {}
    for name, split in HONEST_SPLITS.items():
        column = split.split(":", 1)[1]
        if column not in frame or frame[column].nunique() < 3:
            continue
        if progress:
            progress(f"evaluating on {name}")
        run = replace(options, split=SplitSpec.parse(split))
        try:
            results[name] = train(frame, run, source, kind="dataset", default_features=features).metrics
        except ModelInputError as exc:
            results[name] = {"skipped": str(exc)}
    return results


def _prepared(
    frame: pd.DataFrame, options: TrainOptions, features: list[str], source: str
) -> tuple[pd.DataFrame, FeatureSpec, str]:
    """The rows with a target, the features and the target transform, as `train` resolves them."""
    frame = clean_target(frame, options.target, source)
    spec, _ = resolve_features(frame, replace(options, split=None), SplitSpec(), source, features)
    return frame, spec, target_transform(options, frame[options.target].to_numpy())


def every_workflow_once(
    frame: pd.DataFrame, options: TrainOptions, features: list[str], model_name: str, source: str
) -> dict:
    """Grouped K-fold over all workflows: every row predicted once by a model and baselines that did not see
    its workflow. Steadier than one hold-out of a few workflows; no intervals (nothing left to calibrate on)."""
    from models.baselines import baselines_for

    frame, spec, transform = _prepared(frame, options, features, source)
    y = frame[options.target].to_numpy()
    predicted = np.full(len(frame), np.nan)
    base: dict[str, np.ndarray] = {}
    split = SplitSpec("group", "workflow_uid")
    for fit, check in folds(frame, split, options.cv_folds, options.seed, source):
        model = TabularRegressor(model_name, spec.numeric, spec.categorical, transform, options.seed)
        predicted[check] = model.fit(frame.iloc[fit], y[fit]).predict(frame.iloc[check])
        for baseline in baselines_for(
            "dataset", options.target, options.mode, list(spec.numeric), list(spec.categorical)
        ):
            values = base.setdefault(baseline.name, np.full(len(frame), np.nan))
            values[check] = baseline.fit(frame.iloc[fit], y[fit]).predict(frame.iloc[check])
    baselines = {name: scores(y, values) for name, values in base.items()}
    model = scores(y, predicted)
    return {
        "model": model_name,
        **model,
        "interval_coverage": None,
        "n_train": None,
        "n_test": int(len(frame)),
        "split": f"{options.cv_folds}-fold {split}",
        "baselines": baselines,
        "beats_every_baseline": all(model["mae"] < b["mae"] for b in baselines.values()),
    }


def hardware_signature(frame: pd.DataFrame) -> pd.Series:
    parts = [
        frame[c].fillna("-").astype(str) if c in frame else pd.Series("-", index=frame.index)
        for c in HARDWARE_COLUMNS
    ]
    return parts[0].str.cat(parts[1:], sep=" · ")


def cross_machine(
    frame: pd.DataFrame,
    options: TrainOptions,
    features: list[str],
    model_name: str,
    source: str,
    progress: Progress | None = None,
) -> list[dict]:
    """Per hardware group: error on its rows of a model trained without any of its rows (and without the
    held-out workflows), against the task-type median of the same training rows."""
    frame, spec, transform = _prepared(frame, options, features, source)
    hardware = hardware_signature(frame)
    type_column = "task_device_type" if "task_device_type" in frame else "task_template"
    workflow_folds = folds(frame, SplitSpec("group", "workflow_uid"), options.cv_folds, options.seed, source)
    rows = []
    for signature in sorted(hardware.unique()):
        on_it = (hardware == signature).to_numpy()
        truth, model_pred, base_pred, train_speeds = [], [], [], []
        for fit_rows, check_rows in workflow_folds:
            fit = np.intersect1d(fit_rows, np.flatnonzero(~on_it))
            check = np.intersect1d(check_rows, np.flatnonzero(on_it))
            if len(fit) < 20 or len(check) == 0:
                continue
            seen = set(frame[type_column].iloc[fit])
            check = check[frame[type_column].iloc[check].isin(seen).to_numpy()]
            if len(check) == 0:
                continue
            if progress:
                progress(f"cross-machine: {signature}")
            y_fit = frame[options.target].to_numpy()[fit]
            model = TabularRegressor(model_name, spec.numeric, spec.categorical, transform, options.seed)
            model.fit(frame.iloc[fit], y_fit)
            baseline = GroupMedianBaseline("task_type_median", [type_column]).fit(frame.iloc[fit], y_fit)
            truth.append(frame[options.target].to_numpy()[check])
            model_pred.append(model.predict(frame.iloc[check]))
            base_pred.append(baseline.predict(frame.iloc[check]))
            if "cpu_speed_mhz" in frame:
                train_speeds.append(frame["cpu_speed_mhz"].iloc[fit].dropna().to_numpy())
        if not truth:
            continue
        y = np.concatenate(truth)
        speeds = np.concatenate(train_speeds) if train_speeds else np.empty(0)
        test_speed = frame.loc[on_it, "cpu_speed_mhz"].dropna().unique() if "cpu_speed_mhz" in frame else []
        rows.append(
            {
                "hardware": signature,
                "nodes": sorted(frame.loc[on_it, "host_node"].dropna().unique().tolist())
                if "host_node" in frame
                else [],
                "rows": int(len(y)),
                "model": scores(y, np.concatenate(model_pred)),
                "task_type_median": scores(y, np.concatenate(base_pred)),
                "train_cpu_speed_mhz": [float(speeds.min()), float(speeds.max())] if len(speeds) else None,
                "test_cpu_speed_mhz": [float(s) for s in test_speed],
            }
        )
    return rows


def cross_machine_tested(rows: list[dict]) -> list[str]:
    """One sentence per held-out hardware group: how far from training it was, and the errors there."""
    sentences = []
    for r in rows:
        speeds = r["train_cpu_speed_mhz"]
        held = ", ".join(f"{s:.0f}" for s in r["test_cpu_speed_mhz"]) or "unknown"
        trained = f"{speeds[0]:.0f}-{speeds[1]:.0f} MHz" if speeds else "unknown speeds"
        where = (
            "inside"
            if speeds and all(speeds[0] <= s <= speeds[1] for s in r["test_cpu_speed_mhz"])
            else "outside"
        )
        sentences.append(
            f"{r['hardware']} ({r['rows']} rows): CPU {held} MHz, {where} the training range {trained}; "
            f"MAPE {r['model']['mape']:.1%} against {r['task_type_median']['mape']:.1%} for the task-type median"
        )
    return sentences or ["not tested: the dataset has one hardware group"]


def splits_markdown(results: dict[str, dict]) -> list[str]:
    lines = [
        "## Honest splits",
        "",
        "| split | rows train/test | model | MAE | MAPE | R² | interval coverage | best baseline (MAE, MAPE) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, m in results.items():
        if "skipped" in m:
            lines.append(f"| {name} | skipped: {m['skipped']} | | | | | | |")
            continue
        best = min(m["baselines"], key=lambda b: m["baselines"][b]["mae"])
        b = m["baselines"][best]
        coverage = "-" if m["interval_coverage"] is None else f"{m['interval_coverage']:.1%}"
        rows = f"all {m['n_test']}" if m["n_train"] is None else f"{m['n_train']}/{m['n_test']}"
        lines.append(
            f"| {name} | {rows} | {m['model']} | {m['mae']:,.4g} | {m['mape']:.1%} | "
            f"{m['r2']:.3f} | {coverage} | {best} ({b['mae']:,.4g}, {b['mape']:.1%}) |"
        )
    return [*lines, ""]


def cross_machine_markdown(rows: list[dict]) -> list[str]:
    lines = [
        "## Cross-machine: hardware never seen in training",
        "",
        "Each row: trained without any row of this hardware (and without the held-out workflows), scored on "
        "this hardware's rows of task types that ran elsewhere.",
        "",
        "| held-out hardware | nodes | rows | model MAE | model MAPE | task-type median MAE | MAPE | "
        "training CPU MHz | held-out CPU MHz |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        speeds = r["train_cpu_speed_mhz"]
        lines.append(
            f"| {r['hardware']} | {', '.join(r['nodes'])} | {r['rows']} | {r['model']['mae']:,.4g} | "
            f"{r['model']['mape']:.1%} | {r['task_type_median']['mae']:,.4g} | {r['task_type_median']['mape']:.1%} | "
            f"{'-' if not speeds else f'{speeds[0]:.0f}-{speeds[1]:.0f}'} | "
            f"{', '.join(f'{s:.0f}' for s in r['test_cpu_speed_mhz'])} |"
        )
    return [*lines, ""]
