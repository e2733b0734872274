"""A model folder: ``model.joblib`` (the fitted regressor), ``model_card.json`` and ``metrics.json``.

The card says what the model reads (feature names and kinds), what it was trained on (source, row count,
a SHA-256 of the training rows' feature and target values), how it was split and scored, and the library
versions. Loading refuses a folder without a model, a card of another format, or a model file whose features
differ from its card; predicting refuses a table that lacks a feature column or holds text where the model
read numbers. The model file is a pickle: load only folders you trust.
"""

from __future__ import annotations

import hashlib
import json
import platform
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import joblib
import numpy as np
import pandas as pd

from models.errors import ModelInputError
from models.training import TrainedModel, first_non_numeric

CARD_FORMAT = "jouletrace.model/1"
# What the pickled model object holds; raised whenever models/estimators.py changes what a fitted model keeps,
# so a folder written by other code is refused with "retrain" instead of failing inside predict.
MODEL_LAYOUT = 2
MODEL_FILE = "model.joblib"
CARD_FILE = "model_card.json"
METRICS_FILE = "metrics.json"


def library_versions() -> dict[str, str]:
    import sklearn
    import xgboost

    return {
        "python": platform.python_version(),
        "scikit-learn": sklearn.__version__,
        "xgboost": xgboost.__version__,
        "numpy": np.__version__,
        "pandas": pd.__version__,
    }


def data_hash(frame: pd.DataFrame, columns: list[str]) -> str:
    """SHA-256 of the rows' values in `columns` (order-sensitive), to tell two training sets apart."""
    hashed = pd.util.hash_pandas_object(frame[columns].astype("object").astype(str), index=False)
    return hashlib.sha256(hashed.to_numpy().tobytes()).hexdigest()


def _write_atomic(path: Path, data: bytes) -> None:
    from datasets.store import write_bytes_atomic

    write_bytes_atomic(data, path)


def _json_bytes(value: dict) -> bytes:
    return (json.dumps(value, indent=2, default=str) + "\n").encode()


def save_model(out_dir: str | Path, model: TrainedModel, card: dict, metrics: dict) -> Path:
    """Write the model, its card and its metrics into `out_dir`, each file atomically."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    full_card = {
        "format": CARD_FORMAT,
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "model_layout": MODEL_LAYOUT,
        "target": model.target,
        "model": model.regressor.model,
        "features": [
            {"name": name, "kind": "numeric" if name in model.features.numeric else "categorical"}
            for name in model.features.names
        ],
        "target_transform": model.regressor.transform,
        "interval": {
            "level": model.interval_level,
            "method": "split-conformal on cross-validation residuals",
            "lower_offset": model.lower_offset,
            "upper_offset": model.upper_offset,
        },
        "libraries": library_versions(),
        **card,
    }
    path = out / MODEL_FILE
    tmp = path.with_name(f".{MODEL_FILE}.tmp")
    joblib.dump(model, tmp)
    tmp.replace(path)
    _write_atomic(out / CARD_FILE, _json_bytes(full_card))
    _write_atomic(out / METRICS_FILE, _json_bytes(metrics))
    return out


@dataclass
class LoadedModel:
    model: TrainedModel
    card: dict
    folder: Path

    def check_table(self, frame: pd.DataFrame, source: str) -> None:
        """Refuse a table the model cannot read: a missing feature column, or text in a numeric feature."""
        missing = [f["name"] for f in self.card["features"] if f["name"] not in frame.columns]
        if missing:
            raise ModelInputError(
                f"{source}: the model in {self.folder} was trained on columns this table lacks: {', '.join(missing)}"
            )
        for name in self.model.features.numeric:
            column = frame[name]
            if column.dtype == object or pd.api.types.is_string_dtype(column):
                row = first_non_numeric(column)
                if row is not None:
                    raise ModelInputError(
                        f"{source}: column {name!r} is numeric in the model but row {row} holds {column.iloc[row]!r}"
                    )


def load_model(folder: str | Path) -> LoadedModel:
    folder = Path(folder)
    card_path, model_path = folder / CARD_FILE, folder / MODEL_FILE
    if not folder.is_dir():
        raise ModelInputError(f"{folder}: no such model folder")
    if not card_path.exists() or not model_path.exists():
        raise ModelInputError(
            f"{folder}: does not hold a model ({CARD_FILE} and {MODEL_FILE}); train one first"
        )
    try:
        card = json.loads(card_path.read_text())
    except json.JSONDecodeError as exc:
        raise ModelInputError(f"{card_path}: not JSON ({exc})") from None
    if card.get("format") != CARD_FORMAT:
        raise ModelInputError(f"{card_path}: format {card.get('format')!r}, expected {CARD_FORMAT}")
    if card.get("model_layout") != MODEL_LAYOUT:
        raise ModelInputError(
            f"{folder}: written by another version of jouletrace (model layout {card.get('model_layout')}, this "
            f"version reads {MODEL_LAYOUT}); retrain with `jouletrace train`"
        )
    try:
        model = joblib.load(model_path)
    except Exception as exc:  # a truncated or foreign pickle: say which file, not a traceback
        raise ModelInputError(f"{model_path}: cannot be loaded ({type(exc).__name__}: {exc})") from None
    if not isinstance(model, TrainedModel):
        raise ModelInputError(f"{model_path}: holds {type(model).__name__}, not a jouletrace model")
    carded = [f["name"] for f in card.get("features", [])]
    if carded != model.features.names:
        raise ModelInputError(
            f"{folder}: the model file reads {model.features.names} but its card lists {carded}; retrain"
        )
    return LoadedModel(model, card, folder)
