"""Where the pipeline reads and writes: a recorded folder (the sample world by default) or live servers."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

DEFAULT_DATA_DIR = "data"
DEFAULT_SEED = 7
DEFAULT_WORKFLOWS = 24
DEFAULT_DIALECTS = ("agent",)


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
    folders go (`models_dir` None: `models/` beside the asset folder)."""

    asset_dir: Path
    dataset_dir: Path
    recorded_dir: Path | None
    sample_world_seed: int | None = DEFAULT_SEED
    sample_world_workflows: int = DEFAULT_WORKFLOWS
    live: LiveSources = field(default_factory=LiveSources)
    models_dir: Path | None = None

    def __post_init__(self) -> None:
        if self.models_dir is None:
            object.__setattr__(self, "models_dir", Path(self.asset_dir).parent / "models")

    @classmethod
    def under(
        cls,
        data_dir: str | Path,
        recorded_dir: str | Path | None = None,
        seed: int | None = DEFAULT_SEED,
        workflows: int = DEFAULT_WORKFLOWS,
        live: LiveSources | None = None,
    ) -> Settings:
        """Default layout of one data folder: assets/, dataset/, models/ and, unless a recorded folder is
        given, the sample world in sample-world/ (generated there on first use)."""
        data_dir = Path(data_dir)
        return cls(
            asset_dir=data_dir / "assets",
            dataset_dir=data_dir / "dataset",
            recorded_dir=data_dir / "sample-world" if recorded_dir is None else Path(recorded_dir),
            sample_world_seed=seed if recorded_dir is None else None,
            sample_world_workflows=workflows,
            live=live or LiveSources(),
            models_dir=data_dir / "models",
        )

    @classmethod
    def from_env(cls) -> Settings:
        """JOULETRACE_DATA (default ./data), JOULETRACE_RECORDED (default: the sample world) and, for live
        collection, JOULETRACE_ARGO_URL, JOULETRACE_NAMESPACE, JOULETRACE_KUBERNETES_URL, KUBECONFIG,
        JOULETRACE_PROMETHEUS_URL, JOULETRACE_DIALECTS and JOULETRACE_USAGE_DIALECTS (comma-separated). Tokens are read by the clients
        from ARGO_TOKEN / KUBERNETES_TOKEN and never stored here."""
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
            env.get("JOULETRACE_DATA", DEFAULT_DATA_DIR), env.get("JOULETRACE_RECORDED") or None, live=live
        )


def _names(text: str) -> tuple[str, ...]:
    return tuple(name.strip() for name in text.split(",") if name.strip())
