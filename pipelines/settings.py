"""Where the pipeline reads and writes, from the environment with local defaults."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

DEFAULT_DATA_DIR = "data"
DEFAULT_SEED = 7
DEFAULT_WORKFLOWS = 24


@dataclass(frozen=True)
class Settings:
    """Paths under one data folder: recorded sources, asset storage and the trace dataset."""

    data_dir: Path
    recorded_dir: Path
    sample_world_seed: int | None
    sample_world_workflows: int

    @property
    def asset_dir(self) -> Path:
        return self.data_dir / "assets"

    @property
    def dataset_dir(self) -> Path:
        return self.data_dir / "dataset"

    @classmethod
    def under(
        cls,
        data_dir: str | Path,
        recorded_dir: str | Path | None = None,
        seed: int | None = DEFAULT_SEED,
        workflows: int = DEFAULT_WORKFLOWS,
    ) -> Settings:
        """Default layout: the sample world goes to <data_dir>/sample-world unless a recorded folder is given."""
        data_dir = Path(data_dir)
        if recorded_dir is None:
            return cls(data_dir, data_dir / "sample-world", seed, workflows)
        return cls(data_dir, Path(recorded_dir), None, workflows)

    @classmethod
    def from_env(cls) -> Settings:
        """JOULETRACE_DATA (default ./data) and JOULETRACE_RECORDED (default: the sample world)."""
        return cls.under(
            os.environ.get("JOULETRACE_DATA", DEFAULT_DATA_DIR),
            os.environ.get("JOULETRACE_RECORDED") or None,
        )
