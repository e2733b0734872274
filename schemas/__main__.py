"""`python -m schemas` prints docs/data-model.md, the human-readable form of the trace model."""

import schemas
from schemas.tables import KEYS

INTRO = """\
One Arrow schema per table, defined in `schemas/tables.py` and shared by every stage. Units are in the
column names, timestamps are UTC (`timestamp[us, tz=UTC]`), energies are joules, and every table into which
numbers enter carries `provenance` (`measured`, `estimated` or `synthetic`). `jouletrace validate PATH`
checks a file, a table folder or a dataset root against these schemas and the value rules (enumerations,
non-negative quantities, coverage in 0..1, end not before start, unique keys)."""


def data_model_markdown() -> str:
    lines = [f"# The trace data model (schema version {schemas.SCHEMA_VERSION})", "", INTRO, ""]
    for name, schema in schemas.TABLES.items():
        lines += [f"## `{name}`", "", "Key: " + ", ".join(f"`{k}`" for k in KEYS[name]), ""]
        lines += ["| column | type | null | meaning |", "|---|---|---|---|"]
        for f in schema:
            doc = f.metadata[b"doc"].decode()
            lines.append(f"| `{f.name}` | `{f.type}` | {'yes' if f.nullable else 'no'} | {doc} |")
        lines.append("")
    return "\n".join(lines)


if __name__ == "__main__":
    print(data_model_markdown(), end="")
