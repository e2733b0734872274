"""Where the pipeline reads and writes: a recorded folder (the sample world by default) or live servers."""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # datasets.storage imports fsspec and upath: only where a location is made (start-up time)
    from datasets.storage import Location, StoragePath

DEFAULT_DATA_DIR = "data"
DEFAULT_SEED = 7
DEFAULT_WORKFLOWS = 24
DEFAULT_DIALECTS = ("agent",)
# First day collection partitions start from, and when the nightly collection runs (UTC).
DEFAULT_COLLECTION_START = "2024-01-01"
DEFAULT_COLLECTION_CRON = "30 1 * * *"


@dataclass(frozen=True)
class LiveSources:
    """Live servers; a source left None is served by the recorded folder instead.

    Kubernetes is read live when its API URL or a kubeconfig is given, or when Argo is live (a live
    cluster's pods are not in any recorded folder); the kubeconfig then comes from KUBECONFIG,
    ~/.kube/config or the in-cluster service account.
    """

    argo_url: str | None = None
    namespace: str | None = None
    kubernetes_url: str | None = None
    kubeconfig: str | None = None
    prometheus_url: str | None = None
    dialects: tuple[str, ...] = DEFAULT_DIALECTS
    usage_dialects: tuple[str, ...] = ()

    @property
    def kubernetes_is_live(self) -> bool:
        return bool(self.kubernetes_url or self.kubeconfig or self.argo_url)


@dataclass(frozen=True)
class Settings:
    """Where sources are read from, where asset values are kept and where the trace dataset and the model
    folders go (`models_dir` None: `models/` beside the asset folder).

    The asset, dataset and model locations are local folders or fsspec URLs (``s3://bucket/prefix``),
    kept as `pathlib.Path` or `upath.UPath` (datasets/store.py); the recorded folder is always local."""

    asset_dir: StoragePath
    dataset_dir: StoragePath
    recorded_dir: Path | None
    sample_world_seed: int | None = DEFAULT_SEED
    sample_world_workflows: int = DEFAULT_WORKFLOWS
    live: LiveSources = field(default_factory=LiveSources)
    models_dir: StoragePath | None = None
    # First day that can be collected (YYYY-MM-DD, UTC) and when the nightly collection runs (cron, UTC).
    collection_start: str = DEFAULT_COLLECTION_START
    collection_cron: str = DEFAULT_COLLECTION_CRON

    def __post_init__(self) -> None:
        from datasets.storage import storage_path

        try:
            date.fromisoformat(self.collection_start)
        except ValueError:
            raise ValueError(
                f"collection start {self.collection_start!r} is not a day; write it as YYYY-MM-DD "
                "(JOULETRACE_COLLECTION_START)"
            ) from None
        object.__setattr__(self, "asset_dir", storage_path(self.asset_dir))
        object.__setattr__(self, "dataset_dir", storage_path(self.dataset_dir))
        if self.models_dir is None:
            object.__setattr__(self, "models_dir", self.asset_dir.parent / "models")
        else:
            object.__setattr__(self, "models_dir", storage_path(self.models_dir))

    @classmethod
    def under(
        cls,
        data_dir: Location,
        recorded_dir: str | Path | None = None,
        seed: int | None = DEFAULT_SEED,
        workflows: int = DEFAULT_WORKFLOWS,
        live: LiveSources | None = None,
        collection_start: str = DEFAULT_COLLECTION_START,
        collection_cron: str = DEFAULT_COLLECTION_CRON,
    ) -> Settings:
        """Default layout of one data folder or object-store prefix: assets/, dataset/, models/ and,
        unless a recorded folder is given, the sample world in sample-world/ (generated there on first
        use). With object storage (`data_dir` an fsspec URL) the sample world goes to a local folder
        instead (`sample_world_cache`): it is regenerated identically from its seed in each pod."""
        from datasets.storage import local_path, storage_path

        data_dir = storage_path(data_dir)
        if recorded_dir is not None:
            recorded = local_path(recorded_dir)
            if recorded is None:
                raise ValueError(
                    f"{recorded_dir}: the recorded folder is read from local disk; copy it into the image "
                    "or a mounted volume and give that path"
                )
        else:
            local_data = local_path(data_dir)
            recorded = (
                sample_world_cache(seed, workflows) if local_data is None else local_data / "sample-world"
            )
        return cls(
            asset_dir=data_dir / "assets",
            dataset_dir=data_dir / "dataset",
            recorded_dir=recorded,
            sample_world_seed=seed if recorded_dir is None else None,
            sample_world_workflows=workflows,
            live=live or LiveSources(),
            models_dir=data_dir / "models",
            collection_start=collection_start,
            collection_cron=collection_cron,
        )

    @classmethod
    def from_env(cls) -> Settings:
        """JOULETRACE_DATA (default ./data; a folder or an fsspec URL such as s3://bucket/prefix, whose
        credentials the filesystem reads from its own variables), JOULETRACE_RECORDED (default: the sample
        world) and, for live collection, JOULETRACE_ARGO_URL, JOULETRACE_NAMESPACE,
        JOULETRACE_KUBERNETES_URL, KUBECONFIG, JOULETRACE_PROMETHEUS_URL, JOULETRACE_DIALECTS and
        JOULETRACE_USAGE_DIALECTS (comma-separated); JOULETRACE_COLLECTION_START (first day, YYYY-MM-DD)
        and JOULETRACE_COLLECTION_CRON (the nightly collection, UTC). Tokens are read by the clients from ARGO_TOKEN /
        KUBERNETES_TOKEN and never stored here."""
        env = os.environ
        dialects = _names(env.get("JOULETRACE_DIALECTS", ""))
        live = LiveSources(
            argo_url=env.get("JOULETRACE_ARGO_URL") or None,
            namespace=env.get("JOULETRACE_NAMESPACE") or None,
            kubernetes_url=env.get("JOULETRACE_KUBERNETES_URL") or None,
            kubeconfig=env.get("KUBECONFIG") if env.get("JOULETRACE_ARGO_URL") else None,
            prometheus_url=env.get("JOULETRACE_PROMETHEUS_URL") or None,
            dialects=dialects or DEFAULT_DIALECTS,
            usage_dialects=_names(env.get("JOULETRACE_USAGE_DIALECTS", "")),
        )
        return cls.under(
            env.get("JOULETRACE_DATA", DEFAULT_DATA_DIR),
            env.get("JOULETRACE_RECORDED") or None,
            live=live,
            collection_start=env.get("JOULETRACE_COLLECTION_START") or DEFAULT_COLLECTION_START,
            collection_cron=env.get("JOULETRACE_COLLECTION_CRON") or DEFAULT_COLLECTION_CRON,
        )


def sample_world_cache(seed: int | None, workflows: int) -> Path:
    """Local folder of the sample world when the data folder is on object storage."""
    return Path(tempfile.gettempdir()) / f"jouletrace-sample-world-seed{seed}-workflows{workflows}"


def _names(text: str) -> tuple[str, ...]:
    return tuple(name.strip() for name in text.split(",") if name.strip())
