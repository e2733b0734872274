"""The node agent needs only the `agent` extra: sampling, serving, probing and spooling load no other
installed distribution (so its image, deploy/Dockerfile.agent, can leave the pipeline's dependencies out)."""

import json
import subprocess
import sys
import tomllib
from pathlib import Path

from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parents[2]
# What the agent does, in a fresh interpreter where every installed distribution outside the allowed ones
# (argv[1]) cannot be imported, as in the agent's image: build its options and sources, probe, and spool
# readings as Parquet; then report the distributions of the modules it loaded.
AGENT_RUN = """
import importlib.metadata, json, sys, tempfile
allowed = set(json.loads(sys.argv[1]))
owners = importlib.metadata.packages_distributions()
before = set(sys.modules)

def norm(name):
    return name.lower().replace("_", "-")

class NotInTheImage:
    def find_spec(self, name, path=None, target=None):
        dists = owners.get(name.split(".")[0])
        if dists and not any(norm(d) in allowed for d in dists):
            raise ModuleNotFoundError(f"No module named {name!r} (not in the agent's image)")
        return None

sys.meta_path.insert(0, NotInTheImage())
from pathlib import Path
from collectors.agent.cli import add_agent_arguments, options_from_args
from collectors.agent.probe import build_sources, probe_report
from collectors.agent.spool import Spool
from collectors.meters.source import Meter, Reading
from schemas.kinds import ENERGY_COUNTER
import argparse
parser = argparse.ArgumentParser(); add_agent_arguments(parser)
options = options_from_args(parser.parse_args(["--sysfs-root", "/nonexistent", "--probe"]))
probe_report(build_sources(options.sysfs_root), None)
meter = Meter("cpu_package", "package-0", "rapl", ENERGY_COUNTER, 262143.0, "/x")
with tempfile.TemporaryDirectory() as folder:
    spool = Spool(Path(folder), "node-a", 300.0, 5)
    written = spool.add([Reading(meter, float(i), 1.7e9 + i, 10.0 * i) for i in range(6)], 0.0)
    assert written is not None and written.exists()
tops = {name.split(".")[0] for name in set(sys.modules) - before}
print(json.dumps(sorted({d for top in tops for d in owners.get(top, [])})))
"""


def _normalised(name: str) -> str:
    return name.lower().replace("_", "-")


def test_the_agent_loads_only_the_agent_extra():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    allowed = {_normalised(Requirement(r).name) for r in project["optional-dependencies"]["agent"]}
    allowed.add("jouletrace")
    run = subprocess.run(
        [sys.executable, "-c", AGENT_RUN, json.dumps(sorted(allowed))],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0, run.stderr[-2000:]
    out = run.stdout
    loaded = {_normalised(name) for name in json.loads(out.strip().splitlines()[-1])}
    assert loaded <= allowed, f"the agent also loads {sorted(loaded - allowed)}: add them to the agent extra"
    assert {"pyarrow", "numpy"} <= loaded  # the spool really wrote Parquet
