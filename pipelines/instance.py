"""The Dagster instance the project sets up (DAGSTER_HOME) for `jouletrace demo` and `jouletrace ui`.

It writes DAGSTER_HOME/dagster.yaml so that the instance is quiet and private:

- `telemetry: enabled: false`: no usage statistics sent, and no telemetry banner at start-up;
- `nux: enabled: false`: the UI opens on the asset graph, without its first-visit dialog;
- the file exists, so Dagster does not warn that it is missing.

Settings someone else put in the file (storage, run queue, ...) are kept: only the keys above are set.
"""

from __future__ import annotations

from pathlib import Path

import yaml

# What this project decides for every instance it sets up; merged into an existing dagster.yaml.
INSTANCE_SETTINGS = {
    "telemetry": {"enabled": False},
    "nux": {"enabled": False},
}


def prepare_dagster_home(home: str | Path) -> Path:
    """Create `home` and its dagster.yaml (or merge our settings into the one there); returns `home`."""
    home = Path(home).resolve()
    home.mkdir(parents=True, exist_ok=True)
    path = home / "dagster.yaml"
    current = yaml.safe_load(path.read_text()) if path.exists() else None
    config = dict(current) if isinstance(current, dict) else {}
    changed = not path.exists()
    for key, values in INSTANCE_SETTINGS.items():
        section = config.get(key) if isinstance(config.get(key), dict) else {}
        if any(section.get(name) != value for name, value in values.items()):
            config[key] = {**section, **values}
            changed = True
    if changed:
        tmp = path.with_suffix(".yaml.tmp")
        tmp.write_text(
            "# Written by jouletrace (pipelines/instance.py); other settings added here are kept.\n"
            + yaml.safe_dump(config, sort_keys=False)
        )
        tmp.replace(path)
    return home
