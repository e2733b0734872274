"""What a training run does, declared once for the Python API, `jouletrace train` and the Dagster config.

A split says how rows are held out so that a model is never scored on rows it learned from:
``random`` (rows shuffled; optimistic when rows of one run are alike), ``group:COLUMN`` (whole groups, e.g.
every task of a workflow, go to one side) and ``time:COLUMN`` (the test part is the last fraction in time,
never shuffled). The cross-validation that chooses the model and calibrates the intervals uses the same
kind of split inside the training part.
"""

from __future__ import annotations

from dataclasses import dataclass

from models.errors import ModelInputError

MODEL_NAMES = ("xgboost", "hgb", "rf", "linear")
MODEL_CHOICES = ("auto", *MODEL_NAMES)
MODES = ("before-run", "after-run")
SPLIT_KINDS = ("random", "group", "time")
TARGET_TRANSFORMS = ("auto", "log", "none")
# The targets of a trace dataset (one row per task and device kind).
DATASET_TARGETS = ("energy_joules", "avg_power_watts", "runtime_seconds")


@dataclass(frozen=True)
class SplitSpec:
    """``random``, ``group:COLUMN`` or ``time:COLUMN``."""

    kind: str = "random"
    column: str | None = None

    @classmethod
    def parse(cls, text: str) -> SplitSpec:
        kind, _, column = text.partition(":")
        kind, column = kind.strip(), column.strip()
        if kind not in SPLIT_KINDS:
            raise ModelInputError(f"--split {text!r}: use random, group:COLUMN or time:COLUMN")
        if kind == "random" and column:
            raise ModelInputError(f"--split {text!r}: random takes no column")
        if kind != "random" and not column:
            raise ModelInputError(f"--split {text!r}: {kind} needs a column, as {kind}:COLUMN")
        return cls(kind, column or None)

    def __str__(self) -> str:
        return self.kind if self.column is None else f"{self.kind}:{self.column}"


def _names(value: str | tuple[str, ...] | list[str] | None) -> tuple[str, ...]:
    if value is None:
        return ()
    items = value.split(",") if isinstance(value, str) else value
    return tuple(item.strip() for item in items if item.strip())


@dataclass(frozen=True)
class TrainOptions:
    """One training run. ``features`` empty means auto (every usable column, or the mode's feature set on a
    trace dataset); ``split`` None means random on a table, by workflow on a trace dataset; ``mode`` and
    ``device_kind`` apply to trace datasets only."""

    target: str
    features: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    split: SplitSpec | None = None
    test_fraction: float = 0.2
    seed: int = 0
    model: str = "auto"
    interval_level: float = 0.9
    cv_folds: int = 5
    target_transform: str = "auto"
    mode: str = "before-run"
    device_kind: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "features", _names(self.features))
        object.__setattr__(self, "exclude", _names(self.exclude))
        if isinstance(self.split, str):
            object.__setattr__(self, "split", SplitSpec.parse(self.split))
        if self.features == ("auto",):
            object.__setattr__(self, "features", ())
        if not self.target:
            raise ModelInputError("--target: name the column to predict")
        if not 0.0 < self.test_fraction < 1.0:
            raise ModelInputError(f"--test-fraction {self.test_fraction}: must be between 0 and 1")
        if self.model not in MODEL_CHOICES:
            raise ModelInputError(f"--model {self.model!r}: use one of {', '.join(MODEL_CHOICES)}")
        if not 0.5 <= self.interval_level < 1.0:
            raise ModelInputError(f"--interval {self.interval_level}: a coverage level in [0.5, 1)")
        if self.cv_folds < 2:
            raise ModelInputError(f"cv_folds {self.cv_folds}: at least 2")
        if self.target_transform not in TARGET_TRANSFORMS:
            raise ModelInputError(f"target_transform {self.target_transform!r}: auto, log or none")
        if self.mode not in MODES:
            raise ModelInputError(f"--mode {self.mode!r}: before-run or after-run")
        if self.target in self.features:
            raise ModelInputError(f"--features names the target {self.target!r}")
