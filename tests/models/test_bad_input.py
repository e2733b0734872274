"""Bad input to `jouletrace train` / `predict`: exit 2, one line naming the file and what is wrong in it, and
nothing written where the output would have gone."""

import pandas as pd
import pytest

from pipelines.cli import main


@pytest.fixture(scope="module")
def readings(power_csv) -> pd.DataFrame:
    return pd.read_csv(power_csv)


def _nothing_written(out) -> bool:
    return not out.exists() or (out.is_dir() and not any(out.iterdir()))


def _train(table, out, *extra):
    return main(["train", "--table", str(table), "--target", "power_watts", "--out", str(out), *extra])


def _fails(capsys, error_line, command, out, code, *named):
    assert code == 2
    captured = capsys.readouterr()
    line = error_line(captured.err, command)
    for text in named:
        assert text in line, (text, line)
    assert _nothing_written(out)
    return line


def test_a_missing_target_column(power_csv, tmp_path, capsys, error_line):
    out = tmp_path / "model"
    code = main(["train", "--table", str(power_csv), "--target", "watts", "--out", str(out)])
    _fails(capsys, error_line, "train", out, code, str(power_csv), "'watts'")


def test_text_in_the_target_names_the_row(readings, tmp_path, capsys, error_line):
    table = tmp_path / "text.csv"
    bad = readings.astype({"power_watts": object})
    bad.loc[17, "power_watts"] = "high"
    bad.to_csv(table, index=False)
    out = tmp_path / "model"
    line = _fails(capsys, error_line, "train", out, _train(table, out), str(table), "'power_watts'", "row 17")
    assert "'high'" in line


def test_a_constant_target(readings, tmp_path, capsys, error_line):
    table = tmp_path / "constant.csv"
    readings.assign(power_watts=120.0).to_csv(table, index=False)
    out = tmp_path / "model"
    line = _fails(capsys, error_line, "train", out, _train(table, out), str(table), "'power_watts'")
    assert "constant" in line


def test_a_time_split_where_every_row_has_one_time(readings, tmp_path, capsys, error_line):
    table = tmp_path / "one-time.csv"
    readings.assign(timestamp="2026-11-02T08:00:00Z").to_csv(table, index=False)
    out = tmp_path / "model"
    code = _train(table, out, "--split", "time:timestamp")
    line = _fails(capsys, error_line, "train", out, code, str(table), "time:timestamp")
    assert "empty" in line


def test_an_empty_test_part(power_csv, tmp_path, capsys, error_line):
    out = tmp_path / "model"
    # 0.1% of a few hundred rows rounds to no row at all
    code = _train(power_csv, out, "--test-fraction", "0.001")
    line = _fails(capsys, error_line, "train", out, code, str(power_csv))
    assert "test part" in line and "empty" in line


def test_a_group_column_with_one_group(readings, tmp_path, capsys, error_line):
    table = tmp_path / "one-site.csv"
    readings.assign(site="lab-1").to_csv(table, index=False)
    out = tmp_path / "model"
    code = _train(table, out, "--split", "group:site")
    line = _fails(capsys, error_line, "train", out, code, str(table), "'site'")
    assert "1 group" in line


def test_features_naming_absent_columns(power_csv, tmp_path, capsys, error_line):
    out = tmp_path / "model"
    code = _train(power_csv, out, "--features", "busy_cores,fan_rpm")
    line = _fails(capsys, error_line, "train", out, code, str(power_csv), "fan_rpm")
    # only the absent one is named
    assert "busy_cores" not in line


def test_a_split_column_that_is_absent(power_csv, tmp_path, capsys, error_line):
    out = tmp_path / "model"
    code = _train(power_csv, out, "--split", "time:read_at")
    _fails(capsys, error_line, "train", out, code, str(power_csv), "'read_at'")


@pytest.mark.parametrize(
    ("name", "content"),
    [
        ("garbage.parquet", b"PAR1 not really parquet \x00\x01\x02"),
        ("latin.csv", b"a,b\n\xff\xfe,1\n\x00\xff,2\n"),
    ],
)
def test_an_unreadable_file(tmp_path, capsys, error_line, name, content):
    table = tmp_path / name
    table.write_bytes(content)
    out = tmp_path / "model"
    _fails(capsys, error_line, "train", out, _train(table, out), str(table))


def test_a_file_that_does_not_exist(tmp_path, capsys, error_line):
    out = tmp_path / "model"
    _fails(capsys, error_line, "train", out, _train(tmp_path / "absent.csv", out), "absent.csv")


def test_predict_with_a_folder_that_holds_no_model(power_csv, tmp_path, capsys, error_line):
    folder = tmp_path / "not-a-model"
    folder.mkdir()
    out = tmp_path / "preds.csv"
    code = main(["predict", "--model", str(folder), "--table", str(power_csv), "--out", str(out)])
    line = _fails(capsys, error_line, "predict", out, code, str(folder))
    assert "model" in line


def test_predict_on_a_table_lacking_a_feature(csv_model, readings, tmp_path, capsys, error_line):
    assert csv_model.code == 0
    table = tmp_path / "no-busy.csv"
    readings.drop(columns=["busy_cores"]).to_csv(table, index=False)
    out = tmp_path / "preds.csv"
    code = main(["predict", "--model", str(csv_model.out), "--table", str(table), "--out", str(out)])
    _fails(capsys, error_line, "predict", out, code, str(table), "busy_cores")


def test_predict_with_text_in_a_numeric_feature(csv_model, readings, tmp_path, capsys, error_line):
    assert csv_model.code == 0
    table = tmp_path / "text-busy.csv"
    bad = readings.astype({"busy_cores": object})
    bad.loc[5, "busy_cores"] = "many"
    bad.to_csv(table, index=False)
    out = tmp_path / "preds.csv"
    code = main(["predict", "--model", str(csv_model.out), "--table", str(table), "--out", str(out)])
    _fails(capsys, error_line, "predict", out, code, str(table), "'busy_cores'", "row 5", "'many'")


def test_a_time_split_on_a_column_that_is_not_a_time(power_csv, tmp_path, capsys, error_line):
    out = tmp_path / "model"
    code = _train(power_csv, out, "--split", "time:host_node")
    line = _fails(capsys, error_line, "train", out, code, str(power_csv), "'host_node'")
    assert "neither a time nor a number" in line


def test_both_a_table_and_a_dataset(power_csv, world, tmp_path, capsys, error_line):
    out = tmp_path / "model"
    code = _train(power_csv, out, "--dataset", str(world.dataset))
    line = _fails(capsys, error_line, "train", out, code)
    assert "--table" in line and "--dataset" in line


def test_an_unknown_device_kind(world, tmp_path, capsys, error_line):
    out = tmp_path / "model"
    argv = ["train", "--dataset", str(world.dataset), "--target", "energy_joules", "--out", str(out)]
    line = _fails(capsys, error_line, "train", out, main([*argv, "--device-kind", "tpu"]), "'tpu'")
    assert "cpu_package" in line


def test_a_table_model_asked_about_a_dataset(csv_model, world, tmp_path, capsys, error_line):
    assert csv_model.code == 0
    out = tmp_path / "preds.parquet"
    argv = ["predict", "--model", str(csv_model.out), "--dataset", str(world.dataset), "--out", str(out)]
    line = _fails(capsys, error_line, "predict", out, main(argv), str(csv_model.out))
    assert "--table" in line
