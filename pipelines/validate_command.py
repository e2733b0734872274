"""`jouletrace validate PATH`: say what PATH holds and check it as that.

A table file (Parquet or CSV) or table folder, a trace dataset (docs/data-model.md), a folder of recorded
sources (docs/recorded-sources.md), or a public format (docs/formats.md): a WfFormat JSON file, a WfInstances
bundle, a WTA trace. Tables are read as every command reads them (`schemas.load_table`): the safe coercions
and defaults applied are printed as notes, and --strict makes them errors.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pyarrow.compute as pc

import schemas

KINDS = {
    "table-file": "table file",
    "table-folder": "table folder",
    "dataset": "trace dataset (docs/data-model.md)",
    "recorded": "recorded sources (docs/recorded-sources.md)",
    "wfformat": "WfFormat JSON file (docs/formats.md)",
    "wfinstances": "WfInstances bundle: a folder of WfFormat files (docs/formats.md)",
    "wta": "WTA trace (docs/formats.md)",
}
PUBLIC_FORMATS = ("wfformat", "wfinstances", "wta")
# JSON files of a bundle or a recorded-source folder that are not WfFormat instances.
NOT_WFFORMAT = frozenset({"dataset_card.json", "manifest.json"})


def is_recorded_sources(path: Path) -> bool:
    """The layout of docs/recorded-sources.md: kubernetes/ or power/, or argo/workflows/ with a manifest."""
    if (path / "kubernetes").is_dir() or (path / "power").is_dir():
        return True
    return (path / "argo" / "workflows").is_dir() and (path / "manifest.json").is_file()


def path_kind(path: Path, table: str | None = None) -> str:
    """Which of KINDS a path is; ValueError naming what a known folder holds when it is none of them."""
    from schemas.formats import is_wta_trace
    from schemas.loading import table_files
    from schemas.validation import table_name_of

    if not path.exists():
        raise FileNotFoundError(f"{path}: no such file or folder")
    if path.is_file():
        return "wfformat" if path.suffix.lower() == ".json" and table is None else "table-file"
    if table is not None:
        return "table-folder"
    if is_wta_trace(path):
        return "wta"
    if is_recorded_sources(path):
        return "recorded"
    if any((path / name).is_dir() for name in schemas.TABLES):
        return "dataset"
    if table_name_of(path) is not None and table_files(path):
        return "table-folder"
    inside = _known_inside(path)
    blocking = [kind for _, kind in inside if kind in ("dataset", "recorded", "wta")]
    if not blocking and _holds_wfformat(path):
        return "wfinstances"
    raise ValueError(_unknown_folder(path, inside))


def _holds_wfformat(path: Path, looked_at: int = 5) -> bool:
    """Whether one of the first JSON files of a folder is a WfFormat instance (has `workflow` or
    `schemaVersion`): model folders and reports hold JSON too."""
    files = sorted(p for p in path.rglob("*.json") if p.name not in NOT_WFFORMAT)
    for file in files[:looked_at]:
        try:
            doc = json.loads(file.read_bytes())
        except (ValueError, OSError):
            continue
        if isinstance(doc, dict) and ("workflow" in doc or "schemaVersion" in doc):
            return True
    return False


def _known_inside(path: Path) -> list[tuple[Path, str]]:
    """The sub-folders jouletrace knows, with their kind."""
    inside = []
    for child in sorted(p for p in path.iterdir() if p.is_dir()):
        try:
            inside.append((child, path_kind(child)))
        except ValueError:
            continue
    return inside


def _unknown_folder(path: Path, inside: list[tuple[Path, str]]) -> str:
    known = [f"{child} ({KINDS[kind].split(' (')[0].split(':')[0]})" for child, kind in inside[:6]]
    hint = f"; validate one of what it holds: {', '.join(known)}" if known else ""
    return (
        f"{path}: not a folder jouletrace knows: a trace dataset holds table folders (tasks/, power_samples/, "
        "...), recorded sources hold argo/workflows/, kubernetes/ and power/, a WfInstances bundle holds "
        f"WfFormat .json files, a WTA trace holds tasks/schema-1.0/{hint}"
    )


def _print_notes(notes) -> None:
    for note in notes:
        print(f"note: {note}", file=sys.stderr)


def validate_tables(path: Path, table: str | None, strict: bool) -> int:
    found = schemas.check_path(path, table=table, strict=strict)
    _print_notes(found.notes)
    for name, rows in found.rows.items():
        print(f"ok  {name}: {rows} rows match schema version {schemas.SCHEMA_VERSION}")
    return 0


def validate_recorded(path: Path, strict: bool) -> int:
    """The Argo and Kubernetes JSON through the collectors' parsers, every Parquet file through the table
    reader (and the recorded-source rule: a file holds the readings of the node it is named after)."""
    from collectors.cluster.recorded import RecordedSources

    sources = RecordedSources(path)
    errors: list[str] = []
    workflows = tasks = machines = None
    for read in (sources.workflows_and_tasks, sources.machines):
        try:
            result = read()
        except (ValueError, OSError) as exc:
            errors.extend(str(exc).splitlines())
            continue
        if isinstance(result, tuple):
            workflows, tasks = result
        else:
            machines = result
    rows: dict[str, int] = {}
    for folder, table in (
        ("power", "power_samples"),
        ("containers", "container_samples"),
        ("truth", "task_energy"),
    ):
        files = sorted((path / folder).glob("*.parquet"))
        if folder == "power" and not files:
            errors.append(f"{path / 'power'}: holds no <host_node>.parquet readings")
        for file in files:
            try:
                loaded = schemas.load_table(table, file, strict=strict)
            except (ValueError, OSError) as exc:
                errors.extend(str(exc).splitlines())
                continue
            _print_notes(loaded.notes)
            rows[table] = rows.get(table, 0) + loaded.table.num_rows
    if not errors:
        for read in (sources.power_samples, sources.container_samples):
            try:
                read()
            except (ValueError, OSError) as exc:
                errors.extend(str(exc).splitlines())
    if errors:
        raise ValueError("\n".join(errors))
    ran = tasks.filter(pc.is_valid(tasks["host_node"])).num_rows
    print(
        f"ok  {path}: {workflows.num_rows} workflows, {tasks.num_rows} tasks ({ran} ran), {machines.num_rows} "
        f"machines, {rows.get('power_samples', 0)} power readings, {rows.get('container_samples', 0)} container "
        f"readings" + (f", ground truth of {rows['task_energy']} rows" if "task_energy" in rows else "")
    )
    return 0


def validate_public(path: Path, kind: str) -> int:
    """A public format checked by its own rules (datasets.formats): warnings printed, errors raised."""
    from datasets.formats import format_named
    from schemas.formats import raise_on_errors

    checked = format_named(kind).validate(path)
    warnings = raise_on_errors(checked.findings)
    for warning in warnings:
        print(warning, file=sys.stderr)
    print(f"ok  {path}: {checked.summary}, {len(warnings)} warnings")
    return 0


def validate(args) -> int:
    path = Path(args.path)
    table = getattr(args, "table", None)
    kind = path_kind(path, table)
    print(f"{path}: {KINDS[kind]}")
    if kind in PUBLIC_FORMATS:
        if args.strict:
            print("note: --strict is for tables; formats are checked by their own rules", file=sys.stderr)
        return validate_public(path, kind)
    if kind == "recorded":
        return validate_recorded(path, args.strict)
    return validate_tables(path, table, args.strict)
