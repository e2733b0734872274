"""WTA import: a schema-1.0 trace folder into the trace model, as jouletrace writes it or as the archive's
real traces store it (schemas.wta_checks reads the types they hold and says what is missing).

With jouletrace's id map the model's string ids come back, and its `source` column says where each run came
from. A foreign trace is one source: its workflows are `<trace>:<id>` and its machines `<resource>@<trace>`
(the trace is the folder's name), so two traces never share a workflow or a machine by number. Energy becomes
one platform-total row per task (WTA has no device split).
"""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import schemas
from datasets.formats.provenance import ORIGIN_IMPORTED, SOURCES_TABLE, scoped_host, sources_table
from datasets.formats.wfformat_read import UNKNOWN_CLUSTER, UNKNOWN_PHASE, ImportResult, total_energy_row
from datasets.formats.wta_write import (
    BYTES_PER_GIB,
    MILLISECOND,
    UNKNOWN,
    WtaTrace,
    from_milliseconds,
    params_of,
)
from schemas.formats import JOULES_PER_WH
from schemas.wta_checks import (
    WTA_ID_MAP_DIR,
    WTA_RESOURCES,
    derived_workflows,
    read_generic_information,
    read_wta_table,
    validate_wta,
)

WTA_FORMAT = "WTA schema-1.0"
# resource_type values whose resource_amount_requested counts CPU cores (or hardware threads).
CPU_RESOURCE_TYPES = frozenset({"", "cpu", "cpus", "core", "cores", "thread", "threads", "vcpu", "vcpus"})
# Provenance of a workflow read back from WTA: the least certain of its tasks'.
_PROVENANCE_RANK = {"measured": 0, "estimated": 1, "synthetic": 2}


def read_wta(root: str | Path) -> WtaTrace:
    """The tables of a WTA trace folder in the schema-1.0 types (check it first: `import_wta` does). A trace
    without workflows table gets one derived from its tasks; one without generic_information.json an empty
    workload description."""
    root = Path(root)
    parts = {name: read_wta_table(root, name) for name in ("workflows", "tasks", "resources", WTA_ID_MAP_DIR)}
    if parts["tasks"] is None:
        raise FileNotFoundError(f"{root}: no tasks/schema-1.0 table (not a WTA trace)")
    workflows = parts["workflows"] or derived_workflows(parts["tasks"])
    return WtaTrace(
        workflows=workflows.table,
        tasks=parts["tasks"].table,
        resources=parts["resources"].table if parts["resources"] else WTA_RESOURCES.empty_table(),
        id_map=parts[WTA_ID_MAP_DIR].table if parts[WTA_ID_MAP_DIR] else None,
        generic_information=read_generic_information(root) or {},
    )


def import_wta(root: str | Path) -> ImportResult:
    """Model tables (and sources) of a WTA trace folder, after checking it (FormatError lists every error),
    with its format warnings."""
    warnings = validate_wta(root)
    result = wta_to_tables(read_wta(root), name=Path(root).resolve().name or "wta")
    result.warnings = warnings
    return result


def wta_to_tables(trace: WtaTrace, name: str = "wta") -> ImportResult:
    """Model tables of a WTA trace, and where each run came from. `name` is the trace's (its folder's)
    name, the scope of a foreign trace's workflow and machine ids. Energy comes from
    energy_consumption_joules when present, else from the Wh column (uncertainty 1 Wh: truncation)."""
    return _TraceReader(trace, name).result()


class _TraceReader:
    def __init__(self, trace: WtaTrace, name: str):
        self.trace = trace
        self.name = name
        self.ours = trace.id_map is not None
        self.names: dict[tuple[str, int], tuple[str | None, str]] = {}
        self.declared: dict[int, dict | None] = {}
        for row in trace.id_map.to_pylist() if self.ours else []:
            self.names[(row["table"], row["id"])] = (row["workflow_uid"], row["name"])
            if row["table"] == "workflows":
                self.declared[row["id"]] = json.loads(row["source"]) if row.get("source") else None
        self.notes: list[str] = []
        self.commands: dict[str, list[dict]] = {}

    def workflow_uid(self, wid: int) -> str:
        known = self.names.get(("workflows", wid))
        return known[0] if known else f"{self.name}:{wid}"

    def task_id(self, tid: int) -> str:
        known = self.names.get(("tasks", tid))
        return known[1] if known else str(tid)

    def host(self, key: str | None) -> str | None:
        """The host_node of a resource_used value (a decimal id or a resource's name)."""
        if key is None:
            return None
        if key.isdigit() and ("resources", int(key)) in self.names:
            return self.names[("resources", int(key))][1]
        return scoped_host(key, self.name)

    def result(self) -> ImportResult:
        tasks, energy = self.tasks()
        hosts_of: dict[str, list[str]] = {}
        for task in tasks:
            if task["host_node"] is not None:
                hosts_of.setdefault(task["workflow_uid"], [])
                if task["host_node"] not in hosts_of[task["workflow_uid"]]:
                    hosts_of[task["workflow_uid"]].append(task["host_node"])
        machines, described = self.machines()
        return ImportResult(
            {
                "workflows": schemas.conform("workflows", self.workflows(tasks)),
                "tasks": schemas.conform("tasks", tasks),
                "machines": schemas.conform("machines", machines),
                "task_energy": schemas.conform("task_energy", energy),
                SOURCES_TABLE: sources_table(self.sources(hosts_of, described)),
            },
            self.notes,
        )

    def tasks(self) -> tuple[list[dict], list[dict]]:
        columns = self.trace.tasks.to_pydict()
        count = self.trace.tasks.num_rows

        def column(name: str, default=None) -> list:
            return columns[name] if name in columns else [default] * count

        kinds = [(k or "").strip().lower() for k in column("resource_type", "")]
        other_kinds = sorted({k for k in kinds if k not in CPU_RESOURCE_TYPES})
        if other_kinds:
            self.notes.append(
                f"resource_amount_requested of resource_type {', '.join(other_kinds)} is not kept "
                "(the model's request is in CPU cores)"
            )
        tasks, energy = [], []
        for i in range(count):
            params = params_of(column("params")[i])
            started = from_milliseconds(columns["ts_submit"][i])
            runtime_ms = columns["runtime"][i]
            runtime = runtime_ms / 1000 if runtime_ms is not None and runtime_ms >= 0 else None
            cpu = column("resource_amount_requested")[i] if kinds[i] in CPU_RESOURCE_TYPES else None
            memory = column("memory_requested")[i]
            uid = self.workflow_uid(columns["workflow_id"][i])
            task_id = self.task_id(columns["id"][i])
            row = {
                "workflow_uid": uid,
                "task_id": task_id,
                "task_name": params.get("task_name", task_id),
                "template_name": params.get("template_name"),
                "attempt": params.get("attempt", 0),
                "phase": params.get("phase", UNKNOWN_PHASE),
                "host_node": self.host(column("resource_used")[i]),
                "started_at": started,
                "finished_at": started + timedelta(seconds=runtime)
                if started and runtime is not None
                else None,
                "time_resolution_seconds": params.get("time_resolution_seconds", MILLISECOND),
                "runtime_seconds": runtime,
                "parents": [self.task_id(p) for p in columns["parents"][i] or []],
                "children": [self.task_id(c) for c in columns["children"][i] or []],
                "cpu_request_cores": cpu if cpu is not None and cpu >= 0 else None,
                # Foreign traces do not say memory's unit; jouletrace writes bytes.
                "memory_request_bytes": round(memory)
                if self.ours and memory is not None and memory >= 0
                else None,
                "gpu_ids": [],
                "fpga_ids": [],
                "provenance": params.get("provenance", "measured"),
            }
            tasks.append(row)
            if isinstance(params.get("command"), dict):
                self.commands.setdefault(uid, []).append({"task_id": task_id, **params["command"]})
            total = _task_total(column("energy_consumption_joules")[i], column("energy_consumption")[i])
            if total is not None:
                joules, method, uncertainty = total
                avg = joules / runtime if runtime else None
                energy.append(
                    {"workflow_uid": uid, "task_id": task_id}
                    | total_energy_row(joules, avg, method, uncertainty, row["provenance"])
                )
        if not self.ours and any(m is not None and m >= 0 for m in column("memory_requested")):
            self.notes.append("memory_requested is not kept: a WTA trace does not say its unit")
        return tasks, energy

    def workflows(self, tasks: list[dict]) -> list[dict]:
        by_uid: dict[str, list[dict]] = {}
        for task in tasks:
            by_uid.setdefault(task["workflow_uid"], []).append(task)
        columns = self.trace.workflows.to_pydict()
        missing = [None] * self.trace.workflows.num_rows
        joules_column = columns.get("total_energy_consumption_joules", missing)
        wh_column = columns.get("total_energy_consumption", missing)
        rows = []
        for i, wid in enumerate(columns["id"]):
            uid = self.workflow_uid(wid)
            own = by_uid.get(uid, [])
            started = from_milliseconds(columns["ts_submit"][i])
            ends = [t["finished_at"] for t in own if t["finished_at"] is not None]
            finished = max(ends) if ends and started else None
            known = self.names.get(("workflows", wid))
            rows.append(
                {
                    "workflow_uid": uid,
                    "workflow_name": known[1] if known else f"{self.name}-{wid}",
                    "cluster": UNKNOWN_CLUSTER,
                    "phase": UNKNOWN_PHASE,
                    "started_at": started,
                    "finished_at": finished,
                    "makespan_seconds": (finished - started).total_seconds() if finished else None,
                    "task_count": len(own),
                    "energy_joules": _workflow_total(joules_column[i], wh_column[i], own),
                    "provenance": max(
                        (t["provenance"] for t in own), key=_PROVENANCE_RANK.__getitem__, default="measured"
                    ),
                }
            )
        return rows

    def machines(self) -> tuple[list[dict], dict[str, dict]]:
        """Machine rows of the resources table, and each imported machine's name and description as the
        source gave them (a foreign trace's `os` is its system, not a Kubernetes label)."""
        rows, described = [], {}
        for resource in self.trace.resources.to_pylist():
            details = params_of(resource.get("details"))
            host = self.host(str(resource["id"]))
            cores = resource.get("num_resources")
            memory_gib = resource.get("memory")
            rows.append(
                {
                    "host_node": host,
                    "cpu_model": resource.get("proc_model") or None,
                    "sockets": details.get("sockets"),
                    "cores": round(cores) if cores is not None and cores >= 0 else None,
                    "cpu_speed_mhz": details.get("cpu_speed_mhz"),
                    "memory_bytes": details.get(
                        "memory_bytes",
                        memory_gib * BYTES_PER_GIB if memory_gib is not None and memory_gib >= 0 else None,
                    ),
                    "gpu_models": details.get("gpu_models", []),
                    "fpga_models": details.get("fpga_models", []),
                    "labels": details.get("labels", {}),
                    "provenance": details.get("provenance", "measured"),
                }
            )
            if self.ours and isinstance(details.get("source"), dict):
                described[host] = {"host_node": host, **details["source"]}
            elif not self.ours:
                described[host] = {
                    "host_node": host,
                    "node_name": str(resource["id"]),
                    "system": resource.get("os") or None,
                }
        return rows, described

    def sources(self, hosts_of: dict[str, list[str]], described: dict[str, dict]) -> list[dict]:
        """One row per workflow: a foreign trace's runs are imported from it; jouletrace's own traces say
        where each run came from in the id map's `source` column (nothing when an older export did not)."""
        rows = []
        columns = self.trace.workflows.to_pydict()
        schedulers = columns.get("scheduler", [None] * self.trace.workflows.num_rows)
        info = self.trace.generic_information
        for wid, scheduler in zip(columns["id"], schedulers, strict=True):
            uid = self.workflow_uid(wid)
            if self.ours:
                declared = self.declared.get(wid)
                if declared is None:
                    continue
                if declared["origin"] != ORIGIN_IMPORTED:
                    rows.append({"workflow_uid": uid, "origin": declared["origin"]})
                    continue
                system = declared.get("runtimeSystem") or {}
            else:
                declared = {
                    "format": WTA_FORMAT,
                    "file": self.name,
                    "application": self.name,
                    "description": info.get("workload_description") or None,
                }
                known = (scheduler or "").strip()
                system = {"name": known} if known and known != str(UNKNOWN) else {}
            hosts = hosts_of.get(uid, [])
            rows.append(
                {
                    "workflow_uid": uid,
                    "origin": ORIGIN_IMPORTED,
                    "format": declared.get("format"),
                    "file": declared.get("file"),
                    "runtime_system_name": system.get("name"),
                    "runtime_system_version": system.get("version"),
                    "runtime_system_url": system.get("url"),
                    "application": declared.get("application"),
                    "description": declared.get("description"),
                    "commands": self.commands.get(uid, []),
                    "machines": [_machine(described[h]) for h in hosts if h in described],
                }
            )
        imported = [r for r in rows if r["origin"] == ORIGIN_IMPORTED]
        used = {h for hosts in hosts_of.values() for h in hosts}
        unused = [_machine(d) for h, d in described.items() if h not in used]
        if imported and unused:
            # Resources no task used belong to the trace, not to one run: listed with its first run.
            imported[0]["machines"] = imported[0]["machines"] + unused
        return rows


def _machine(described: dict) -> dict:
    keys = ("host_node", "node_name", "system", "architecture", "release", "cpu_vendor")
    return {k: described.get(k) for k in keys}


def _task_total(joules: float | None, wh: int | None) -> tuple[float, str, float] | None:
    if joules is not None and joules >= 0:
        return joules, "wta:energy_consumption_joules (device and dynamic/idle split unknown)", 0.0
    if wh is not None and wh >= 0:
        return (
            wh * JOULES_PER_WH,
            "wta:energy_consumption Wh, truncated (device and dynamic/idle split unknown)",
            JOULES_PER_WH,
        )
    return None


def _workflow_total(joules: float | None, wh: int | None, tasks: list[dict]) -> float | None:
    if joules is not None and joules >= 0:
        return joules
    # The WTA tools write 0 Wh (a sum over no energies) when no task has energy.
    return wh * JOULES_PER_WH if wh is not None and wh >= 0 and tasks else None
