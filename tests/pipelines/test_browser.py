"""The UI in a real browser: `dagster dev` on 127.0.0.1 (as `jouletrace ui` starts it), Debian's headless
Chromium driven by Playwright for Python, a materialization launched through Dagster's GraphQL API.

The asset graph must show every asset of the pipeline and no first-visit dialog; the collection assets are
materialized (polled to success) and a screenshot of the graph is kept in the test's tmp_path and in
test-artifacts/asset-graph.png (ignored by git). `make test` installs chromium (as root) and Playwright;
without them this test skips with one line saying what is missing.
"""

from __future__ import annotations

import shutil
import struct
import urllib.parse
from pathlib import Path

import pytest

from datasets.sample_world import generate
from datasets.sample_world.world import WORLD_START
from pipelines.build import ASSETS as BUILT_ASSETS
from pipelines.ui_commands import (
    free_port,
    launch_materialization,
    run_failure,
    start_ui,
    stop_ui,
    wait_for_run,
    wait_until_loaded,
)

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts"
# Every asset of the definitions (multi-assets give several).
ASSETS = {key.to_user_string() for definition in BUILT_ASSETS for key in definition.keys}


def _chromium() -> str:
    for name in ("chromium", "chromium-browser"):
        path = shutil.which(name)
        if path:
            return path
    pytest.skip("no chromium on PATH (make test installs Debian's chromium as root)")


@pytest.fixture(scope="module")
def browser():
    executable = _chromium()
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.skip("Playwright for Python is not installed (make test installs it)")
    with sync_playwright() as playwright:
        # The system browser: Playwright's own browser downloads are not used. No sandbox when root.
        chromium = playwright.chromium.launch(executable_path=executable, args=["--no-sandbox"])
        yield chromium
        chromium.close()


@pytest.fixture(scope="module")
def ui(tmp_path_factory):
    data = tmp_path_factory.mktemp("ui-data")
    # A small sample world, so collecting it takes seconds (the pipeline generates one when there is none).
    generate(data / "sample-world", n_workflows=4, seed=5)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log_path = data / "dagster-dev.log"
    with log_path.open("w") as log:
        process = start_ui(data, port=port, log=log)
        try:
            yield url, wait_until_loaded(url, process=process)
        finally:
            stop_ui(process)


def _shown(name: str, texts: list[str]) -> bool:
    """An asset's name is on a node, whole or middle-truncated with an ellipsis as the graph draws long ones."""
    for text in texts:
        if text == name:
            return True
        head, sep, tail = text.partition("…")
        if sep and len(head) >= 3 and name.startswith(head) and name.endswith(tail):
            return True
    return False


def _open_graph(page, url: str, groups: list[str]) -> list[str]:
    """The global asset graph with every group expanded and zoomed out to fit; the node texts on it."""
    expanded = ",".join(f"global@global:{group}" for group in groups)
    page.goto(f"{url}/asset-groups/?expanded={urllib.parse.quote(expanded)}", wait_until="networkidle")
    page.get_by_text("task_runs", exact=True).first.wait_for(timeout=60_000)
    for _ in range(4):
        page.locator("button:has([aria-label=zoom_out])").click()
        page.wait_for_timeout(250)
    page.wait_for_timeout(1500)
    return [text.strip() for text in page.locator("body").inner_text().splitlines() if text.strip()]


def _png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    return struct.unpack(">II", data[16:24])


def test_asset_graph_in_chromium_and_a_materialization_through_graphql(browser, ui, tmp_path):
    url, location = ui
    assert {"/".join(key) for key in location.asset_keys} == ASSETS
    page = browser.new_page(viewport={"width": 1920, "height": 2000})
    try:
        texts = _open_graph(page, url, list(location.groups))
        missing = [name for name in sorted(ASSETS) if not _shown(name, texts)]
        assert not missing, f"not on the asset graph: {missing}"
        # First-visit dialogs are off in the instance the project sets up (nux: enabled: false).
        assert page.locator("[role=dialog]").count() == 0

        day = {"dagster/partition": WORLD_START.date().isoformat()}  # the sample world's day
        run_id = launch_materialization(url, location, location.groups["collect"], tags=day)
        run = wait_for_run(url, run_id, timeout=300)
        assert run["status"] == "SUCCESS", run_failure(url, run_id)

        texts = _open_graph(page, url, list(location.groups))
        assert all(_shown(name, texts) for name in ASSETS)
        shot = tmp_path / "asset-graph.png"
        page.screenshot(path=str(shot))
    finally:
        page.close()
    ARTIFACTS.mkdir(exist_ok=True)
    shutil.copyfile(shot, ARTIFACTS / "asset-graph.png")
    data = shot.read_bytes()
    assert _png_size(data) == (1920, 2000)
    assert len(data) > 50_000, f"a {len(data)}-byte screenshot is too small to show the graph"
