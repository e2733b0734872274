"""Dataset cards and READMEs of publication bundles: what a reader of an export must know, including where
every part came from: measured by jouletrace, imported from another system's trace, estimated, or
synthetic. Nothing here claims a measurement, a runtime system or a source the tables do not record."""

from __future__ import annotations

import importlib.metadata
import json
import math
from collections import Counter
from collections.abc import Iterable, Mapping
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc

import schemas
from datasets.formats.provenance import CATEGORIES, ORIGIN_IMPORTED, energy_origin, origin_summary, origins_of
from datasets.formats.wfformat_read import EXPORTED_TABLES
from datasets.formats.wfformat_write import attribution_summary
from datasets.store import read_table
from schemas.formats import EXTENSION_KEY, JOULES_PER_KWH, counted_device_rows, format_timestamp

CARD_STEM = "dataset_card"
MAX_SOURCES_LISTED = 20
FORMATS = {
    "wfinstances": "WfInstances contribution: WfFormat 1.5 JSON with the jouletrace extension 1.1",
    "wta": "WTA schema-1.0 Parquet with energy_consumption_joules, total_energy_consumption_joules and a "
    "jouletrace-ids table",
}


def kilojoules(joules: float | None) -> str:
    return "-" if joules is None else f"{joules / 1e3:,.1f}"


def card_json(card: Mapping) -> bytes:
    return (json.dumps(card, indent=2, allow_nan=False) + "\n").encode()


# -------------------------------------------------------------------------------------------- the card


def dataset_card(
    tables: Mapping[str, pa.Table],
    dataset_root: Path,
    *,
    licence: str,
    identifiers: Mapping,
    export_format: str,
    created_at,
    measured_hosts: Iterable[str] | None = None,
) -> dict:
    """Counts, time range, provenance, where the values came from, measurement sources (the power readings
    of `measured_hosts`, the real names of the nodes jouletrace measured the runs on; all readings when
    None), attribution and idle policy (from task_energy.method), energy totals and uncertainty,
    identifiers, licence."""
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
    return {
        "title": "jouletrace per-task energy traces" if energy.num_rows else "jouletrace workflow traces",
        "format": FORMATS[export_format],
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
        "origins": origin_summary(tables, origins_of(tables)),
        "measurement_sources": measurement_sources(dataset_root, measured_hosts),
        "attribution": attribution_summary(r["method"] for r in rows)
        | {"method_rows": dict(Counter(r["method"] for r in rows))},
        "energy": {
            "total_joules": total,
            "total_kwh": total / JOULES_PER_KWH,
            "by_device_kind_joules": by_kind,
            "by_origin_rows": dict(Counter(energy_origin(r["method"]) for r in rows)),
            "uncertainty_joules": uncertainty,
            "relative_uncertainty": uncertainty / total if total > 0 else None,
        },
        "identifiers": dict(identifiers),
        "not_carried": "docs/formats.md of jouletrace lists what each format cannot carry",
    }


def measurement_sources(dataset_root: Path, hosts: Iterable[str] | None = None) -> list[dict]:
    """Which meters produced the readings (power_samples of the dataset, of `hosts` when given)."""
    if not (dataset_root / "power_samples").exists():
        return []
    samples = read_table(dataset_root, "power_samples")
    if hosts is not None:
        samples = samples.filter(
            pc.is_in(samples["host_node"], value_set=pa.array(sorted(hosts), pa.string()))
        )
    if not samples.num_rows:
        return []
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


# ------------------------------------------------------------------------------------ shared wording


def synthetic_warning(card: Mapping) -> str:
    if card["provenance"]["tasks"].get("synthetic"):
        return "**Some or all of these runs are synthetic (simulated), not measured: see the dataset card.**"
    return ""


def origin_lines(card: Mapping) -> list[str]:
    """Which values jouletrace measured, which it imported (and from where), which are estimated."""
    origins = card["origins"]

    def counted(category: str) -> str:
        parts = [
            f"{origins[table].get(category, 0)} {label}"
            for table, label in (
                ("workflows", "runs"),
                ("tasks", "tasks"),
                ("machines", "machines"),
                ("task_energy", "energy rows"),
            )
        ]
        return ", ".join(parts)

    present = {c for table in ("workflows", "tasks", "machines", "task_energy") for c in origins[table]}
    lines = []
    if "measured" in present:
        lines.append(
            f"- Measured by jouletrace ({counted('measured')}): task times and runtimes from Argo Workflows, "
            "pods, requests and machines from Kubernetes, energy attributed from the power readings under "
            "Measurement sources."
        )
    if "synthetic" in present:
        lines.append(
            f"- Synthetic ({counted('synthetic')}): simulated by jouletrace's sample world (Argo, Kubernetes and "
            "meter readings of a simulated cluster), then traced and attributed as measured runs are; not measured."
        )
    if "estimated" in present:
        lines.append(
            f"- Estimated ({counted('estimated')}): rows whose provenance is `estimated`, filled in by "
            "jouletrace where no reading covered them (each energy row's `method` says how)."
        )
    if "imported" in present:
        sources = origins["imported_from"]
        lines.append(
            f"- Imported ({counted('imported')}) from {len(sources)} source files or traces, as the runtime "
            "systems that recorded them wrote them: times, runtimes, resource use, commands, machines and "
            "(where the source had it) energy. jouletrace measured none of these values."
        )
        for source in sources[:MAX_SOURCES_LISTED]:
            runs, system = source["workflows"], source["runtime_system"]
            by = "runtime system not recorded" if system == "not recorded" else f"recorded by {system}"
            lines.append(
                f"  - `{source['file']}` ({source['format']}, {by}): {runs} run{'s' if runs != 1 else ''}"
            )
        if len(sources) > MAX_SOURCES_LISTED:
            lines.append(f"  - and {len(sources) - MAX_SOURCES_LISTED} more (dataset_card.json)")
    if "unknown" in present:
        lines.append(
            f"- Origin not recorded ({counted('unknown')}): imported before jouletrace recorded where runs "
            "came from; nothing is claimed about who measured them."
        )
    return lines


def energy_lines(card: Mapping, uncertainty_joules: float, total_joules: float) -> list[str]:
    """How the energy of a bundle was made, only for the energy it holds."""
    by_origin = card["energy"]["by_origin_rows"]
    if not by_origin:
        return [
            "- No energy: the source traces of these runs hold none, and jouletrace has no meter readings "
            "of their machines."
        ]
    lines = []
    if by_origin.get("jouletrace"):
        attribution = card["attribution"]
        readings = ", ".join(
            f"{s['source']} ({s['device_kind']}, {s['value_kind']}, {s['nodes']} nodes)"
            for s in card["measurement_sources"]
        )
        lines += [
            f"- Readings: {readings or 'not in the dataset'}.",
            "- Task energy = the sum over meters whose joules add up (CPU package, DRAM, GPU, FPGA); "
            "`energyInKWh` = joules / 3.6e6, `avgPowerInW` = joules / runtime.",
            f"- Attribution: readings {', '.join(attribution['readings']) or '-'}; split of shared devices "
            f"{', '.join(attribution['split']) or '-'}; idle policy {', '.join(attribution['idle']) or '-'}; "
            f"idle power {', '.join(attribution['idlePower']) or '-'} (the `method` of every device row says which).",
        ]
    if by_origin.get(ORIGIN_IMPORTED):
        lines.append(
            f"- Imported energy ({by_origin[ORIGIN_IMPORTED]} task rows): the source's own per-task figure "
            "(`energyInKWh` of a WfFormat file, `energy_consumption` of a WTA trace), kept as one platform "
            "(`psys`) total per task; its device split is unknown and jouletrace did not measure it."
        )
    relative = f" ({uncertainty_joules / total_joules:.1%})" if total_joules > 0 else ""
    lines += [
        f"- Uncertainty: each device row states a half-width (`uncertaintyJoules`: timestamp resolution, reading "
        f"intervals at the task's edges, gaps, truncation of imported Wh); summed over tasks it is "
        f"{kilojoules(uncertainty_joules)} kJ of {kilojoules(total_joules)} kJ{relative}.",
        "- The full description: the dataset card (`dataset_card.md`) and jouletrace's docs/formats.md.",
    ]
    return lines


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
        "- Runtime systems: "
        + ", ".join(f"{name} ({n} runs)" for name, n in sorted(card["origins"]["runtime_systems"].items())),
        "",
        "## Where the values come from",
        "",
        *([synthetic_warning(card), ""] if synthetic_warning(card) else []),
        *origin_lines(card),
        "",
        "| table | " + " | ".join(CATEGORIES.values()) + " |",
        "|---|" + "---|" * len(CATEGORIES),
    ]
    for table in ("workflows", "tasks", "machines", "task_energy"):
        found = card["origins"][table]
        lines.append(f"| {table} | " + " | ".join(str(found.get(c, 0)) for c in CATEGORIES) + " |")
    lines += [
        "",
        "## Provenance",
        "",
        "The model's `provenance` column: `measured` by whoever recorded the value (jouletrace, or the runtime "
        "system of an imported run, as above), `estimated` or `synthetic`.",
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
        lines.append(
            "jouletrace holds no power readings of these runs' machines (their energy, if any, was imported)."
        )
    lines += [
        "",
        "## Energy and its attribution",
        "",
        *energy_lines(card, energy["uncertainty_joules"], energy["total_joules"]),
        "",
        "| method | device rows |",
        "|---|---|",
    ]
    lines += [f"| `{m}` | {n} |" for m, n in sorted(card["attribution"]["method_rows"].items())]
    lines += [
        "",
        "Energy by device kind (kJ): "
        + (
            ", ".join(f"{k} {kilojoules(v)}" for k, v in sorted(energy["by_device_kind_joules"].items()))
            or "none"
        ),
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


# ------------------------------------------------------------------------------- WfInstances READMEs


def wms_readme(folder_title: str, by_app: Mapping[str, list[tuple[str, dict]]], card: Mapping) -> str:
    """The README of one runtime system's folder of a WfInstances contribution."""
    energy = (
        " with per-task energy (`energyInKWh`, `avgPowerInW`)" if card["energy"]["by_origin_rows"] else ""
    )
    lines = [
        f"# {folder_title}",
        "",
        f"Workflow instances{energy}, written by jouletrace as WfFormat 1.5 files with a `jouletrace` object "
        "(see each application's README and the dataset card).",
        "",
        f"Licence of the data: {card['licence']}. {synthetic_warning(card)}".rstrip(),
        "",
        "## Where the values come from",
        "",
        *origin_lines(card),
        "",
        "| application | instances | tasks | energy (kJ) |",
        "|---|---|---|---|",
    ]
    for app, files in sorted(by_app.items()):
        tasks = sum(len(d["workflow"]["specification"]["tasks"]) for _, d in files)
        joules = [d[EXTENSION_KEY].get("energyJoules") for _, d in files]
        total = math.fsum(e for e in joules if e is not None) if any(e is not None for e in joules) else None
        lines.append(f"| [{app}]({app}/README.md) | {len(files)} | {tasks} | {kilojoules(total)} |")
    return "\n".join(lines) + "\n"


def _origin_of(doc: Mapping) -> str:
    source = doc[EXTENSION_KEY].get("source")
    if source is None:
        return "not recorded"
    if source["origin"] != ORIGIN_IMPORTED:
        return "measured by jouletrace"
    system = source.get("runtimeSystem")
    by = f", recorded by {system['name']} {system.get('version', '')}".rstrip() if system else ""
    return f"imported from `{source.get('file', '?')}`{by}"


def application_readme(
    app: str, files: list[tuple[str, dict]], machines: Mapping[str, dict], card: Mapping
) -> str:
    """The README of one application folder: naming, instances with their origin, machines, energy."""
    imported = [
        name for name, doc in files if doc[EXTENSION_KEY].get("source", {}).get("origin") == ORIGIN_IMPORTED
    ]
    naming = []
    if len(imported) < len(files):
        naming.append(
            f"`{app}-<platform>-<N>t-<run>.json`: the application, the platform (the cluster the run came from), "
            "the number of tasks N, and a 3-digit run number in order of start time."
        )
    if imported:
        naming.append("Runs imported from WfFormat files keep the name of the file they were imported from.")
    lines = [
        f"# {app}",
        "",
        f"Runs of the `{app}` workflow. {synthetic_warning(card)}".rstrip(),
        "",
        "## File names",
        "",
        *naming,
        "",
        "## Instances",
        "",
        "| file | started (UTC) | tasks | makespan (s) | phase | energy (kJ) | ± (kJ) | origin | provenance |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    hosts: dict[str, str] = {}
    for name, doc in files:
        ext = doc[EXTENSION_KEY]
        execution = doc["workflow"]["execution"]
        halves = [
            t[EXTENSION_KEY]["energy"]["uncertaintyJoules"]
            for t in execution["tasks"]
            if "energy" in t.get(EXTENSION_KEY, {})
        ]
        uncertainty = math.fsum(halves) if halves else None
        for machine in execution.get("machines", []):
            hosts[machine.get(EXTENSION_KEY, {}).get("hostNode", machine["nodeName"])] = machine["nodeName"]
        lines.append(
            f"| [{name}]({name}) | {execution['executedAt']} | {len(doc['workflow']['specification']['tasks'])} "
            f"| {execution['makespanInSeconds']:g} | {ext['phase']} | {kilojoules(ext.get('energyJoules'))} "
            f"| {kilojoules(uncertainty)} | {_origin_of(doc)} | {ext['provenance']} |"
        )
    lines += [
        "",
        "## Machines",
        "",
        "| node | CPU | speed (MHz) | sockets | cores | memory (GiB) | GPUs | FPGAs |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for host, node in hosts.items():
        m = machines.get(host)
        if m is None:
            lines.append(f"| {node} | not described | | | | | | |")
            continue
        memory = "" if m["memory_bytes"] is None else f"{m['memory_bytes'] / 2**30:,.0f}"
        speed = "" if m["cpu_speed_mhz"] is None else f"{m['cpu_speed_mhz']:g}"
        lines.append(
            f"| {node} | {m['cpu_model'] or ''} | {speed} | {m['sockets'] or ''} | {m['cores'] or ''} | {memory} "
            f"| {', '.join(m['gpu_models'])} | {', '.join(m['fpga_models'])} |"
        )
    energy = [
        t[EXTENSION_KEY]["energy"]
        for _, d in files
        for t in d["workflow"]["execution"]["tasks"]
        if "energy" in t.get(EXTENSION_KEY, {})
    ]
    total = math.fsum(e["totalJoules"] for e in energy)
    uncertainty = math.fsum(e["uncertaintyJoules"] for e in energy)
    # The application's own energy rows, not the whole folder's.
    rows = Counter(energy_origin(d["method"]) for e in energy for d in e["devices"])
    own = {**card, "energy": {**card["energy"], "by_origin_rows": dict(rows)}}
    lines += ["", "## Energy", "", *energy_lines(own, uncertainty, total)]
    return "\n".join(lines) + "\n"
