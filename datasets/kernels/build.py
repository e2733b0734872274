"""Compile the kernels ahead of time: `python -m datasets.kernels.build` (run by `make` after installing).

Each kernel of `signatures.SOURCES` is exported once per variant in `signatures.SIGNATURES` into the
extension module `datasets/kernels/_compiled.<platform>.so` with numba's ahead-of-time compiler
(`numba.pycc`, which needs a C compiler), for this machine's processor (the module is built where it runs,
by `make`), and the fingerprints of the sources and the processor are written beside it last, so the
loader never takes a half-written or stale module, nor one built for another processor. The exported
functions release the GIL, as the JIT versions do (`nogil=True`), so the engine's threads run them side
by side: numba's AOT compiler has no option for that (numba#6382), so its compilation flags are given
`release_gil` here.

Without a C compiler the build says so and exits 1; the kernels then run under numba's JIT.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

from datasets.kernels import (
    COMPILED_MODULE,
    DIGEST_FILE,
    FOLDER,
    build_fingerprint,
    exported_name,
    jit_kernel,
)
from datasets.kernels.signatures import SIGNATURES


def _releasing_gil() -> None:
    """Make numba's AOT compiler wrap exported functions as `nogil=True` wraps JIT ones."""
    import numba.pycc.compiler as aot_compiler

    base = aot_compiler.Flags
    if getattr(base, "releases_gil", False):
        return

    class ReleasingFlags(base):
        releases_gil = True

        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self.release_gil = True

    aot_compiler.Flags = ReleasingFlags


def build(folder: Path = FOLDER) -> Path:
    """Compile every kernel variant into `folder`; the path of the extension module."""
    import warnings

    from numba.core.errors import NumbaPendingDeprecationWarning

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NumbaPendingDeprecationWarning)
        from numba.pycc import CC
    _releasing_gil()
    fingerprint = build_fingerprint()
    DIGEST_FILE.unlink(missing_ok=True)  # no module counts as built until the new one is in place
    with tempfile.TemporaryDirectory(prefix="jouletrace-kernels-") as scratch:
        compiler = CC(COMPILED_MODULE)
        compiler.output_dir = scratch
        compiler.verbose = False
        # For this machine's processor, as numba's JIT compiles (AOT's default, a generic x86-64, made the
        # engine ~25% slower in CPU time); the module is built where it runs.
        compiler.target_cpu = _host_cpu()
        for name, signatures in SIGNATURES.items():
            function = jit_kernel(name).py_func  # the Python function behind the numba dispatcher
            for variant, signature in enumerate(signatures):
                compiler.export(exported_name(name, variant), signature)(function)
        compiler.compile()
        (built,) = Path(scratch).glob(f"{COMPILED_MODULE}.*")
        target = folder / built.name
        shutil.copyfile(built, target.with_suffix(".tmp"))
        os.replace(target.with_suffix(".tmp"), target)
    DIGEST_FILE.write_text(fingerprint + "\n")
    return target


def _host_cpu() -> str:
    import llvmlite.binding as llvm

    return llvm.get_host_cpu_name()


def main() -> int:
    started = time.perf_counter()
    if shutil.which(os.environ.get("CC", "cc")) is None and shutil.which("gcc") is None:
        print("no C compiler (cc/gcc): the kernels will run under numba's JIT", file=sys.stderr)
        return 1
    target = build()
    variants = sum(len(signatures) for signatures in SIGNATURES.values())
    print(f"compiled {variants} kernel variants into {target} in {time.perf_counter() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
