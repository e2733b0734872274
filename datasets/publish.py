"""Publication: a trace dataset as a WfInstances contribution folder or a WTA trace folder, each with a
dataset card, and imported traces merged into a dataset.

By default namespace, pod, node and GPU names (and pod uids) are replaced by salted SHA-256 pseudonyms
(`node-` plus 12 hex digits, ...), the same in every table and every export of the dataset, so exports stay
joinable, but nobody without the salt can test a guess. The salt is created on first export at
`<dataset>/.jouletrace/salt` (mode 0600) and never written into an export.
The trace model has no user column; WfFormat's `author` is not written and WTA user/group ids are -1.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.metadata
import json
import math
import os
import re
import secrets
import uuid
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc

import schemas
from datasets.traces import read_table, replace_folder, write_bytes_atomic, write_dataset
from datasets.wfformat import (
    EXPORTED_TABLES,
    attribution_summary,
    document_file_bytes,
    tables_to_wfformat,
)
from datasets.wta import tables_to_wta, write_wta
from schemas.formats import (
    DEFAULT_LICENCE,
    EXTENSION_KEY,
    JOULES_PER_KWH,
    Finding,
    check_wfformat,
    check_wta,
    counted_device_rows,
    format_timestamp,
    read_json,
)

SALT_FILE = Path(".jouletrace") / "salt"
PSEUDONYM_HEX_DIGITS = 12
WMS = "argo"
ARGO_RUNTIME_SYSTEM = {
    "name": "Argo Workflows",
    "version": "unknown",
    "url": "https://argoproj.github.io/workflows/",
}
CARD_STEM = "dataset_card"
# Argo's generateName suffix: 5 characters from Kubernetes' rand alphabet (no vowels, no 0, 1, 3).
_GENERATED_SUFFIX = re.compile(r"^(?P<prefix>.+)-[bcdfghjklmnpqrstvwxz2456789]{5}$")
PSEUDONYMISED_FIELDS = (
    "workflows.namespace",
    "tasks.pod_name",
    "tasks.pod_uid",
    "tasks.host_node",
    "tasks.gpu_ids",
    "machines.host_node",
    "machines.labels (values equal to a node name)",
    "task_energy.device_id (gpu)",
)


@dataclass
class Bundle:
    """What an export wrote: its folder, the files, what was left out (notes), the dataset card, and what
    the format check found in the written folder."""

    path: Path
    files: list[Path]
    notes: list[str] = field(default_factory=list)
    card: dict = field(default_factory=dict)
    findings: list[Finding] = field(default_factory=list)


# -------------------------------------------------------------------------------------- pseudonyms


def load_or_create_salt(dataset_root: str | Path) -> bytes:
    """The dataset's salt, created (32 random bytes, hex, mode 0600) on first use. Two exporters racing
    agree on one salt: the file is linked into place only if absent."""
    path = Path(dataset_root) / SALT_FILE
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        staging = path.with_name(f".salt.{uuid.uuid4().hex}.tmp")
        fd = os.open(staging, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            with os.fdopen(fd, "w") as out:
                out.write(secrets.token_hex(32) + "\n")
            os.chmod(staging, 0o600)
            with contextlib.suppress(FileExistsError):
                os.link(staging, path)
        finally:
            staging.unlink(missing_ok=True)
    salt = path.read_text().strip()
    if not salt:
        raise ValueError(f"{path}: the salt file is empty; delete it to create a new one")
    return salt.encode()


class Pseudonyms:
    """Salted SHA-256 pseudonyms, `<kind>-<12 hex>`; refuses two names that would share one."""

    def __init__(self, salt: bytes):
        self.salt = salt
        self.seen: dict[str, str] = {}

    def __call__(self, kind: str, name: str | None) -> str | None:
        if name is None:
            return None
        digest = hashlib.sha256(self.salt + b"\0" + kind.encode() + b"\0" + name.encode()).hexdigest()
        pseudonym = f"{kind}-{digest[:PSEUDONYM_HEX_DIGITS]}"
        earlier = self.seen.setdefault(pseudonym, f"{kind}\0{name}")
        if earlier != f"{kind}\0{name}":
            raise ValueError(f"pseudonym {pseudonym} would stand for two names; export with a new salt")
        return pseudonym


def anonymise(tables: Mapping[str, pa.Table], salt: bytes) -> dict[str, pa.Table]:
    """The tables with namespaces, pod, node and GPU names replaced by pseudonyms (other tables unchanged)."""
    alias = Pseudonyms(salt)
    out = dict(tables)

    def replace(table_name: str, column: str, convert: Callable) -> None:
        table = out[table_name]
        values = [convert(v) for v in table[column].to_pylist()]
        index = table.schema.get_field_index(column)
        out[table_name] = table.set_column(
            index, table.schema.field(index), pa.array(values, table.schema.field(index).type)
        )

    hosts = set()
    if "tasks" in out:
        hosts |= {h for h in out["tasks"]["host_node"].to_pylist() if h}
    if "machines" in out:
        hosts |= set(out["machines"]["host_node"].to_pylist())
    if "workflows" in out:
        replace("workflows", "namespace", lambda v: alias("ns", v))
    if "tasks" in out:
        replace("tasks", "pod_name", lambda v: alias("pod", v))
        replace("tasks", "pod_uid", lambda v: alias("poduid", v))
        replace("tasks", "host_node", lambda v: alias("node", v))
        replace("tasks", "gpu_ids", lambda ids: [alias("gpu", g) for g in ids])
    if "machines" in out:
        replace("machines", "host_node", lambda v: alias("node", v))
        replace(
            "machines",
            "labels",
            lambda labels: [(k, alias("node", v) if v in hosts else v) for k, v in labels],
        )
    if "task_energy" in out:
        energy = out["task_energy"]
        kinds = energy["device_kind"].to_pylist()
        ids = [
            alias("gpu", d) if k == "gpu" else d
            for k, d in zip(kinds, energy["device_id"].to_pylist(), strict=True)
        ]
        out["task_energy"] = energy.set_column(
            energy.schema.get_field_index("device_id"), "device_id", pa.array(ids, pa.string())
        )
    return out


# ------------------------------------------------------------------------------------------ reading


def read_export_tables(dataset_root: str | Path) -> dict[str, pa.Table]:
    """The tables an export needs; machines and task_energy may be absent (empty then)."""
    root = Path(dataset_root)
    tables = {}
    for name in EXPORTED_TABLES:
        if (root / name).exists():
            tables[name] = read_table(root, name)
        elif name in ("workflows", "tasks"):
            raise FileNotFoundError(f"{root / name}: the dataset has no {name} table to export")
        else:
            tables[name] = schemas.empty(name)
    return tables


def _prepared(dataset_root: Path, keep_identifiers: bool) -> tuple[dict[str, pa.Table], dict]:
    tables = read_export_tables(dataset_root)
    if keep_identifiers:
        return tables, {"anonymised": False}
    tables = anonymise(tables, load_or_create_salt(dataset_root))
    identifiers = {
        "anonymised": True,
        "hash": f"salted SHA-256, first {PSEUDONYM_HEX_DIGITS} hex digits; the salt stays with the dataset",
        "fields": list(PSEUDONYMISED_FIELDS),
    }
    return tables, identifiers


def application_of(workflow_name: str) -> str:
    """The application of an Argo run: its name without the generateName suffix ("montage-q76xp" ->
    "montage"), as a file-name-safe lowercase slug."""
    match = _GENERATED_SUFFIX.match(workflow_name)
    return slug(match["prefix"] if match else workflow_name)


def slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or "unnamed"


# ------------------------------------------------------------------------------------- WfInstances


def export_wfinstances(
    dataset_root: str | Path,
    out_dir: str | Path,
    *,
    keep_identifiers: bool = False,
    licence: str = DEFAULT_LICENCE,
    created_at: datetime | None = None,
) -> Bundle:
    """Write `<out_dir>/argo/<application>/<app>-<platform>-<N>t-<run>.json` (one WfFormat 1.5 instance per
    workflow), a README per folder and the dataset card, then check the folder. `<out_dir>/argo` is replaced
    whole; nothing else in `out_dir` is touched, so it can be a WfInstances clone."""
    root = Path(dataset_root)
    created = created_at or datetime.now(UTC)
    tables, identifiers = _prepared(root, keep_identifiers)
    export = tables_to_wfformat(
        tables, runtime_system=ARGO_RUNTIME_SYSTEM, created_at=created, identifiers=identifiers
    )
    by_app: dict[str, list[tuple[str, dict]]] = {}
    runs: Counter = Counter()
    for doc in export.documents.values():
        app = application_of(doc["name"])
        stem = (
            f"{app}-{slug(doc[EXTENSION_KEY]['cluster'])}-{len(doc['workflow']['specification']['tasks'])}t"
        )
        runs[stem] += 1
        by_app.setdefault(app, []).append((f"{stem}-{runs[stem]:03d}.json", doc))
    card = dataset_card(
        tables,
        root,
        licence=licence,
        identifiers=identifiers,
        export_format="wfinstances",
        created_at=created,
    )
    machines = {m["host_node"]: m for m in tables["machines"].to_pylist()}
    contents: dict[Path, bytes] = {Path("README.md"): _wms_readme(by_app, card).encode()}
    for app, files in by_app.items():
        contents[Path(app) / "README.md"] = _application_readme(app, files, machines, card).encode()
        for name, doc in files:
            contents[Path(app) / name] = document_file_bytes(doc)
    contents[Path(f"{CARD_STEM}.json")] = _card_json(card)
    contents[Path(f"{CARD_STEM}.md")] = card_markdown(card).encode()
    target = Path(out_dir) / WMS
    _replace_folder(target, contents)
    files = sorted(target / p for p in contents)
    return Bundle(target, files, export.notes, card, check_wfinstances_bundle(target))


def _replace_folder(target: Path, contents: Mapping[Path, bytes]) -> None:
    """Write a folder's files into a staging sibling and swap it in, so readers see the old or the new one."""

    def fill(staging: Path) -> None:
        for relative, data in contents.items():
            (staging / relative).parent.mkdir(parents=True, exist_ok=True)
            (staging / relative).write_bytes(data)

    replace_folder(target, fill)


def check_wfinstances_bundle(path: str | Path) -> list[Finding]:
    """Every finding about a contribution folder: each instance against the project schema and rules
    (with the jouletrace extension required), and a README in every folder that holds instances."""
    path = Path(path)
    files = sorted(p for p in path.rglob("*.json") if p.name != f"{CARD_STEM}.json")
    if not files:
        return [Finding(str(path), "<folder>", "holds no WfFormat .json file")]
    found = []
    for file in files:
        try:
            doc = read_json(file)
        except ValueError as exc:
            found += getattr(exc, "findings", [Finding(str(file), "<file>", str(exc))])
            continue
        found += check_wfformat(doc, str(file))
        if isinstance(doc, dict) and EXTENSION_KEY not in doc:
            found.append(
                Finding(str(file), EXTENSION_KEY, "no jouletrace extension (not a jouletrace export)")
            )
    for folder in sorted({f.parent for f in files}):
        if not (folder / "README.md").is_file():
            found.append(Finding(str(folder), "README.md", "is missing", "warning"))
    return found


def _kilojoules(joules: float | None) -> str:
    return "-" if joules is None else f"{joules / 1e3:,.1f}"


def _wms_readme(by_app: Mapping[str, list[tuple[str, dict]]], card: Mapping) -> str:
    lines = [
        "# Argo Workflows",
        "",
        "Energy-extended workflow instances of runs on Kubernetes with [Argo Workflows]"
        "(https://argoproj.github.io/workflows/), traced by jouletrace. Every file is a WfFormat 1.5 instance "
        "whose execution tasks carry `energyInKWh` and `avgPowerInW`, plus a `jouletrace` object with the "
        "energy per device, its coverage, method and uncertainty (see each application's README).",
        "",
        f"Licence of the data: {card['licence']}. " + _synthetic_warning(card),
        "",
        "| application | instances | tasks | energy (kJ) |",
        "|---|---|---|---|",
    ]
    for app, files in sorted(by_app.items()):
        tasks = sum(len(d["workflow"]["specification"]["tasks"]) for _, d in files)
        energy = [d[EXTENSION_KEY].get("energyJoules") for _, d in files]
        total = math.fsum(e for e in energy if e is not None) if any(e is not None for e in energy) else None
        lines.append(f"| [{app}]({app}/README.md) | {len(files)} | {tasks} | {_kilojoules(total)} |")
    return "\n".join(lines) + "\n"


def _synthetic_warning(card: Mapping) -> str:
    kinds = card["provenance"]["tasks"]
    if kinds.get("synthetic"):
        return "**Some or all of these runs are synthetic (simulated), not measured: see the dataset card.**"
    return "Runtimes and energies are measured unless a task says `estimated`."


def _application_readme(
    app: str, files: list[tuple[str, dict]], machines: Mapping[str, dict], card: Mapping
) -> str:
    lines = [
        f"# {app}",
        "",
        f"Runs of the `{app}` workflow (Argo workflow names `{app}-xxxxx`) with per-task energy. "
        + _synthetic_warning(card),
        "",
        "## File names",
        "",
        f"`{app}-<platform>-<N>t-<run>.json`: the application, the platform (the cluster the run came from), "
        "the number of tasks N, and a 3-digit run number in order of start time.",
        "",
        "## Instances",
        "",
        "| file | started (UTC) | tasks | makespan (s) | phase | energy (kJ) | ± (kJ) | provenance |",
        "|---|---|---|---|---|---|---|---|",
    ]
    hosts: dict[str, None] = {}
    for name, doc in files:
        ext = doc[EXTENSION_KEY]
        execution = doc["workflow"]["execution"]
        uncertainty = math.fsum(
            t[EXTENSION_KEY]["energy"]["uncertaintyJoules"]
            for t in execution["tasks"]
            if "energy" in t.get(EXTENSION_KEY, {})
        )
        for task in execution["tasks"]:
            hosts.update(dict.fromkeys(task.get("machines", [])))
        lines.append(
            f"| [{name}]({name}) | {execution['executedAt']} | {len(doc['workflow']['specification']['tasks'])} "
            f"| {execution['makespanInSeconds']:g} | {ext['phase']} | {_kilojoules(ext.get('energyJoules'))} "
            f"| {_kilojoules(uncertainty)} | {ext['provenance']} |"
        )
    lines += [
        "",
        "## Machines",
        "",
        "| node | CPU | sockets | cores | memory (GiB) | GPUs | FPGAs |",
        "|---|---|---|---|---|---|---|",
    ]
    for host in hosts:
        m = machines.get(host)
        if m is None:
            lines.append(f"| {host} | unknown | | | | | |")
            continue
        memory = "" if m["memory_bytes"] is None else f"{m['memory_bytes'] / 2**30:,.0f}"
        lines.append(
            f"| {host} | {m['cpu_model'] or ''} | {m['sockets'] or ''} | {m['cores'] or ''} | {memory} "
            f"| {', '.join(m['gpu_models'])} | {', '.join(m['fpga_models'])} |"
        )
    attribution = attribution_summary(m for _, d in files for m in d[EXTENSION_KEY]["attribution"]["methods"])
    energy = [
        t[EXTENSION_KEY]["energy"]
        for _, d in files
        for t in d["workflow"]["execution"]["tasks"]
        if "energy" in t.get(EXTENSION_KEY, {})
    ]
    total = math.fsum(e["totalJoules"] for e in energy)
    uncertainty = math.fsum(e["uncertaintyJoules"] for e in energy)
    lines += ["", "## Energy method", ""]
    lines += _method_lines(card["measurement_sources"], attribution, uncertainty, total)
    return "\n".join(lines) + "\n"


def _method_lines(
    sources: list[dict], attribution: Mapping, uncertainty_joules: float, total_joules: float
) -> list[str]:
    """How the energy was made and how uncertain it is, for a README or the dataset card."""
    readings = ", ".join(
        f"{s['source']} ({s['device_kind']}, {s['value_kind']}, {s['nodes']} nodes)" for s in sources
    )
    relative = f" ({uncertainty_joules / total_joules:.1%})" if total_joules > 0 else ""
    return [
        f"- Readings: {readings or 'not in the dataset'}.",
        "- Task energy = the sum over meters whose joules add up (CPU package, DRAM, GPU, FPGA); "
        "`energyInKWh` = joules / 3.6e6, `avgPowerInW` = joules / runtime.",
        f"- Attribution: readings {', '.join(attribution['readings']) or '-'}; split of shared devices "
        f"{', '.join(attribution['split']) or '-'}; idle policy {', '.join(attribution['idle']) or '-'}; "
        f"idle power {', '.join(attribution['idlePower']) or '-'} (the `method` of every device row says which).",
        f"- Uncertainty: each device row states a half-width (`uncertaintyJoules`: timestamp resolution, reading "
        f"intervals at the task's edges, gaps); summed over tasks it is {_kilojoules(uncertainty_joules)} kJ of "
        f"{_kilojoules(total_joules)} kJ{relative}.",
        "- The full description: the dataset card (`dataset_card.md`) and jouletrace's docs/formats.md.",
    ]


# --------------------------------------------------------------------------------------------- WTA


def export_wta_bundle(
    dataset_root: str | Path,
    out_dir: str | Path,
    *,
    keep_identifiers: bool = False,
    licence: str = DEFAULT_LICENCE,
    created_at: datetime | None = None,
) -> Bundle:
    """Write a WTA trace folder at `out_dir` (schema-1.0 tables, generic_information.json, id map) and the
    dataset card beside its tables, then check the folder."""
    root, out = Path(dataset_root), Path(out_dir)
    created = created_at or datetime.now(UTC)
    tables, identifiers = _prepared(root, keep_identifiers)
    card = dataset_card(
        tables, root, licence=licence, identifiers=identifiers, export_format="wta", created_at=created
    )
    trace = tables_to_wta(
        tables,
        scheduler=ARGO_RUNTIME_SYSTEM["name"],
        description="Argo Workflows runs with per-task energy, traced by jouletrace; see dataset_card.md.",
    )
    files = write_wta(trace, out)
    files.append(write_bytes_atomic(_card_json(card), out / f"{CARD_STEM}.json"))
    files.append(write_bytes_atomic(card_markdown(card).encode(), out / f"{CARD_STEM}.md"))
    return Bundle(out, files, [], card, check_wta(out))


# -------------------------------------------------------------------------------------- dataset card


def dataset_card(
    tables: Mapping[str, pa.Table],
    dataset_root: Path,
    *,
    licence: str,
    identifiers: Mapping,
    export_format: str,
    created_at: datetime,
) -> dict:
    """What a reader of an export must know: counts, time range, provenance, measurement sources, attribution
    and idle policy (from task_energy.method), energy totals and uncertainty, identifiers, licence."""
    workflows, tasks, energy = tables["workflows"], tables["tasks"], tables["task_energy"]
    rows = energy.to_pylist()
    by_task: dict[tuple[str, str], list[dict]] = {}
    for row in rows:
        by_task.setdefault((row["workflow_uid"], row["task_id"]), []).append(row)
    counted = [r for group in by_task.values() for r in counted_device_rows(group, "device_kind")]
    total = math.fsum(r["energy_joules"] for r in counted)
    uncertainty = math.fsum(r["uncertainty_joules"] for r in counted)
    by_kind: dict[str, float] = {}
    for row in rows:
        by_kind[row["device_kind"]] = by_kind.get(row["device_kind"], 0.0) + row["energy_joules"]
    starts = [t for t in workflows["started_at"].to_pylist() if t is not None]
    ends = [t for t in workflows["finished_at"].to_pylist() if t is not None]
    formats = {
        "wfinstances": "WfInstances contribution: WfFormat 1.5 JSON with the jouletrace extension 1.0",
        "wta": "WTA schema-1.0 Parquet with energy_consumption_joules, total_energy_consumption_joules and a "
        "jouletrace-ids table",
    }
    return {
        "title": "jouletrace per-task energy traces",
        "format": formats[export_format],
        "created_at": format_timestamp(created_at),
        "generator": f"jouletrace {_version()}",
        "model_schema_version": schemas.SCHEMA_VERSION,
        "licence": licence,
        "counts": {
            "workflows": workflows.num_rows,
            "tasks": tasks.num_rows,
            "tasks_with_energy": len(by_task),
            "machines": tables["machines"].num_rows,
            "task_energy_rows": energy.num_rows,
        },
        "time_range": {
            "start": format_timestamp(min(starts)) if starts else None,
            "end": format_timestamp(max(ends)) if ends else None,
        },
        "provenance": {
            name: dict(Counter(tables[name]["provenance"].to_pylist())) for name in EXPORTED_TABLES
        },
        "measurement_sources": _measurement_sources(dataset_root),
        "attribution": attribution_summary(r["method"] for r in rows)
        | {"method_rows": dict(Counter(r["method"] for r in rows))},
        "energy": {
            "total_joules": total,
            "total_kwh": total / JOULES_PER_KWH,
            "by_device_kind_joules": by_kind,
            "uncertainty_joules": uncertainty,
            "relative_uncertainty": uncertainty / total if total > 0 else None,
        },
        "identifiers": dict(identifiers),
        "not_carried": "docs/formats.md of jouletrace lists what each format cannot carry",
    }


def _measurement_sources(dataset_root: Path) -> list[dict]:
    """Which meters produced the readings (power_samples of the dataset), if the dataset has them."""
    if not (dataset_root / "power_samples").exists():
        return []
    samples = read_table(dataset_root, "power_samples")
    grouped = samples.group_by(["source", "device_kind", "value_kind", "provenance"]).aggregate(
        [("timestamp", "count"), ("host_node", "count_distinct")]
    )
    return sorted(
        (
            {
                "source": g["source"],
                "device_kind": g["device_kind"],
                "value_kind": g["value_kind"],
                "provenance": g["provenance"],
                "readings": g["timestamp_count"],
                "nodes": g["host_node_count_distinct"],
            }
            for g in grouped.to_pylist()
        ),
        key=lambda s: (s["source"], s["device_kind"], s["value_kind"]),
    )


def _version() -> str:
    try:
        return importlib.metadata.version("jouletrace")
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


def _card_json(card: Mapping) -> bytes:
    return (json.dumps(card, indent=2, allow_nan=False) + "\n").encode()


def card_markdown(card: Mapping) -> str:
    """The dataset card as a page for people."""
    counts, energy = card["counts"], card["energy"]
    lines = [
        f"# {card['title']}",
        "",
        f"- Format: {card['format']}",
        f"- Licence: {card['licence']}",
        f"- Written: {card['created_at']} by {card['generator']} (trace model schema {card['model_schema_version']})",
        f"- Runs: {card['time_range']['start']} to {card['time_range']['end']}",
        f"- Contents: {counts['workflows']} workflows, {counts['tasks']} tasks ({counts['tasks_with_energy']} with "
        f"energy), {counts['machines']} machines",
        "",
        "## Provenance",
        "",
        _synthetic_warning(card),
        "",
        "| table | " + " | ".join(schemas.PROVENANCES) + " |",
        "|---|" + "---|" * len(schemas.PROVENANCES),
    ]
    for table, counter in card["provenance"].items():
        lines.append(f"| {table} | " + " | ".join(str(counter.get(p, 0)) for p in schemas.PROVENANCES) + " |")
    lines += ["", "## Measurement sources", ""]
    if card["measurement_sources"]:
        lines += [
            "| source | device | reading | provenance | readings | nodes |",
            "|---|---|---|---|---|---|",
        ]
        lines += [
            f"| {s['source']} | {s['device_kind']} | {s['value_kind']} | {s['provenance']} | {s['readings']} | "
            f"{s['nodes']} |"
            for s in card["measurement_sources"]
        ]
    else:
        lines.append("The dataset holds no power readings (its energy, if any, was imported).")
    lines += [
        "",
        "## Energy and its attribution",
        "",
        *_method_lines(
            card["measurement_sources"],
            card["attribution"],
            energy["uncertainty_joules"],
            energy["total_joules"],
        ),
        "",
        "| method | device rows |",
        "|---|---|",
    ]
    lines += [f"| `{m}` | {n} |" for m, n in sorted(card["attribution"]["method_rows"].items())]
    lines += [
        "",
        "Energy by device kind (kJ): "
        + ", ".join(f"{k} {_kilojoules(v)}" for k, v in sorted(energy["by_device_kind_joules"].items())),
        "",
        "## Identifiers",
        "",
    ]
    identifiers = card["identifiers"]
    if identifiers.get("anonymised"):
        lines.append(f"Replaced by pseudonyms ({identifiers['hash']}): {', '.join(identifiers['fields'])}.")
    else:
        lines.append("Exported with the original namespace, pod, node and GPU names (--keep-identifiers).")
    lines += ["", f"What the format cannot carry: {card['not_carried']}."]
    return "\n".join(lines) + "\n"


# ------------------------------------------------------------------------------------------ imports


def merge_into_dataset(dataset_root: str | Path, tables: Mapping[str, pa.Table]) -> dict[str, int]:
    """Add imported tables to a dataset (created if absent). Workflows already there under the same
    workflow_uid are replaced with their tasks and energy; machines are merged by host_node (imported rows
    win). Returns the rows now in each written table."""
    root = Path(dataset_root)
    merged = {}
    uids = pa.array(tables["workflows"]["workflow_uid"].to_pylist(), pa.string())
    for name in ("workflows", "tasks", "task_energy"):
        new = tables[name]
        if (root / name).exists():
            old = read_table(root, name)
            keep = pc.invert(pc.is_in(old["workflow_uid"], value_set=uids))
            new = pa.concat_tables([old.filter(keep), new])
        merged[name] = new
    machines = tables["machines"]
    if (root / "machines").exists():
        old = read_table(root, "machines")
        keep = pc.invert(pc.is_in(old["host_node"], value_set=machines["host_node"]))
        machines = pa.concat_tables([old.filter(keep), machines])
    merged["machines"] = machines
    write_dataset(root, merged)
    return {name: table.num_rows for name, table in merged.items()}
