"""The `jouletrace` command line."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pyarrow.parquet as pq

import schemas
from collectors.agent import add_agent_arguments, options_from_args, run_agent
from pipelines.argo_commands import add_argo_workflow_command
from pipelines.build_commands import add_build_commands
from pipelines.model_commands import add_model_commands
from pipelines.scheduling_commands import add_scheduling_commands
from pipelines.settings import DEFAULT_SEED, DEFAULT_WORKFLOWS


def _read(table: str, path: str):
    file = Path(path)
    if not file.exists():
        raise FileNotFoundError(f"{file}: no such file")
    # A file through ParquetFile: pq.read_table goes through pyarrow.dataset, which loads pandas (~1 s), so
    # only a folder of files takes that way.
    data = pq.read_table(file) if file.is_dir() else pq.ParquetFile(file).read()
    return schemas.validate(table, schemas.conform(table, data), source=str(file))


def cmd_validate(args) -> int:
    if _public_format(Path(args.path)):
        return cmd_validate_format(args)
    checked = schemas.validate_path(args.path)
    for table, rows in checked.items():
        print(f"ok  {table}: {rows} rows match schema version {schemas.SCHEMA_VERSION}")
    return 0


def cmd_attribute(args) -> int:
    from datasets.attribution import attribute
    from datasets.traces import write_parquet_atomic

    tasks = _read("tasks", args.tasks)
    samples = _read("power_samples", args.samples)
    machines = _read("machines", args.machines) if args.machines else None
    containers = _read("container_samples", args.containers) if args.containers else None
    result = attribute(
        tasks,
        samples,
        machines,
        idle_policy=args.idle_policy,
        window_seconds=args.window_seconds,
        split=args.split,
        containers=containers,
        share=args.share,
        idle_power_watts=dict(args.idle_power or []),
        skew_tolerance_seconds=args.skew_tolerance_seconds,
        correct_skew=args.correct_skew,
        threads=args.threads,
    )
    write_parquet_atomic(result.task_energy, Path(args.out))
    if args.balance_out:
        write_parquet_atomic(result.node_energy_balance, Path(args.balance_out))
    if args.diagnostics_out:
        write_parquet_atomic(result.diagnostics, Path(args.diagnostics_out))
    total = sum(result.task_energy["energy_joules"].to_pylist())
    print(f"wrote {args.out}: {result.task_energy.num_rows} rows, {total:,.1f} J attributed")
    return 0


def _idle_power(text: str) -> tuple[tuple[str, str], float]:
    from datasets.attribution import parse_idle_power

    try:
        return parse_idle_power(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def cmd_sample(args) -> int:
    from datasets.sample_world import generate

    world = generate(args.out, n_workflows=args.workflows, seed=args.seed)
    print(
        f"wrote the sample world to {world.out_dir}: {world.n_workflows} workflows, "
        f"{world.n_tasks} task attempts, {world.n_power_samples} power readings (provenance synthetic)"
    )
    if args.openmetrics:
        from datasets.openmetrics import write_openmetrics

        count = write_openmetrics(world.out_dir, Path(args.openmetrics), args.dialect)
        print(
            f"wrote {count} samples as {args.dialect} metrics to {args.openmetrics} "
            f"(load: promtool tsdb create-blocks-from openmetrics {args.openmetrics} TSDB_DIR)"
        )
    return 0


def cmd_collect(args) -> int:
    import dagster as dg

    from pipelines.build import TRACE_GROUPS
    from pipelines.run import materialize_everything, run_config
    from pipelines.settings import LiveSources, Settings

    if not args.argo and not args.argo_recorded:
        raise ValueError("give --argo URL (a live Argo Server) or --argo-recorded DIR (saved responses)")
    if not args.prometheus and not args.argo_recorded:
        raise ValueError(
            "give --prometheus URL, or --argo-recorded DIR whose power/ folder holds the readings"
        )
    out = Path(args.out)
    settings = Settings(
        asset_dir=out / ".jouletrace" / "assets",
        dataset_dir=out,
        recorded_dir=Path(args.argo_recorded) if args.argo_recorded else None,
        sample_world_seed=None,
        live=LiveSources(
            argo_url=args.argo,
            namespace=args.namespace,
            kubernetes_url=args.kubernetes,
            kubeconfig=args.kubeconfig,
            prometheus_url=args.prometheus,
            dialects=tuple(args.dialect or ("agent",)),
            usage_dialects=tuple(args.usage_dialect or ()),
        ),
    )
    config = run_config(
        args.since, args.until, idle_policy=args.idle_policy, split=args.split, share=args.share
    )
    outcome = materialize_everything(settings, config, dg.DagsterInstance.ephemeral(), TRACE_GROUPS)
    if outcome.step_errors:
        for error in outcome.step_errors:
            print(f"jouletrace collect: {error}", file=sys.stderr)
        print(f"jouletrace collect: the dataset in {out} was left as it was", file=sys.stderr)
        return 1
    checked = schemas.validate_path(out)
    print(f"wrote {out}: " + ", ".join(f"{table} {rows} rows" for table, rows in checked.items()))
    if outcome.checks_failed:
        print(f"failed checks: {', '.join(outcome.checks_failed)}", file=sys.stderr)
        return 1
    print(f"{outcome.checks_passed} asset checks passed")
    return 0


def cmd_demo(args) -> int:
    from pipelines.demo import format_report, run_demo

    report = run_demo(args.out, workflows=args.workflows, seed=args.seed)
    print(format_report(report))
    return 0 if not report.checks_failed else 1


def cmd_generate(args) -> int:
    from allocate import generators
    from allocate.io import workflow_to_json, write_json

    if args.kind == "fft":
        workflow = generators.fft(args.points, seed=args.seed)
    elif args.kind == "strassen":
        workflow = generators.strassen(seed=args.seed)
    elif args.kind == "random":
        workflow = generators.random_dag(
            args.n,
            fat=args.fat,
            density=args.density,
            regularity=args.regularity,
            jump=args.jump,
            seed=args.seed,
        )
    else:
        workflow = generators.random_nondeterministic(seed=args.seed, n=args.n)
    write_json(workflow_to_json(workflow), args.out)
    print(f"wrote {args.out}: {workflow.name}, {len(workflow.tasks)} tasks, {len(workflow.edges)} edges")
    return 0


def cmd_allocate(args) -> int:
    from allocate.catalog import default_catalog
    from allocate.check import check_result
    from allocate.io import read_catalog, read_workflow, write_json
    from allocate.plan import allocate_workflow

    workflow = read_workflow(args.workflow)
    catalog = read_catalog(args.catalog) if args.catalog else default_catalog()
    result = allocate_workflow(
        workflow,
        catalog,
        args.budget,
        args.algorithm,
        args.confidence,
        reading=args.reading,
        hours=args.hours,
        seed=args.seed,
    )
    data = result.to_json()
    write_json(data, args.out)
    print(
        f"wrote {args.out}: {args.algorithm} makespan {data['makespan_seconds']:,.0f} s, cost "
        f"{data['cost']:.4f} of budget {args.budget:.4f} ({'within' if data['within_budget'] else 'OVER'} "
        f"budget; minimum budget {data['minimum_budget']:.4f}), {len(data['vms'])} VMs"
    )
    problems = check_result(data, workflow)
    for problem in problems:
        print(f"inconsistent result: {problem}", file=sys.stderr)
    return 1 if problems else 0


def cmd_evaluate_allocation(args) -> int:
    from allocate.catalog import default_catalog
    from allocate.evaluate import evaluate, parse_budgets, summary, synthetic_cases, write_outputs
    from allocate.io import read_catalog

    if args.repetitions < 1:
        raise ValueError("--repetitions must be >= 1")
    workloads = [w.strip() for w in args.workloads.split(",") if w.strip()]
    catalog = read_catalog(args.catalog) if args.catalog else default_catalog()
    from tqdm import tqdm

    cases = synthetic_cases(workloads, args.repetitions, args.seed)
    progress = tqdm(list(cases), desc="workflows", unit="workflow", file=sys.stderr)
    results = evaluate(
        progress, parse_budgets(args.budgets), catalog, confidence=args.confidence, seed=args.seed
    )
    written = write_outputs(results, args.out)
    for algorithm, s in summary(results).items():
        print(
            f"{algorithm:>9}: {s['cases']} cases, within budget {s['within_budget']:.1%}, "
            f"mean makespan / Deferred's {s['mean_relative_makespan']:.3f}, "
            f"faster than Deferred {s['faster_than_deferred']:.1%}, violations {s['violations']}"
        )
    print(f"wrote {', '.join(str(p) for p in written.values())}")
    return 0


def add_allocation_commands(sub) -> None:
    """`generate`, `allocate` and `evaluate-allocation` (docs/allocation.md)."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--seed", type=int, default=0)
    common.add_argument("--out", required=True, help="WF.json file to write")
    gen = sub.add_parser("generate", help="write a synthetic workflow (WF.json) for `allocate`")
    kinds = gen.add_subparsers(dest="kind", required=True)
    kinds.add_parser("fft", parents=[common], help="FFT graph").add_argument(
        "--points", type=int, required=True
    )
    kinds.add_parser("strassen", parents=[common], help="Strassen, one recursion level (25 tasks)")
    rnd = kinds.add_parser("random", parents=[common], help="daggen-style random DAG")
    rnd.add_argument("--n", type=int, required=True, help="number of tasks")
    rnd.add_argument("--fat", type=float, default=0.5)
    rnd.add_argument("--density", type=float, default=0.5)
    rnd.add_argument("--regularity", type=float, default=0.9)
    rnd.add_argument("--jump", type=int, default=1)
    nd = kinds.add_parser("random-nd", parents=[common], help="random DAGs with an OR-split and a loop")
    nd.add_argument("--n", type=int, default=20, help="tasks per DAG")
    gen.set_defaults(run=cmd_generate)

    al = sub.add_parser("allocate", help="budget-constrained allocation of a workflow on a VM catalog")
    al.add_argument("--workflow", required=True, help="WF.json")
    al.add_argument("--budget", type=float, required=True, help="money for one run (catalog currency)")
    al.add_argument("--algorithm", choices=["eager", "deferred", "refine"], default="deferred")
    al.add_argument("--catalog", help="C.json (default: the EC2-inspired catalog)")
    al.add_argument("--confidence", type=float, default=0.9, help="for the executions of OR-split branches")
    al.add_argument("--reading", choices=["under", "over"], default="under", help="Eager's T_A reading")
    al.add_argument("--hours", choices=["hourly", "fluid"], default="hourly", help="H(T_CP) in T_A")
    al.add_argument("--seed", type=int, default=0, help="for sampling the execution counts")
    al.add_argument("--out", required=True, help="R.json to write")
    al.set_defaults(run=cmd_allocate)

    ev = sub.add_parser("evaluate-allocation", help="Eager, Deferred and refine against the budget limit")
    ev.add_argument(
        "--workloads", default="fft,strassen,random", help="comma list of fft,strassen,random,random-nd"
    )
    ev.add_argument(
        "--budgets", default="1:50", help="multiples of the minimum budget: LOW:HIGH[:STEP] or a,b,c"
    )
    ev.add_argument("--repetitions", type=int, default=3)
    ev.add_argument("--seed", type=int, default=0)
    ev.add_argument("--catalog", help="C.json (default: the EC2-inspired catalog)")
    ev.add_argument("--confidence", type=float, default=0.9)
    ev.add_argument("--out", required=True, help="folder for results.parquet, summary.json and PNG plots")
    ev.set_defaults(run=cmd_evaluate_allocation)


# --- public trace formats: import, export, validate (docs/formats.md) ------------------------------------


def _public_format(path: Path) -> str | None:
    """Which public format a path holds: a WfFormat JSON file, a WTA trace folder, or a folder of WfFormat
    files (a WfInstances contribution); None for the trace model's Parquet."""
    from schemas.formats import is_wta_trace

    if path.is_file() and path.suffix == ".json":
        return "wfformat"
    if is_wta_trace(path):
        return "wta"
    if path.is_dir() and not any((path / t).is_dir() for t in schemas.TABLES) and any(path.rglob("*.json")):
        return "wfinstances"
    return None


def cmd_validate_format(args) -> int:
    from datasets.publish import check_wfinstances_bundle
    from schemas.formats import (
        LEGACY_VERSIONS,
        check_wfformat,
        check_wta,
        raise_on_errors,
        read_json,
        upgrade_wfformat,
    )

    path = Path(args.path)
    kind = _public_format(path)
    if kind == "wfformat":
        doc = read_json(path)
        warnings = raise_on_errors(check_wfformat(doc, str(path)))
        layout = upgrade_wfformat(doc) if doc["schemaVersion"] in LEGACY_VERSIONS else doc
        tasks = layout["workflow"]["specification"]["tasks"]
        summary = f"WfFormat {doc['schemaVersion']} instance, {len(tasks)} tasks"
    elif kind == "wta":
        warnings = raise_on_errors(check_wta(path))
        summary = "WTA schema-1.0 trace"
    else:
        warnings = raise_on_errors(check_wfinstances_bundle(path))
        summary = "folder of WfFormat instances"
    for warning in warnings:
        print(warning, file=sys.stderr)
    print(f"ok  {path}: {summary}, {len(warnings)} warnings")
    return 0


def cmd_import(args) -> int:
    from datasets.publish import merge_into_dataset

    if args.format == "wta":
        from datasets.wta import import_wta

        result = import_wta(args.dir)
    else:
        from datasets.wfformat import read_wfformat

        result = read_wfformat(args.files)
    for warning in result.warnings:
        print(warning, file=sys.stderr)
    for note in result.notes:
        print(f"note: {note}", file=sys.stderr)
    rows = merge_into_dataset(args.out, result.tables)
    imported = ", ".join(f"{name} {table.num_rows}" for name, table in result.tables.items())
    print(f"imported {imported} rows; {args.out} now holds " + ", ".join(f"{k} {v}" for k, v in rows.items()))
    return 0


def cmd_export(args) -> int:
    from datasets.publish import export_wfinstances, export_wta_bundle
    from schemas.formats import raise_on_errors

    export = export_wta_bundle if args.format == "wta" else export_wfinstances
    bundle = export(args.dataset, args.out, keep_identifiers=args.keep_identifiers, licence=args.licence)
    for note in bundle.notes:
        print(f"note: {note}", file=sys.stderr)
    for warning in raise_on_errors(bundle.findings):
        print(warning, file=sys.stderr)
    names = "original identifiers" if args.keep_identifiers else "identifiers replaced by salted hashes"
    print(f"wrote {bundle.path}: {len(bundle.files)} files, {names}, licence {args.licence}; checked")
    return 0


def add_format_commands(sub) -> None:
    """`import wfformat|wta` and `export wfinstances|wfformat|wta` (docs/formats.md)."""
    from schemas.formats import DEFAULT_LICENCE

    imp = sub.add_parser(
        "import", help="read public traces (WfFormat JSON, WTA Parquet) into a trace dataset"
    )
    sources = imp.add_subparsers(dest="format", required=True)
    wf = sources.add_parser("wfformat", help="WfFormat 1.0-1.5 JSON files (WfInstances)")
    wf.add_argument("files", nargs="+", help="instance .json files")
    wf.add_argument(
        "--out", required=True, help="trace dataset folder (workflows of the same uid are replaced)"
    )
    wta = sources.add_parser("wta", help="a WTA schema-1.0 trace folder")
    wta.add_argument("dir", help="trace folder holding workflows/ and tasks/")
    wta.add_argument(
        "--out", required=True, help="trace dataset folder (workflows of the same uid are replaced)"
    )
    imp.set_defaults(run=cmd_import)

    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("dataset", help="trace dataset folder")
    common.add_argument("--out", required=True, help="folder to write")
    common.add_argument(
        "--keep-identifiers",
        action="store_true",
        help="keep namespace, pod, node and GPU names (default: salted hashes; the salt stays in the dataset)",
    )
    common.add_argument("--licence", default=DEFAULT_LICENCE, help="data licence named in the dataset card")
    exp = sub.add_parser(
        "export", help="publish a trace dataset as a WfInstances contribution or a WTA trace"
    )
    targets = exp.add_subparsers(dest="format", required=True)
    targets.add_parser(
        "wfinstances",
        aliases=["wfformat"],
        parents=[common],
        help="OUT/argo/<app>/<app>-<platform>-<N>t-<run>.json (WfFormat 1.5 + jouletrace extension), READMEs",
    )
    targets.add_parser("wta", parents=[common], help="a WTA schema-1.0 trace folder with energy columns")
    exp.set_defaults(run=cmd_export)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="jouletrace", description="Per-task energy traces for scientific workflows."
    )
    p.add_argument("--debug", action="store_true", help="show the traceback of an error")
    sub = p.add_subparsers(dest="command", required=True)

    v = sub.add_parser(
        "validate",
        help="check a Parquet file, table folder or dataset against the schemas, or a WfFormat JSON file, "
        "a WfInstances folder or a WTA trace folder against its format",
    )
    v.add_argument("path")
    v.set_defaults(run=cmd_validate)

    a = sub.add_parser("attribute", help="attribute power readings to tasks")
    a.add_argument("--tasks", required=True, help="tasks Parquet file")
    a.add_argument("--samples", required=True, help="power_samples Parquet file")
    a.add_argument("--out", required=True, help="task_energy Parquet file to write")
    a.add_argument(
        "--idle-policy",
        choices=["none", "requests", "time"],
        default="requests",
        help="idle power to tasks: none, by reserved share of the node's cores (default), or equally among "
        "the tasks running",
    )
    a.add_argument(
        "--share",
        choices=["usage", "requests", "kepler"],
        help="what co-located tasks' CPU/DRAM energy is split by: measured CPU usage (default when "
        "--containers holds CPU-seconds counters), requested cores, or Kepler's per-pod joules as they are",
    )
    a.add_argument(
        "--split",
        choices=["fitted", "plain", "requests"],
        default="fitted",
        help="weight each task's usage or cores by its task type's fitted watts per unit (default), or by "
        "one common value (plain); requests = plain with --share requests",
    )
    a.add_argument(
        "--containers",
        help="container_samples Parquet file (CPU-seconds counters, Kepler joules, GPU busy-seconds counters "
        "that split time-sliced GPUs)",
    )
    a.add_argument("--machines", help="machines Parquet file (node core counts for the idle share)")
    a.add_argument(
        "--idle-power",
        action="append",
        type=_idle_power,
        metavar="HOST:KIND=WATTS",
        help="configured idle power of each device of a kind on a node, instead of the estimate (repeatable)",
    )
    a.add_argument(
        "--skew-tolerance-seconds",
        type=float,
        default=0.0,
        help="estimate each node's clock skew against Argo within +-this many seconds (reported)",
    )
    a.add_argument("--correct-skew", action="store_true", help="shift task times by the estimated skew")
    a.add_argument("--balance-out", help="also write node_energy_balance to this Parquet file")
    a.add_argument("--diagnostics-out", help="also write the diagnostics (idle powers, fit, skew, drops)")
    a.add_argument("--window-seconds", type=float, default=3600.0, help="balance window length")
    a.add_argument(
        "--threads",
        type=int,
        help="nodes attributed side by side (default: every core this process may use; same result)",
    )
    a.set_defaults(run=cmd_attribute)

    s = sub.add_parser("sample", help="write the sample world (recorded sources + ground truth)")
    s.add_argument("--out", required=True)
    s.add_argument("--workflows", type=int, default=DEFAULT_WORKFLOWS)
    s.add_argument("--seed", type=int, default=DEFAULT_SEED)
    s.add_argument("--openmetrics", help="also write the readings as OpenMetrics text to this file")
    s.add_argument(
        "--dialect",
        choices=["agent", "kepler", "node-exporter", "dcgm"],
        default="agent",
        help="metric names and labels of the exporter to imitate (with --openmetrics)",
    )
    s.set_defaults(run=cmd_sample)

    g = sub.add_parser("agent", help="the node agent: sample RAPL/NVML/FPGA, serve Prometheus metrics, spool")
    add_agent_arguments(g)
    g.set_defaults(run=lambda args: run_agent(options_from_args(args)))

    c = sub.add_parser("collect", help="collect runs and readings from a cluster into a trace dataset")
    c.add_argument("--argo", help="Argo Server URL (token from ARGO_TOKEN)")
    c.add_argument("--argo-recorded", help="folder of saved Argo/Kubernetes responses to replay instead")
    c.add_argument("--namespace", help="Argo/Kubernetes namespace (default: all the server shows)")
    c.add_argument(
        "--kubernetes", help="Kubernetes API URL (token from KUBERNETES_TOKEN); default kubeconfig"
    )
    c.add_argument("--kubeconfig", help="kubeconfig file (default KUBECONFIG, ~/.kube/config, in-cluster)")
    c.add_argument("--prometheus", help="Prometheus URL holding the power readings")
    c.add_argument(
        "--dialect",
        action="append",
        choices=["agent", "kepler", "kepler-legacy", "node-exporter", "dcgm", "cadvisor"],
        help="which exporters' metrics to read (repeatable; default agent)",
    )
    c.add_argument(
        "--usage-dialect",
        action="append",
        choices=["agent", "cadvisor", "kepler", "kepler-legacy"],
        help="per-container CPU usage (or Kepler pod joules) for splitting co-located tasks (repeatable)",
    )
    c.add_argument("--since", help="workflows finished at or after this time (ISO 8601 with zone)")
    c.add_argument("--until", help="workflows finished before this time (ISO 8601 with zone)")
    c.add_argument(
        "--out", required=True, help="trace dataset folder (partitions are replaced, not duplicated)"
    )
    c.add_argument("--idle-policy", choices=["none", "requests", "time"], default="requests")
    c.add_argument("--split", choices=["fitted", "plain", "requests"], default="fitted")
    c.add_argument("--share", choices=["usage", "requests", "kepler"], help="default: usage where measured")
    c.set_defaults(run=cmd_collect)

    d = sub.add_parser("demo", help="run every asset on the sample world and report accuracy")
    d.add_argument("--out", default="data")
    d.add_argument("--workflows", type=int, default=DEFAULT_WORKFLOWS)
    d.add_argument("--seed", type=int, default=DEFAULT_SEED)
    d.set_defaults(run=cmd_demo)
    add_allocation_commands(sub)
    add_format_commands(sub)
    add_model_commands(sub)
    add_build_commands(sub)
    add_argo_workflow_command(sub)
    add_scheduling_commands(sub)
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        return args.run(args)
    except (schemas.SchemaError, FileNotFoundError, ValueError) as exc:
        # Bad input: one line naming what to fix, exit 2 (as argparse does); --debug shows the traceback.
        if args.debug:
            raise
        print(f"jouletrace {args.command}: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
