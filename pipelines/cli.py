"""The `jouletrace` command line."""

from __future__ import annotations

import argparse
import math
import sys
from dataclasses import replace
from pathlib import Path

import schemas
from collectors.agent.cli import add_agent_arguments, run_from_args
from pipelines.argo_commands import add_argo_workflow_command
from pipelines.build_commands import add_build_commands
from pipelines.cli_support import Parser, VersionAction, run_command
from pipelines.model_commands import add_model_commands
from pipelines.policy_commands import add_policy_commands
from pipelines.scheduling_commands import add_scheduling_commands
from pipelines.settings import DEFAULT_SEED, DEFAULT_WORKFLOWS
from pipelines.ui_commands import add_ui_commands


def _read(*inputs: tuple[str, str | None, str]) -> list:
    """Tables given on the command line as (table, path or None, option), read as every command reads one
    (schemas.load_table): the notes of safe coercions and defaults, and the problems of every input at once,
    name the file and the option. The files are read side by side: Parquet decodes without Python's lock,
    so the large samples file is read while the tasks are checked (and pyarrow imports pandas, which it
    does at its first conversion: a quarter of a second)."""
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(len(inputs), thread_name_prefix="jouletrace-read") as pool:
        results = list(pool.map(lambda given: _read_one(*given), inputs))
    tables, problems = [], []
    for table, notes, problems_of_input in results:
        for note in notes:
            print(f"note: {note}", file=sys.stderr)
        tables.append(table)
        problems.extend(problems_of_input)
    if problems:
        raise schemas.SchemaError(problems)
    return tables


def _read_one(table: str, path: str | None, option: str) -> tuple[object, list, list]:
    """One input of _read: (its table or None, its notes, its problems)."""
    from datasets.attribution.options import COLUMNS_READ, DICTIONARY_TABLES

    if path is None:
        return None, [], []
    try:
        loaded = schemas.load_table(
            table,
            path,
            argument=option,
            command="attribute",
            columns=COLUMNS_READ[table],
            dictionaries=table in DICTIONARY_TABLES,
        )
    except schemas.SchemaError as exc:
        return None, [], exc.problems
    return loaded.table, loaded.notes, []


def cmd_validate(args) -> int:
    from pipelines.validate_command import validate

    return validate(args)


def cmd_attribute(args) -> int:
    import pyarrow.compute as pc

    from datasets.attribution import attribute
    from datasets.store import write_parquet_atomic, write_task_energy

    options = _attribution_options(args)  # a bad option fails before any file is read
    if _is_trace_dataset(args.samples):
        result = _attribute_streamed(args, options)
    else:
        if args.tasks is None:
            raise ValueError("give --tasks TASKS, or --samples a trace dataset folder (with tasks/)")
        tasks, samples, machines, containers = _read(
            ("tasks", args.tasks, "--tasks"),
            ("power_samples", args.samples, "--samples"),
            ("machines", args.machines, "--machines"),
            ("container_samples", args.containers, "--containers"),
        )
        result = attribute(tasks, samples, machines, options, containers=containers)
    write_task_energy(result.task_energy, Path(args.out))
    if args.balance_out:
        write_parquet_atomic(result.node_energy_balance, Path(args.balance_out))
    if args.diagnostics_out:
        write_parquet_atomic(result.diagnostics, Path(args.diagnostics_out))
    total = pc.sum(result.task_energy["energy_joules"]).as_py() or 0.0
    print(f"wrote {args.out}: {result.task_energy.num_rows} rows, {total:,.1f} J attributed")
    return 0


def _is_trace_dataset(path: str) -> bool:
    """A trace dataset folder (datasets/store.py): its tables in folders of their names."""
    folder = Path(path)
    return folder.is_dir() and (folder / "power_samples").is_dir() and (folder / "tasks").is_dir()


def _attribute_streamed(args, options):
    """A trace dataset streamed node by node and day by day (attribute_dataset: bounded memory); its tasks,
    machines and container samples are the dataset's own."""
    from datasets.attribution import attribute_dataset

    given = [
        option
        for option, value in (
            ("--tasks", args.tasks),
            ("--machines", args.machines),
            ("--containers", args.containers),
        )
        if value is not None
    ]
    if given:
        raise ValueError(
            f"--samples {args.samples} is a trace dataset, which holds its own tables: drop {', '.join(given)}"
        )
    return attribute_dataset(args.samples, None, options)


def _add_attribution_options(parser: argparse.ArgumentParser) -> None:
    """Every AttributionOptions field as an option of `parser` (attribute, collect): declared once."""
    from datasets.attribution.options import AttributionOptions

    for flag, keywords in AttributionOptions.command_line_arguments():
        if "type" in keywords:
            keywords["type"] = _argument_type(keywords["type"])
        parser.add_argument(flag, **keywords)


def _argument_type(parse):
    """`parse` with its ValueError's message as argparse's error (argparse would print only its name)."""

    def checked(text: str):
        try:
            return parse(text)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    checked.__name__ = parse.__name__
    return checked


def _attribution_options(args):
    from datasets.attribution.options import AttributionOptions

    return AttributionOptions.from_command_line(vars(args))


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
    from pipelines.collect.partitions import days_of_window
    from pipelines.collect.summary import missing_line
    from pipelines.run import materialize_everything, recorded_days, run_config
    from pipelines.settings import LiveSources, Settings
    from pipelines.traces.assets import AttributionConfig

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
    days = days_of_window(args.since, args.until)
    if days is None:
        if not args.argo_recorded or args.argo:
            raise ValueError("reading a live Argo Server needs a time window: give --since and --until")
        days = recorded_days(settings)
    # The days are the collection partitions; they must not start before the first one.
    settings = replace(settings, collection_start=min(settings.collection_start, days.start))
    config = run_config()
    config["ops"]["task_energy"]["config"] = AttributionConfig.from_options(_attribution_options(args))
    instance = dg.DagsterInstance.ephemeral()
    outcome = materialize_everything(settings, config, instance, days, TRACE_GROUPS)
    if outcome.step_errors:
        for error in outcome.step_errors:
            print(f"jouletrace collect: {error}", file=sys.stderr)
        print(f"jouletrace collect: the dataset in {out} was left as it was", file=sys.stderr)
        return 1
    if not outcome.dataset_written:
        print(
            f"jouletrace collect: no workflow started on {days.start}..{days.end} and finished by the "
            f"lookback; the dataset in {out} was left as it was",
            file=sys.stderr,
        )
        return 1
    checked = schemas.validate_path(out)
    print(f"wrote {out}: " + ", ".join(f"{table} {rows} rows" for table, rows in checked.items()))
    missing = missing_line(instance, settings.asset_dir)
    if missing:
        print(f"jouletrace collect: missing: {missing}", file=sys.stderr)
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

    workflow = _read_json_input(read_workflow, args.workflow, "--workflow")
    catalog = _read_json_input(read_catalog, args.catalog, "--catalog") if args.catalog else default_catalog()
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
    if problems:
        return 1
    if not data["within_budget"] and not args.allow_over_budget:
        minimum = data["minimum_budget"]
        advice = (
            f"raise --budget to at least the minimum budget {minimum:.4f}"
            if args.budget < minimum
            else "use --algorithm deferred or refine, which keep any budget >= the minimum budget"
        )
        print(
            f"jouletrace allocate: over budget: cost {data['cost']:.4f} > --budget {args.budget:.4f} "
            f"({args.out} written); {advice}, or pass --allow-over-budget",
            file=sys.stderr,
        )
        return 1
    return 0


def _read_json_input(reader, path: str, option: str):
    """A WF.json or C.json given with `option`; an error names the option and the file."""
    try:
        return reader(path)
    except UnicodeDecodeError as exc:
        raise ValueError(f"{path} ({option}): not UTF-8 text (byte {exc.start}); save it as UTF-8") from None
    except (KeyError, TypeError, AttributeError) as exc:
        raise ValueError(f"{path} ({option}): not a valid file ({type(exc).__name__}: {exc})") from None
    except ValueError as exc:
        message = str(exc)
        raise ValueError(
            message if message.startswith(str(path)) else f"{path} ({option}): {message}"
        ) from None


def _budget(text: str) -> float:
    """A budget: a finite number > 0 (nan, inf, 0 and negative budgets are refused)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not math.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(f"{text!r}: a budget must be a finite number > 0")
    return value


def _confidence(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not 0 < value <= 1:
        raise argparse.ArgumentTypeError(f"{text!r}: a confidence must be in (0, 1]")
    return value


def cmd_evaluate_allocation(args) -> int:
    from allocate.catalog import default_catalog
    from allocate.evaluate import evaluate, parse_budgets, summary, synthetic_cases, write_outputs
    from allocate.io import read_catalog

    if args.repetitions < 1:
        raise ValueError("--repetitions must be >= 1")
    workloads = [w.strip() for w in args.workloads.split(",") if w.strip()]
    try:
        budgets = parse_budgets(args.budgets)
    except ValueError as exc:
        raise ValueError(f"--budgets {args.budgets!r}: {exc}") from None
    if not all(math.isfinite(b) and b > 0 for b in budgets):
        raise ValueError(f"--budgets {args.budgets!r}: every budget must be a finite number > 0")
    catalog = _read_json_input(read_catalog, args.catalog, "--catalog") if args.catalog else default_catalog()
    from tqdm import tqdm

    cases = synthetic_cases(workloads, args.repetitions, args.seed)
    progress = tqdm(list(cases), desc="workflows", unit="workflow", file=sys.stderr)
    results = evaluate(progress, budgets, catalog, confidence=args.confidence, seed=args.seed)
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
    al.add_argument(
        "--budget", type=_budget, required=True, help="money for one run (catalog currency), a number > 0"
    )
    al.add_argument(
        "--allow-over-budget",
        action="store_true",
        help="exit 0 even when the result costs more than --budget (default: exit 1, R.json still written)",
    )
    al.add_argument("--algorithm", choices=["eager", "deferred", "refine"], default="deferred")
    al.add_argument("--catalog", help="C.json (default: the EC2-inspired catalog)")
    al.add_argument(
        "--confidence",
        type=_confidence,
        default=0.9,
        help="for the executions of OR-split branches, in (0, 1]",
    )
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
    ev.add_argument("--repetitions", type=int, default=3, help="random workflows per workload")
    ev.add_argument("--seed", type=int, default=0)
    ev.add_argument("--catalog", help="C.json (default: the EC2-inspired catalog)")
    ev.add_argument("--confidence", type=_confidence, default=0.9, help="in (0, 1]")
    ev.add_argument("--out", required=True, help="folder for results.parquet, summary.json and PNG plots")
    ev.set_defaults(run=cmd_evaluate_allocation)


# --- public trace formats: import, export, validate (docs/formats.md) ------------------------------------


def cmd_import(args) -> int:
    from datasets.formats import format_named
    from datasets.formats.publish import merge_into_dataset

    result = format_named(args.format).read(args.paths)
    for warning in result.warnings:
        print(warning, file=sys.stderr)
    for note in result.notes:
        print(f"note: {note}", file=sys.stderr)
    rows = merge_into_dataset(args.out, result.tables)
    imported = ", ".join(f"{name} {table.num_rows}" for name, table in result.tables.items())
    print(f"imported {imported} rows; {args.out} now holds " + ", ".join(f"{k} {v}" for k, v in rows.items()))
    return 0


def cmd_export(args) -> int:
    from datasets.formats import format_named
    from schemas.formats import raise_on_errors

    write = format_named(args.format).write
    bundle = write(args.dataset, args.out, keep_identifiers=args.keep_identifiers, licence=args.licence)
    for note in bundle.notes:
        print(f"note: {note}", file=sys.stderr)
    for warning in raise_on_errors(bundle.findings):
        print(warning, file=sys.stderr)
    names = "original identifiers" if args.keep_identifiers else "identifiers replaced by salted hashes"
    folders = ", ".join(str(f) for f in bundle.folders) or str(bundle.path)
    print(f"wrote {folders}: {len(bundle.files)} files, {names}, licence {args.licence}; checked")
    return 0


def add_format_commands(sub) -> None:
    """`import wfformat|wta` and `export wfinstances|wfformat|wta` (docs/formats.md), one sub-command per
    format of the registry (datasets.formats)."""
    from datasets.formats import FORMATS
    from schemas.formats import DEFAULT_LICENCE

    imp = sub.add_parser(
        "import", help="read public traces (WfFormat JSON, WTA Parquet) into a trace dataset"
    )
    sources = imp.add_subparsers(dest="format", required=True)
    for trace_format in FORMATS.values():
        reader = sources.add_parser(trace_format.read_name, help=trace_format.read_help)
        reader.add_argument(
            "paths",
            nargs=1 if trace_format.reads_one_folder else "+",
            metavar="dir" if trace_format.reads_one_folder else "files",
            help=trace_format.read_paths_help,
        )
        reader.add_argument(
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
    for trace_format in FORMATS.values():
        targets.add_parser(
            trace_format.name,
            aliases=list(trace_format.aliases),
            parents=[common],
            help=trace_format.write_help,
        )
    exp.set_defaults(run=cmd_export)


def add_table_commands(sub) -> None:
    """`validate` and `attribute`: the commands that read trace tables given to them."""
    v = sub.add_parser(
        "validate",
        help="say what PATH is and check it as that: a table file (Parquet, CSV), table folder or trace "
        "dataset against the schemas, recorded sources, or a WfFormat JSON file, a WfInstances bundle or a "
        "WTA trace against its format",
    )
    v.add_argument("path", help="file or folder")
    v.add_argument(
        "--table",
        choices=list(schemas.TABLES),
        help="the table a file or folder holds (default: its jouletrace.table metadata, else its name)",
    )
    v.add_argument(
        "--strict",
        action="store_true",
        help="tables must already be in the model's exact schema: a coercion or a default is an error",
    )
    v.set_defaults(run=cmd_validate)

    tables = "Parquet file, folder of Parquet files, or CSV file"
    a = sub.add_parser("attribute", help="attribute power readings to tasks")
    a.add_argument(
        "--tasks",
        help=f"tasks table ({tables}); needs workflow_uid, task_id, host_node, started_at, finished_at, the "
        "other columns take their defaults (docs/data-model.md); required unless --samples is a trace dataset",
    )
    a.add_argument(
        "--samples",
        required=True,
        help=f"power_samples table ({tables}), or a trace dataset folder (tasks/, power_samples/, ...: "
        "streamed node by node and day by day with bounded memory; balance windows must divide a day)",
    )
    a.add_argument("--out", required=True, help="task_energy Parquet file to write")
    a.add_argument(
        "--containers",
        help=f"container_samples table ({tables}): CPU-seconds counters, Kepler joules, GPU busy-seconds "
        "counters that split time-sliced GPUs (default: none; tasks are split by requests)",
    )
    a.add_argument(
        "--machines",
        help=f"machines table ({tables}): node core counts for the idle share (default: none; the node's peak "
        "requested cores)",
    )
    a.add_argument(
        "--balance-out", help="also write node_energy_balance to this Parquet file (default: not written)"
    )
    a.add_argument(
        "--diagnostics-out",
        help="also write the diagnostics (idle powers, fit, skew, drops) to this Parquet file (default: not "
        "written)",
    )
    _add_attribution_options(a)
    a.set_defaults(run=cmd_attribute)


def parser() -> argparse.ArgumentParser:
    p = Parser(
        prog="jouletrace",
        description="Per-task energy traces for scientific workflows.",
        epilog="Exit codes: 0 done, 1 a failed run (or a result not within what was asked), 2 bad input. "
        "Errors are one line each, naming the file, option, table, column or row.",
    )
    p.add_argument("--debug", action="store_true", help="show the traceback of an error")
    p.add_argument("--version", action=VersionAction, help="show the version and exit")
    sub = p.add_subparsers(dest="command", required=True)

    add_table_commands(sub)

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
    g.set_defaults(run=run_from_args)

    c = sub.add_parser("collect", help="collect runs and readings from a cluster into a trace dataset")
    c.add_argument("--argo", help="Argo Server URL (token from ARGO_TOKEN)")
    c.add_argument("--argo-recorded", help="folder of saved Argo/Kubernetes responses to replay instead")
    c.add_argument("--namespace", help="Argo/Kubernetes namespace (default: all the server shows)")
    c.add_argument(
        "--kubernetes",
        metavar="URL|none",
        help="Kubernetes API URL (token from KUBERNETES_TOKEN), or `none` to collect from Argo's record alone "
        "(requests from templates, machines from Prometheus); default kubeconfig. An API that cannot be "
        "read is skipped the same way, and said",
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
    c.add_argument(
        "--since",
        help="collect the UTC days from this time's day (ISO 8601 with zone): the workflows that started "
        "on them, and those that ran into them as context (default with --argo-recorded: every day)",
    )
    c.add_argument("--until", help="... to the day of this time (exclusive of the instant itself)")
    c.add_argument(
        "--out", required=True, help="trace dataset folder (partitions are replaced, not duplicated)"
    )
    _add_attribution_options(c)
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
    add_policy_commands(sub)
    add_ui_commands(sub)
    return p


def main(argv: list[str] | None = None) -> int:
    """Exit 0 when done, 1 for a failed run, 2 for bad input (pipelines.cli_support); errors are one line
    each, and --debug shows the traceback instead."""
    args = parser().parse_args(argv)
    return run_command(args)


if __name__ == "__main__":
    sys.exit(main())
