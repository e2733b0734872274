"""The kernels compiled ahead of time (datasets/kernels: `python -m datasets.kernels.build`, run by `make`)
against numba's JIT versions of the same loops: the same tables bit for bit on the sample world in every
mode, without numba imported and with no kernel falling back; arguments of other types fall back to the JIT
version and give its result; a module built from other sources or for another processor is not used."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from datasets import kernels

ROOT = Path(__file__).resolve().parents[2]

# Runs in a fresh interpreter: attributes a small sample world in four option sets, writes each
# task_energy and node_energy_balance, and reports whether numba was imported and which kernels fell back.
SCRIPT = """
import json, sys
from pathlib import Path
import pyarrow.parquet as pq
from collectors.cluster.recorded import RecordedSources
from datasets import kernels
from datasets.attribution import attribute
world, out = Path(sys.argv[1]), Path(sys.argv[2])
sources = RecordedSources(world)
_, tasks = sources.workflows_and_tasks()
samples, machines, containers = sources.power_samples(), sources.machines(), sources.container_samples()
for name, options in {
    "exact": {},
    "fast": {"fast": True},
    "requests": {"share": "requests", "split": "plain", "idle_policy": "time"},
    "skew": {"skew_tolerance_seconds": 2.0, "correct_skew": True},
}.items():
    result = attribute(tasks, samples, machines, containers=containers, **options)
    pq.write_table(result.task_energy, out / f"{name}.task_energy.parquet")
    pq.write_table(result.node_energy_balance, out / f"{name}.balance.parquet")
compiled = kernels.compiled_module() is not None
print(json.dumps({"numba": "numba" in sys.modules, "fallbacks": sorted(kernels.fallbacks), "compiled": compiled}))
"""


def compiler_present() -> bool:
    return shutil.which(os.environ.get("CC", "cc")) is not None or shutil.which("gcc") is not None


def attributed(world: Path, out: Path, jit: bool) -> dict:
    out.mkdir()
    environment = dict(os.environ)
    environment.pop(kernels.FORCE_JIT, None)
    if jit:
        environment[kernels.FORCE_JIT] = "jit"
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(world), str(out)],
        cwd=ROOT,
        env=environment,
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> Path:
    from datasets.sample_world import generate

    folder = tmp_path_factory.mktemp("world")
    generate(folder, n_workflows=6, seed=3)
    return folder


@pytest.mark.skipif(not compiler_present(), reason="no C compiler: the kernels run under numba's JIT")
def test_compiled_kernels_give_the_jit_tables_bit_for_bit_without_numba(world, tmp_path):
    assert kernels.compiled_module() is not None, "run `make` (python -m datasets.kernels.build)"
    compiled = attributed(world, tmp_path / "compiled", jit=False)
    jit = attributed(world, tmp_path / "jit", jit=True)
    assert compiled == {"numba": False, "fallbacks": [], "compiled": True}
    assert jit["numba"] and not jit["compiled"]
    files = sorted(path.name for path in (tmp_path / "jit").iterdir())
    assert len(files) == 8
    for name in files:
        ours, theirs = pq.read_table(tmp_path / "compiled" / name), pq.read_table(tmp_path / "jit" / name)
        assert ours.num_rows > 0, name
        assert ours.equals(theirs), name


@pytest.mark.skipif(not compiler_present(), reason="no C compiler: the kernels run under numba's JIT")
def test_arguments_of_other_types_run_the_jit_version():
    assert kernels.compiled_module() is not None, "run `make` (python -m datasets.kernels.build)"
    values = np.array([3.0, 1e-9, 2.5, 7.0, 1.0])
    # A float vector as compiled; every other element (not contiguous) and integers are not that type.
    assert kernels.cumulative(values).tolist() == kernels.jit_kernel("cumulative")(values).tolist()
    assert "cumulative" not in kernels.fallbacks
    strided = np.arange(10.0)[::2]
    assert kernels.cumulative(strided).tolist() == [0.0, 0.0, 2.0, 6.0, 12.0, 20.0]
    assert "cumulative" in kernels.fallbacks
    kernels.fallbacks.discard("cumulative")
    lo, hi = np.array([0, 1], dtype=np.int32), np.array([2, 3], dtype=np.int32)
    # Ranges [0, 2) and [1, 3) over 3 segments.
    assert kernels.holding(lo, hi, 4).tolist() == [1, 2, 1]
    assert "holding" in kernels.fallbacks
    kernels.fallbacks.discard("holding")


def test_a_module_built_from_other_sources_or_for_another_processor_is_not_used(tmp_path, monkeypatch):
    recorded = tmp_path / "fingerprint"
    monkeypatch.setattr(kernels, "DIGEST_FILE", recorded)
    built = (kernels.FOLDER / "_compiled.sha256").exists()
    for text, usable in (
        (f"{'0' * 64} {kernels.machine_signature()}", False),  # other sources
        (f"{kernels.source_digest()} {'0' * 16}", False),  # another processor
        (kernels.source_digest(), False),  # no processor recorded
        (kernels.build_fingerprint(), built),
    ):
        recorded.write_text(text + "\n")
        monkeypatch.setattr(kernels, "_state", {})
        assert (kernels.compiled_module() is not None) == usable, text
