"""Hold-out and cross-validation splits that never score a model on rows it learned from.

``group``: whole groups go to one side (every task of a workflow, every task of a type). ``time``: the test
part is the last fraction in time, and every training row is strictly earlier than every test row (rows at
the cut instant all go to the test part); cross-validation then trains each fold on earlier blocks only
(forward chaining). ``random``: rows shuffled with the seed.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from models.errors import ModelInputError
from models.options import SplitSpec


def time_values(frame: pd.DataFrame, column: str, source: str) -> np.ndarray:
    """A column as sortable numbers: timestamps (or ISO text) as seconds, numbers as they are."""
    values = frame[column]
    if pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values):
        numbers = values.to_numpy(dtype="float64", na_value=np.nan)
    else:
        try:
            stamps = pd.to_datetime(values, utc=True, format="mixed")
        except (ValueError, TypeError) as exc:
            raise ModelInputError(
                f"{source}: column {column!r} of --split time:{column} is neither a time nor a number ({exc})"
            ) from None
        numbers = (
            (stamps - pd.Timestamp(0, tz="UTC")).dt.total_seconds().to_numpy(dtype="float64", na_value=np.nan)
        )
    if np.isnan(numbers).any():
        bad = int(np.flatnonzero(np.isnan(numbers))[0])
        raise ModelInputError(f"{source}: column {column!r} of --split time:{column} is empty at row {bad}")
    return numbers


def _groups(frame: pd.DataFrame, column: str, source: str) -> np.ndarray:
    values = frame[column]
    if values.isna().any():
        bad = int(np.flatnonzero(values.isna().to_numpy())[0])
        raise ModelInputError(f"{source}: group column {column!r} is empty at row {bad}")
    codes, uniques = pd.factorize(values.astype(str))
    if len(uniques) < 2:
        raise ModelInputError(
            f"{source}: group column {column!r} has {len(uniques)} group; a group split needs at least 2"
        )
    return codes


def check_columns(frame: pd.DataFrame, spec: SplitSpec, source: str) -> None:
    if spec.column is not None and spec.column not in frame.columns:
        raise ModelInputError(f"{source}: no column {spec.column!r} for --split {spec}")


def holdout(
    frame: pd.DataFrame, spec: SplitSpec, test_fraction: float, seed: int, source: str
) -> tuple[np.ndarray, np.ndarray]:
    """Row positions of the training and test parts."""
    check_columns(frame, spec, source)
    n = len(frame)
    rng = np.random.default_rng(seed)
    if spec.kind == "random":
        order = rng.permutation(n)
        cut = int(round(n * test_fraction))
        return np.sort(order[cut:]), np.sort(order[:cut])
    if spec.kind == "group":
        codes = _groups(frame, spec.column, source)
        sizes = np.bincount(codes)
        order = rng.permutation(len(sizes))
        taken = np.cumsum(sizes[order])
        # whole groups until the test part holds the fraction; always at least one group on each side
        count = int(np.searchsorted(taken, test_fraction * n)) + 1
        test_groups = order[: min(max(count, 1), len(sizes) - 1)]
        is_test = np.isin(codes, test_groups)
        return np.flatnonzero(~is_test), np.flatnonzero(is_test)
    times = time_values(frame, spec.column, source)
    cut = np.sort(times)[min(n - 1, int(np.floor(n * (1.0 - test_fraction))))]
    is_test = times >= cut
    return np.flatnonzero(~is_test), np.flatnonzero(is_test)


def folds(
    frame: pd.DataFrame, spec: SplitSpec, k: int, seed: int, source: str
) -> list[tuple[np.ndarray, np.ndarray]]:
    """Cross-validation folds of the training part, of the same kind as the hold-out split."""
    n = len(frame)
    rng = np.random.default_rng(seed + 1)
    if spec.kind == "group":
        codes = _groups(frame, spec.column, source)
        n_groups = codes.max() + 1
        k = min(k, n_groups)
        assignment = rng.permutation(n_groups) % k
        fold_of_row = assignment[codes]
        return [(np.flatnonzero(fold_of_row != f), np.flatnonzero(fold_of_row == f)) for f in range(k)]
    if spec.kind == "time":
        # k + 1 blocks of about equal rows, cut between instants (rows of one instant share a block);
        # fold i trains on blocks 0..i and validates on block i + 1.
        times = time_values(frame, spec.column, source)
        first_position = np.searchsorted(np.sort(times), times, side="left")
        block = first_position * (k + 1) // max(n, 1)
        return [
            (np.flatnonzero(block <= i), np.flatnonzero(block == i + 1))
            for i in range(k)
            if (block <= i).any() and (block == i + 1).any()
        ]
    k = min(k, n)
    fold_of_row = rng.permutation(n) % k
    return [(np.flatnonzero(fold_of_row != f), np.flatnonzero(fold_of_row == f)) for f in range(k)]
