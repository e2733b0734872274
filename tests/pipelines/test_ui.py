"""`jouletrace ui` and the instance the project sets up: persistent DAGSTER_HOME under the data folder,
telemetry and the first-visit dialog off, no start-up warnings, the URL printed; runs in one process."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import dagster as dg
import pytest
import yaml

from pipelines.build import build_definitions
from pipelines.cli import main
from pipelines.demo import dagster_instance
from pipelines.instance import prepare_dagster_home
from pipelines.settings import Settings
from pipelines.ui_commands import graphql

ROOT = Path(__file__).resolve().parents[2]


def test_the_dagster_yaml_turns_telemetry_and_the_first_visit_dialog_off(tmp_path):
    home = prepare_dagster_home(tmp_path / "home")
    assert yaml.safe_load((home / "dagster.yaml").read_text()) == {
        "telemetry": {"enabled": False},
        "nux": {"enabled": False},
    }
    with dg.DagsterInstance.from_config(str(home)) as instance:
        assert not instance.telemetry_enabled
        assert not instance.nux_enabled


def test_settings_already_in_dagster_yaml_are_kept(tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    storage = {"sqlite": {"base_dir": str(tmp_path / "storage")}}
    (home / "dagster.yaml").write_text(
        yaml.safe_dump({"storage": storage, "telemetry": {"enabled": True}, "nux": {"other": 1}})
    )
    prepare_dagster_home(home)
    config = yaml.safe_load((home / "dagster.yaml").read_text())
    assert config == {
        "storage": storage,
        "telemetry": {"enabled": False},
        "nux": {"other": 1, "enabled": False},
    }
    written = (home / "dagster.yaml").stat().st_mtime_ns
    prepare_dagster_home(home)  # nothing to change: the file is left as it is
    assert (home / "dagster.yaml").stat().st_mtime_ns == written


def test_the_demo_uses_the_prepared_instance(tmp_path):
    with dagster_instance(tmp_path) as instance:
        assert not instance.telemetry_enabled and not instance.nux_enabled
    assert (tmp_path / "dagster_home" / "dagster.yaml").exists()


def test_runs_execute_in_process(tmp_path):
    """The UI's runs execute every step in the run worker's process (not a process per step)."""
    job = build_definitions(Settings.under(tmp_path)).resolve_implicit_global_asset_job_def()
    assert job.executor_def is dg.in_process_executor


def test_a_port_in_use_is_a_one_line_error(tmp_path, capsys):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert main(["ui", "--data", str(tmp_path), "--port", str(port)]) == 2
    err = capsys.readouterr().err.strip()
    assert f"127.0.0.1:{port} is in use" in err and len(err.splitlines()) == 1


def _read_lines(stream, lines: list[str]) -> None:
    for line in stream:
        lines.append(line.rstrip("\n"))


def test_jouletrace_ui_starts_quietly_on_the_sample_world_and_prints_the_url(tmp_path):
    data = tmp_path / "data"
    process = subprocess.Popen(
        [sys.executable, "-m", "pipelines.cli", "ui", "--data", str(data), "--port", "0"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    lines: list[str] = []
    reader = threading.Thread(target=_read_lines, args=(process.stdout, lines), daemon=True)
    reader.start()
    try:
        deadline = time.monotonic() + 240
        while not any(line.startswith("jouletrace ui: http://") for line in lines):
            assert process.poll() is None, "\n".join(lines)
            assert time.monotonic() < deadline, "no URL within 240 s:\n" + "\n".join(lines)
            time.sleep(0.5)
        printed = next(line for line in lines if line.startswith("jouletrace ui: http://"))
        url = printed.split()[2]
        assert url.startswith("http://127.0.0.1:")
        assert str((data / "dagster_home").resolve()) in printed and "sample world" in printed

        answer = graphql(url, "{ shouldShowNux version instance { info } }")
        assert answer["shouldShowNux"] is False
        home = data / "dagster_home"
        assert str(home.resolve()) in answer["instance"]["info"]  # the persistent DAGSTER_HOME
        assert yaml.safe_load((home / "dagster.yaml").read_text())["telemetry"] == {"enabled": False}
        time.sleep(2)  # let the daemon report in
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=60)
        finally:
            if process.poll() is None:
                process.kill()
    reader.join(timeout=5)
    output = "\n".join(lines)
    # Nothing of our making at start-up: no missing dagster.yaml, telemetry banner or superseded command.
    assert "Serving dagster-webserver" in output, output  # dagster dev's own log is read here
    assert "WARNING" not in output and "Warning" not in output, output
    assert "Telemetry" not in output, output
    with socket.socket() as probe:  # dagster dev and its webserver stopped with it
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        probe.bind(("127.0.0.1", int(url.rsplit(":", 1)[1])))


@pytest.mark.parametrize("argv", [["ui", "--help"]])
def test_ui_is_a_command(argv, capsys):
    with pytest.raises(SystemExit) as exit_:
        main(argv)
    assert exit_.value.code == 0
    assert "dagster_home" in capsys.readouterr().out
