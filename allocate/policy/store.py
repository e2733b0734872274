"""A policy directory: the network's weights, what they were trained for, and the model card.

``policy.pt`` holds the weights (a PyTorch state dict); ``policy.json`` the feature set, the network's
sizes and the platform shape it was trained on (machine count and each machine's cores, GPUs and
FPGAs); ``model_card.json`` the training set, seed, options, library versions, minutes and learning
curve. A directory made for another feature set or platform shape is refused with the reason.
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import platform as python_platform
import tempfile
from pathlib import Path

import torch

from allocate.policy.features import FEATURE_SET
from allocate.policy.network import GraphPolicyNetwork
from allocate.scheduling.platform import Platform

POLICY_FORMAT = "jouletrace.policy/1"
LIBRARIES = ("torch", "stable-baselines3", "sb3-contrib", "gymnasium", "numpy")
DEFAULT_POLICY = Path(__file__).parent / "default"


class PolicyError(ValueError):
    """A policy directory that cannot be used here; the message says why and what to do."""


def platform_shape(platform: Platform) -> list[dict]:
    return [{"cores": m.cores, "gpus": m.gpus, "fpgas": m.fpgas} for m in platform.machines]


def library_versions() -> dict[str, str]:
    versions = {"python": python_platform.python_version()}
    for name in LIBRARIES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def _write_atomic(path: Path, data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    os.chmod(tmp, 0o644)
    os.replace(tmp, path)


def save_policy(network: GraphPolicyNetwork, platform: Platform, card: dict, out: Path) -> Path:
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    config = {
        "format": POLICY_FORMAT,
        "feature_set": FEATURE_SET,
        "machines": network.machines,
        "hidden": network.hidden,
        "layers": network.layers,
        "platform": platform.name,
        "platform_shape": platform_shape(platform),
    }
    with tempfile.SpooledTemporaryFile() as buffer:
        torch.save(network.state_dict(), buffer)
        buffer.seek(0)
        _write_atomic(out / "policy.pt", buffer.read())
    _write_atomic(out / "policy.json", json.dumps(config, indent=1).encode())
    _write_atomic(out / "model_card.json", json.dumps(card, indent=1, default=float).encode())
    return out


def load_policy(folder: Path, platform: Platform) -> GraphPolicyNetwork:
    """The network of ``folder``, checked against this feature set and the platform's shape."""
    folder = Path(folder)
    config_path = folder / "policy.json"
    if not config_path.is_file() or not (folder / "policy.pt").is_file():
        raise PolicyError(f"--policy {folder}: not a policy directory (needs policy.json and policy.pt)")
    try:
        config = json.loads(config_path.read_text())
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise PolicyError(f"{config_path}: not JSON ({exc})") from None
    if config.get("format") != POLICY_FORMAT:
        raise PolicyError(
            f"{config_path}: format {config.get('format')!r}, this version reads {POLICY_FORMAT}"
        )
    if config.get("feature_set") != FEATURE_SET:
        raise PolicyError(
            f"{config_path}: trained on feature set {config.get('feature_set')!r}, this version computes "
            f"{FEATURE_SET}; train again with jouletrace train-policy"
        )
    shape = platform_shape(platform)
    if config.get("platform_shape") != shape:
        raise PolicyError(
            f"{config_path}: trained for platform {config.get('platform')!r} with "
            f"{len(config.get('platform_shape') or [])} machine(s) of other cores/GPUs/FPGAs than "
            f"{platform.name} ({len(shape)} machines); train a policy for this platform with "
            "jouletrace train-policy --platform"
        )
    network = GraphPolicyNetwork(config["machines"], config["hidden"], config["layers"])
    try:
        network.load_state_dict(torch.load(folder / "policy.pt", map_location="cpu", weights_only=True))
    except (RuntimeError, OSError, EOFError) as exc:
        raise PolicyError(f"{folder / 'policy.pt'}: cannot be loaded as this network ({exc})") from None
    network.eval()
    return network
