"""Where the runs, tasks, machines and energy of a trace dataset came from.

jouletrace collects runs itself (Argo Workflows and Kubernetes, energy attributed from meter readings) and
imports runs recorded by others (WfFormat files, WTA traces). The model's tables hold the values; the
dataset's `sources` table (`<dataset>/sources/part-0.parquet`, one row per workflow that has one) says where
a run came from and keeps what an import has no model column for, so that nothing has to be invented to fit:
the runtime system that recorded the run, the file it was read from, its application, every task's command
line, and every machine's name and description as the source gave them. Exports read it to write the
original runtime system, commands and machines back, and to say in READMEs and dataset cards which values
jouletrace measured, which it imported and which are estimates.

Machines of an imported run are that run's own: their `host_node` is `<name>@<run>` (`pegasus-5@montage-...`),
so two unrelated runs with a machine of the same name stay two machines; the sources row keeps the name.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from datasets.store import write_parquet_atomic

SOURCES_DIR = "sources"
SOURCES_TABLE = "sources"
ORIGIN_JOULETRACE = "jouletrace"  # collected by jouletrace: Argo Workflows, Kubernetes, meter readings
ORIGIN_IMPORTED = "imported"  # read from a trace file recorded by another system
ORIGIN_UNKNOWN = "unknown"  # no sources row and nothing jouletrace collects (imported before sources existed)
ORIGINS = (ORIGIN_JOULETRACE, ORIGIN_IMPORTED)
ARGO_RUNTIME_SYSTEM = {
    "name": "Argo Workflows",
    "version": "unknown",
    "url": "https://argoproj.github.io/workflows/",
}
ARGO_FOLDER = "argo"
# Energy rows read from a file carry the format in their method (datasets.formats.wfformat_read, datasets.formats.wta_read).
IMPORTED_ENERGY_METHODS = ("wfformat:", "wta:")
# How every row of an export is counted in the dataset card, in this order of precedence.
CATEGORIES = {
    "measured": "measured by jouletrace",
    "imported": "imported",
    "estimated": "estimated",
    "synthetic": "synthetic (simulated)",
    "unknown": "origin not recorded",
}
# Argo's generateName suffix: 5 characters from Kubernetes' rand alphabet (no vowels, no 0, 1, 3).
_GENERATED_SUFFIX = re.compile(r"^(?P<prefix>.+)-[bcdfghjklmnpqrstvwxz2456789]{5}$")

COMMAND = pa.struct(
    [
        pa.field("task_id", pa.string(), nullable=False),
        pa.field("program", pa.string()),
        pa.field("arguments", pa.list_(pa.string())),
    ]
)
SOURCE_MACHINE = pa.struct(
    [
        pa.field("host_node", pa.string(), nullable=False),
        pa.field("node_name", pa.string(), nullable=False),
        pa.field("system", pa.string()),
        pa.field("architecture", pa.string()),
        pa.field("release", pa.string()),
        pa.field("cpu_vendor", pa.string()),
    ]
)
SOURCES = pa.schema(
    [
        pa.field("workflow_uid", pa.string(), nullable=False),
        pa.field("origin", pa.string(), nullable=False),
        pa.field("format", pa.string()),
        pa.field("file", pa.string()),
        pa.field("runtime_system_name", pa.string()),
        pa.field("runtime_system_version", pa.string()),
        pa.field("runtime_system_url", pa.string()),
        pa.field("application", pa.string()),
        pa.field("description", pa.string()),
        pa.field("commands", pa.list_(COMMAND), nullable=False),
        pa.field("machines", pa.list_(SOURCE_MACHINE), nullable=False),
    ],
    metadata={"jouletrace.sidecar": SOURCES_TABLE},
)


# ------------------------------------------------------------------------------------------ the table


def sources_table(rows: Iterable[Mapping]) -> pa.Table:
    """The sources table of `rows` (missing fields null, commands and machines empty)."""
    filled = [
        {f.name: row.get(f.name, [] if f.name in ("commands", "machines") else None) for f in SOURCES}
        for row in rows
    ]
    for row in filled:
        # In a stable order, whatever order a file lists them in.
        row["commands"] = sorted(row["commands"], key=lambda c: c["task_id"])
        row["machines"] = sorted(row["machines"], key=lambda m: m["host_node"])
        if row["origin"] not in ORIGINS:
            raise ValueError(
                f"sources row of {row['workflow_uid']!r}: origin {row['origin']!r} is not one of {ORIGINS}"
            )
    return pa.Table.from_pylist(filled, schema=SOURCES)


def empty_sources() -> pa.Table:
    return SOURCES.empty_table()


def read_sources(dataset_root: str | Path) -> pa.Table:
    """The dataset's sources table (empty when it has none)."""
    path = Path(dataset_root) / SOURCES_DIR / "part-0.parquet"
    if not path.is_file():
        return empty_sources()
    return pq.ParquetFile(path).read().select(SOURCES.names).cast(SOURCES)


def merge_sources(dataset_root: str | Path, new: pa.Table, replaced_uids: Iterable[str]) -> int:
    """Replace the sources rows of `replaced_uids` (the workflows just imported) by `new`; returns the rows
    now held."""
    old = read_sources(dataset_root)
    uids = pa.array(sorted(set(replaced_uids)), pa.string())
    merged = pa.concat_tables([old.filter(pc.invert(pc.is_in(old["workflow_uid"], value_set=uids))), new])
    if merged.num_rows or (Path(dataset_root) / SOURCES_DIR).exists():
        write_parquet_atomic(merged.cast(SOURCES), Path(dataset_root) / SOURCES_DIR / "part-0.parquet")
    return merged.num_rows


def scoped_host(node_name: str, run: str) -> str:
    """The model's host_node of a machine an imported run names: the name scoped by the run."""
    return f"{node_name}@{run}"


def application_from_file(path: str | Path) -> str:
    """The application of a WfInstances file: its folder when the name starts with it
    (`pegasus/epigenomics/epigenomics-chameleon-...`), else the name up to its first '-' (WfInstances names
    files `<application>-<platform>-...`)."""
    path = Path(path)
    if path.parent.name and path.stem.startswith(f"{path.parent.name}-"):
        return path.parent.name
    return path.stem.split("-", 1)[0] or path.stem


def application_of(workflow_name: str) -> str:
    """The application of an Argo run: its name without the generateName suffix ("montage-q76xp" ->
    "montage"), as a file-name-safe lowercase slug."""
    match = _GENERATED_SUFFIX.match(workflow_name)
    return slug(match["prefix"] if match else workflow_name)


def slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or "unnamed"


def runtime_system_label(system: Mapping | None) -> str:
    if not system:
        return "not recorded"
    version = system.get("version")
    return f"{system['name']} {version}" if version and version != "unknown" else system["name"]


# ------------------------------------------------------------------------------------------- origins


@dataclass
class Origins:
    """The origin of every workflow, machine and energy row of a set of tables."""

    workflows: dict[str, str]
    sources: dict[str, dict]
    machines: dict[str, dict] = field(default_factory=dict)
    commands: dict[tuple[str, str], dict] = field(default_factory=dict)

    def of(self, uid: str) -> str:
        return self.workflows.get(uid, ORIGIN_UNKNOWN)

    def runtime_system(self, uid: str) -> dict | None:
        """The runtime system that recorded the run, as its source gave it (None when not known)."""
        origin = self.of(uid)
        if origin == ORIGIN_JOULETRACE:
            return dict(ARGO_RUNTIME_SYSTEM)
        row = self.sources.get(uid)
        if origin != ORIGIN_IMPORTED or not row or not row["runtime_system_name"]:
            return None
        system = {"name": row["runtime_system_name"]}
        for key in ("version", "url"):
            if row[f"runtime_system_{key}"] is not None:
                system[key] = row[f"runtime_system_{key}"]
        return system

    def folder(self, uid: str) -> str:
        """The WfInstances folder of the run's runtime system (`argo`, `pegasus`, `nextflow`, ...)."""
        system = self.runtime_system(uid)
        if system is None:
            return "unknown-runtime-system"
        return ARGO_FOLDER if system["name"] == ARGO_RUNTIME_SYSTEM["name"] else slug(system["name"])

    def application(self, uid: str, workflow_name: str) -> str:
        row = self.sources.get(uid)
        if row and row["application"]:
            return slug(row["application"])
        return application_of(workflow_name)

    def command(self, uid: str, task_id: str) -> dict | None:
        return self.commands.get((uid, task_id))

    def node_name(self, host: str) -> str:
        machine = self.machines.get(host)
        return machine["node_name"] if machine else host

    def machine_origin(self, host: str, uids: Iterable[str] = ()) -> str:
        """Imported when a sources row describes it; else the origin of the runs that used it (a machine no
        run used came from Kubernetes' node list)."""
        if host in self.machines:
            return ORIGIN_IMPORTED
        origins = {self.of(uid) for uid in uids}
        if not origins or ORIGIN_JOULETRACE in origins:
            return ORIGIN_JOULETRACE
        return ORIGIN_IMPORTED if ORIGIN_IMPORTED in origins else ORIGIN_UNKNOWN


def origins_of(tables: Mapping[str, pa.Table]) -> Origins:
    """Origins of the workflows in `tables` (workflows, tasks and an optional `sources` table): the sources
    row when there is one; else collected by jouletrace when the run has a namespace or a pod (everything
    jouletrace collects has), else unknown: nothing is claimed for it."""
    sources = {r["workflow_uid"]: r for r in _rows(tables.get(SOURCES_TABLE))}
    collected = set()
    for row in _rows(tables.get("workflows")):
        if row["namespace"] is not None:
            collected.add(row["workflow_uid"])
    tasks = tables.get("tasks")
    if tasks is not None and tasks.num_rows:
        podded = pc.or_(pc.is_valid(tasks["pod_name"]), pc.is_valid(tasks["pod_uid"]))
        collected |= set(tasks.filter(podded)["workflow_uid"].unique().to_pylist())
    origins = {}
    for row in _rows(tables.get("workflows")):
        uid = row["workflow_uid"]
        if uid in sources:
            origins[uid] = sources[uid]["origin"]
        else:
            origins[uid] = ORIGIN_JOULETRACE if uid in collected else ORIGIN_UNKNOWN
    machines, commands = {}, {}
    for uid, row in sources.items():
        for machine in row["machines"]:
            machines[machine["host_node"]] = machine
        for command in row["commands"]:
            commands[(uid, command["task_id"])] = {
                "program": command["program"],
                "arguments": command["arguments"],
            }
    return Origins(origins, sources, machines, commands)


def _rows(table: pa.Table | None) -> list[dict]:
    return [] if table is None else table.to_pylist()


def energy_origin(method: str) -> str:
    return ORIGIN_IMPORTED if method.startswith(IMPORTED_ENERGY_METHODS) else ORIGIN_JOULETRACE


def category(origin: str, provenance: str) -> str:
    """How a row is counted in a dataset card: imported, origin not recorded, synthetic, estimated, or
    measured by jouletrace."""
    if origin == ORIGIN_IMPORTED:
        return "imported"
    if origin == ORIGIN_UNKNOWN:
        return "unknown"
    if provenance in ("synthetic", "estimated"):
        return provenance
    return "measured"


def origin_summary(tables: Mapping[str, pa.Table], origins: Origins) -> dict:
    """Rows of each table by where they came from (CATEGORIES), the sources runs were imported from, and the
    runtime systems that recorded the runs."""
    workflows = _rows(tables.get("workflows"))
    tasks = _rows(tables.get("tasks"))
    uids_of_host: dict[str, set[str]] = {}
    for task in tasks:
        if task["host_node"] is not None:
            uids_of_host.setdefault(task["host_node"], set()).add(task["workflow_uid"])

    def count(pairs: Iterable[tuple[str, str]]) -> dict[str, int]:
        found = Counter(category(origin, provenance) for origin, provenance in pairs)
        return {key: found[key] for key in CATEGORIES if found[key]}

    energy = _rows(tables.get("task_energy"))
    imported: dict[tuple, int] = Counter()
    for wf in workflows:
        row = origins.sources.get(wf["workflow_uid"])
        if origins.of(wf["workflow_uid"]) == ORIGIN_IMPORTED and row:
            imported[
                (row["file"], row["format"], runtime_system_label(origins.runtime_system(wf["workflow_uid"])))
            ] += 1
    return {
        "workflows": count((origins.of(w["workflow_uid"]), w["provenance"]) for w in workflows),
        "tasks": count((origins.of(t["workflow_uid"]), t["provenance"]) for t in tasks),
        "machines": count(
            (origins.machine_origin(m["host_node"], uids_of_host.get(m["host_node"], ())), m["provenance"])
            for m in _rows(tables.get("machines"))
        ),
        "task_energy": count(
            (
                ORIGIN_IMPORTED
                if energy_origin(e["method"]) == ORIGIN_IMPORTED
                else origins.of(e["workflow_uid"]),
                e["provenance"],
            )
            for e in energy
        ),
        "runtime_systems": dict(
            Counter(runtime_system_label(origins.runtime_system(w["workflow_uid"])) for w in workflows)
        ),
        "imported_from": [
            {"file": file, "format": fmt, "runtime_system": system, "workflows": n}
            for (file, fmt, system), n in sorted(imported.items(), key=lambda item: tuple(map(str, item[0])))
        ],
    }


def anonymised_sources(sources: pa.Table, alias) -> pa.Table:
    """The sources table with machine names replaced by the pseudonym of their host_node (the original name
    would give away what the pseudonym hides)."""
    rows = sources.to_pylist()
    for row in rows:
        row["machines"] = [
            m | {"host_node": alias("node", m["host_node"]), "node_name": alias("node", m["host_node"])}
            for m in row["machines"]
        ]
    return pa.Table.from_pylist(rows, schema=SOURCES)
