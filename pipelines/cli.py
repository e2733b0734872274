"""The `jouletrace` command line."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pyarrow.parquet as pq

import schemas
from collectors.agent import add_agent_arguments, options_from_args, run_agent
from pipelines.settings import DEFAULT_SEED, DEFAULT_WORKFLOWS


def _read(table: str, path: str):
    file = Path(path)
    if not file.exists():
        raise FileNotFoundError(f"{file}: no such file")
    return schemas.validate(table, schemas.conform(table, pq.read_table(file)), source=str(file))


def cmd_validate(args) -> int:
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
    result = attribute(
        tasks, samples, machines, idle_policy=args.idle_policy, window_seconds=args.window_seconds
    )
    write_parquet_atomic(result.task_energy, Path(args.out))
    if args.balance_out:
        write_parquet_atomic(result.node_energy_balance, Path(args.balance_out))
    total = sum(result.task_energy["energy_joules"].to_pylist())
    print(f"wrote {args.out}: {result.task_energy.num_rows} rows, {total:,.1f} J attributed")
    return 0


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
        ),
    )
    config = run_config(args.since, args.until, idle_policy=args.idle_policy, split=args.split)
    outcome = materialize_everything(settings, config, dg.DagsterInstance.ephemeral())
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


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="jouletrace", description="Per-task energy traces for scientific workflows."
    )
    sub = p.add_subparsers(dest="command", required=True)

    v = sub.add_parser("validate", help="check a Parquet file, table folder or dataset against the schemas")
    v.add_argument("path")
    v.set_defaults(run=cmd_validate)

    a = sub.add_parser("attribute", help="attribute power readings to tasks")
    a.add_argument("--tasks", required=True, help="tasks Parquet file")
    a.add_argument("--samples", required=True, help="power_samples Parquet file")
    a.add_argument("--out", required=True, help="task_energy Parquet file to write")
    a.add_argument("--idle-policy", choices=["none", "requests"], default="requests")
    a.add_argument(
        "--split",
        choices=["fitted", "requests"],
        default="fitted",
        help="CPU/DRAM split of co-located tasks: requested cores weighted by each task type's fitted "
        "watts per core (default), or requested cores alone",
    )
    a.add_argument("--machines", help="machines Parquet file (node core counts for the idle share)")
    a.add_argument("--balance-out", help="also write node_energy_balance to this Parquet file")
    a.add_argument("--window-seconds", type=float, default=3600.0, help="balance window length")
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
    c.add_argument("--since", help="workflows finished at or after this time (ISO 8601 with zone)")
    c.add_argument("--until", help="workflows finished before this time (ISO 8601 with zone)")
    c.add_argument(
        "--out", required=True, help="trace dataset folder (partitions are replaced, not duplicated)"
    )
    c.add_argument("--idle-policy", choices=["none", "requests"], default="requests")
    c.add_argument("--split", choices=["fitted", "requests"], default="fitted")
    c.set_defaults(run=cmd_collect)

    d = sub.add_parser("demo", help="run every asset on the sample world and report accuracy")
    d.add_argument("--out", default="data")
    d.add_argument("--workflows", type=int, default=DEFAULT_WORKFLOWS)
    d.add_argument("--seed", type=int, default=DEFAULT_SEED)
    d.set_defaults(run=cmd_demo)
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        return args.run(args)
    except (schemas.SchemaError, FileNotFoundError, ValueError) as exc:
        print(f"jouletrace {args.command}: error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
