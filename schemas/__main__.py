"""`python -m schemas` prints docs/data-model.md, the human-readable form of the trace model."""

import schemas
from schemas.loading import when_absent
from schemas.tables import KEYS

INTRO = """\
One Arrow schema per table, defined in `schemas/tables.py` and shared by every stage. Units are in the
column names, timestamps are UTC (`timestamp[us, tz=UTC]`), energies are joules, and every table into which
numbers enter carries `provenance` (`measured`, `estimated` or `synthetic`). `jouletrace validate PATH`
checks a file, a table folder or a dataset root against these schemas and the value rules (enumerations,
non-negative quantities, coverage in 0..1, end not before start, unique keys)."""

READING = """\
## Reading a table from a file

Every command that reads a table given to it (`validate`, `attribute`) reads it the same way
(`schemas.load_table`, `schemas/loading.py`), from a Parquet file, a folder of Parquet files (hive partition
folders such as `date=2026-11-02` are not columns) or a CSV file (`.csv`, `.tsv`, optionally `.gz`). An error
names the file, the option it was given with, the table, the column and the first bad rows, and says what to
do; a file that is empty, not Parquet (text passed as Parquet) or not UTF-8 text says so.

- **Safe coercions** are applied and printed as notes: timestamps in seconds or milliseconds are widened,
  and nanoseconds rounded (half up) to the schema's microseconds; a time zone other than UTC is read as the
  same UTC instants; int8/16/32 and unsigned integers are widened to int64; float32 is widened to double;
  integers are stored as double (up to 2^53) or as text ids; whole-number doubles are stored as int64;
  dictionary-encoded and large strings are plain strings.
- **Unsafe ones are errors**: text where numbers or timestamps are expected (in Parquet; in a CSV file the
  text of a column is parsed by the column's type: numbers, ISO 8601 times with a zone such as
  `2026-11-02T08:00:00Z`, JSON arrays `["a", "b"]` for lists and objects for maps), timestamps without a
  time zone, fractions or values beyond 2^53 where whole numbers are expected, booleans, and columns the
  model does not have.
- **Absent columns** take the default in the tables' *when absent* column; a nullable column without one is
  null, and a required column without one is an error. A user's own `tasks` table therefore needs only
  `workflow_uid`, `task_id`, `host_node`, `started_at` and `finished_at` (`cpu_request_cores` is optional:
  without requests or usage counters, co-located tasks share equally while they run); `power_samples` needs
  the meter columns, `machines` only `host_node`.
- Then the value rules above. `jouletrace validate --strict` treats every coercion and default as an error:
  the file must already be in the model's exact schema (as jouletrace writes it)."""


def data_model_markdown() -> str:
    lines = [f"# The trace data model (schema version {schemas.SCHEMA_VERSION})", "", INTRO, "", READING, ""]
    for name, schema in schemas.TABLES.items():
        lines += [f"## `{name}`", "", "Key: " + ", ".join(f"`{k}`" for k in KEYS[name]), ""]
        lines += ["| column | type | null | when absent | meaning |", "|---|---|---|---|---|"]
        for f in schema:
            doc = f.metadata[b"doc"].decode()
            nullable = "yes" if f.nullable else "no"
            lines.append(f"| `{f.name}` | `{f.type}` | {nullable} | {when_absent(name, f)} | {doc} |")
        lines.append("")
    return "\n".join(lines)


if __name__ == "__main__":
    print(data_model_markdown(), end="")
