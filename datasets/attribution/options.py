"""What a user chooses about an attribution: one frozen object for the Python API, `attribute_dataset`, the
Dagster config (pipelines/traces/assets.py, checked against it by tests/pipelines/test_attribution_options.py),
`jouletrace attribute` and `jouletrace collect`, so an option added here appears everywhere.

Each field carries its command-line flag and help in its metadata; the command line builds its options from
them (`command_line_arguments`), and every value is checked when the object is made, so a bad value fails at
the edge with one line naming the option, not deep inside the engine.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from dataclasses import MISSING, dataclass, field, fields
from types import MappingProxyType

# Enumerations, declared once: the engine, the CLI choices and the Dagster config all use these.
IDLE_POLICIES = ("none", "requests", "time")
# "requests" is the first engine's name for plain + share "requests"; it stays accepted.
SPLITS = ("fitted", "plain", "requests")
SHARES = ("usage", "requests", "kepler")
DEFAULT_WINDOW_SECONDS = 3600.0
# The columns the engine reads of each input table (None: all of them), so a command reads only these;
# tasks' attempt completes their key, so duplicated tasks are still refused.
COLUMNS_READ: dict[str, tuple[str, ...] | None] = {
    "tasks": (
        "workflow_uid",
        "task_id",
        "attempt",
        "template_name",
        "host_node",
        "started_at",
        "finished_at",
        "time_resolution_seconds",
        "cpu_request_cores",
        "gpu_ids",
        "fpga_ids",
        "pod_uid",
        "pod_name",
    ),
    "machines": ("host_node", "cpu_model", "sockets", "cores", "gpu_models", "labels"),
    "power_samples": None,
    "container_samples": None,
}
# Tables whose text columns the engine takes dictionary-encoded (it finds their series as runs of codes).
DICTIONARY_TABLES = ("power_samples", "container_samples")


def parse_idle_power(text: str) -> tuple[tuple[str, str], float]:
    """ "HOST:KIND=WATTS" (e.g. cpu-node-1:cpu_package=38.5, watts per device of that kind) -> an
    `idle_power_watts` entry."""
    try:
        device, watts = text.rsplit("=", 1)
        host, kind = device.rsplit(":", 1)
        return (host, kind), float(watts)
    except ValueError:
        raise ValueError(f"{text!r} is not HOST:KIND=WATTS") from None


def _option(flag: str, help: str, **argparse_options) -> dict:
    """A field's command-line flag, help and argparse options (choices, action, type, metavar)."""
    return {"flag": flag, "help": help, "argparse": argparse_options}


@dataclass(frozen=True)
class AttributionOptions:
    """How readings become task energy; the rules are in docs/attribution.md. Defaults are the ones every
    entry point uses when nothing is given."""

    idle_policy: str = field(
        default="requests",
        metadata=_option(
            "--idle-policy",
            "idle power to tasks: none, by reserved share of the node's cores (requests, the default), or "
            "equally among the tasks running (time)",
            choices=IDLE_POLICIES,
        ),
    )
    split: str = field(
        default="fitted",
        metadata=_option(
            "--split",
            "weight each task's usage or cores by its task type's fitted watts per unit (fitted, the "
            "default), or by one common value (plain); requests = plain with --share requests",
            choices=SPLITS,
        ),
    )
    # None: measured usage when any task has a CPU-seconds series, else requested cores.
    share: str | None = field(
        default=None,
        metadata=_option(
            "--share",
            "what co-located tasks' CPU/DRAM energy is split by: measured CPU usage (default when container "
            "samples hold CPU-seconds counters), requested cores, or Kepler's per-pod joules as they are",
            choices=SHARES,
        ),
    )
    window_seconds: float = field(
        default=DEFAULT_WINDOW_SECONDS,
        metadata=_option("--window-seconds", "balance window length in seconds", type=float),
    )
    # {(host_node, device_kind): watts per device} from configuration, instead of the estimate.
    idle_power_watts: Mapping[tuple[str, str], float] = field(
        default_factory=dict,
        metadata=_option(
            "--idle-power",
            "configured idle power of each device of a kind on a node, instead of the estimate "
            "(repeatable; default: estimated from the readings)",
            action="append",
            type=parse_idle_power,
            metavar="HOST:KIND=WATTS",
        ),
    )
    skew_tolerance_seconds: float = field(
        default=0.0,
        metadata=_option(
            "--skew-tolerance-seconds",
            "estimate each node's clock skew against Argo within +-this many seconds (reported; 0: not "
            "estimated)",
            type=float,
        ),
    )
    correct_skew: bool = field(
        default=False,
        metadata=_option(
            "--correct-skew",
            "shift task times by the estimated skew (needs --skew-tolerance-seconds)",
            action="store_true",
        ),
    )
    # The exact mode (default) states every row's uncertainty; the fast one gives the same energies without the
    # uncertainty terms and peaks (datasets/attribution/fast.py: what differs, where it does not apply).
    fast: bool = field(
        default=False,
        metadata=_option(
            "--fast",
            "fast mode: the exact mode's energies without its uncertainty terms and peaks (uncertainty is "
            "only Argo's truncation bound; Kepler's share and clock skew run the exact mode)",
            action="store_true",
        ),
    )
    # Nodes attributed side by side; None: the cores this process may use. The result does not depend on it.
    threads: int | None = field(
        default=None,
        metadata=_option(
            "--threads",
            "nodes attributed side by side (default: every core this process may use; same result)",
            type=int,
        ),
    )

    def __post_init__(self) -> None:
        self._check_choice("idle_policy", IDLE_POLICIES)
        self._check_choice("split", SPLITS)
        if self.share is not None:
            self._check_choice("share", SHARES)
        if self.split == "requests" and self.share not in (None, "requests"):
            raise ValueError(
                f'split "requests" means share "requests", not {self.share!r}: use split "plain"'
            )
        seconds = self.window_seconds
        if not (isinstance(seconds, int | float) and math.isfinite(seconds) and round(seconds * 1e6) > 0):
            raise ValueError(f"window_seconds must be positive, got {seconds}")
        if not self.skew_tolerance_seconds >= 0:
            raise ValueError(
                f"skew_tolerance_seconds must not be negative, got {self.skew_tolerance_seconds}"
            )
        if self.correct_skew and self.skew_tolerance_seconds <= 0:
            raise ValueError("correct_skew needs a positive skew_tolerance_seconds to search within")
        if self.threads is not None and not (isinstance(self.threads, int) and self.threads >= 1):
            raise ValueError(f"threads must be at least 1, not {self.threads}")
        configured = {}
        for key, watts in dict(self.idle_power_watts or {}).items():
            valid_key = isinstance(key, tuple) and len(key) == 2 and all(isinstance(k, str) for k in key)
            if not valid_key or not (isinstance(watts, int | float) and watts >= 0):
                raise ValueError(
                    f"idle_power_watts wants (host_node, device_kind) -> watts >= 0, got {key}: {watts}"
                )
            configured[key] = float(watts)
        object.__setattr__(self, "idle_power_watts", MappingProxyType(configured))

    def _check_choice(self, name: str, allowed: tuple[str, ...]) -> None:
        if getattr(self, name) not in allowed:
            raise ValueError(f"{name} {getattr(self, name)!r} is not one of {allowed}")

    @property
    def window_us(self) -> int:
        return round(self.window_seconds * 1_000_000)

    @property
    def worker_threads(self) -> int:
        """The threads to use: as given, else the cores this process may use."""
        return self.threads if self.threads is not None else max(1, len(os.sched_getaffinity(0)))

    @classmethod
    def command_line_arguments(cls) -> list[tuple[str, dict]]:
        """(flag, argparse keyword arguments) of every option, defaults included, in declaration order."""
        arguments = []
        for one in fields(cls):
            meta = one.metadata
            keywords = {"dest": one.name, "help": meta["help"], **meta["argparse"]}
            if "choices" in keywords:
                keywords["choices"] = list(keywords["choices"])
            if keywords.get("action") != "append":  # an appended list's default would be appended to
                keywords["default"] = one.default if one.default_factory is MISSING else None
            arguments.append((meta["flag"], keywords))
        return arguments

    @classmethod
    def from_command_line(cls, values: Mapping[str, object]) -> AttributionOptions:
        """The options from parsed command-line values (argparse's namespace as a dict)."""
        given = {one.name: values[one.name] for one in fields(cls) if one.name in values}
        given["idle_power_watts"] = dict(given.get("idle_power_watts") or [])
        return cls(**given)


OPTION_NAMES = tuple(one.name for one in fields(AttributionOptions))
