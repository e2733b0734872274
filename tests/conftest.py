"""Shared fixtures: the real upstream data beside the project (../shared/data)."""

import shutil
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not SHARED_DATA.exists():
        pytest.fail(f"{SHARED_DATA} is missing: CI clones the project with ../shared beside it")
    return SHARED_DATA


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class PrometheusServer:
    """A real Prometheus (Debian's package) on 127.0.0.1 with a free port, ready when constructed.

    `tsdb` may hold blocks made by `promtool tsdb create-blocks-from openmetrics`; their old timestamps
    survive because retention is set to a century.
    """

    def __init__(self, folder: Path, config_text: str, tsdb: Path | None = None, ready_seconds: float = 30.0):
        binary = shutil.which("prometheus")
        if binary is None:
            pytest.skip(
                "the prometheus binary is not installed (make test installs Debian's package as root)"
            )
        folder.mkdir(parents=True, exist_ok=True)
        config = folder / "prometheus.yml"
        config.write_text(config_text)
        self.log_path = folder / "prometheus.log"
        self.url = f"http://127.0.0.1:{free_port()}"
        self._log = self.log_path.open("w")
        self.process = subprocess.Popen(
            [
                binary,
                f"--config.file={config}",
                f"--storage.tsdb.path={tsdb or folder / 'data'}",
                "--storage.tsdb.retention.time=100y",
                f"--web.listen-address={self.url.removeprefix('http://')}",
            ],
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + ready_seconds
        while not self._ready():
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                pytest.fail(f"Prometheus did not become ready: {self.log_path.read_text()[-2000:]}")
            time.sleep(0.1)

    def _ready(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.url}/-/ready", timeout=1) as response:
                return response.status == 200
        except OSError:
            return False

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._log.close()


@pytest.fixture(scope="session")
def start_prometheus():
    """Start real Prometheus servers; each is stopped by its test, and any left are stopped at the end."""
    started: list[PrometheusServer] = []

    def start(folder: Path, config_text: str, tsdb: Path | None = None) -> PrometheusServer:
        started.append(PrometheusServer(folder, config_text, tsdb))
        return started[-1]

    yield start
    for server in started:
        server.stop()


@pytest.fixture(scope="session")
def sample_dataset(tmp_path_factory) -> Path:
    """The trace dataset of the sample world (6 workflows, seed 3) as `jouletrace collect` makes it (the
    demo's collection and attribution, not its models and evaluations), built once and shared by the format
    and publication tests."""
    import dagster as dg

    from pipelines.build import TRACE_GROUPS
    from pipelines.run import materialize_everything, recorded_days, run_config
    from pipelines.settings import Settings

    settings = Settings.under(tmp_path_factory.mktemp("sample-world-6-3"), seed=3, workflows=6)
    instance = dg.DagsterInstance.ephemeral()
    config = run_config(log_level="WARNING")
    outcome = materialize_everything(settings, config, instance, recorded_days(settings), TRACE_GROUPS)
    assert outcome.success and not outcome.checks_failed, outcome.step_errors
    return settings.dataset_dir
