"""WTA (Workflow Trace Archive) schema-1.0 folders: the column types, reading them as real traces store them,
and the checks run before a trace is imported or after one is exported.

Real traces do not always hold the types the schema-1.0 document gives: `resource_used` is a string in some
(`'[]'` for none), `parents` is list<int64> and `children` list<double> in the same file, counts are int32,
memory int64, and some ship without `generic_information.json` or without a `workflows` table. Reading
coerces every value that converts without loss (whole doubles and numeric strings to integers, integers to
doubles, numbers to strings, JSON lists in strings to id lists), warns about what is missing, and fails only
on values that cannot be read, naming the file, the column, the row and the value.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from schemas.formats import (
    JOULES_PER_WH,
    MAX_LISTED,
    Finding,
    FormatError,
    raise_on_errors,
    read_json,
    tasks_in_cycles_of_both_sides,
)
from schemas.wta_types import ID_LIST, convert_wta_column, resource_keys

WTA_VERSION_DIR = "schema-1.0"
WTA_ID_MAP_DIR = "jouletrace-ids"
WTA_GENERIC_INFORMATION = Path("workload") / WTA_VERSION_DIR / "generic_information.json"
UNKNOWN = -1
# Columns jouletrace adds to the archive's tables (not missing from a foreign trace when absent).
JOULETRACE_COLUMNS = frozenset({"energy_consumption_joules", "total_energy_consumption_joules"})
# resource_used is read as text: an int64 resource id in the schema, a string (`'[]'`, `'12'`, a name) in
# some real traces. The importer resolves it.
RESOURCE_USED = "resource_used"


def _wta_schema(fields: dict[str, pa.DataType]) -> pa.Schema:
    """Columns sorted by name, as the WTA Python model writes them."""
    return pa.schema([pa.field(name, fields[name]) for name in sorted(fields)])


WTA_TASKS = _wta_schema(
    {
        "id": pa.int64(),
        "type": pa.string(),
        "ts_submit": pa.int64(),
        "submission_site": pa.int32(),
        "runtime": pa.int64(),
        "resource_type": pa.string(),
        "resource_amount_requested": pa.float64(),
        "parents": ID_LIST,
        "children": ID_LIST,
        "user_id": pa.int32(),
        "group_id": pa.int32(),
        "nfrs": pa.string(),
        "workflow_id": pa.int64(),
        "wait_time": pa.int64(),
        "params": pa.string(),
        "memory_requested": pa.float64(),
        "network_io_time": pa.int64(),
        "disk_io_time": pa.int64(),
        "disk_space_requested": pa.float64(),
        "energy_consumption": pa.int64(),
        "energy_consumption_joules": pa.float64(),
        "resource_used": pa.int64(),
    }
)
WTA_WORKFLOWS = _wta_schema(
    {
        "id": pa.int64(),
        "ts_submit": pa.int64(),
        "task_count": pa.int32(),
        "critical_path_length": pa.int64(),
        "critical_path_task_count": pa.int32(),
        "approx_max_concurrent_tasks": pa.int32(),
        "nfrs": pa.string(),
        "scheduler": pa.string(),
        "total_resources": pa.float64(),
        "total_memory_usage": pa.float64(),
        "total_network_usage": pa.float64(),
        "total_disk_space_usage": pa.float64(),
        "total_energy_consumption": pa.int64(),
        "total_energy_consumption_joules": pa.float64(),
    }
)
WTA_RESOURCES = _wta_schema(
    {
        "id": pa.int64(),
        "type": pa.string(),
        "num_resources": pa.float64(),
        "proc_model": pa.string(),
        "memory": pa.int64(),
        "disk_space": pa.int64(),
        "network": pa.int64(),
        "os": pa.string(),
        "details": pa.string(),
    }
)
# jouletrace's own table: the string id (and workflow of a task) behind every int64 id it wrote, and for
# workflow rows where the run came from (`source`, JSON; docs/formats.md).
WTA_ID_MAP = pa.schema(
    [
        pa.field("table", pa.string()),
        pa.field("id", pa.int64()),
        pa.field("workflow_uid", pa.string()),
        pa.field("name", pa.string()),
        pa.field("source", pa.string()),
    ]
)
WTA_TABLES = {
    "workflows": WTA_WORKFLOWS,
    "tasks": WTA_TASKS,
    "resources": WTA_RESOURCES,
    WTA_ID_MAP_DIR: WTA_ID_MAP,
}
WTA_REQUIRED_COLUMNS = {
    "workflows": ("id", "ts_submit"),
    "tasks": ("id", "workflow_id", "ts_submit", "runtime", "parents", "children"),
    "resources": ("id",),
    WTA_ID_MAP_DIR: ("table", "id", "workflow_uid", "name"),
}
# generic_information.json keys of the WTA Workload object (the statistics come as min_, max_, ... _<x>).
WTA_STATISTICS = ("min", "max", "std", "mean", "median", "first_quartile", "third_quartile", "cov")
WTA_STATISTIC_SUBJECTS = ("resource_task", "memory", "network_usage", "disk_space_usage", "energy")
WTA_WORKLOAD_KEYS = (
    "total_workflows",
    "total_tasks",
    "domain",
    "date_start",
    "date_end",
    "num_sites",
    "num_resources",
    "num_users",
    "num_groups",
    "total_resource_seconds",
    "authors",
    *(f"{s}_{x}" for x in WTA_STATISTIC_SUBJECTS for s in WTA_STATISTICS),
    "workload_description",
    "version",
)


def is_wta_trace(path: str | Path) -> bool:
    """A folder laid out as a WTA trace (tasks/schema-1.0 or workflows/schema-1.0)."""
    path = Path(path)
    return path.is_dir() and any((path / t / WTA_VERSION_DIR).is_dir() for t in ("tasks", "workflows"))


@dataclass
class WtaPart:
    """The rows of one table of a trace, with the Parquet file and row number each came from, and what
    reading it warned about."""

    table: pa.Table
    files: list[str]
    rows: list[int]
    warnings: list[Finding] = field(default_factory=list)

    def at(self, i: int) -> str:
        return f"{self.files[i]}: row {self.rows[i]}"


# ------------------------------------------------------------------------------------------------ reading


def read_wta_table(root: str | Path, name: str) -> WtaPart | None:
    """All part files of one WTA table (None if the table folder is absent), in the schema-1.0 types
    (integers as int64, parents/children as list<int64>, resource_used as text). Values that convert without
    loss are converted; unreadable files, missing required columns and values that cannot be read raise
    FormatError naming the file and column (and row and value). Absent optional columns are warnings."""
    folder = Path(root) / name / WTA_VERSION_DIR
    if not folder.is_dir():
        return None
    files = sorted(folder.rglob("*.parquet"))
    if not files:
        raise FormatError([Finding(str(folder), "<folder>", "holds no .parquet file")])
    findings: list[Finding] = []
    tables, origins, rows = [], [], []
    for file in files:
        try:
            table = pq.read_table(file)
        except (pa.ArrowException, OSError) as exc:
            findings.append(Finding(str(file), "<file>", f"not a readable Parquet file (truncated?): {exc}"))
            continue
        converted, problems = _normalise_wta(table, name, str(file))
        findings += problems
        if converted is not None:
            tables.append(converted)
            origins += [str(file)] * converted.num_rows
            rows += list(range(converted.num_rows))
    warnings = raise_on_errors(findings)
    return WtaPart(pa.concat_tables(tables, promote_options="default"), origins, rows, warnings)


def _normalise_wta(table: pa.Table, name: str, source: str) -> tuple[pa.Table | None, list[Finding]]:
    expected = WTA_TABLES[name]
    findings = [
        Finding(source, f"column {c!r}", "required column is missing")
        for c in WTA_REQUIRED_COLUMNS[name]
        if c not in table.column_names
    ]
    absent = [
        f.name
        for f in expected
        if f.name not in table.column_names
        and f.name not in WTA_REQUIRED_COLUMNS[name]
        and f.name not in JOULETRACE_COLUMNS
    ]
    if absent and name != WTA_ID_MAP_DIR:
        findings.append(
            Finding(
                source,
                "<columns>",
                f"{len(absent)} schema-1.0 columns are absent and read as unknown: {', '.join(absent)}",
                "warning",
            )
        )
    columns = {}
    for f in expected:
        if f.name not in table.column_names:
            continue
        column = table[f.name].combine_chunks()
        if name == "tasks" and f.name == RESOURCE_USED:
            converted, problem, warning = resource_keys(column)
        else:
            converted, problem = convert_wta_column(column, f.type)
            warning = ""
        if problem:
            findings.append(Finding(source, f"column {f.name!r}", problem))
        else:
            columns[f.name] = converted
        if warning:
            findings.append(Finding(source, f"column {f.name!r}", warning, "warning"))
    if any(f.severity == "error" for f in findings):
        return None, findings
    return pa.table(columns), findings


def read_generic_information(root: str | Path) -> dict | None:
    """The trace's generic_information.json, None when the trace ships without it."""
    path = Path(root) / WTA_GENERIC_INFORMATION
    if not path.is_file():
        return None
    data = read_json(path)
    if not isinstance(data, dict):
        raise FormatError([Finding(str(path), "<document>", "is not a JSON object")])
    return data


def derived_workflows(tasks: WtaPart) -> WtaPart:
    """The workflows of a trace that has no workflows table: one per workflow_id of its tasks, submitted at
    its first task's submit time (-1 when none is known)."""
    first: dict[int, int] = {}
    for wid, ts in zip(
        tasks.table["workflow_id"].to_pylist(), tasks.table["ts_submit"].to_pylist(), strict=True
    ):
        if wid is None:
            continue
        known = ts if ts is not None and ts >= 0 else None
        earlier = first.get(wid, UNKNOWN)
        if wid not in first or (known is not None and (earlier < 0 or known < earlier)):
            first[wid] = known if known is not None else earlier
    table = pa.table(
        {
            "id": pa.array(list(first), pa.int64()),
            "ts_submit": pa.array(list(first.values()), pa.int64()),
        }
    )
    return WtaPart(table, ["<derived from tasks>"] * table.num_rows, list(range(table.num_rows)))


# ------------------------------------------------------------------------------------------------- checks


def check_wta(root: str | Path) -> list[Finding]:
    """Every finding about a WTA trace folder: layout, readable Parquet, column types, unique ids, tasks in
    known workflows, parents/children that exist in the same workflow, no cycles, task counts, energy columns
    that agree, and generic_information.json. A missing workflows table or workload file is a warning."""
    root = Path(root)
    if not root.is_dir():
        return [Finding(str(root), "<folder>", "is not a folder")]
    found: list[Finding] = []
    parts: dict[str, WtaPart | None] = {}
    for name in ("workflows", "tasks", "resources", WTA_ID_MAP_DIR):
        try:
            parts[name] = read_wta_table(root, name)
        except FormatError as exc:
            found += exc.findings
            parts[name] = None
            continue
        if parts[name] is not None:
            found += parts[name].warnings
    if parts["tasks"] is None and not (root / "tasks" / WTA_VERSION_DIR).is_dir():
        found.append(Finding(str(root / "tasks" / WTA_VERSION_DIR), "<folder>", "is missing"))
    if parts["workflows"] is None and not (root / "workflows" / WTA_VERSION_DIR).is_dir():
        found.append(
            Finding(
                str(root / "workflows" / WTA_VERSION_DIR),
                "<folder>",
                "is missing: workflows are taken from the tasks' workflow_id (start = first task submit)",
                "warning",
            )
        )
        if parts["tasks"] is not None:
            parts["workflows"] = derived_workflows(parts["tasks"])
    try:
        generic = read_generic_information(root)
    except FormatError as exc:
        found += exc.findings
        generic = None
    else:
        if generic is None:
            found.append(
                Finding(
                    str(root / WTA_GENERIC_INFORMATION),
                    "<file>",
                    "is missing: the workload description (domain, authors, statistics) is unknown",
                    "warning",
                )
            )
    workflows, tasks = parts["workflows"], parts["tasks"]
    if workflows is None or tasks is None:
        return found
    found += _wta_row_findings(workflows, tasks)
    if generic is not None:
        found += _generic_findings(generic, str(root / WTA_GENERIC_INFORMATION), workflows, tasks)
    return found


def validate_wta(root: str | Path) -> list[Finding]:
    """Raise FormatError listing every error of the trace; return its warnings."""
    return raise_on_errors(check_wta(root))


def _wta_row_findings(workflows: WtaPart, tasks: WtaPart) -> list[Finding]:
    found: list[Finding] = []
    w = workflows.table.to_pydict()
    t = tasks.table.to_pydict()
    workflow_rows: dict[int, int] = {}
    for i, wid in enumerate(w["id"]):
        if wid is None:
            found.append(Finding(workflows.at(i), "column 'id'", "workflow id is null"))
        elif wid in workflow_rows:
            found.append(Finding(workflows.at(i), "column 'id'", f"workflow id {wid} is used more than once"))
        else:
            workflow_rows[wid] = i
    task_workflow: dict[int, int] = {}
    for i, (tid, wid) in enumerate(zip(t["id"], t["workflow_id"], strict=True)):
        if tid is None:
            found.append(Finding(tasks.at(i), "column 'id'", "task id is null"))
            continue
        if tid in task_workflow:
            found.append(Finding(tasks.at(i), "column 'id'", f"task id {tid} is used more than once"))
        task_workflow[tid] = wid
        if wid not in workflow_rows:
            found.append(Finding(tasks.at(i), "column 'workflow_id'", f"workflow {wid} is not in workflows"))
    for column in ("ts_submit", "runtime"):
        for i, value in enumerate(t[column]):
            if value is not None and value < -1:
                found.append(
                    Finding(tasks.at(i), f"column {column!r}", f"{value} is negative (-1 means unknown)")
                )
    found += _dependency_findings(t, tasks, task_workflow)
    counts: dict[int, int] = {}
    for wid in t["workflow_id"]:
        counts[wid] = counts.get(wid, 0) + 1
    if "task_count" in w:
        for i, (wid, count) in enumerate(zip(w["id"], w["task_count"], strict=True)):
            if count is not None and count != counts.get(wid, 0):
                found.append(
                    Finding(
                        workflows.at(i),
                        "column 'task_count'",
                        f"says {count} tasks, tasks holds {counts.get(wid, 0)} of workflow {wid}",
                    )
                )
    found += _wta_energy_findings(w, t, workflows, tasks)
    return found


def _dependency_findings(t: dict, tasks: WtaPart, task_workflow: dict[int, int]) -> list[Finding]:
    found: list[Finding] = []
    parents_of: dict[int, set[int]] = {}
    children_of: dict[int, set[int]] = {}
    for i, tid in enumerate(t["id"]):
        for key, store in (("parents", parents_of), ("children", children_of)):
            refs = t[key][i] or []
            store.setdefault(tid, set()).update(refs)
            for ref in refs:
                if ref == tid:
                    found.append(Finding(tasks.at(i), f"column {key!r}", f"task {tid} lists itself"))
                elif ref not in task_workflow:
                    found.append(Finding(tasks.at(i), f"column {key!r}", f"task {ref} does not exist"))
                elif task_workflow[ref] != task_workflow.get(tid):
                    found.append(
                        Finding(tasks.at(i), f"column {key!r}", f"task {ref} belongs to another workflow")
                    )
    one_sided = [
        (tid, c)
        for tid, cs in children_of.items()
        for c in cs
        if c in parents_of and tid not in parents_of[c]
    ] + [
        (p, tid)
        for tid, ps in parents_of.items()
        for p in ps
        if p in children_of and tid not in children_of[p]
    ]
    if one_sided:
        found.append(
            Finding(
                tasks.files[0],
                "columns 'parents'/'children'",
                f"{len(one_sided)} edges are listed on one side only, e.g. {one_sided[0][0]} -> {one_sided[0][1]}",
                "warning",
            )
        )
    in_cycle = tasks_in_cycles_of_both_sides(parents_of, children_of, task_workflow)
    if in_cycle:
        found.append(
            Finding(
                tasks.files[0],
                "columns 'parents'/'children'",
                f"the dependency graph has a cycle: {len(in_cycle)} tasks are on or behind one, "
                f"e.g. {', '.join(str(x) for x in in_cycle[:MAX_LISTED])}",
            )
        )
    return found


def _wta_energy_findings(w: dict, t: dict, workflows: WtaPart, tasks: WtaPart) -> list[Finding]:
    """The added joules column and the archive's Wh column must agree (Wh = joules / 3600, truncated)."""
    if "energy_consumption_joules" not in t:
        return []
    found = []
    wh_column = t.get("energy_consumption", [None] * len(t["id"]))
    wh_by_workflow: dict[int, float] = {}
    for i, (joules, wh) in enumerate(zip(t["energy_consumption_joules"], wh_column, strict=True)):
        if joules is None or (joules < 0 and joules != -1):
            found.append(
                Finding(tasks.at(i), "column 'energy_consumption_joules'", f"{joules} is not >= 0 or -1")
            )
            continue
        expected = -1 if joules == -1 else math.floor(joules / JOULES_PER_WH)
        if wh is not None and wh != expected:
            found.append(
                Finding(
                    tasks.at(i),
                    "column 'energy_consumption'",
                    f"{wh} Wh, but energy_consumption_joules {joules} gives {expected} Wh",
                )
            )
        if joules >= 0:
            wid = t["workflow_id"][i]
            wh_by_workflow[wid] = wh_by_workflow.get(wid, 0.0) + joules / JOULES_PER_WH
    if "total_energy_consumption" in w:
        for i, (wid, total) in enumerate(zip(w["id"], w["total_energy_consumption"], strict=True)):
            expected = math.floor(wh_by_workflow[wid]) if wid in wh_by_workflow else -1
            if total is not None and abs(total - expected) > 1:
                found.append(
                    Finding(
                        workflows.at(i),
                        "column 'total_energy_consumption'",
                        f"{total} Wh, but its tasks hold {expected} Wh",
                    )
                )
    return found


def _generic_findings(generic: dict, source: str, workflows: WtaPart, tasks: WtaPart) -> list[Finding]:
    found = []
    missing = [k for k in WTA_WORKLOAD_KEYS if k not in generic]
    if missing:
        found.append(
            Finding(
                source,
                "<document>",
                f"{len(missing)} workload keys are missing, e.g. {missing[0]!r}",
                "warning",
            )
        )
    for key, actual in (("total_workflows", workflows.table.num_rows), ("total_tasks", tasks.table.num_rows)):
        value = generic.get(key)
        if value is not None and value != actual:
            found.append(Finding(source, key, f"says {value!r}, the trace holds {actual}"))
    return found
