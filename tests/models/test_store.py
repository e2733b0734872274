"""Model folders: what load_model and predicting refuse."""

import json
import shutil

import numpy as np
import pandas as pd
import pytest

from models.api import predict_table_file, train_table
from models.errors import ModelInputError
from models.options import TrainOptions
from models.store import CARD_FILE, MODEL_FILE, load_model


@pytest.fixture(scope="module")
def ab_model(tmp_path_factory):
    """A model of y = 3a + 2b + noise, trained on columns a and b."""
    rng = np.random.default_rng(2)
    n = 120
    frame = pd.DataFrame({"a": rng.uniform(1, 10, n), "b": rng.uniform(1, 10, n)})
    frame["y"] = 3 * frame["a"] + 2 * frame["b"] + rng.normal(0, 0.2, n)
    out = tmp_path_factory.mktemp("ab") / "model"
    run = train_table(frame, TrainOptions(target="y", features="a,b", model="linear"), out, "ab.csv")
    return out, frame, run


def test_the_model_reads_a_and_b(ab_model):
    out, _, run = ab_model
    loaded = load_model(out)
    assert loaded.model.features.names == ["a", "b"]
    assert [f["name"] for f in loaded.card["features"]] == ["a", "b"]
    assert run.metrics["r2"] > 0.9


def test_a_card_listing_other_features_is_refused(ab_model, tmp_path):
    out, _, _ = ab_model
    copy = tmp_path / "copy"
    shutil.copytree(out, copy)
    card = json.loads((copy / CARD_FILE).read_text())
    card["features"] = [{"name": "a", "kind": "numeric"}, {"name": "c", "kind": "numeric"}]
    (copy / CARD_FILE).write_text(json.dumps(card))
    with pytest.raises(ModelInputError, match=str(copy)):
        load_model(copy)


def test_a_card_of_another_format_is_refused(ab_model, tmp_path):
    out, _, _ = ab_model
    copy = tmp_path / "copy"
    shutil.copytree(out, copy)
    card = json.loads((copy / CARD_FILE).read_text())
    card["format"] = "someone.else/3"
    (copy / CARD_FILE).write_text(json.dumps(card))
    with pytest.raises(ModelInputError, match="someone.else/3"):
        load_model(copy)


def test_a_folder_written_by_another_model_layout_is_refused(ab_model, tmp_path):
    # a folder from before the card recorded its layout (or from other code) would fail inside predict
    out, _, _ = ab_model
    copy = tmp_path / "copy"
    shutil.copytree(out, copy)
    card = json.loads((copy / CARD_FILE).read_text())
    assert load_model(out).card["model_layout"] == card.pop("model_layout")
    (copy / CARD_FILE).write_text(json.dumps(card))
    with pytest.raises(ModelInputError, match="retrain"):
        load_model(copy)


def test_a_truncated_model_file_is_refused(ab_model, tmp_path):
    out, _, _ = ab_model
    copy = tmp_path / "copy"
    shutil.copytree(out, copy)
    data = (copy / MODEL_FILE).read_bytes()
    (copy / MODEL_FILE).write_bytes(data[: len(data) // 3])
    with pytest.raises(ModelInputError, match=MODEL_FILE):
        load_model(copy)


def test_a_folder_without_a_model_is_refused(tmp_path):
    with pytest.raises(ModelInputError, match="does not hold a model"):
        load_model(tmp_path)
    with pytest.raises(ModelInputError, match="no such model folder"):
        load_model(tmp_path / "absent")


def test_a_table_with_only_a_is_refused(ab_model, tmp_path):
    out, frame, _ = ab_model
    only_a = tmp_path / "only-a.csv"
    frame[["a"]].to_csv(only_a, index=False)
    with pytest.raises(ModelInputError, match=r"only-a\.csv: .*lacks: b$"):
        predict_table_file(out, only_a)


def test_a_table_with_a_and_b_is_predicted(ab_model, tmp_path):
    out, frame, _ = ab_model
    table = tmp_path / "ab.csv"
    fresh = pd.DataFrame({"a": [2.0, 8.0], "b": [5.0, 1.0]})
    fresh.to_csv(table, index=False)
    predicted = predict_table_file(out, table)
    # y = 3a + 2b: 16 and 26, learned from noisy rows
    np.testing.assert_allclose(predicted["y_predicted"], [16.0, 26.0], rtol=0.1)
    assert (predicted["y_lower"] <= predicted["y_predicted"]).all()
    assert (predicted["y_predicted"] <= predicted["y_upper"]).all()
