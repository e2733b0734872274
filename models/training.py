"""Train a regressor on any table: check the target, choose features, hold out a test part, choose the model
by cross-validation on the training part only, calibrate prediction intervals, score against the baselines.

Intervals are split-conformal on the cross-validation residuals of the chosen model (each training row
predicted by a model that did not see its fold): the interval around a prediction is the residuals'
(1 - level) / 2 and (1 + level) / 2 quantiles, with the finite-sample correction, in the space the model
learns in (logarithms for positive targets, so the interval is a ratio). Their coverage is then measured on
the test part, which no step of training saw.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from models.baselines import baselines_for
from models.errors import ModelInputError
from models.estimators import TabularRegressor
from models.options import MODEL_NAMES, SplitSpec, TrainOptions
from models.splits import check_columns, folds, holdout

Progress = Callable[[str], None]
# Fewer training rows than this cannot be cross-validated in folds that each hold a few rows.
MIN_TRAINING_ROWS = 20
_ISO_TIME = re.compile(r"^\d{4}-\d{2}-\d{2}([T ]\d{2}:\d{2})?")


@dataclass(frozen=True)
class FeatureSpec:
    numeric: tuple[str, ...]
    categorical: tuple[str, ...]

    @property
    def names(self) -> list[str]:
        return [*self.numeric, *self.categorical]


@dataclass
class TrainedModel:
    """A fitted regressor with what predicting needs: its target, features and conformal offsets."""

    regressor: TabularRegressor
    target: str
    features: FeatureSpec
    interval_level: float
    lower_offset: float
    upper_offset: float

    def predict(self, frame: pd.DataFrame) -> pd.DataFrame:
        """``<target>_predicted`` with ``_lower`` and ``_upper`` bounds of the stated interval."""
        z = self.regressor.predict_transformed(frame)
        inverse = self.regressor.inverse
        lower, upper = inverse(z + self.lower_offset), inverse(z + self.upper_offset)
        return pd.DataFrame(
            {
                f"{self.target}_predicted": inverse(z),
                f"{self.target}_lower": lower,
                f"{self.target}_upper": upper,
            },
            index=frame.index,
        )


@dataclass
class TrainingResult:
    model: TrainedModel
    metrics: dict
    test: pd.DataFrame
    baseline_predictions: dict[str, np.ndarray] = field(default_factory=dict)


def scores(y: np.ndarray, predicted: np.ndarray) -> dict[str, float | None]:
    """MAE, MAPE (rows with y != 0), median absolute percentage error and R^2."""
    y, predicted = np.asarray(y, dtype="float64"), np.asarray(predicted, dtype="float64")
    error = np.abs(y - predicted)
    nonzero = y != 0
    ape = error[nonzero] / np.abs(y[nonzero])
    total = float(np.sum((y - y.mean()) ** 2))
    return {
        "mae": float(error.mean()),
        "mape": float(ape.mean()) if len(ape) else None,
        "median_ape": float(np.median(ape)) if len(ape) else None,
        "r2": 1.0 - float(np.sum((y - predicted) ** 2)) / total if total > 0 else None,
    }


def first_non_numeric(values: pd.Series) -> int | None:
    """Position of the first value that is there but is not a number (text such as "n/a"), else None."""
    bad = pd.to_numeric(values, errors="coerce").isna() & values.notna()
    return int(np.flatnonzero(bad.to_numpy())[0]) if bad.any() else None


def clean_target(frame: pd.DataFrame, target: str, source: str) -> pd.DataFrame:
    """Rows with a numeric target; errors for a missing, non-numeric or constant target."""
    if target not in frame.columns:
        listed = ", ".join(map(str, frame.columns[:20]))
        raise ModelInputError(f"{source}: no column {target!r} to use as --target (columns: {listed})")
    values = frame[target]
    if pd.api.types.is_bool_dtype(values) or not (
        pd.api.types.is_numeric_dtype(values)
        or values.dtype == object
        or pd.api.types.is_string_dtype(values)
    ):
        raise ModelInputError(f"{source}: target column {target!r} is {values.dtype}, not numeric")
    row = first_non_numeric(values)
    if row is not None:
        raise ModelInputError(
            f"{source}: target column {target!r} is not numeric at row {row}: {values.iloc[row]!r}"
        )
    numbers = pd.to_numeric(values, errors="coerce")
    kept = frame.assign(**{target: numbers.astype("float64")})[numbers.notna() & np.isfinite(numbers)]
    if kept.empty:
        raise ModelInputError(f"{source}: target column {target!r} has no values")
    if kept[target].nunique() < 2:
        raise ModelInputError(
            f"{source}: target column {target!r} is constant ({kept[target].iloc[0]}); nothing to learn"
        )
    return kept.reset_index(drop=True)


def _kind(series: pd.Series) -> str | None:
    """numeric, categorical, or None for columns no model reads (times, lists, all empty)."""
    if series.isna().all():
        return None
    if pd.api.types.is_bool_dtype(series) or pd.api.types.is_numeric_dtype(series):
        return "numeric"
    if pd.api.types.is_datetime64_any_dtype(series) or isinstance(series.dtype, pd.PeriodDtype):
        return None
    sample = series.dropna().iloc[:50]
    if any(isinstance(v, (list, tuple, dict, np.ndarray, bytes)) for v in sample):
        return None
    if all(isinstance(v, str) and _ISO_TIME.match(v) for v in sample):
        return None  # times written as text (a CSV's timestamp column)
    return "categorical"


def resolve_features(
    frame: pd.DataFrame,
    options: TrainOptions,
    split: SplitSpec,
    source: str,
    default: list[str] | None = None,
) -> tuple[FeatureSpec, list[str]]:
    """The feature columns and notes on what auto left out. Explicit names must all exist and be usable."""
    notes = []
    if options.features:
        missing = [c for c in options.features if c not in frame.columns]
        if missing:
            raise ModelInputError(f"{source}: --features names absent columns: {', '.join(missing)}")
        chosen = [c for c in options.features if c not in options.exclude]
        for column in chosen:
            if _kind(frame[column]) is None:
                raise ModelInputError(
                    f"{source}: feature column {column!r} ({frame[column].dtype}) is empty, a time "
                    "or a list; no model reads it"
                )
    else:
        absent = [c for c in options.exclude if c not in frame.columns]
        if absent:
            raise ModelInputError(f"{source}: --exclude names absent columns: {', '.join(absent)}")
        skip = {options.target, *options.exclude, *([split.column] if split.column else [])}
        candidates = [c for c in (default if default is not None else frame.columns) if c in frame.columns]
        chosen = []
        for column in candidates:
            if column in skip:
                continue
            kind = _kind(frame[column])
            if kind is None:
                notes.append(f"{column} (empty, a time or a list)")
            elif (
                kind == "categorical" and default is None and frame[column].nunique() > 0.5 * len(frame) > 10
            ):
                notes.append(f"{column} (an identifier: a different value in most rows)")
            else:
                chosen.append(column)
    if not chosen:
        raise ModelInputError(f"{source}: no feature columns left to learn from; name them with --features")
    numeric = tuple(c for c in chosen if _kind(frame[c]) == "numeric")
    categorical = tuple(c for c in chosen if c not in numeric)
    return FeatureSpec(numeric, categorical), notes


def target_transform(options: TrainOptions, y: np.ndarray) -> str:
    if options.target_transform != "auto":
        if options.target_transform == "log" and (y <= 0).any():
            raise ModelInputError(f"target {options.target}: a log transform needs every value above 0")
        return options.target_transform
    return "log" if (y > 0).all() else "none"


def _conformal_offsets(residuals: np.ndarray, level: float) -> tuple[float, float]:
    n = len(residuals)
    alpha = 1.0 - level
    upper_rank = min(1.0, math.ceil((n + 1) * (1.0 - alpha / 2)) / n)
    lower_rank = max(0.0, 1.0 - upper_rank)
    return float(np.quantile(residuals, lower_rank)), float(np.quantile(residuals, upper_rank))


def _cross_validate(
    name: str, train: pd.DataFrame, y: np.ndarray, spec: FeatureSpec, transform: str, cv, seed: int, progress
) -> tuple[np.ndarray, np.ndarray]:
    """Out-of-fold predictions (transformed space) and a mask of the rows that have one."""
    z = np.full(len(train), np.nan)
    for fold, (fit_rows, check_rows) in enumerate(cv):
        if progress:
            progress(f"cross-validating {name}, fold {fold + 1}/{len(cv)}")
        model = TabularRegressor(name, spec.numeric, spec.categorical, transform, seed)
        model.fit(train.iloc[fit_rows], y[fit_rows])
        z[check_rows] = model.predict_transformed(train.iloc[check_rows])
    return z, ~np.isnan(z)


def train(
    frame: pd.DataFrame,
    options: TrainOptions,
    source: str,
    kind: str = "table",
    default_features: list[str] | None = None,
    progress: Progress | None = None,
) -> TrainingResult:
    """Train on `frame` as `options` say; `kind` "dataset" adds the trace-dataset baselines."""
    frame = clean_target(frame, options.target, source)
    split = options.split or SplitSpec()
    check_columns(frame, split, source)
    spec, notes = resolve_features(frame, options, split, source, default_features)
    train_rows, test_rows = holdout(frame, split, options.test_fraction, options.seed, source)
    if len(train_rows) == 0 or len(test_rows) == 0:
        empty = "training" if len(train_rows) == 0 else "test"
        raise ModelInputError(
            f"{source}: the {empty} part of --split {split} with --test-fraction {options.test_fraction} is empty"
        )
    if len(train_rows) < MIN_TRAINING_ROWS:
        raise ModelInputError(
            f"{source}: the training part has {len(train_rows)} rows; at least {MIN_TRAINING_ROWS} are needed to "
            "cross-validate (give a larger table or a smaller --test-fraction)"
        )
    train_part, test_part = frame.iloc[train_rows], frame.iloc[test_rows]
    y_train, y_test = train_part[options.target].to_numpy(), test_part[options.target].to_numpy()
    transform = target_transform(options, frame[options.target].to_numpy())
    cv = folds(train_part, split, options.cv_folds, options.seed, source)
    if len(cv) < 2 or any(len(a) == 0 for a, _ in cv):
        raise ModelInputError(f"{source}: the training part is too small to cross-validate (--split {split})")
    candidates = MODEL_NAMES if options.model == "auto" else (options.model,)
    forward = TabularRegressor(transform=transform).forward
    cv_scores, oof = {}, {}
    for name in candidates:
        z, has = _cross_validate(name, train_part, y_train, spec, transform, cv, options.seed, progress)
        oof[name] = (z, has)
        inverse = TabularRegressor(transform=transform).inverse
        cv_scores[name] = float(np.mean(np.abs(inverse(z[has]) - y_train[has])))
    chosen = min(cv_scores, key=cv_scores.get)
    z, has = oof[chosen]
    lower, upper = _conformal_offsets(forward(y_train[has]) - z[has], options.interval_level)
    if progress:
        progress(f"fitting {chosen} on {len(train_part)} rows")
    regressor = TabularRegressor(chosen, spec.numeric, spec.categorical, transform, options.seed)
    regressor.fit(train_part, y_train)
    model = TrainedModel(regressor, options.target, spec, options.interval_level, lower, upper)
    predicted = model.predict(test_part)
    test = test_part.copy()
    for column in predicted.columns:
        test[column] = predicted[column].to_numpy()
    estimate, low, high = (predicted[c].to_numpy() for c in predicted.columns)
    metrics = {
        "target": options.target,
        "model": chosen,
        **scores(y_test, estimate),
        "interval_level": options.interval_level,
        "interval_coverage": float(np.mean((y_test >= low) & (y_test <= high))),
        "n_train": int(len(train_part)),
        "n_test": int(len(test_part)),
        "split": str(split),
        "test_fraction": options.test_fraction,
        "seed": options.seed,
        "target_transform": transform,
        "features": spec.names,
        "features_left_out": notes,
        "selection": {"cv_folds": len(cv), "cv_mae": cv_scores},
    }
    baselines = {}
    metrics["baselines"] = {}
    for baseline in baselines_for(
        kind, options.target, options.mode, list(spec.numeric), list(spec.categorical)
    ):
        baseline.fit(train_part, y_train)
        baselines[baseline.name] = baseline.predict(test_part)
        metrics["baselines"][baseline.name] = scores(y_test, baselines[baseline.name])
    metrics["beats_every_baseline"] = all(metrics["mae"] < b["mae"] for b in metrics["baselines"].values())
    return TrainingResult(model, metrics, test, baselines)
