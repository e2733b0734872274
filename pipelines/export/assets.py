"""Export assets, one per public format of the registry (datasets.formats): the dataset as a WfInstances
contribution folder and as a WTA trace folder, each checked by its format's validators right after it is
written (docs/formats.md)."""

import dagster as dg

from datasets.formats import FORMATS, TraceFormat
from datasets.formats.publish import DEFAULT_LICENCE, Bundle
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


def export_asset(trace_format: TraceFormat) -> dg.AssetsDefinition:
    """The dataset written in one public format (`exports/<format>` by default), checked right after."""
    name = trace_format.asset

    @dg.asset(
        name=name,
        group_name="export",
        kinds=set(trace_format.asset_kinds),
        deps=["energy_traces"],
        description=f"The dataset as {trace_format.write_help}.",
        check_specs=[dg.AssetCheckSpec(FORMATS_VALID, asset=name, description=trace_format.validate_help)],
    )
    def _export_asset(config: PublicationConfig, dataset: TraceDatasetResource) -> dg.MaterializeResult:
        out = export_dir(config, dataset.root, trace_format.name)
        return _result(_export(trace_format.write, config, dataset.root, out), name, config, out)

    return _export_asset


export_assets = [export_asset(trace_format) for trace_format in FORMATS.values()]
