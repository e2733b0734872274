"""Shared fixtures: the real upstream data beside the project (../shared/data)."""

from pathlib import Path

import pytest

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not SHARED_DATA.exists():
        pytest.fail(f"{SHARED_DATA} is missing: CI clones the project with ../shared beside it")
    return SHARED_DATA
