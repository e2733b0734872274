"""Model assets: the training table -> energy, power and runtime regressors -> one evaluation summary.

The regressors learn from the same upstream tables as the trace dataset (models.api does the work); each
writes its model folder (model, card, metrics.json, report.md, plots) to ``<models root>/<target>/``.
"""

import json
from collections.abc import Callable
from pathlib import Path

import dagster as dg
import pandas as pd
import pyarrow as pa

from datasets.storage import StoragePath, display_path, local_copy, local_output, storage_path
from datasets.store import write_bytes_atomic
from models.api import train_dataset_tables
from models.features import build_training_table
from models.options import TrainOptions
from models.tables import read_trace_dataset
from pipelines.metadata import png_markdown
from pipelines.traces.assets import TraceDatasetResource

GROUP = "models"
# The dataset asset the models learn from: they read the store, every day collected so far.
TRACES = "energy_traces"
# regressor asset -> the target it learns (also the name of its model folder)
TARGET_OF_ASSET = {
    "energy_regressor": "energy_joules",
    "power_regressor": "avg_power_watts",
    "runtime_regressor": "runtime_seconds",
}
PLOTS = ("predicted_vs_measured", "error_by_group", "feature_importance")
METRICS_FILE = "metrics.json"
REPORT_FILE = "report.md"


class ModelStoreResource(dg.ConfigurableResource):
    """Root folder of the model folders, one per target: ``<root>/<target>/``."""

    root: str

    def folder(self, target: str) -> StoragePath:
        """A local folder or, with object storage, a UPath (runs in separate pods share the models)."""
        return storage_path(self.root) / target

    def metrics(self, target: str) -> dict:
        path = self.folder(target) / METRICS_FILE
        if not path.exists():
            raise FileNotFoundError(f"{path}: the {target} regressor was never trained")
        return json.loads(path.read_text())


class TrainingSetConfig(dg.Config):
    """Which training table to keep: a target's rows and the features a mode may know (models/features.py)."""

    target: str = "energy_joules"
    mode: str = "before-run"
    device_kind: str | None = None


class RegressorConfig(dg.Config):
    """One training run (mirrors models.options.TrainOptions; `split` None: whole workflows held out).

    The defaults keep materializing everything quick: the power and runtime regressors fit one kind of
    model (``model="auto"`` chooses among xgboost, hgb, rf and linear by cross-validation, four times the
    fits) and skip `evaluate`, the honest splits and the cross-machine test; the energy regressor does both.
    """

    model: str = "xgboost"
    test_fraction: float = 0.2
    seed: int = 0
    interval_level: float = 0.9
    cv_folds: int = 5
    mode: str = "before-run"
    split: str | None = None
    evaluate: bool = False

    def options(self, target: str) -> TrainOptions:
        return TrainOptions(
            target=target,
            model=self.model,
            test_fraction=self.test_fraction,
            seed=self.seed,
            interval_level=self.interval_level,
            cv_folds=self.cv_folds,
            mode=self.mode,
            split=self.split,
        )


class EnergyRegressorConfig(RegressorConfig):
    """The headline model: chosen among every kind, and evaluated on every honest split."""

    model: str = "auto"
    evaluate: bool = True


def image_markdown(path: Path) -> dg.MetadataValue:
    return png_markdown(path.read_bytes(), path.stem)


def plot_metadata(folder: Path, prefix: str = "") -> dict[str, dg.MetadataValue]:
    """The model folder's plots, inline (the UI shows them with the materialization)."""
    return {
        f"{prefix}{name}": image_markdown(folder / f"{name}.png")
        for name in PLOTS
        if (folder / f"{name}.png").exists()
    }


def _number(value: float | None) -> dg.MetadataValue:
    return dg.MetadataValue.float(value) if value is not None else dg.MetadataValue.text("n/a")


def _log_progress(context: dg.AssetExecutionContext, target: str) -> Callable[[str], None]:
    return lambda message: context.log.debug(f"{target}: {message}")


@dg.asset(group_name=GROUP, kinds={"parquet"}, deps=[TRACES])
def training_set(
    context: dg.AssetExecutionContext, config: TrainingSetConfig, dataset: TraceDatasetResource
) -> dg.Output:
    """What the regressors learn from: one row per succeeded task and device kind, with the features a
    scheduler knows before the task runs (models/features.py)."""
    tables = read_trace_dataset(dataset.root)  # every day collected so far
    table = build_training_table(tables, config.target, config.mode, config.device_kind)
    frame = table.frame
    by_kind = frame["device_kind"].value_counts().to_dict() if "device_kind" in frame else {}
    context.log.info(
        f"{len(frame)} rows to learn {config.target} from ({config.mode}); left out: "
        + ", ".join(f"{n} {why}" for why, n in table.dropped.items())
    )
    return dg.Output(
        pa.Table.from_pandas(frame, preserve_index=False),
        metadata={
            "dagster/row_count": len(frame),
            "target": config.target,
            "mode": config.mode,
            "rows_by_device_kind": dg.MetadataValue.json({k: int(v) for k, v in by_kind.items()}),
            "rows_left_out": dg.MetadataValue.json(table.dropped),
            "features": dg.MetadataValue.json(table.features),
        },
    )


def train_regressor(
    context: dg.AssetExecutionContext,
    config: RegressorConfig,
    store: ModelStoreResource,
    target: str,
    tables: dict[str, pd.DataFrame],
    source: str,
) -> dg.MaterializeResult:
    """Train on the tables, write the model folder, and show its scores and plots. Training writes a local
    folder; with object storage its files are put there afterwards."""
    location = store.folder(target)
    with local_output(location) as folder:
        run = train_dataset_tables(
            tables,
            config.options(target),
            folder,
            source=source,
            progress=_log_progress(context, target),
            evaluate=config.evaluate,
        )
        report = _report_text(folder)
        plots = {name: image_markdown(path) for name, path in run.files.items() if path.suffix == ".png"}
    m = run.metrics
    best = min(m["baselines"], key=lambda name: m["baselines"][name]["mae"])
    context.log.info(
        f"{target}: {m['model']} on {m['n_train']} rows, {m['n_test']} held out ({m['split']}): "
        f"MAE {m['mae']:,.4g}, best baseline {best} MAE {m['baselines'][best]['mae']:,.4g}; wrote {location}"
    )
    evaluation = {
        name: {k: result.get(k) for k in ("model", "mae", "mape", "r2", "n_train", "n_test", "skipped")}
        for name, result in m.get("evaluation", {}).items()
    }
    return dg.MaterializeResult(
        metadata={
            "model_dir": dg.MetadataValue.path(display_path(location)),
            "model": m["model"],
            "split": m["split"],
            "n_train": m["n_train"],
            "n_test": m["n_test"],
            "mae": _number(m["mae"]),
            "mape": _number(m["mape"]),
            "r2": _number(m["r2"]),
            "interval_coverage": _number(m["interval_coverage"]),
            "beats_every_baseline": m["beats_every_baseline"],
            "baselines": dg.MetadataValue.json(m["baselines"]),
            **({"evaluation": dg.MetadataValue.json(evaluation)} if evaluation else {}),
            "report": dg.MetadataValue.md(report),
            **plots,
        }
    )


def _report_text(folder: Path) -> str:
    """report.md without its image links (the plots are shown as their own entries)."""
    lines = (folder / REPORT_FILE).read_text().splitlines()
    return "\n".join(line for line in lines if not line.startswith("!["))


def regressor_asset(name: str, config_type: type[RegressorConfig], description: str) -> dg.AssetsDefinition:
    """One regressor asset: trains its target on the trace tables and writes `<models>/<target>/`."""
    target = TARGET_OF_ASSET[name]

    @dg.asset(name=name, group_name=GROUP, kinds={"python"}, description=description, deps=[TRACES])
    def _regressor(
        context: dg.AssetExecutionContext,
        config: config_type,
        model_store: ModelStoreResource,
        dataset: TraceDatasetResource,
    ) -> dg.MaterializeResult:
        tables = read_trace_dataset(dataset.root)  # every day collected so far
        return train_regressor(
            context, config, model_store, target, tables, source=f"the trace dataset {dataset.root}"
        )

    return _regressor


energy_regressor = regressor_asset(
    "energy_regressor",
    EnergyRegressorConfig,
    "Energy of a task on each device kind, predicted before it runs, with an interval "
    "(model folder `<models>/energy_joules/`).",
)
power_regressor = regressor_asset(
    "power_regressor",
    RegressorConfig,
    "Average power of a task on each device kind (model folder `<models>/avg_power_watts/`).",
)
runtime_regressor = regressor_asset(
    "runtime_regressor",
    RegressorConfig,
    "Runtime of a task (one row per task; model folder `<models>/runtime_seconds/`).",
)


def _cell(value: float | None, percent: bool = False) -> str:
    if value is None:
        return "n/a"
    return f"{value:.1%}" if percent else f"{value:,.4g}"


def summary_markdown(metrics_by_target: dict[str, dict]) -> str:
    """One row per regressor: its scores on the held-out rows and the best baseline's."""
    lines = [
        "| target | model | MAE | MAPE | R² | interval coverage | best baseline | its MAE | beats every baseline? |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for target, m in metrics_by_target.items():
        best = min(m["baselines"], key=lambda name: m["baselines"][name]["mae"])
        lines.append(
            f"| {target} | {m['model']} | {_cell(m['mae'])} | {_cell(m['mape'], True)} | {_cell(m['r2'])} | "
            f"{_cell(m['interval_coverage'], True)} | {best} | {_cell(m['baselines'][best]['mae'])} | "
            f"{'yes' if m['beats_every_baseline'] else 'no'} |"
        )
    splits = {m["split"] for m in metrics_by_target.values()}
    lines += ["", f"Scored on held-out rows (split {', '.join(sorted(splits))}); MAE in the target's units."]
    return "\n".join(lines)


@dg.asset(group_name=GROUP, deps=list(TARGET_OF_ASSET), kinds={"python"})
def model_evaluation(
    context: dg.AssetExecutionContext, model_store: ModelStoreResource
) -> dg.MaterializeResult:
    """The three regressors side by side against their baselines; the energy regressor's plots and report."""
    metrics = {target: model_store.metrics(target) for target in TARGET_OF_ASSET.values()}
    summary = summary_markdown(metrics)
    text = "# Regressors of the trace dataset\n\n" + summary + "\n"
    path = write_bytes_atomic(text.encode(), storage_path(model_store.root) / "summary.md")
    with local_copy(model_store.folder(TARGET_OF_ASSET["energy_regressor"])) as energy:
        report, plots = _report_text(energy), plot_metadata(energy, prefix="energy_")
    context.log.info(
        "regressors: "
        + ", ".join(f"{t} {m['model']} MAPE {_cell(m['mape'], True)}" for t, m in metrics.items())
    )
    return dg.MaterializeResult(
        metadata={
            "summary": dg.MetadataValue.md(summary),
            "summary_path": dg.MetadataValue.path(display_path(path)),
            "energy_report": dg.MetadataValue.md(report),
            **plots,
        }
    )


model_assets = [training_set, energy_regressor, power_regressor, runtime_regressor, model_evaluation]
