"""One AttributionOptions for the Python API, `jouletrace attribute`, `jouletrace collect` and the Dagster
config: every field reaches the engine from each of them, with the same defaults."""

from dataclasses import fields

import pytest

from datasets.attribution import OPTION_NAMES, AttributionOptions
from pipelines.cli import main, parser
from pipelines.traces.assets import AttributionConfig

# A value other than the default for every option; a new option must be added here, and then fails below
# until the command line and the Dagster config carry it.
CHANGED = {
    "idle_policy": ("time", ["--idle-policy", "time"]),
    "split": ("plain", ["--split", "plain"]),
    "share": ("usage", ["--share", "usage"]),
    "window_seconds": (900.0, ["--window-seconds", "900"]),
    "idle_power_watts": (
        {("node-1", "cpu_package"): 38.5, ("node-2", "gpu"): 60.0},
        ["--idle-power", "node-1:cpu_package=38.5", "--idle-power", "node-2:gpu=60"],
    ),
    "skew_tolerance_seconds": (2.5, ["--skew-tolerance-seconds", "2.5"]),
    "correct_skew": (True, ["--correct-skew"]),
    "fast": (True, ["--fast"]),
    "threads": (3, ["--threads", "3"]),
}
COMMANDS = {
    "attribute": ["attribute", "--tasks", "t.parquet", "--samples", "s.parquet", "--out", "o.parquet"],
    "collect": ["collect", "--out", "dataset"],
}


def test_every_option_has_a_changed_value_here():
    assert set(CHANGED) == set(OPTION_NAMES)


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_the_command_line_gives_the_defaults_and_every_option(command):
    args = parser().parse_args(COMMANDS[command])
    assert AttributionOptions.from_command_line(vars(args)) == AttributionOptions()
    flags = [flag for _, command_line in CHANGED.values() for flag in command_line]
    args = parser().parse_args(COMMANDS[command] + flags)
    expected = AttributionOptions(**{name: value for name, (value, _) in CHANGED.items()})
    assert AttributionOptions.from_command_line(vars(args)) == expected


def test_the_dagster_config_holds_every_option_with_its_default():
    config_fields = set(AttributionConfig.model_fields) - {"idle_power"} | {"idle_power_watts"}
    assert config_fields == set(OPTION_NAMES)
    assert AttributionConfig().options() == AttributionOptions()
    options = AttributionOptions(**{name: value for name, (value, _) in CHANGED.items()})
    assert AttributionConfig(**AttributionConfig.from_options(options)).options() == options


def test_options_refuse_bad_values_naming_the_option():
    for changes, named in (
        ({"idle_policy": "equal"}, "idle_policy"),
        ({"split": "requests", "share": "usage"}, 'split "requests"'),
        ({"window_seconds": 0.0}, "window_seconds"),
        ({"skew_tolerance_seconds": -1.0}, "skew_tolerance_seconds"),
        ({"correct_skew": True}, "correct_skew"),
        ({"threads": 0}, "threads"),
        ({"idle_power_watts": {("node-1", "gpu"): -3.0}}, "idle_power_watts"),
    ):
        with pytest.raises(ValueError, match=named):
            AttributionOptions(**changes)
    assert all(one.metadata["help"] for one in fields(AttributionOptions))


def test_a_bad_combination_on_the_command_line_is_one_line_and_exit_2(capsys):
    assert main([*COMMANDS["attribute"], "--correct-skew"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "correct_skew needs a positive skew_tolerance_seconds" in err[0]
    with pytest.raises(SystemExit) as exited:  # argparse's own exit for a value it cannot parse
        main([*COMMANDS["attribute"], "--idle-power", "node-1=5"])
    assert exited.value.code == 2
    assert "'node-1=5' is not HOST:KIND=WATTS" in capsys.readouterr().err
