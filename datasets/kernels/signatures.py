"""Which loops are kernels, and the argument types each is compiled ahead of time for.

SOURCES are the modules whose numba functions are the kernels (their helpers, like `loops._add`, are
compiled into the kernels that call them). SIGNATURES gives each kernel's variants in numba's signature
notation: `f8[::1]` a C-contiguous float64 vector, `f8[:,::1]` a C-contiguous matrix, `f8[:]` a vector of
any layout, `i8`/`f8`/`b1` scalars, `void` no result. They are the types the engine passes (as numba's JIT
saw them over the attribution tests and the sample world), plus the other integer widths of Arrow's
dictionary indices and string offsets. An argument that fits no variant runs under numba's JIT instead
(`kernels.fallbacks` names it), so a missing variant costs start-up time, never a wrong result.
"""

from __future__ import annotations

SOURCES = ("datasets.kernels.loops", "datasets.attribution.sweep")

SIGNATURES: dict[str, tuple[str, ...]] = {
    "design_rows": (
        "void(f8[::1], f8[:,::1], f8[:,::1], f8[:,::1], b1[::1], f8[::1], f8[::1], f8[::1], i8[::1], i8, "
        "f8[:,::1], f8[:,::1], f8[::1], f8[:,::1])",
    ),
    "unwrap_intervals": ("Tuple((f8[::1], i1[::1]))(f8[::1], f8[::1], f8, f8, f8)",),
    "cumulative": ("f8[::1](f8[::1])",),
    "merge_grid": ("Tuple((f8[::1], i8[::1], i8[::1]))(f8[::1], f8[::1], f8[::1])",),
    "interpolate": ("f8[::1](f8[::1], i8[::1], f8[::1], f8[::1])",),
    "running": ("f8[::1](i8[::1], i8[::1], f8[::1], i8)",),
    "holding": ("i8[::1](i8[::1], i8[::1], i8)",),
    "range_max": ("f8[::1](f8[::1], i8[::1], i8[::1])",),
    "spread": ("f8[::1](i8[::1], f8[::1], f8[::1], f8[::1], f8[::1])",),
    "mark_string_changes": ("void(i4[::1], u1[::1], b1[::1])", "void(i8[::1], u1[::1], b1[::1])"),
    "mark_code_changes": (
        "void(i4[::1], b1[::1])",
        "void(i1[::1], b1[::1])",
        "void(i2[::1], b1[::1])",
        "void(i8[::1], b1[::1])",
    ),
    "prices": (
        "Tuple((f8[::1], f8[::1], f8[:,::1], f8[:,::1], f8[:,::1], f8[:,::1], f8[:,::1], f8[::1]))"
        "(f8[::1], f8[::1], f8, f8[::1], b1[::1], f8[::1], b1[::1], f8[::1], f8, f8[::1], b1, b1[::1], "
        "i8[::1], i8)",
    ),
    "share_variance": (
        "f8[::1](i8[::1], i8[::1], i8[::1], f8[::1], i8[::1], f8[:,::1], i8[::1], f8[::1], f8[::1], i8)",
    ),
    "weighted_quantile": ("f8(f8[::1], f8[::1], f8)",),
    "window_sums": ("f8[::1](f8[::1], i8[::1])",),
    "group_fmax": ("void(f8[::1], i8[::1], f8[::1])",),
    "range_shares": (
        "Tuple((f8[::1], f8[::1]))(i8[::1], i8[::1], f8[::1], i8[::1], f8[:], f8[:], i8[::1], i8, f8[::1])",
    ),
    "modelled_sums": ("f8[::1](f8[::1], f8[::1], f8[:,::1], i8[:,::1], f8)",),
    "sweep": (
        "Tuple((f8[:,::1], f8[::1], f8[::1], f8[::1]))(f8[::1], f8[::1], f8[::1], b1, f8[::1], b1[::1], "
        "f8[::1], f8[::1], f8[:,::1], i8[:,::1], f8, f8)",
    ),
}


def argument_types(signature: str) -> list[str]:
    """The argument types of a signature, in order ("f8[::1](i8[::1], f8)" -> ["i8[::1]", "f8"])."""
    inside = signature[signature.rindex("(") + 1 : signature.rindex(")")]
    parts, depth, current = [], 0, ""
    for character in inside:
        if character == "," and depth == 0:
            parts.append(current.strip())
            current = ""
            continue
        depth += character == "["
        depth -= character == "]"
        current += character
    if current.strip():
        parts.append(current.strip())
    return parts
