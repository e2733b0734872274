"""Hold-out and cross-validation splits (models/splits.py) on tables whose rows are in random order."""

import numpy as np
import pandas as pd
import pytest

from models.errors import ModelInputError
from models.options import SplitSpec
from models.splits import folds, holdout

GROUP = SplitSpec("group", "workflow")
TIME = SplitSpec("time", "t")


@pytest.fixture(scope="module")
def table() -> pd.DataFrame:
    """400 rows in random order: 23 workflows of uneven size, distinct times, ISO text times too."""
    rng = np.random.default_rng(11)
    n = 400
    sizes = rng.integers(3, 30, size=23)
    workflow = np.repeat([f"wf-{i}" for i in range(len(sizes))], sizes)[:n]
    workflow = np.concatenate([workflow, np.full(n - len(workflow), "wf-last")])
    t = rng.permutation(n).astype(float) * 7.5 + 1000.0
    start = pd.Timestamp("2026-01-01T00:00:00Z")
    return pd.DataFrame(
        {
            "workflow": rng.permutation(workflow),
            "t": t,
            "when": [(start + pd.Timedelta(seconds=s)).isoformat() for s in t],
            "x": rng.normal(size=n),
        }
    )


def test_a_group_is_never_on_both_sides(table):
    for seed in range(5):
        train, test = holdout(table, GROUP, 0.25, seed, "t.csv")
        assert len(train) and len(test)
        assert np.intersect1d(train, test).size == 0 and len(train) + len(test) == len(table)
        assert not set(table["workflow"].iloc[train]) & set(table["workflow"].iloc[test])


def test_group_folds_never_split_a_group(table):
    cv = folds(table, GROUP, 5, 0, "t.csv")
    assert len(cv) == 5
    seen = []
    for fit, check in cv:
        assert not set(table["workflow"].iloc[fit]) & set(table["workflow"].iloc[check])
        seen.append(check)
    # every row is validated exactly once
    assert np.array_equal(np.sort(np.concatenate(seen)), np.arange(len(table)))


@pytest.mark.parametrize("column", ["t", "when"])
def test_time_split_tests_on_the_last_fraction(table, column):
    spec = SplitSpec("time", column)
    train, test = holdout(table, spec, 0.2, 0, "t.csv")
    times = table["t"].to_numpy()
    assert times[train].max() < times[test].min()
    assert len(test) == 80 and len(train) == 320
    # the test part is the latest 80 rows, wherever they stand in the table
    assert set(test) == set(np.argsort(times)[-80:])


def test_time_split_does_not_depend_on_the_seed(table):
    first = holdout(table, TIME, 0.3, 0, "t.csv")
    for seed in (1, 2, 99):
        again = holdout(table, TIME, 0.3, seed, "t.csv")
        assert np.array_equal(first[0], again[0]) and np.array_equal(first[1], again[1])


def test_time_split_puts_rows_at_the_cut_instant_on_the_test_side():
    # five nodes read at the same instants: ties at every time
    frame = pd.DataFrame({"t": np.repeat(np.arange(20.0), 5)}).sample(frac=1.0, random_state=3)
    frame = frame.reset_index(drop=True)
    train, test = holdout(frame, TIME, 0.23, 0, "t.csv")
    times = frame["t"].to_numpy()
    assert times[train].max() < times[test].min()
    assert len(test) >= 23 and len(test) < 23 + 5


def test_time_folds_chain_forward(table):
    cv = folds(table, TIME, 4, 0, "t.csv")
    times = table["t"].to_numpy()
    assert len(cv) == 4
    for fit, check in cv:
        assert len(fit) and len(check)
        assert times[fit].max() < times[check].min()
    # each fold trains on everything the previous fold trained and validated on
    for (fit, check), (next_fit, _) in zip(cv[:-1], cv[1:], strict=True):
        assert set(next_fit) == set(fit) | set(check)


def test_time_folds_never_train_on_the_instant_they_validate():
    """Rows read at one instant (five nodes) are all on one side of a fold, as at the hold-out cut."""
    frame = pd.DataFrame({"t": np.repeat(np.arange(40.0), 5), "x": np.arange(200.0)})
    frame = frame.sample(frac=1.0, random_state=5).reset_index(drop=True)
    times = frame["t"].to_numpy()
    for fit, check in folds(frame, TIME, 5, 0, "t.csv"):
        assert times[fit].max() < times[check].min()


def test_a_one_group_column_is_refused_by_name():
    frame = pd.DataFrame({"site": ["lab"] * 30, "x": np.arange(30.0)})
    spec = SplitSpec("group", "site")
    with pytest.raises(ModelInputError, match=r"t\.csv: group column 'site' has 1 group"):
        holdout(frame, spec, 0.2, 0, "t.csv")
    with pytest.raises(ModelInputError, match="'site'"):
        folds(frame, spec, 5, 0, "t.csv")


def test_an_absent_split_column_is_refused_by_name(table):
    with pytest.raises(ModelInputError, match="no column 'node'"):
        holdout(table, SplitSpec("group", "node"), 0.2, 0, "t.csv")


def test_random_split_is_seeded_and_holds_the_fraction(table):
    train, test = holdout(table, SplitSpec(), 0.25, 7, "t.csv")
    assert len(test) == 100 and np.intersect1d(train, test).size == 0
    again = holdout(table, SplitSpec(), 0.25, 7, "t.csv")
    other = holdout(table, SplitSpec(), 0.25, 8, "t.csv")
    assert np.array_equal(test, again[1]) and not np.array_equal(test, other[1])
