"""The evaluation report of a trained model: markdown plus PNG plots (predicted vs measured, error by task
type and device kind, feature importance), written next to the model."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from models.training import TrainingResult

TOP_TYPES = 15


def _png(figure: Figure) -> bytes:
    FigureCanvasAgg(figure)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
    return buffer.getvalue()


def _group_column(test: pd.DataFrame) -> str | None:
    for column in ("task_template", "task_device_type"):
        if column in test:
            return column
    categorical = [
        c
        for c in test.columns
        if not pd.api.types.is_numeric_dtype(test[c])
        and not pd.api.types.is_datetime64_any_dtype(test[c])
        and 1 < test[c].astype(str).nunique() < 50
    ]
    return categorical[0] if categorical else None


def predicted_vs_measured_png(result: TrainingResult) -> bytes:
    target, test = result.model.target, result.test
    y, estimate = test[target].to_numpy(), test[f"{target}_predicted"].to_numpy()
    lower, upper = test[f"{target}_lower"].to_numpy(), test[f"{target}_upper"].to_numpy()
    figure = Figure(figsize=(6.4, 5.6))
    axes = figure.add_subplot()
    kinds = test["device_kind"].astype(str) if "device_kind" in test else pd.Series(["rows"] * len(test))
    for kind in sorted(kinds.unique()):
        rows = (kinds == kind).to_numpy()
        axes.errorbar(
            y[rows],
            estimate[rows],
            yerr=[estimate[rows] - lower[rows], upper[rows] - estimate[rows]],
            fmt="o",
            ms=3,
            alpha=0.6,
            elinewidth=0.5,
            label=kind,
        )
    positive = bool((y > 0).all() and (estimate > 0).all())
    low, high = float(min(y.min(), estimate.min())), float(max(y.max(), estimate.max()))
    axes.plot([low, high], [low, high], color="black", lw=1, label="predicted = measured")
    if positive:
        axes.set_xscale("log")
        axes.set_yscale("log")
    axes.set_xlabel(f"measured {target}")
    axes.set_ylabel(f"predicted {target} ({result.metrics['model']})")
    coverage = result.metrics["interval_coverage"]
    axes.set_title(
        f"held-out rows ({result.metrics['split']}): MAPE {result.metrics['mape']:.1%}, "
        f"{result.metrics['interval_level']:.0%} intervals cover {coverage:.1%}",
        fontsize=9,
    )
    axes.legend(fontsize=8)
    return _png(figure)


def _ape(y: np.ndarray, estimate: np.ndarray) -> np.ndarray:
    return np.where(y != 0, np.abs(y - estimate) / np.where(y != 0, np.abs(y), 1.0), np.nan)


def error_table(result: TrainingResult, column: str) -> pd.DataFrame:
    """MAPE of the model and of each baseline per value of `column` on the test part, most rows first."""
    target, test = result.model.target, result.test
    y = test[target].to_numpy()
    errors = {"model": _ape(y, test[f"{target}_predicted"].to_numpy())}
    errors |= {name: _ape(y, values) for name, values in result.baseline_predictions.items()}
    frame = pd.DataFrame(errors).assign(group=test[column].astype(str).to_numpy())
    table = frame.groupby("group").mean()
    table.insert(0, "rows", frame.groupby("group").size())
    return table.sort_values("rows", ascending=False)


def error_by_group_png(result: TrainingResult) -> bytes | None:
    panels = [c for c in (_group_column(result.test), "device_kind") if c and c in result.test]
    if not panels:
        return None
    best = min(result.metrics["baselines"], key=lambda b: result.metrics["baselines"][b]["mae"])
    figure = Figure(figsize=(11, 4.8))
    for index, column in enumerate(dict.fromkeys(panels)):
        table = error_table(result, column).head(TOP_TYPES)
        axes = figure.add_subplot(1, len(dict.fromkeys(panels)), index + 1)
        positions = np.arange(len(table))
        axes.barh(positions - 0.2, table["model"], height=0.4, label=f"model ({result.metrics['model']})")
        axes.barh(positions + 0.2, table[best], height=0.4, label=f"best baseline ({best})")
        axes.set_yticks(
            positions, [f"{g} ({n})" for g, n in zip(table.index, table["rows"], strict=True)], fontsize=7
        )
        axes.invert_yaxis()
        axes.set_xlabel("mean absolute percentage error on held-out rows")
        axes.set_title(f"by {column}", fontsize=9)
        axes.legend(fontsize=7)
    figure.tight_layout()
    return _png(figure)


def permutation_importances(result: TrainingResult, seed: int, repeats: int = 3) -> pd.Series:
    """Increase of the test MAE when one feature's values are shuffled (mean over repeats)."""
    from sklearn.inspection import permutation_importance

    test = result.test
    names = result.model.features.names
    outcome = permutation_importance(
        result.model.regressor,
        test[names],
        test[result.model.target].to_numpy(),
        scoring="neg_mean_absolute_error",
        n_repeats=repeats,
        random_state=seed,
    )
    return pd.Series(outcome.importances_mean, index=names).sort_values(ascending=False)


def importance_png(importances: pd.Series, target: str) -> bytes:
    top = importances.head(TOP_TYPES)[::-1]
    figure = Figure(figsize=(6.4, 4.8))
    axes = figure.add_subplot()
    axes.barh(np.arange(len(top)), top.to_numpy())
    axes.set_yticks(np.arange(len(top)), top.index, fontsize=8)
    axes.set_xlabel(f"test MAE increase when shuffled ({target} units)")
    axes.set_title("permutation feature importance (held-out rows)", fontsize=9)
    return _png(figure)


def _number(value: float | None, percent: bool = False) -> str:
    if value is None or (isinstance(value, float) and not np.isfinite(value)):
        return "n/a"
    return f"{value:.1%}" if percent else f"{value:,.3g}"


def metrics_markdown(metrics: dict) -> list[str]:
    lines = [
        "| predictor | MAE | MAPE | median APE | R² |",
        "|---|---|---|---|---|",
        f"| **{metrics['model']}** (chosen) | {_number(metrics['mae'])} | {_number(metrics['mape'], True)} | "
        f"{_number(metrics['median_ape'], True)} | {_number(metrics['r2'])} |",
    ]
    for name, values in metrics["baselines"].items():
        lines.append(
            f"| {name} | {_number(values['mae'])} | {_number(values['mape'], True)} | "
            f"{_number(values.get('median_ape'), True)} | {_number(values['r2'])} |"
        )
    return lines


def write_report(
    out_dir: str | Path,
    result: TrainingResult,
    title: str,
    extra_sections: list[str] | None = None,
    seed: int = 0,
) -> dict[str, Path]:
    """report.md and its PNGs in `out_dir`; returns the written paths by name."""
    from datasets.store import write_bytes_atomic

    out = Path(out_dir)
    metrics = result.metrics
    importances = permutation_importances(result, seed)
    images = {
        "predicted_vs_measured": predicted_vs_measured_png(result),
        "error_by_group": error_by_group_png(result),
        "feature_importance": importance_png(importances, result.model.target),
    }
    written = {name: write_bytes_atomic(data, out / f"{name}.png") for name, data in images.items() if data}
    cv = ", ".join(f"{name} {value:,.4g}" for name, value in metrics["selection"]["cv_mae"].items())
    lines = [
        f"# {title}",
        "",
        f"Target `{metrics['target']}`; {metrics['n_train']} training rows, {metrics['n_test']} held-out rows "
        f"(split `{metrics['split']}`, test fraction {metrics['test_fraction']}, seed {metrics['seed']}).",
        f"Model chosen by {metrics['selection']['cv_folds']}-fold cross-validation on the training part "
        f"(MAE: {cv}).",
        f"{metrics['interval_level']:.0%} prediction intervals (split-conformal) cover "
        f"{metrics['interval_coverage']:.1%} of the held-out rows.",
        "",
        *metrics_markdown(metrics),
        "",
        "Top features by permutation importance (test MAE increase): "
        + ", ".join(f"`{n}` {v:,.3g}" for n, v in importances.head(8).items()),
        "",
        *(extra_sections or []),
        *[f"![{name}]({path.name})" for name, path in written.items()],
        "",
    ]
    written["report"] = write_bytes_atomic("\n".join(lines).encode(), out / "report.md")
    metrics["feature_importance"] = {k: float(v) for k, v in importances.items()}
    return written
