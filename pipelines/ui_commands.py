"""`jouletrace ui`: the Dagster UI on the sample world, and a small client of the UI's GraphQL API.

`jouletrace ui [--data DIR]` sets up a persistent instance in DIR/dagster_home (telemetry and the
first-visit dialog off, pipelines/instance.py), points the pipeline at DIR (JOULETRACE_DATA: the sample
world in DIR/sample-world unless JOULETRACE_RECORDED names a recorded folder), starts `dagster dev` on
this project's workspace.yaml, prints the URL once the code location has loaded and runs until Ctrl-C.
After `jouletrace demo --out DIR` the UI shows the demo's run, materializations and check results.

The client functions (`graphql`, `wait_until_loaded`, `launch_materialization`, `wait_for_run`) drive the
same API the UI uses; the browser test and benchmarks/ui.py use them.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from pipelines.settings import DEFAULT_DATA_DIR

PROJECT_ROOT = Path(__file__).resolve().parents[1]
WORKSPACE = PROJECT_ROOT / "workspace.yaml"
FINISHED = {"SUCCESS", "FAILURE", "CANCELED"}
# `dagster dev` says at start-up that it is superseded by `dg dev`, which needs the separate dagster-dg-cli
# package and project layout; in 1.13 both start the same webserver, daemon and code server.
_SUPERSEDED = r"ignore:Function `dev_command` is superseded:FutureWarning"


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as probe:
        probe.bind((host, 0))
        return probe.getsockname()[1]


def _port_free(host: str, port: int) -> bool:
    with socket.socket() as probe:
        try:
            probe.bind((host, port))
        except OSError:
            return False
    return True


def ui_environment(data_dir: str | Path, base: dict[str, str] | None = None) -> dict[str, str]:
    """The environment `dagster dev` runs in: the instance and the data folder under `data_dir`."""
    from pipelines.instance import prepare_dagster_home  # imports yaml: only when the UI starts

    data_dir = Path(data_dir).resolve()
    env = dict(os.environ if base is None else base)
    env["DAGSTER_HOME"] = str(prepare_dagster_home(data_dir / "dagster_home"))
    env["JOULETRACE_DATA"] = str(data_dir)
    # The project's packages import from the code server and run workers whatever their working folder.
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(PROJECT_ROOT), env.get("PYTHONPATH")]))
    return env


def start_ui(data_dir: str | Path, host: str = "127.0.0.1", port: int = 3000, log=None) -> subprocess.Popen:
    """`dagster dev` on workspace.yaml in its own process group (stop it with `stop_ui`)."""
    command = [
        *(sys.executable, "-W", _SUPERSEDED, "-m", "dagster", "dev"),
        *("-w", str(WORKSPACE), "-h", host, "-p", str(port)),
    ]
    return subprocess.Popen(
        command,
        cwd=PROJECT_ROOT,
        env=ui_environment(data_dir),
        stdout=log,
        stderr=subprocess.STDOUT if log is not None else None,
        start_new_session=True,
        # Ctrl-C is how `dagster dev` is stopped; a background parent may have left SIGINT ignored.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )


def stop_ui(process: subprocess.Popen, timeout: float = 30.0) -> None:
    """Interrupt `dagster dev` (it then stops its webserver, daemon and code server in order); what is left
    of its process group after `timeout` is terminated, then killed."""
    if process.poll() is None:
        process.send_signal(signal.SIGINT)
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=timeout)
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            break
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            continue
        time.sleep(0.5)  # children still closing after the parent exited


def graphql(url: str, query: str, variables: dict | None = None, timeout: float = 60.0) -> dict:
    """POST one query to `url`/graphql and return its data; GraphQL errors raise RuntimeError."""
    import urllib.request  # here, not at the top: the command line loads this module for every command

    body = json.dumps({"query": query, "variables": variables or {}}).encode()
    request = urllib.request.Request(
        url.rstrip("/") + "/graphql", data=body, headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=timeout) as response:
        answer = json.load(response)
    if answer.get("errors"):
        raise RuntimeError("; ".join(error.get("message", str(error)) for error in answer["errors"]))
    return answer["data"]


@dataclass(frozen=True)
class CodeLocation:
    location: str
    repository: str
    asset_keys: list[list[str]]
    checks: list[tuple[list[str], str]]
    groups: dict[str, list[list[str]]]


_WORKSPACE_QUERY = """
{
  workspaceOrError {
    __typename
    ... on Workspace {
      locationEntries {
        name
        loadStatus
        locationOrLoadError {
          __typename
          ... on PythonError { message }
          ... on RepositoryLocation {
            repositories {
              name
              assetNodes {
                assetKey { path }
                groupName
                isMaterializable
                assetChecksOrError { ... on AssetChecks { checks { name } } }
              }
            }
          }
        }
      }
    }
  }
}
"""


def wait_until_loaded(
    url: str, timeout: float = 240.0, process: subprocess.Popen | None = None
) -> CodeLocation:
    """Poll until the webserver answers and its code location has loaded; its assets and checks."""
    import urllib.error

    deadline = time.monotonic() + timeout
    last = "no answer"
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"dagster dev exited with code {process.returncode} before the UI was up")
        try:
            workspace = graphql(url, _WORKSPACE_QUERY, timeout=10)["workspaceOrError"]
        except (urllib.error.URLError, ConnectionError, TimeoutError, RuntimeError) as exc:
            last = str(exc)
            time.sleep(0.5)
            continue
        for entry in workspace.get("locationEntries", []):
            loaded = entry["locationOrLoadError"]
            if entry["loadStatus"] != "LOADED" or loaded is None:
                last = f"{entry['name']}: {entry['loadStatus']}"
                continue
            if loaded["__typename"] != "RepositoryLocation":
                raise RuntimeError(f"code location {entry['name']} failed to load: {loaded.get('message')}")
            repository = loaded["repositories"][0]
            nodes = [node for node in repository["assetNodes"] if node["isMaterializable"]]
            return CodeLocation(
                location=entry["name"],
                repository=repository["name"],
                asset_keys=[node["assetKey"]["path"] for node in nodes],
                checks=[
                    (node["assetKey"]["path"], check["name"])
                    for node in nodes
                    for check in (node["assetChecksOrError"] or {}).get("checks", [])
                ],
                groups={
                    group: [node["assetKey"]["path"] for node in nodes if node["groupName"] == group]
                    for group in sorted({node["groupName"] for node in nodes})
                },
            )
        time.sleep(0.5)
    raise TimeoutError(f"the UI at {url} was not ready within {timeout:.0f} s ({last})")


_LAUNCH = """
mutation Launch($executionParams: ExecutionParams!) {
  launchRun(executionParams: $executionParams) {
    __typename
    ... on LaunchRunSuccess { run { runId } }
    ... on Error { message }
    ... on RunConfigValidationInvalid { errors { message } }
  }
}
"""


def launch_materialization(
    url: str,
    location: CodeLocation,
    asset_keys: list[list[str]] | None = None,
    run_config: dict | None = None,
    tags: dict[str, str] | None = None,
) -> str:
    """Launch a run of the assets (all by default) and their checks, as the UI's Materialize button does
    (with ``run_config`` as the launchpad would give it, and ``tags`` naming the days of the collection
    partitions, as the partition picker does)."""
    keys = location.asset_keys if asset_keys is None else asset_keys
    selected = {tuple(key) for key in keys}
    params = {
        "selector": {
            "repositoryLocationName": location.location,
            "repositoryName": location.repository,
            "jobName": "__ASSET_JOB",
            "assetSelection": [{"path": key} for key in keys],
            "assetCheckSelection": [
                {"assetKey": {"path": key}, "name": name}
                for key, name in location.checks
                if tuple(key) in selected
            ],
        },
        "mode": "default",
        "runConfigData": run_config or {},
        "executionMetadata": {"tags": [{"key": k, "value": v} for k, v in (tags or {}).items()]},
    }
    result = graphql(url, _LAUNCH, {"executionParams": params})["launchRun"]
    if result["__typename"] != "LaunchRunSuccess":
        detail = result.get("message") or "; ".join(e["message"] for e in result.get("errors", []))
        raise RuntimeError(f"launchRun: {result['__typename']}: {detail}")
    return result["run"]["runId"]


_RUN_STATUS = """
query Run($runId: ID!) {
  runOrError(runId: $runId) {
    __typename
    ... on Run { status startTime endTime }
    ... on Error { message }
  }
}
"""


def wait_for_run(url: str, run_id: str, timeout: float = 900.0, poll: float = 1.0) -> dict:
    """Poll a run until it finishes; its status, startTime and endTime (Unix seconds)."""
    deadline = time.monotonic() + timeout
    while True:
        run = graphql(url, _RUN_STATUS, {"runId": run_id})["runOrError"]
        if run["__typename"] != "Run":
            raise RuntimeError(f"run {run_id}: {run['__typename']}: {run.get('message')}")
        if run["status"] in FINISHED:
            return run
        if time.monotonic() > deadline:
            raise TimeoutError(f"run {run_id} still {run['status']} after {timeout:.0f} s")
        time.sleep(poll)


def run_failure(url: str, run_id: str) -> str:
    """The step failures of a run, one line each (for a failed run's error message)."""
    query = """
    query Logs($runId: ID!) {
      logsForRun(runId: $runId) {
        ... on EventConnection {
          events { __typename ... on ExecutionStepFailureEvent { stepKey error { message } } }
        }
      }
    }
    """
    events = graphql(url, query, {"runId": run_id})["logsForRun"].get("events", [])
    failures = [e for e in events if e["__typename"] == "ExecutionStepFailureEvent"]
    return "\n".join(f"{e['stepKey']}: {e['error']['message'].strip()}" for e in failures) or "no step failed"


def _exit_on_signal(signum, frame) -> None:
    raise SystemExit(128 + signum)


def cmd_ui(args) -> int:
    port = args.port or free_port(args.host)
    if not _port_free(args.host, port):
        raise ValueError(f"--port {port}: {args.host}:{port} is in use; choose another, or 0 for a free one")
    url = f"http://{args.host}:{port}"
    data_dir = Path(args.data).resolve()
    process = start_ui(data_dir, args.host, port)
    # Stopped by a signal, stop `dagster dev` too (it runs in its own session, so nothing else would).
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, _exit_on_signal)
    signal.signal(signal.SIGHUP, _exit_on_signal)
    try:
        location = wait_until_loaded(url, process=process)
        sample = "JOULETRACE_RECORDED" not in os.environ
        source = (
            f"sample world in {data_dir / 'sample-world'}" if sample else os.environ["JOULETRACE_RECORDED"]
        )
        print(
            f"jouletrace ui: {url}  ({len(location.asset_keys)} assets; data {data_dir}, {source}; "
            f"DAGSTER_HOME {data_dir / 'dagster_home'}; Ctrl-C stops it)",
            flush=True,
        )
        return process.wait()
    except KeyboardInterrupt:
        return 0
    finally:
        stop_ui(process)


def add_ui_commands(sub) -> None:
    u = sub.add_parser(
        "ui",
        help="start the Dagster UI on the sample world with a persistent instance in DATA/dagster_home",
    )
    u.add_argument(
        "--data",
        default=os.environ.get("JOULETRACE_DATA", DEFAULT_DATA_DIR),
        help="data folder: assets/, dataset/, models/, sample-world/ and dagster_home/ (default "
        "JOULETRACE_DATA or ./data, where `jouletrace demo` writes)",
    )
    u.add_argument("--host", default="127.0.0.1", help="address to serve on (default 127.0.0.1)")
    u.add_argument("--port", type=int, default=3000, help="port (default 3000; 0 picks a free one)")
    u.set_defaults(run=cmd_ui)
