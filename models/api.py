"""What `jouletrace train` / `predict` and the Dagster assets call: train on a table or a trace dataset and
write the model folder (model, card, metrics, report); predict with a model folder, also for machines a task
never ran on."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import pandas as pd

from models.errors import ModelInputError
from models.evaluation import (
    cross_machine,
    cross_machine_markdown,
    cross_machine_tested,
    evaluate_splits,
    every_workflow_once,
    splits_markdown,
)
from models.features import MACHINE_FEATURES, build_training_table, machine_features
from models.options import SplitSpec, TrainOptions
from models.report import write_report
from models.store import LoadedModel, data_hash, load_model, save_model
from models.tables import read_table_file, read_trace_dataset
from models.training import Progress, TrainingResult, train

DEFAULT_DATASET_SPLIT = SplitSpec("group", "workflow_uid")
PREDICTION_PROVENANCE = "estimated"


@dataclass
class TrainingRun:
    """A written model folder and what a caller shows of it."""

    out_dir: Path
    result: TrainingResult
    metrics: dict
    files: dict[str, Path] = field(default_factory=dict)


def _card(result: TrainingResult, frame: pd.DataFrame, options: TrainOptions, source: str, kind: str) -> dict:
    m = result.metrics
    columns = [c for c in [*result.model.features.names, options.target] if c in frame]
    return {
        "training": {
            "source": source,
            "kind": kind,
            "rows": int(len(frame)),
            "data_sha256": data_hash(frame, columns),
            "split": m["split"],
            "test_fraction": options.test_fraction,
            "seed": options.seed,
            "n_train": m["n_train"],
            "n_test": m["n_test"],
            **({"mode": options.mode, "device_kind": options.device_kind} if kind == "dataset" else {}),
        },
        "metrics": {k: m[k] for k in ("mae", "mape", "median_ape", "r2", "interval_coverage")},
        "baselines": m["baselines"],
        "prediction_provenance": PREDICTION_PROVENANCE,
    }


def _finish(
    out_dir: str | Path, result: TrainingResult, card: dict, title: str, sections: list[str], seed: int
) -> TrainingRun:
    out = Path(out_dir)
    files = write_report(out, result, title, sections, seed=seed)
    save_model(out, result.model, card, result.metrics)
    files |= {"model": out / "model.joblib", "card": out / "model_card.json", "metrics": out / "metrics.json"}
    return TrainingRun(out, result, result.metrics, files)


def train_table(
    frame: pd.DataFrame,
    options: TrainOptions,
    out_dir: str | Path,
    source: str,
    progress: Progress | None = None,
) -> TrainingRun:
    """Any table with a numeric target column (power readings, job logs, ...)."""
    result = train(frame, options, source, kind="table", progress=progress)
    card = _card(result, frame, options, source, "table")
    title = f"Regressor of {options.target} on {Path(source).name}"
    return _finish(out_dir, result, card, title, [], options.seed)


def train_table_file(
    path: str | Path, options: TrainOptions, out_dir: str | Path, progress: Progress | None = None
) -> TrainingRun:
    return train_table(read_table_file(path), options, out_dir, str(path), progress)


def train_dataset_tables(
    tables: dict[str, pd.DataFrame],
    options: TrainOptions,
    out_dir: str | Path,
    source: str,
    progress: Progress | None = None,
    evaluate: bool = True,
) -> TrainingRun:
    """A trace dataset's tables: features by mode, split by workflow unless told otherwise, then (with
    `evaluate`) the honest splits and the cross-machine test in the report and metrics."""
    table = build_training_table(tables, options.target, options.mode, options.device_kind)
    if table.frame.empty:
        raise ModelInputError(f"{source}: no task rows to learn {options.target} from ({table.dropped})")
    options = replace(options, split=options.split or DEFAULT_DATASET_SPLIT)
    frame = table.frame
    result = train(frame, options, source, kind="dataset", default_features=table.features, progress=progress)
    sections = []
    if evaluate:
        # The other splits re-fit the chosen kind of model (choosing again for each would only add time).
        chosen = replace(options, model=result.metrics["model"])
        result.metrics["evaluation"] = evaluate_splits(frame, chosen, table.features, source, progress)
        if progress:
            progress("every workflow held out once")
        result.metrics["evaluation"]["every workflow held out once"] = every_workflow_once(
            frame, options, table.features, result.metrics["model"], source
        )
        sections += splits_markdown(result.metrics["evaluation"])
        machines = cross_machine(frame, options, table.features, result.metrics["model"], source, progress)
        result.metrics["cross_machine"] = machines
        sections += cross_machine_markdown(machines)
    result.metrics["rows_left_out"] = table.dropped
    result.metrics["mode"] = options.mode
    card = _card(result, frame, options, source, "dataset")
    card["training"]["rows_left_out"] = table.dropped
    if evaluate:
        card["evaluation"] = result.metrics["evaluation"]
        card["cross_machine"] = result.metrics["cross_machine"]
        card["cross_machine_tested"] = cross_machine_tested(result.metrics["cross_machine"])
    kind = f", {options.device_kind}" if options.device_kind else ""
    title = f"Regressor of {options.target} ({options.mode}{kind}) on {source}"
    return _finish(out_dir, result, card, title, sections, options.seed)


def train_dataset(
    root: str | Path, options: TrainOptions, out_dir: str | Path, progress: Progress | None = None
) -> TrainingRun:
    return train_dataset_tables(read_trace_dataset(root), options, out_dir, str(root), progress)


def _with_predictions(loaded: LoadedModel, frame: pd.DataFrame, source: str) -> pd.DataFrame:
    loaded.check_table(frame, source)
    predicted = loaded.model.predict(frame)
    out = frame.copy()
    for column in predicted.columns:
        out[column] = predicted[column].to_numpy()
    out["prediction_provenance"] = PREDICTION_PROVENANCE
    return out


def predict_table_file(model_dir: str | Path, path: str | Path) -> pd.DataFrame:
    loaded = load_model(model_dir)
    return _with_predictions(loaded, read_table_file(path), str(path))


def dataset_rows(loaded: LoadedModel, tables: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """The rows a dataset-trained model predicts for: every succeeded task (and device kind it used)."""
    training = loaded.card.get("training", {})
    if training.get("kind") != "dataset":
        raise ModelInputError(f"{loaded.folder}: trained on a plain table; predict with --table")
    table = build_training_table(
        tables, loaded.model.target, training.get("mode", "before-run"), training.get("device_kind")
    )
    return table.frame


def predict_dataset(model_dir: str | Path, root: str | Path) -> pd.DataFrame:
    loaded = load_model(model_dir)
    return _with_predictions(loaded, dataset_rows(loaded, read_trace_dataset(root)), str(root))


def predict_on_machines(loaded: LoadedModel, rows: pd.DataFrame, machines: pd.DataFrame) -> pd.DataFrame:
    """Every row (a task, or a task on a device kind) predicted on every machine that has the devices it
    needs, whether or not it ran there: the row's hardware columns are replaced by the machine's.
    ``ran_here`` marks the machine it ran on; ``host_node`` is the machine predicted for."""
    hardware = machine_features(machines)
    out = []
    for _, machine in hardware.iterrows():
        candidate = rows.copy()
        candidate["ran_here"] = (
            candidate["host_node"] == machine["host_node"] if "host_node" in rows else False
        )
        for column in ("host_node", *MACHINE_FEATURES):
            candidate[column] = machine[column]
        fits = (candidate["gpu_count"].fillna(0) <= machine["machine_gpu_count"]) & (
            candidate["fpga_count"].fillna(0) <= machine["machine_fpga_count"]
        )
        if "device_kind" in candidate:
            kinds = candidate["device_kind"]
            fits &= ~((kinds == "gpu") & (machine["machine_gpu_count"] == 0))
            fits &= ~((kinds == "fpga") & (machine["machine_fpga_count"] == 0))
            held = np.where(
                kinds.isin(["cpu_package", "dram", "cpu_core"]),
                machine["machine_sockets"],
                candidate["devices_held"],
            )
            candidate["devices_held"] = held.astype("float64")
        out.append(candidate[fits.to_numpy()])
    frame = pd.concat(out, ignore_index=True) if out else rows.iloc[:0]
    return _with_predictions(loaded, frame, "what-if rows")


def predict_dataset_on_machines(model_dir: str | Path, root: str | Path) -> pd.DataFrame:
    loaded = load_model(model_dir)
    tables = read_trace_dataset(root)
    if "machines" not in tables or tables["machines"].empty:
        raise ModelInputError(f"{root}: the dataset has no machines table to predict on")
    return predict_on_machines(loaded, dataset_rows(loaded, tables), tables["machines"])


def write_predictions(frame: pd.DataFrame, path: str | Path) -> Path:
    """Parquet, or CSV when the name ends in .csv; written atomically."""
    from datasets.store import write_bytes_atomic

    path = Path(path)
    if path.suffix.lower() == ".csv":
        return write_bytes_atomic(frame.to_csv(index=False).encode(), path)
    import io

    buffer = io.BytesIO()
    frame.to_parquet(buffer, index=False)
    return write_bytes_atomic(buffer.getvalue(), path)
