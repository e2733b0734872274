"""Export assets: the dataset as a WfInstances contribution folder and as a WTA trace folder, each checked by
the format validators right after it is written (docs/formats.md)."""

import dagster as dg

from datasets.publish import (
    DEFAULT_LICENCE,
    Bundle,
    export_wfinstances,
    export_wta_bundle,
)
from datasets.storage import StoragePath, display_path, local_copy, local_output, local_path, storage_path
from pipelines.traces.assets import TraceDatasetResource

FORMATS_VALID = "formats_valid"


class PublicationConfig(dg.Config):
    """Where an export goes (default: `exports/<format>` beside the dataset folder), its data licence, and
    whether identifiers stay (default: salted hashes)."""

    out_dir: str = ""
    licence: str = DEFAULT_LICENCE
    keep_identifiers: bool = False


def export_dir(config: PublicationConfig, dataset_root: str, name: str) -> StoragePath:
    """A local folder or an object-store prefix (then the export is written locally and put there)."""
    if config.out_dir:
        return storage_path(config.out_dir)
    root = storage_path(dataset_root)
    return (root.resolve() if local_path(root) is not None else root).parent / "exports" / name


def _export(write, config: PublicationConfig, dataset_root: str, out: StoragePath) -> Bundle:
    """Run an exporter (which reads and writes local folders) on the dataset wherever it is."""
    with local_copy(dataset_root) as root, local_output(out) as folder:
        return write(root, folder, keep_identifiers=config.keep_identifiers, licence=config.licence)


def _result(bundle: Bundle, asset: str, config: PublicationConfig, out: StoragePath) -> dg.MaterializeResult:
    findings = bundle.findings
    errors = [f for f in findings if f.severity == "error"]
    warnings = [f for f in findings if f.severity == "warning"]
    card = bundle.card
    return dg.MaterializeResult(
        metadata={
            "path": dg.MetadataValue.path(display_path(out)),
            "folders": ", ".join(f.name for f in bundle.folders),
            "runtime_systems": dg.MetadataValue.json(card["origins"]["runtime_systems"]),
            "files": len(bundle.files),
            "workflows": card["counts"]["workflows"],
            "tasks_with_energy": card["counts"]["tasks_with_energy"],
            "total_kwh": card["energy"]["total_kwh"],
            "anonymised": not config.keep_identifiers,
            "licence": config.licence,
            "left_out": dg.MetadataValue.md("\n".join(f"- {n}" for n in bundle.notes) or "none"),
        },
        check_results=[
            dg.AssetCheckResult(
                asset_key=asset,
                check_name=FORMATS_VALID,
                passed=not errors,
                metadata={
                    "errors": len(errors),
                    "warnings": len(warnings),
                    "findings": dg.MetadataValue.md("\n".join(f"- {f}" for f in findings[:50]) or "none"),
                },
            )
        ],
    )


@dg.asset(
    group_name="export",
    kinds={"json"},
    deps=["energy_traces"],
    check_specs=[
        dg.AssetCheckSpec(
            FORMATS_VALID,
            asset="wfinstances_export",
            description="every instance passes the WfFormat 1.5 + jouletrace schema and WfCommons' semantic rules",
        )
    ],
)
def wfinstances_export(config: PublicationConfig, dataset: TraceDatasetResource) -> dg.MaterializeResult:
    """The dataset as a WfInstances contribution: argo/<application>/<app>-<platform>-<N>t-<run>.json,
    READMEs and the dataset card."""
    out = export_dir(config, dataset.root, "wfinstances")
    return _result(_export(export_wfinstances, config, dataset.root, out), "wfinstances_export", config, out)


@dg.asset(
    group_name="export",
    kinds={"parquet"},
    deps=["energy_traces"],
    check_specs=[
        dg.AssetCheckSpec(
            FORMATS_VALID,
            asset="wta_export",
            description="layout, column types, ids, dependencies, energy columns and workload file of WTA 1.0",
        )
    ],
)
def wta_export(config: PublicationConfig, dataset: TraceDatasetResource) -> dg.MaterializeResult:
    """The dataset as a WTA schema-1.0 trace folder with energy columns and the dataset card."""
    out = export_dir(config, dataset.root, "wta")
    return _result(_export(export_wta_bundle, config, dataset.root, out), "wta_export", config, out)


export_assets = [wfinstances_export, wta_export]
