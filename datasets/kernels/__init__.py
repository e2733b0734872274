"""The attribution engine's compiled loops, as machine code built ahead of time when it has been built, else
compiled by numba at first use.

The loops themselves are written once, for numba, in `loops.py` and `datasets/attribution/sweep.py`
(`SOURCES`). `python -m datasets.kernels.build` (run by `make`) compiles them ahead of time with the types
in `signatures.py` into an extension module here (`_compiled`), which imports in a millisecond and needs
no numba at run time; numba's own start (its import, ~0.5 s, and its set-up at the first compiled call,
~0.8 s) would otherwise be about a quarter of a whole `jouletrace attribute` on 10M readings. The
compiled module is used only when it was built from the sources as they are now and on a processor with the same
instruction sets (both fingerprints are stored beside it): an edited loop never runs from stale machine
code, and a module built for this machine's processor never runs on another (where it could stop on an
illegal instruction).

A kernel is called as `kernels.<name>(...)`. Each takes the first of its compiled variants (one per
argument types in `signatures.py`) whose types the arguments have, checked here: compiled code does not
check them itself (an int64 array given for float64 would be read as floats). When none fits, numba's JIT
version runs: slower to start, the same result. `JOULETRACE_KERNELS=jit` forces the JIT versions (how the
tests compare the two).
"""

from __future__ import annotations

import hashlib
import importlib
import os
import platform
from pathlib import Path

import numpy as np

from datasets.kernels.signatures import SIGNATURES, SOURCES, argument_types

FOLDER = Path(__file__).resolve().parent
COMPILED_MODULE = "_compiled"
DIGEST_FILE = FOLDER / f"{COMPILED_MODULE}.sha256"
FORCE_JIT = "JOULETRACE_KERNELS"

# Kernels whose arguments fit no compiled variant and ran under numba's JIT instead (names): a test keeps
# this empty on the sample world.
fallbacks: set[str] = set()
_state: dict[str, object] = {}


def source_digest() -> str:
    """SHA-256 over the kernels' source files and their signatures, in order: what the compiled module must
    have been built from."""
    digest = hashlib.sha256()
    for module in (*SOURCES, "datasets.kernels.signatures"):
        digest.update(_source_path(module).read_bytes())
    return digest.hexdigest()


def machine_signature() -> str:
    """A fingerprint of what the compiled code needs of the processor besides its sources: the architecture
    and the instruction sets it reports (/proc/cpuinfo's flags), since the module is built for them."""
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
    except OSError:
        lines = []
    flags = next((line for line in lines if line.startswith(("flags", "Features"))), "")
    return hashlib.sha256(f"{platform.machine()} {flags}".encode()).hexdigest()[:16]


def build_fingerprint() -> str:
    """What the digest file beside the compiled module says it was built from: sources, then processor."""
    return f"{source_digest()} {machine_signature()}"


def _source_path(module: str) -> Path:
    return FOLDER.parents[1].joinpath(*module.split(".")).with_suffix(".py")


def compiled_module():
    """The ahead-of-time compiled module when it is built from the current sources and not turned off, else
    None."""
    if "compiled" not in _state:
        module = None
        wanted = os.environ.get(FORCE_JIT, "").lower() != "jit"
        if wanted and DIGEST_FILE.exists() and DIGEST_FILE.read_text().strip() == build_fingerprint():
            try:
                module = importlib.import_module(f"{__name__}.{COMPILED_MODULE}")
            except ImportError:
                module = None
        _state["compiled"] = module
    return _state["compiled"]


def exported_name(kernel: str, variant: int) -> str:
    """The compiled module's name for a kernel's variant."""
    return f"{kernel}__{variant}"


def jit_kernel(name: str):
    """numba's JIT version of kernel `name` (importing numba on first use)."""
    for module in SOURCES:
        source = importlib.import_module(module)
        if hasattr(source, name):
            return getattr(source, name)
    raise AttributeError(f"no kernel named {name!r}")


DTYPES = {
    "f8": np.float64,
    "i8": np.int64,
    "i4": np.int32,
    "i2": np.int16,
    "i1": np.int8,
    "u1": np.uint8,
    "b1": np.bool_,
}


def _check(spec: str):
    """A test that a value has type `spec` (signatures.py's notation) exactly as the compiled code reads it."""
    code, _, dims = spec.partition("[")
    dtype = np.dtype(DTYPES[code])
    if dims:
        ndim, contiguous = dims.count(",") + 1, dims.endswith("::1]")
        return lambda value: (
            isinstance(value, np.ndarray)
            and value.dtype == dtype
            and value.ndim == ndim
            and (value.flags.c_contiguous or not contiguous)
        )
    if code == "f8":
        return lambda value: isinstance(value, (float, int, np.floating, np.integer))
    if code == "b1":
        return lambda value: isinstance(value, (bool, np.bool_))
    return lambda value: isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))


class _Kernel:
    """One kernel: its compiled variants in order, then the JIT version for arguments none of them takes."""

    def __init__(self, name: str, variants: list, signatures: tuple[str, ...]):
        self.name = name
        self.variants = [
            (variant, [_check(spec) for spec in argument_types(signature)])
            for variant, signature in zip(variants, signatures, strict=True)
        ]
        self.jit = None

    def __call__(self, *args):
        for variant, checks in self.variants:
            if len(checks) == len(args) and all(check(a) for check, a in zip(checks, args, strict=True)):
                return variant(*args)
        if self.variants:
            fallbacks.add(self.name)
        if self.jit is None:
            self.jit = jit_kernel(self.name)
        return self.jit(*args)


def __getattr__(name: str):
    if name.startswith("__"):
        raise AttributeError(name)
    compiled = compiled_module()
    if compiled is None:
        kernel = jit_kernel(name)
    else:
        signatures = SIGNATURES.get(name, ())
        variants = [getattr(compiled, exported_name(name, i)) for i in range(len(signatures))]
        kernel = _Kernel(name, variants, signatures)
    globals()[name] = kernel
    return kernel
