"""Publication: a trace dataset as a WfInstances contribution folder or a WTA trace folder, each with a
dataset card, and imported traces merged into a dataset.

A WfInstances contribution files every run under the folder of the runtime system that recorded it
(`argo/` for what jouletrace collected, `pegasus/`, `nextflow/`, ... for imported runs), with the original
runtime system, commands, machines and application; READMEs and dataset cards say which values jouletrace
measured, which it imported and which are estimates (datasets.formats.provenance, datasets.formats.cards).

By default namespace, pod, node and GPU names (and pod uids) are replaced by salted SHA-256 pseudonyms
(`node-` plus 12 hex digits, ...), the same in every table and every export of the dataset, so exports stay
joinable, but nobody without the salt can test a guess. The salt is created on first export at
`<dataset>/.jouletrace/salt` (mode 0600) and never written into an export.
The trace model has no user column; WfFormat's `author` is not written and WTA user/group ids are -1.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
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
from datasets.formats.cards import (
    CARD_STEM,
    application_readme,
    card_json,
    card_markdown,
    dataset_card,
    origin_lines,
    wms_readme,
)
from datasets.formats.provenance import (
    ARGO_RUNTIME_SYSTEM,  # noqa: F401  (kept importable from here)
    ORIGIN_IMPORTED,
    ORIGIN_JOULETRACE,
    SOURCES_TABLE,
    Origins,
    anonymised_sources,
    application_of,  # noqa: F401  (kept importable from here)
    empty_sources,
    merge_sources,
    origins_of,
    read_sources,
    runtime_system_label,
    slug,
)
from datasets.formats.wfformat_read import EXPORTED_TABLES
from datasets.formats.wfformat_write import document_file_bytes, tables_to_wfformat
from datasets.formats.wta_write import tables_to_wta, write_wta
from datasets.store import read_table, replace_folder, write_bytes_atomic, write_dataset
from schemas.formats import (
    DEFAULT_LICENCE,
    EXTENSION_KEY,
    Finding,
    check_wfformat,
    check_wta,
    read_json,
)

SALT_FILE = Path(".jouletrace") / "salt"
PSEUDONYM_HEX_DIGITS = 12
PSEUDONYMISED_FIELDS = (
    "workflows.namespace",
    "tasks.pod_name",
    "tasks.pod_uid",
    "tasks.host_node",
    "tasks.gpu_ids",
    "machines.host_node",
    "machines.labels (values equal to a node name)",
    "task_energy.device_id (gpu)",
    "names of imported machines",
)


@dataclass
class Bundle:
    """What an export wrote: its folder (for a WfInstances contribution, the folder holding one folder per
    runtime system, listed in `folders`), the files, what was left out (notes), the dataset card of the whole
    export, and what the format check found in the written folders."""

    path: Path
    files: list[Path]
    notes: list[str] = field(default_factory=list)
    card: dict = field(default_factory=dict)
    findings: list[Finding] = field(default_factory=list)
    folders: list[Path] = field(default_factory=list)


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
    """The tables with namespaces, pod, node and GPU names replaced by pseudonyms (other tables unchanged;
    in `sources` a machine's name becomes its host's pseudonym)."""
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
    if SOURCES_TABLE in out:
        out[SOURCES_TABLE] = anonymised_sources(out[SOURCES_TABLE], alias)
    return out


# ------------------------------------------------------------------------------------------ reading


def read_export_tables(dataset_root: str | Path) -> dict[str, pa.Table]:
    """The tables an export needs, and the dataset's sources; machines, task_energy and sources may be
    absent (empty then)."""
    root = Path(dataset_root)
    tables = {}
    for name in EXPORTED_TABLES:
        if (root / name).exists():
            tables[name] = read_table(root, name)
        elif name in ("workflows", "tasks"):
            raise FileNotFoundError(f"{root / name}: the dataset has no {name} table to export")
        else:
            tables[name] = schemas.empty(name)
    tables[SOURCES_TABLE] = read_sources(root)
    return tables


def _identifiers(
    dataset_root: Path, tables: dict[str, pa.Table], keep: bool
) -> tuple[dict[str, pa.Table], dict]:
    if keep:
        return tables, {"anonymised": False}
    tables = anonymise(tables, load_or_create_salt(dataset_root))
    identifiers = {
        "anonymised": True,
        "hash": f"salted SHA-256, first {PSEUDONYM_HEX_DIGITS} hex digits; the salt stays with the dataset",
        "fields": list(PSEUDONYMISED_FIELDS),
    }
    return tables, identifiers


def measured_hosts(
    tables: Mapping[str, pa.Table], origins: Origins, uids: set[str] | None = None
) -> set[str]:
    """The (real) nodes jouletrace measured runs on: hosts of its own runs' tasks (of `uids` when given)."""
    return {
        t["host_node"]
        for t in tables["tasks"].to_pylist()
        if t["host_node"] is not None
        and origins.of(t["workflow_uid"]) == ORIGIN_JOULETRACE
        and (uids is None or t["workflow_uid"] in uids)
    }


def subset(tables: Mapping[str, pa.Table], uids: set[str]) -> dict[str, pa.Table]:
    """The rows of `tables` that belong to the workflows `uids` (machines: those their tasks ran on)."""
    values = pa.array(sorted(uids), pa.string())
    out = {
        name: table.filter(pc.is_in(table["workflow_uid"], value_set=values))
        for name, table in tables.items()
        if name != "machines"
    }
    hosts = pa.array(sorted({h for h in out["tasks"]["host_node"].to_pylist() if h}), pa.string())
    out["machines"] = tables["machines"].filter(pc.is_in(tables["machines"]["host_node"], value_set=hosts))
    return out


# ------------------------------------------------------------------------------------- WfInstances


def export_wfinstances(
    dataset_root: str | Path,
    out_dir: str | Path,
    *,
    keep_identifiers: bool = False,
    licence: str = DEFAULT_LICENCE,
    created_at: datetime | None = None,
) -> Bundle:
    """Write `<out_dir>/<runtime system>/<application>/<file>.json`, one WfFormat 1.5 instance per workflow
    under the runtime system that recorded it (`argo` for what jouletrace collected; `pegasus`, `nextflow`,
    ... for imported runs, which keep their file names), a README per folder and a dataset card per runtime
    system folder; then check the folders. Each such folder is replaced whole; one that exists and was not
    written by jouletrace is refused, and nothing else in `out_dir` is touched (it can be a WfInstances
    clone)."""
    root, out = Path(dataset_root), Path(out_dir)
    created = created_at or datetime.now(UTC)
    raw = read_export_tables(root)
    raw_origins = origins_of(raw)
    tables, identifiers = _identifiers(root, raw, keep_identifiers)
    export = tables_to_wfformat(tables, created_at=created, identifiers=identifiers)
    origins = origins_of(tables)
    folders = _layout(export.documents, tables, origins)
    machines = {m["host_node"]: m for m in tables["machines"].to_pylist()}
    files: list[Path] = []
    findings: list[Finding] = []
    for folder, by_app in sorted(folders.items()):
        uids = {d[EXTENSION_KEY]["workflowUid"] for docs in by_app.values() for _, d in docs}
        target = out / folder
        _refuse_foreign_folder(target)
        card = dataset_card(
            subset(tables, uids),
            root,
            licence=licence,
            identifiers=identifiers,
            export_format="wfinstances",
            created_at=created,
            measured_hosts=measured_hosts(raw, raw_origins, uids),
        )
        systems = {origins.runtime_system(uid) is not None for uid in uids}
        title = ", ".join(sorted({runtime_system_label(origins.runtime_system(uid)) for uid in uids}))
        title = title if all(systems) else "Runtime system not recorded"
        contents: dict[Path, bytes] = {Path("README.md"): wms_readme(title, by_app, card).encode()}
        for app, docs in by_app.items():
            contents[Path(app) / "README.md"] = application_readme(app, docs, machines, card).encode()
            for name, doc in docs:
                contents[Path(app) / name] = document_file_bytes(doc)
        contents[Path(f"{CARD_STEM}.json")] = card_json(card)
        contents[Path(f"{CARD_STEM}.md")] = card_markdown(card).encode()
        _replace_folder(target, contents)
        files += sorted(target / p for p in contents)
        findings += check_wfinstances_bundle(target)
    card = dataset_card(
        tables,
        root,
        licence=licence,
        identifiers=identifiers,
        export_format="wfinstances",
        created_at=created,
        measured_hosts=measured_hosts(raw, raw_origins),
    )
    targets = [out / f for f in sorted(folders)]
    return Bundle(out, files, export.notes, card, findings, targets)


def _layout(
    documents: Mapping[str, dict], tables: Mapping[str, pa.Table], origins: Origins
) -> dict[str, dict[str, list[tuple[str, dict]]]]:
    """{runtime system folder: {application: [(file name, document)]}}. A run imported from a WfFormat file
    keeps that file's name; others are `<app>-<platform>-<N>t-<run>.json`, run numbered in start order."""
    names = {w["workflow_uid"]: w["workflow_name"] for w in tables["workflows"].to_pylist()}
    folders: dict[str, dict[str, list[tuple[str, dict]]]] = {}
    taken: set[tuple[str, str, str]] = set()
    runs: Counter = Counter()
    for uid, doc in documents.items():  # in start order
        folder, app = origins.folder(uid), origins.application(uid, names[uid])
        source = origins.sources.get(uid) if origins.of(uid) == ORIGIN_IMPORTED else None
        name = Path(source["file"]).name if source and source["file"] else ""
        if not (source and str(source["format"]).startswith("WfFormat") and name.endswith(".json")) or (
            (folder, app, name) in taken
        ):
            stem = f"{app}-{slug(doc[EXTENSION_KEY]['cluster'])}-{len(doc['workflow']['specification']['tasks'])}t"
            runs[(folder, stem)] += 1
            name = f"{stem}-{runs[(folder, stem)]:03d}.json"
        taken.add((folder, app, name))
        folders.setdefault(folder, {}).setdefault(app, []).append((name, doc))
    return folders


def _refuse_foreign_folder(target: Path) -> None:
    """A folder jouletrace replaces must be one it wrote (its dataset card says so) or absent."""
    if not target.exists() or not any(target.iterdir()):
        return
    card = target / f"{CARD_STEM}.json"
    try:
        generator = json.loads(card.read_text()).get("generator", "")
    except (OSError, ValueError, AttributeError):
        generator = ""
    if not str(generator).startswith("jouletrace"):
        raise FileExistsError(
            f"{target}: exists and was not written by jouletrace (no jouletrace {CARD_STEM}.json); "
            "export into another folder, or move it away"
        )


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
    dataset card beside its tables, then check the folder. Each workflow's `scheduler` is the runtime system
    that recorded it; the workload description says which runs jouletrace measured and which it imported."""
    root, out = Path(dataset_root), Path(out_dir)
    created = created_at or datetime.now(UTC)
    raw = read_export_tables(root)
    hosts = measured_hosts(raw, origins_of(raw))
    tables, identifiers = _identifiers(root, raw, keep_identifiers)
    card = dataset_card(
        tables,
        root,
        licence=licence,
        identifiers=identifiers,
        export_format="wta",
        created_at=created,
        measured_hosts=hosts,
    )
    trace = tables_to_wta(tables, description=wta_description(card))
    files = write_wta(trace, out)
    files.append(write_bytes_atomic(card_json(card), out / f"{CARD_STEM}.json"))
    files.append(write_bytes_atomic(card_markdown(card).encode(), out / f"{CARD_STEM}.md"))
    return Bundle(out, files, [], card, check_wta(out), [out])


def wta_description(card: Mapping) -> str:
    """The workload description of a WTA export: what the runs are and where their values came from."""
    systems = ", ".join(f"{name} ({n})" for name, n in sorted(card["origins"]["runtime_systems"].items()))
    lines = [line.strip().removeprefix("- ") for line in origin_lines(card) if line.startswith("- ")]
    return (
        f"Workflow runs written by jouletrace; runtime systems: {systems}. "
        + " ".join(lines)
        + (" See dataset_card.md.")
    )


# ------------------------------------------------------------------------------------------ imports


def merge_into_dataset(dataset_root: str | Path, tables: Mapping[str, pa.Table]) -> dict[str, int]:
    """Add imported tables to a dataset (created if absent). Workflows already there under the same
    workflow_uid are replaced with their tasks, energy and sources row; machines are merged by host_node
    (imported rows win; an imported run's machines are its own, `<name>@<run>`, so runs never share one by
    name). Returns the rows now in each written table."""
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
    counts = {name: table.num_rows for name, table in merged.items()}
    sources = tables.get(SOURCES_TABLE)
    counts[SOURCES_TABLE] = merge_sources(
        root, sources if sources is not None else empty_sources(), uids.to_pylist()
    )
    return counts
