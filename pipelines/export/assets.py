"""Export assets: the dataset as a WfInstances contribution folder and as a WTA trace folder, each checked by
the format validators right after it is written (docs/formats.md)."""

from pathlib import Path

import dagster as dg

from datasets.publish import (
    DEFAULT_LICENCE,
    Bundle,
    export_wfinstances,
    export_wta_bundle,
)
from pipelines.traces.assets import TraceDatasetResource

FORMATS_VALID = "formats_valid"


class PublicationConfig(dg.Config):
    """Where an export goes (default: `exports/<format>` beside the dataset folder), its data licence, and
    whether identifiers stay (default: salted hashes)."""

    out_dir: str = ""
    licence: str = DEFAULT_LICENCE
    keep_identifiers: bool = False


def export_dir(config: PublicationConfig, dataset_root: str, name: str) -> Path:
    return Path(config.out_dir) if config.out_dir else Path(dataset_root).resolve().parent / "exports" / name


def _result(bundle: Bundle, asset: str, config: PublicationConfig) -> dg.MaterializeResult:
    findings = bundle.findings
    errors = [f for f in findings if f.severity == "error"]
    warnings = [f for f in findings if f.severity == "warning"]
    card = bundle.card
    return dg.MaterializeResult(
        metadata={
            "path": dg.MetadataValue.path(str(bundle.path)),
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
    bundle = export_wfinstances(
        dataset.root, out, keep_identifiers=config.keep_identifiers, licence=config.licence
    )
    return _result(bundle, "wfinstances_export", config)


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
    bundle = export_wta_bundle(
        dataset.root, out, keep_identifiers=config.keep_identifiers, licence=config.licence
    )
    return _result(bundle, "wta_export", config)


export_assets = [wfinstances_export, wta_export]
