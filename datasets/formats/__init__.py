"""Public trace formats: one interface, one registry (`FORMATS`), used by the CLI's `import`, `export` and
`validate` and by the Dagster export assets alike, so a new format is one entry here and its modules.

A format reads public files into the trace tables (`read`), writes a dataset as a publishable folder with
its dataset card (`write`), and checks files of its own kind (`validate`; which kind a path holds is
decided by `jouletrace validate`, pipelines/validate_command.py). The modules behind each entry: ``wfformat_read``/``wfformat_write`` (WfFormat 1.0-1.5,
WfInstances), ``wta_read``/``wta_write`` (WTA schema 1.0), and what both share: ``publish`` (anonymised
export bundles, merging imports into a dataset), ``cards`` (dataset cards), ``provenance`` (where each
run came from). The format rules themselves are in `schemas.formats` and `schemas.wta_checks`.

Modules are imported when a format is used, so that naming the formats costs the CLI nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from datasets.formats.publish import Bundle
    from datasets.formats.wfformat_read import ImportResult
    from schemas.formats import Finding


@dataclass(frozen=True)
class Checked:
    """What `validate` found: the findings (errors and warnings) and one line saying what the path holds."""

    findings: list[Finding]
    summary: str


@dataclass(frozen=True)
class TraceFormat:
    name: str  # the export name (and the Dagster asset `<name>_export`)
    aliases: tuple[str, ...]  # other names the CLI accepts for it
    read_name: str  # `jouletrace import <read_name>`
    read_help: str
    reads_one_folder: bool  # `import` takes one folder (True) or any number of files
    read_paths_help: str
    write_help: str
    validate_help: str  # what `validate` checks
    asset_kinds: frozenset[str]  # what the Dagster UI shows on the export asset
    read: Callable[[Sequence[str]], ImportResult]
    write: Callable[..., Bundle]  # (dataset_root, out_dir, *, keep_identifiers, licence) -> Bundle
    validate: Callable[[Path], Checked]

    @property
    def asset(self) -> str:
        return f"{self.name}_export"


def _read_wfformat(paths: Sequence[str]) -> ImportResult:
    from datasets.formats.wfformat_read import read_wfformat

    return read_wfformat(paths)


def _write_wfinstances(dataset_root, out_dir, **options) -> Bundle:
    from datasets.formats.publish import export_wfinstances

    return export_wfinstances(dataset_root, out_dir, **options)


def _validate_wfformat(path: Path) -> Checked:
    from schemas.formats import LEGACY_VERSIONS, check_wfformat, read_json, upgrade_wfformat

    if path.is_dir():
        from datasets.formats.publish import check_wfinstances_bundle

        return Checked(check_wfinstances_bundle(path), "folder of WfFormat instances")
    doc = read_json(path)
    findings = check_wfformat(doc, str(path))
    if any(f.severity == "error" for f in findings):
        return Checked(findings, "WfFormat instance")
    layout = upgrade_wfformat(doc) if doc["schemaVersion"] in LEGACY_VERSIONS else doc
    tasks = layout["workflow"]["specification"]["tasks"]
    return Checked(findings, f"WfFormat {doc['schemaVersion']} instance, {len(tasks)} tasks")


def _read_wta(paths: Sequence[str]) -> ImportResult:
    from datasets.formats.wta_read import import_wta

    (folder,) = paths
    return import_wta(folder)


def _write_wta(dataset_root, out_dir, **options) -> Bundle:
    from datasets.formats.publish import export_wta_bundle

    return export_wta_bundle(dataset_root, out_dir, **options)


def _validate_wta(path: Path) -> Checked:
    from schemas.wta_checks import check_wta

    return Checked(check_wta(path), "WTA schema-1.0 trace")


WFINSTANCES = TraceFormat(
    name="wfinstances",
    aliases=("wfformat",),
    read_name="wfformat",
    read_help="WfFormat 1.0-1.5 JSON files (WfInstances)",
    reads_one_folder=False,
    read_paths_help="instance .json files",
    write_help="OUT/<runtime system>/<app>/<file>.json (WfFormat 1.5 + jouletrace extension), READMEs, cards",
    validate_help="every instance passes the WfFormat 1.5 + jouletrace schema and WfCommons' semantic rules",
    asset_kinds=frozenset({"json"}),
    read=_read_wfformat,
    write=_write_wfinstances,
    validate=_validate_wfformat,
)
WTA = TraceFormat(
    name="wta",
    aliases=(),
    read_name="wta",
    read_help="a WTA schema-1.0 trace folder",
    reads_one_folder=True,
    read_paths_help="trace folder holding workflows/ and tasks/",
    write_help="a WTA schema-1.0 trace folder with energy columns",
    validate_help="layout, column types, ids, dependencies, energy columns and workload file of WTA 1.0",
    asset_kinds=frozenset({"parquet"}),
    read=_read_wta,
    write=_write_wta,
    validate=_validate_wta,
)
FORMATS: dict[str, TraceFormat] = {f.name: f for f in (WTA, WFINSTANCES)}


def format_named(name: str) -> TraceFormat:
    for trace_format in FORMATS.values():
        if name == trace_format.name or name in trace_format.aliases or name == trace_format.read_name:
            return trace_format
    known = ", ".join(sorted({n for f in FORMATS.values() for n in (f.name, f.read_name, *f.aliases)}))
    raise ValueError(f"unknown trace format {name!r} (known: {known})")
