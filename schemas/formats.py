"""Check traces in the public formats (WfFormat JSON, WTA Parquet folders) before they are read or published.

Every finding names the file, the place in it (a JSON path with the task id, or a Parquet file, row and
column) and the offending value, so a user can fix the file. WfFormat documents are checked against the
project schema (`wfformat_energy.schema.json`: WfFormat 1.5 plus the `jouletrace` extension), optionally
against an upstream WfFormat schema, and against the semantic rules of WfCommons' validator (unique ids,
declared parents, children, files and machines, no cycles, execution tasks in the specification), plus the
extension's own rules (energies that add up, RFC 3339 UTC times). Older documents (1.0-1.4) are upgraded
to the 1.5 layout first; 1.6 documents are checked with the 1.5 rules (their `metrics` are not checked).
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Container, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache
from pathlib import Path

from schemas.kinds import ADDITIVE_DEVICE_KINDS

PROJECT_SCHEMA_FILE = Path(__file__).with_name("wfformat_energy.schema.json")
EXTENSION_KEY = "jouletrace"
WFFORMAT_VERSION = "1.5"
# Licence named in the dataset card of a publication bundle unless the user names another.
DEFAULT_LICENCE = "CC-BY-4.0"
LEGACY_VERSIONS = ("1.0", "1.1", "1.2", "1.3", "1.4")
JOULES_PER_KWH = 3.6e6
JOULES_PER_WH = 3600.0
# Relative tolerance for numbers the extension states twice (kWh vs joules, totals vs device rows).
RELATIVE_TOLERANCE = 1e-9
# energy = dynamic + idle holds to float rounding of the attribution's sums.
PARTS_TOLERANCE = 1e-6
MAX_LISTED = 5

# ---------------------------------------------------------------------------------------------- findings


@dataclass(frozen=True)
class Finding:
    """One problem in one file: where it is and what is wrong. Warnings do not stop an import."""

    source: str
    where: str
    message: str
    severity: str = "error"

    def __str__(self) -> str:
        tag = "warning: " if self.severity == "warning" else ""
        return f"{self.source}: {self.where}: {tag}{self.message}"


class FormatError(ValueError):
    """A file in a public trace format cannot be read as it is; `findings` lists every error."""

    def __init__(self, findings: list[Finding]):
        self.findings = findings
        super().__init__("\n".join(str(f) for f in findings))


def raise_on_errors(findings: list[Finding]) -> list[Finding]:
    """Raise FormatError if any finding is an error; return the warnings otherwise."""
    errors = [f for f in findings if f.severity == "error"]
    if errors:
        raise FormatError(errors)
    return [f for f in findings if f.severity == "warning"]


# -------------------------------------------------------------------------------------------- timestamps

# WfCommons' Pegasus 5 helloworld instances write month-day-year: executedAt "05-10-23T16:23:32Z" is in a
# file created on 2023-05-10.
_MONTH_DAY_YEAR = re.compile(
    r"^(?P<month>\d{2})-(?P<day>\d{2})-(?P<year>\d{2})T(?P<time>\d{2}:\d{2}:\d{2}(?:\.\d+)?)"
    r"(?P<zone>Z|[+-]\d{2}:?\d{2})?$"
)
_HAS_TIME = re.compile(r"^\d{4}-?\d{2}-?\d{2}[T ]\d{2}")
_ESCAPED_ID = re.compile(r"^(?:[0-9A-Za-z_.-]|#[0-9a-f]{2})+$")
_RFC3339_UTC = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,6})?Z$")


def parse_timestamp(text: object) -> datetime:
    """A tz-aware UTC datetime from the timestamp forms found in WfInstances: RFC 3339 / ISO 8601 in
    extended or basic form ("2023-03-29T10:02:36-10:00", "20200408T154143+0000") and WfCommons'
    month-day-year form ("05-10-23T16:23:32Z"). A time without zone is taken as UTC. Raises ValueError."""
    if not isinstance(text, str):
        raise ValueError(f"timestamp {text!r} is not a string")
    match = _MONTH_DAY_YEAR.match(text)
    if match:
        zone = match["zone"] or "Z"
        iso = f"20{match['year']}-{match['month']}-{match['day']}T{match['time']}{zone}"
    elif _HAS_TIME.match(text):
        iso = text
    else:
        raise ValueError(
            f"timestamp {text!r} is not in a known form (RFC 3339, ISO 8601 basic, or MM-DD-YYThh:mm:ss)"
        )
    try:
        parsed = datetime.fromisoformat(iso.replace("z", "Z"))
    except ValueError:
        raise ValueError(f"timestamp {text!r} is not a valid date and time") from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


def timestamp_resolution_seconds(text: str) -> float:
    """The precision a timestamp was written with: 1 s without fraction, else 10^-digits."""
    time_part = re.split(r"[T ]", text, maxsplit=1)[-1]
    fraction = re.search(r"[.,](\d+)", time_part)
    return 10.0 ** -len(fraction.group(1)) if fraction else 1.0


def format_timestamp(value: datetime) -> str:
    """RFC 3339 in UTC with a Z, microseconds only when there are any."""
    value = value.astimezone(UTC)
    text = value.strftime("%Y-%m-%dT%H:%M:%S")
    return f"{text}.{value.microsecond:06d}Z" if value.microsecond else f"{text}Z"


def is_rfc3339_utc(text: object) -> bool:
    return isinstance(text, str) and bool(_RFC3339_UTC.match(text))


# ---------------------------------------------------------------------------------------- WfFormat 1.4


def upgrade_wfformat(doc: Mapping) -> dict:
    """The 1.5 layout of a 1.0-1.4 document (WfFormat's 1.4 -> 1.5 changes): `wms` becomes `runtimeSystem`;
    the flat task list splits into specification (ids, parents, derived children, files by id) and execution
    (runtime, cores -> coreCount, energy -> energyInKWh, avgPower -> avgPowerInW, machine -> machines[]);
    cpu.count/speed become coreCount/speedInMHz. A task id is its name when the old id is absent or part of
    the name, else name_id. Values of the wrong shape are kept so the schema check reports them."""
    out = {k: v for k, v in doc.items() if k not in ("wms", "workflow")}
    out["schemaVersion"] = WFFORMAT_VERSION
    if "wms" in doc:
        out["runtimeSystem"] = doc["wms"]
    workflow = doc.get("workflow")
    if not isinstance(workflow, Mapping):
        out["workflow"] = workflow
        return out
    if not isinstance(workflow.get("tasks"), list):
        out["workflow"] = {"specification": {"tasks": workflow["tasks"]} if "tasks" in workflow else {}}
        return out
    old_tasks = workflow["tasks"]
    new_ids: dict[str, str] = {}
    for task in old_tasks:
        if isinstance(task, Mapping) and isinstance(task.get("name"), str):
            name, old_id = task["name"], task.get("id")
            new_id = name if old_id is None or str(old_id) in name else f"{name}_{old_id}"
            new_ids[name] = new_id
            if old_id is not None:
                new_ids[str(old_id)] = new_id
    children: dict[str, list[str]] = {}
    spec_tasks, exec_tasks, files = [], [], {}
    for task in old_tasks:
        if not isinstance(task, Mapping):
            spec_tasks.append(task)
            continue
        task_id = new_ids.get(task.get("name"), task.get("name"))
        parents = [new_ids.get(str(p), p) for p in task.get("parents", [])]
        for parent in parents:
            children.setdefault(parent, []).append(task_id)
        spec = {"name": task.get("name"), "id": task_id, "parents": parents, "children": []}
        inputs, outputs = [], []
        for file in task.get("files", []):
            if not isinstance(file, Mapping):
                continue
            file_id = file.get("name")
            if file.get("path"):
                file_id = f"{str(file['path']).rstrip('/')}/{file_id}"
            files[file_id] = {"id": file_id, "sizeInBytes": file.get("sizeInBytes")}
            (inputs if file.get("link") == "input" else outputs).append(file_id)
        if inputs:
            spec["inputFiles"] = inputs
        if outputs:
            spec["outputFiles"] = outputs
        spec_tasks.append(spec)
        if "runtimeInSeconds" in task:
            executed = {"id": task_id, "runtimeInSeconds": task["runtimeInSeconds"]}
            for old_key, new_key in _RENAMED_TASK_KEYS.items():
                if old_key in task:
                    executed[new_key] = task[old_key]
            if "machine" in task:
                executed["machines"] = [task["machine"]]
            exec_tasks.append(executed)
    for spec in spec_tasks:
        if isinstance(spec, dict) and "id" in spec:
            spec["children"] = children.get(spec["id"], [])
    specification = {"tasks": spec_tasks}
    if files:
        specification["files"] = list(files.values())
    execution = {k: workflow[k] for k in ("makespanInSeconds", "executedAt") if k in workflow}
    execution["tasks"] = exec_tasks
    if "machines" in workflow:
        execution["machines"] = [_upgrade_machine(m) for m in workflow["machines"]]
    out["workflow"] = {"specification": specification, "execution": execution}
    return out


_RENAMED_TASK_KEYS = {
    "command": "command",
    "cores": "coreCount",
    "avgCPU": "avgCPU",
    "readBytes": "readBytes",
    "writtenBytes": "writtenBytes",
    "memoryInBytes": "memoryInBytes",
    "energy": "energyInKWh",
    "avgPower": "avgPowerInW",
    "priority": "priority",
}


def _upgrade_machine(machine):
    if not isinstance(machine, Mapping) or not isinstance(machine.get("cpu"), Mapping):
        return machine
    cpu = {{"count": "coreCount", "speed": "speedInMHz"}.get(k, k): v for k, v in machine["cpu"].items()}
    return {**machine, "cpu": cpu}


# ------------------------------------------------------------------------------------- WfFormat checks


@cache
def project_schema() -> dict:
    """The project's JSON Schema: WfFormat 1.5 plus the jouletrace extension."""
    return json.loads(PROJECT_SCHEMA_FILE.read_text())


def check_wfformat(
    doc: object, source: str = "<memory>", upstream_schema: Mapping | None = None
) -> list[Finding]:
    """Every finding about one WfFormat document: schema (project, and upstream when given), then the
    semantic rules once the structure is sound. Format violations are warnings, as in WfCommons."""
    if not isinstance(doc, Mapping):
        return [Finding(source, "<document>", f"is a JSON {type(doc).__name__}, not an object")]
    version = doc.get("schemaVersion")
    if version in LEGACY_VERSIONS:
        doc = upgrade_wfformat(doc)
        source = f"{source} (upgraded from schema {version} to {WFFORMAT_VERSION})"
    elif version == "1.6":
        doc = {**doc, "schemaVersion": WFFORMAT_VERSION}
        source = f"{source} (schema 1.6, checked with the 1.5 rules)"
    findings = _schema_findings(doc, source, project_schema(), "")
    if upstream_schema is not None:
        findings += _schema_findings(doc, source, upstream_schema, "upstream schema: ")
    if any(f.severity == "error" for f in findings):
        return findings
    return findings + _semantic_findings(doc, source)


def validate_wfformat(doc: object, source: str = "<memory>", upstream_schema: Mapping | None = None):
    """Raise FormatError listing every error of the document; return its warnings."""
    return raise_on_errors(check_wfformat(doc, source, upstream_schema))


def read_json(path: str | Path) -> object:
    """A JSON file, with the line and column of a syntax error."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise FormatError(
            [Finding(str(path), f"line {exc.lineno}, column {exc.colno}", f"not valid JSON: {exc.msg}")]
        ) from None
    except UnicodeDecodeError as exc:
        raise FormatError([Finding(str(path), f"byte {exc.start}", "not UTF-8 text")]) from None


def _validator_class(schema: Mapping):
    import jsonschema

    declared = str(schema.get("$schema", "")).rstrip("#")
    for cls in (
        jsonschema.Draft202012Validator,
        jsonschema.Draft201909Validator,
        jsonschema.Draft7Validator,
        jsonschema.Draft6Validator,
        jsonschema.Draft4Validator,
    ):
        if declared == cls.META_SCHEMA["$schema"].rstrip("#"):
            return cls
    # WfFormat up to 1.5 declares the unversioned "http://json-schema.org/schema#"; it was written for draft 4.
    return jsonschema.Draft4Validator


def _schema_findings(doc: Mapping, source: str, schema: Mapping, label: str) -> list[Finding]:
    import jsonschema

    validator = _validator_class(schema)(schema, format_checker=jsonschema.FormatChecker())
    findings = []
    for error in sorted(validator.iter_errors(doc), key=lambda e: [str(p) for p in e.absolute_path]):
        severity = "warning" if error.validator == "format" else "error"
        findings.append(
            Finding(source, _json_where(doc, error.absolute_path), label + error.message, severity)
        )
    return findings


def _json_where(doc: Mapping, path: Iterable) -> str:
    """A readable JSON path, naming the task or machine an array index points at."""
    text, node = "", doc
    for part in path:
        if isinstance(part, int):
            text += f"[{part}]"
            node = node[part] if isinstance(node, list) and part < len(node) else None
            if isinstance(node, Mapping):
                label = node.get("id", node.get("nodeName"))
                if isinstance(label, str):
                    text += f" (id {label!r})" if "id" in node else f" (nodeName {label!r})"
        else:
            text += f".{part}" if text else str(part)
            node = node.get(part) if isinstance(node, Mapping) else None
    return text or "<document>"


def _semantic_findings(doc: Mapping, source: str) -> list[Finding]:
    found: list[Finding] = []

    def add(where: str, message: str, severity: str = "error") -> None:
        found.append(Finding(source, where, message, severity))

    spec = doc["workflow"]["specification"]
    tasks = spec["tasks"]
    where_task = [f"workflow.specification.tasks[{i}] (id {t['id']!r})" for i, t in enumerate(tasks)]
    ids = _unique_ids([t["id"] for t in tasks], where_task, "task id", add)
    files = spec.get("files")
    file_ids = _unique_ids(
        [f["id"] for f in files or []],
        [f"workflow.specification.files[{i}]" for i in range(len(files or []))],
        "file id",
        add,
    )
    parents_of: dict[str, set[str]] = {}
    children_of: dict[str, set[str]] = {}
    used_files: set[str] = set()
    for where, task in zip(where_task, tasks, strict=True):
        for key in ("parents", "children"):
            for ref in task[key]:
                if ref == task["id"]:
                    add(f"{where}.{key}", "a task cannot depend on itself")
                elif ref not in ids:
                    add(f"{where}.{key}", f"{ref!r} is not a task of the specification")
        parents_of.setdefault(task["id"], set()).update(task["parents"])
        children_of.setdefault(task["id"], set()).update(task["children"])
        for key in ("inputFiles", "outputFiles"):
            for file_id in task.get(key, []):
                used_files.add(file_id)
                if files is not None and file_id not in file_ids:
                    add(f"{where}.{key}", f"file {file_id!r} is not declared in workflow.specification.files")
    if files is None and used_files:
        add(
            "workflow.specification",
            f"{len(used_files)} files are used but no files list is declared",
            "warning",
        )
    unused = sorted(file_ids - used_files)
    if unused:
        add(
            "workflow.specification.files",
            f"{len(unused)} files are never used, e.g. {unused[0]!r}",
            "warning",
        )
    one_sided = sorted(
        f"{t} -> {c}"
        for t, cs in children_of.items()
        for c in cs
        if c in parents_of and t not in parents_of[c]
    ) + sorted(
        f"{p} -> {t}"
        for t, ps in parents_of.items()
        for p in ps
        if p in children_of and t not in children_of[p]
    )
    if one_sided:
        add(
            "workflow.specification.tasks",
            f"{len(one_sided)} edges are listed on one side only (parents vs children), e.g. {one_sided[0]}",
            "warning",
        )
    in_cycle = tasks_in_cycles_of_both_sides(parents_of, children_of, ids)
    if in_cycle:
        add(
            "workflow.specification.tasks",
            f"the dependency graph has a cycle: {len(in_cycle)} tasks are on or behind one, "
            f"e.g. {', '.join(repr(t) for t in in_cycle[:MAX_LISTED])}",
        )
    ours = EXTENSION_KEY in doc
    if ours:
        if "createdAt" in doc and not is_rfc3339_utc(doc["createdAt"]):
            add(
                "createdAt",
                f"{doc['createdAt']!r} is not an RFC 3339 UTC time (YYYY-MM-DDThh:mm:ss[.ffffff]Z)",
            )
        for where, task in zip(where_task, tasks, strict=True):
            if not _ESCAPED_ID.match(task["id"]):
                add(f"{where}.id", "'#' must be followed by two lowercase hex digits (taskIdEscape)")
    execution = doc["workflow"].get("execution")
    if execution is not None:
        found += _execution_findings(execution, ids, ours, source)
    return found


def _unique_ids(values: list[str], wheres: list[str], what: str, add) -> set[str]:
    seen: set[str] = set()
    for value, where in zip(values, wheres, strict=True):
        if value in seen:
            add(where, f"{what} {value!r} is declared more than once")
        seen.add(value)
    return seen


def tasks_in_cycles_of_both_sides(
    parents_of: Mapping[str, Iterable[str]], children_of: Mapping[str, Iterable[str]], known: Container[str]
) -> list[str]:
    """Tasks on (or below) a cycle of the edges either side lists: a parent list or a child list, among
    ``known`` tasks, self-edges left out (the formats' checks report those apart)."""
    edges = {t: {p for p in ps if p in known and p != t} for t, ps in parents_of.items()}
    for t, cs in children_of.items():
        for c in cs:
            if c in edges and c != t:
                edges[c].add(t)
    return _tasks_in_cycles(edges)


def _tasks_in_cycles(parents: Mapping[str, set[str]]) -> list[str]:
    """Tasks that a topological sort never reaches (on a cycle or downstream of one), sorted."""
    waiting = {t: len(ps) for t, ps in parents.items()}
    children: dict[str, list[str]] = {}
    for t, ps in parents.items():
        for p in ps:
            children.setdefault(p, []).append(t)
    ready = [t for t, n in waiting.items() if n == 0]
    while ready:
        task = ready.pop()
        for child in children.get(task, []):
            waiting[child] -= 1
            if waiting[child] == 0:
                ready.append(child)
    return sorted(t for t, n in waiting.items() if n > 0)


def _execution_findings(execution: Mapping, spec_ids: set[str], ours: bool, source: str) -> list[Finding]:
    found: list[Finding] = []

    def add(where: str, message: str, severity: str = "error") -> None:
        found.append(Finding(source, where, message, severity))

    _check_time(execution["executedAt"], "workflow.execution.executedAt", ours, add)
    machines = execution.get("machines")
    names = _unique_ids(
        [m["nodeName"] for m in machines or []],
        [f"workflow.execution.machines[{i}]" for i in range(len(machines or []))],
        "machine nodeName",
        add,
    )
    executed: set[str] = set()
    for i, task in enumerate(execution["tasks"]):
        where = f"workflow.execution.tasks[{i}] (id {task['id']!r})"
        if task["id"] in executed:
            add(where, "the task has more than one execution entry")
        executed.add(task["id"])
        if task["id"] not in spec_ids:
            add(where, "the task is not in workflow.specification.tasks")
        for name in task.get("machines", []):
            if machines is None:
                add(f"{where}.machines", f"ran on {name!r} but no machines list is declared", "warning")
            elif name not in names:
                add(f"{where}.machines", f"machine {name!r} is not declared in workflow.execution.machines")
        if "executedAt" in task:
            _check_time(task["executedAt"], f"{where}.executedAt", ours, add)
        if ours:
            _check_task_energy(task, where, add)
    missing = sorted(spec_ids - executed)
    if missing:
        add(
            "workflow.execution.tasks",
            f"{len(missing)} tasks have no execution entry, e.g. {missing[0]!r}",
            "warning",
        )
    return found


def _check_time(value: str, where: str, ours: bool, add) -> None:
    if ours and not is_rfc3339_utc(value):
        add(where, f"{value!r} is not an RFC 3339 UTC time (YYYY-MM-DDThh:mm:ss[.ffffff]Z)")
        return
    try:
        parse_timestamp(value)
    except ValueError as exc:
        add(where, str(exc))


def _close(a: float, b: float, rel: float = RELATIVE_TOLERANCE) -> bool:
    return math.isclose(a, b, rel_tol=rel, abs_tol=1e-9)


def counted_device_rows(devices: list[Mapping], kind_key: str) -> list[Mapping]:
    """The device rows that make a task's total: the meters whose joules add up, else a platform (psys)
    total. Shared by the exporters and the checks, so both state the same number."""
    additive = [d for d in devices if d[kind_key] in ADDITIVE_DEVICE_KINDS]
    return additive or [d for d in devices if d[kind_key] == "psys"]


def summed_device_joules(devices: list[Mapping], kind_key: str, joules_key: str) -> float | None:
    """A task's total energy from its device rows (see counted_device_rows); None if no row counts."""
    counted = counted_device_rows(devices, kind_key)
    return math.fsum(d[joules_key] for d in counted) if counted else None


def _check_task_energy(task: Mapping, where: str, add) -> None:
    energy = task.get(EXTENSION_KEY, {}).get("energy")
    if energy is None:
        if "energyInKWh" in task:
            add(f"{where}.energyInKWh", "energyInKWh is given but jouletrace.energy has no device rows")
        return
    devices = energy["devices"]
    seen: set[tuple[str, str]] = set()
    for j, device in enumerate(devices):
        key = (device["deviceKind"], device["deviceId"])
        at = f"{where}.jouletrace.energy.devices[{j}]"
        if key in seen:
            add(at, f"device {key[0]} {key[1]!r} is listed more than once")
        seen.add(key)
        parts = device["dynamicJoules"] + device["idleJoules"]
        if not _close(device["energyJoules"], parts, PARTS_TOLERANCE):
            add(at, f"energyJoules {device['energyJoules']} != dynamicJoules + idleJoules = {parts}")
    total = summed_device_joules(devices, "deviceKind", "energyJoules")
    if total is None:
        add(
            f"{where}.jouletrace.energy",
            "no device row adds to a total (no cpu_package, dram, gpu, fpga or psys)",
        )
        return
    if not _close(energy["totalJoules"], total):
        add(
            f"{where}.jouletrace.energy.totalJoules", f"{energy['totalJoules']} != sum of device rows {total}"
        )
    if "energyInKWh" not in task:
        add(where, "jouletrace.energy is given but energyInKWh is missing")
    elif not _close(task["energyInKWh"] * JOULES_PER_KWH, energy["totalJoules"]):
        add(
            f"{where}.energyInKWh",
            f"{task['energyInKWh']} kWh != jouletrace.energy.totalJoules / 3.6e6 = "
            f"{energy['totalJoules'] / JOULES_PER_KWH}",
        )
    runtime = task["runtimeInSeconds"]
    if (
        "avgPowerInW" in task
        and runtime > 0
        and not _close(task["avgPowerInW"] * runtime, energy["totalJoules"])
    ):
        add(f"{where}.avgPowerInW", f"{task['avgPowerInW']} W x {runtime} s != {energy['totalJoules']} J")


# -------------------------------------------------------------------------------------------------- WTA
# The WTA half lives in schemas.wta_checks; its names stay importable from here.

_WTA_NAMES = frozenset(
    {
        "ID_LIST",
        "WTA_GENERIC_INFORMATION",
        "WTA_ID_MAP",
        "WTA_ID_MAP_DIR",
        "WTA_REQUIRED_COLUMNS",
        "WTA_RESOURCES",
        "WTA_STATISTICS",
        "WTA_STATISTIC_SUBJECTS",
        "WTA_TABLES",
        "WTA_TASKS",
        "WTA_VERSION_DIR",
        "WTA_WORKFLOWS",
        "WTA_WORKLOAD_KEYS",
        "WtaPart",
        "check_wta",
        "derived_workflows",
        "is_wta_trace",
        "read_generic_information",
        "read_wta_table",
        "validate_wta",
    }
)


def __getattr__(name: str):
    if name in _WTA_NAMES:
        import schemas.wta_checks

        return getattr(schemas.wta_checks, name)
    raise AttributeError(f"module 'schemas.formats' has no attribute {name!r}")
