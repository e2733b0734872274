"""The regressors: one table-in, numbers-out estimator per model name, with its own column encoding.

Trees (XGBoost, HistGradientBoosting, RandomForest) read numbers as they are (missing values allowed) and
categories as integer codes that the library treats as categories where it can (XGBoost, HGB); the linear
model reads standardised numbers with missing-value indicators and one-hot categories. Targets that are
positive and span orders of magnitude (energies, runtimes) are learned as logarithms, so a 10 J task and a
100 kJ task weigh alike and predictions stay positive; predictions are then the conditional median.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, RegressorMixin
from threadpoolctl import threadpool_limits

from models.errors import ModelInputError

# HistGradientBoosting takes categories as codes below its 255 bins; rarer levels count as unseen.
MAX_CATEGORY_LEVELS = 250
MAX_ONE_HOT_LEVELS = 60
TREE_MODELS = ("xgboost", "hgb", "rf")
SMALL_TABLE_ROWS = 50_000
# Share of training rows whose category columns a tree model sees as unseen (see TabularRegressor._fit).
UNSEEN_CATEGORY_RATE = 0.1


class FeatureEncoder:
    """Columns -> one float matrix, learned on the training rows only (unseen categories -> missing)."""

    def __init__(self, numeric: list[str], categorical: list[str], one_hot: bool):
        self.numeric = list(numeric)
        self.categorical = list(categorical)
        self.one_hot = one_hot

    def fit(self, frame: pd.DataFrame) -> FeatureEncoder:
        self.levels = {}
        for column in self.categorical:
            counts = frame[column].astype("object").dropna().astype(str).value_counts()
            limit = MAX_ONE_HOT_LEVELS if self.one_hot else MAX_CATEGORY_LEVELS
            self.levels[column] = pd.Index(sorted(counts.index[:limit]))
        # A numeric column with no value in the training rows reads as 0 (tree libraries cannot bin it).
        self.empty = [
            i for i, c in enumerate(self.numeric) if pd.to_numeric(frame[c], errors="coerce").isna().all()
        ]
        if self.one_hot:
            values = self._numbers(frame)
            values[:, self.empty] = 0.0
            self.means = np.nanmean(values, axis=0)
            spread = np.nanstd(values, axis=0)
            self.scales = np.where(spread > 0, spread, 1.0)
            self.flagged = [i for i in range(len(self.numeric)) if np.isnan(values[:, i]).any()]
        return self

    def _numbers(self, frame: pd.DataFrame) -> np.ndarray:
        if not self.numeric:
            return np.empty((len(frame), 0))
        return np.column_stack(
            [
                pd.to_numeric(frame[c], errors="coerce").to_numpy(dtype="float64", na_value=np.nan)
                for c in self.numeric
            ]
        )

    def codes(self, frame: pd.DataFrame, column: str) -> np.ndarray:
        """Integer codes of a column's values among the training levels, -1 where unseen or missing."""
        # Each distinct value looked up once (factorize is a hash pass), not every row's text.
        codes, uniques = pd.factorize(frame[column], use_na_sentinel=True)
        if len(uniques) == 0:
            return np.full(len(codes), -1, dtype=np.intp)
        mapping = self.levels[column].get_indexer(pd.Index(uniques).astype(str))
        return np.where(codes >= 0, mapping[codes], -1)

    @property
    def names(self) -> list[str]:
        """Column names of the matrix (one-hot columns as ``column=level``)."""
        if not self.one_hot:
            return self.numeric + self.categorical
        flags = [f"{self.numeric[i]}:missing" for i in self.flagged]
        hot = [f"{c}={level}" for c in self.categorical for level in self.levels[c]]
        return self.numeric + flags + hot

    def transform(self, frame: pd.DataFrame) -> np.ndarray:
        numbers = self._numbers(frame)
        numbers[:, self.empty] = 0.0
        if not self.one_hot:
            codes = []
            for column in self.categorical:
                code = self.codes(frame, column).astype("float64")
                code[code < 0] = np.nan
                codes.append(code)
            return np.column_stack([numbers, *codes]) if codes else numbers
        missing = np.isnan(numbers)
        scaled = np.where(missing, 0.0, (numbers - self.means) / self.scales)
        parts = [scaled, missing[:, self.flagged].astype("float64")]
        for column in self.categorical:
            codes = self.codes(frame, column)
            hot = np.zeros((len(frame), len(self.levels[column])))
            seen = codes >= 0
            hot[np.flatnonzero(seen), codes[seen]] = 1.0
            parts.append(hot)
        return np.column_stack(parts)

    def categorical_mask(self) -> list[bool]:
        return [False] * len(self.numeric) + [True] * len(self.categorical)


def _library_model(name: str, encoder: FeatureEncoder, n_rows: int, seed: int, threads: int | None):
    if name == "xgboost":
        from xgboost import XGBRegressor

        # 50 trees of depth 6, categories as their codes (the target-mean columns carry what category
        # splits would): on the sample world about as accurate as 400 trees with category splits (5-fold by
        # workflow: energy and runtime MAE within 2%, power 5-8% higher), and over 20x faster to predict,
        # about 1M rows/s on one core (benchmarks/models.py).
        return XGBRegressor(
            n_estimators=50,
            learning_rate=0.3,
            max_depth=6,
            min_child_weight=2.0,
            subsample=0.8,
            colsample_bytree=0.8,
            tree_method="hist",
            n_jobs=threads or 0,
            random_state=seed,
        )
    if name == "hgb":
        from sklearn.ensemble import HistGradientBoostingRegressor

        return HistGradientBoostingRegressor(
            max_iter=400,
            learning_rate=0.05,
            min_samples_leaf=5,
            l2_regularization=1.0,
            categorical_features=(encoder.categorical_mask() + [False] * len(encoder.categorical))
            if encoder.categorical
            else None,
            random_state=seed,
        )
    if name == "rf":
        from sklearn.ensemble import RandomForestRegressor

        # Each tree sees at most 200k rows, so a million-row table trains in minutes, not hours.
        return RandomForestRegressor(
            n_estimators=150,
            min_samples_leaf=2,
            max_features=0.5,
            max_samples=min(1.0, 200_000 / max(n_rows, 1)),
            n_jobs=threads or -1,
            random_state=seed,
        )
    if name == "linear":
        from sklearn.linear_model import Ridge

        return Ridge(alpha=1.0)
    if name == "ols":
        from sklearn.linear_model import LinearRegression

        return LinearRegression()
    raise ModelInputError(f"unknown model {name!r}")


class TabularRegressor(BaseEstimator, RegressorMixin):
    """A model name plus its encoding and target transform, fitted on a DataFrame; scikit-learn compatible
    (so permutation importance and cloning work on the original columns)."""

    def __init__(
        self,
        model: str = "hgb",
        numeric: tuple[str, ...] = (),
        categorical: tuple[str, ...] = (),
        transform: str = "log",
        seed: int = 0,
        threads: int | None = None,
    ):
        self.model = model
        self.numeric = numeric
        self.categorical = categorical
        self.transform = transform
        self.seed = seed
        self.threads = threads

    def forward(self, y: np.ndarray) -> np.ndarray:
        return np.log(y) if self.transform == "log" else np.asarray(y, dtype="float64")

    def inverse(self, z: np.ndarray) -> np.ndarray:
        return np.exp(np.clip(z, -700, 700)) if self.transform == "log" else z

    def _threads(self, rows: int) -> int | None:
        """Threads for the library: one below SMALL_TABLE_ROWS, where OpenMP threads cost more than they
        give (and on a busy two-core machine their spin-waits cost 10-20x); else as asked (None = all)."""
        return 1 if rows < SMALL_TABLE_ROWS else self.threads

    def fit(self, X: pd.DataFrame, y: np.ndarray) -> TabularRegressor:
        with threadpool_limits(self._threads(len(X))):
            return self._fit(X, y)

    def _fit(self, X: pd.DataFrame, y: np.ndarray) -> TabularRegressor:
        self.encoder_ = FeatureEncoder(
            list(self.numeric), list(self.categorical), one_hot=self.model not in TREE_MODELS
        )
        self.encoder_.fit(X)
        matrix = self.encoder_.transform(X)
        z = self.forward(np.asarray(y, dtype="float64"))
        self.target_encoder_ = None
        if self.model in TREE_MODELS and self.categorical:
            from sklearn.model_selection import KFold
            from sklearn.preprocessing import TargetEncoder

            # Each category's mean target, cross-fitted (no row sees its own target), as extra columns.
            folds = KFold(5, shuffle=True, random_state=self.seed)
            self.target_encoder_ = TargetEncoder(target_type="continuous", cv=folds)
            encoded = self.target_encoder_.fit_transform(self._category_text(X), z)
            matrix = self._unseen_as_missing(np.column_stack([matrix, encoded]))
            # The encoder's mean target of each training level, looked up by code when predicting.
            self.target_means_ = [
                self._means_by_level(j, levels) for j, levels in enumerate(self.encoder_.levels.values())
            ]
            # Some rows of each category column count as unseen, so the trees learn what to do with a
            # category they never saw (a new task type) from the other columns, instead of from the
            # overall mean that the encoder gives it.
            rng = np.random.default_rng(self.seed)
            first = len(self.numeric)
            for j in range(len(self.categorical)):
                hidden = rng.random(len(X)) < UNSEEN_CATEGORY_RATE
                matrix[hidden, first + j] = np.nan
                matrix[hidden, first + len(self.categorical) + j] = np.nan
        # A column with no value in any training row (a category column that is always empty, say) reads as
        # 0: tree libraries cannot bin it, and it carries nothing.
        self.blank_columns_ = (
            np.flatnonzero(np.isnan(matrix).all(axis=0)) if len(matrix) else np.empty(0, int)
        )
        matrix[:, self.blank_columns_] = 0.0
        self.estimator_ = _library_model(self.model, self.encoder_, len(X), self.seed, self._threads(len(X)))
        self.estimator_.fit(matrix, z)
        return self

    def _category_text(self, X: pd.DataFrame) -> np.ndarray:
        return X[list(self.categorical)].astype("object").fillna("(none)").astype(str).to_numpy()

    def matrix(self, X: pd.DataFrame) -> np.ndarray:
        """The numbers the library model reads (what its native batch prediction takes)."""
        matrix = self.encoder_.transform(X)
        if self.target_encoder_ is not None:
            first = len(self.numeric)
            encoded = []
            for j, means in enumerate(self.target_means_):
                codes = matrix[:, first + j]
                seen = ~np.isnan(codes)
                column = np.full(len(X), np.nan)
                column[seen] = means[codes[seen].astype(np.intp)]
                encoded.append(column)
            matrix = np.column_stack([matrix, *encoded])
        matrix[:, self.blank_columns_] = 0.0
        return matrix

    def _means_by_level(self, j: int, levels: pd.Index) -> np.ndarray:
        known = pd.Index(self.target_encoder_.categories_[j]).get_indexer(levels)
        means = np.asarray(self.target_encoder_.encodings_[j], dtype="float64")
        return np.where(known >= 0, means[known], np.nan)

    def _unseen_as_missing(self, matrix: np.ndarray) -> np.ndarray:
        """A category not among the training levels has no mean target either: both columns missing."""
        first, count = len(self.numeric), len(self.categorical)
        for j in range(count):
            matrix[np.isnan(matrix[:, first + j]), first + count + j] = np.nan
        return matrix

    def predict_transformed(self, X: pd.DataFrame) -> np.ndarray:
        with threadpool_limits(self._threads(len(X))):
            return np.asarray(self.estimator_.predict(self.matrix(X)), dtype="float64")

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        return self.inverse(self.predict_transformed(X))

    def importances(self) -> dict[str, float] | None:
        """The library's own importances per original column (one-hot and flag columns summed), if any."""
        values = getattr(self.estimator_, "feature_importances_", None)
        if values is None:
            return None
        total: dict[str, float] = {}
        names = self.encoder_.names + (
            [f"{c}:target-mean" for c in self.categorical] if self.target_encoder_ else []
        )
        for name, value in zip(names, values, strict=True):
            column = name.split("=", 1)[0].split(":", 1)[0]
            total[column] = total.get(column, 0.0) + float(value)
        return total
