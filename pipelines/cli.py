"""The `jouletrace` command line."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pyarrow.parquet as pq

import schemas
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
    s.set_defaults(run=cmd_sample)

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
