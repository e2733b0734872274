"""`jouletrace platform` and `jouletrace workflow`: P.json and WF.json from a trace (docs/scheduling.md).

Each writes its file only when everything was read and built (atomically), and prints one line of counts;
warnings (a machine whose power could not be fitted, ...) go to stderr.
"""

from __future__ import annotations

import sys
from collections import Counter
from pathlib import Path


def _positive(text: str, option: str, allow_zero: bool = False) -> float:
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"{option} {text!r}: not a number") from None
    if not (value >= 0 if allow_zero else value > 0) or value != value or value == float("inf"):
        raise ValueError(f"{option} {text!r}: must be a number {'>=' if allow_zero else '>'} 0")
    return value


def cmd_platform(args) -> int:
    from allocate.io import write_json
    from allocate.scheduling.build_platform import platform_from_dataset
    from allocate.scheduling.platform import platform_from_json

    bandwidth = None if args.bandwidth is None else _positive(args.bandwidth, "--bandwidth")
    cost = None if args.cost_per_hour is None else _positive(args.cost_per_hour, "--cost-per-hour", True)
    idle = None if args.idle_watts is None else _positive(args.idle_watts, "--idle-watts", True)
    busy = None if args.busy_watts is None else _positive(args.busy_watts, "--busy-watts", True)
    data = platform_from_dataset(args.dataset, bandwidth, cost, idle, busy, name=args.name)
    platform_from_json(data)  # what we write must read back
    for warning in data["warnings"]:
        print(f"jouletrace platform: warning: {warning}", file=sys.stderr)
    write_json(data, Path(args.out))
    machines = data["machines"]
    speeds = Counter(m["sources"]["speed"].split(":")[0] for m in machines)
    power = sum(m["sources"].get("busy_watts", "").startswith("fitted") for m in machines)
    listed = ", ".join(f"{n} {kind}" for kind, n in sorted(speeds.items(), key=lambda kv: -kv[1]))
    reference = data["reference_machine"]
    print(
        f"wrote {args.out}: {len(machines)} machines (reference {reference}); speed: {listed}; "
        f"idle and busy watts fitted for {power}; {len(data['warnings'])} warnings"
    )
    return 0


def _counts(workflow) -> str:
    """How many numbers of each field came from where: the trace, a model, work/speed or scaling."""
    parts = []
    for field in ("runtime_seconds", "energy_joules"):
        kinds: Counter = Counter()
        for task in workflow.tasks.values():
            for source in task.sources.get(field, {}).values():
                kind = source.split(":")[0].split(" (")[0]
                kinds["predicted" if kind == "predicted" else kind] += 1
        listed = ", ".join(f"{n} {kind}" for kind, n in sorted(kinds.items(), key=lambda kv: -kv[1]))
        parts.append(f"{field}: {listed or 'none'}")
    return "; ".join(parts)


def cmd_workflow(args) -> int:
    from allocate.io import workflow_to_json, write_json
    from allocate.scheduling.build_workflow import workflow_from_dataset, workflow_from_wfformat

    if bool(args.dataset) == bool(args.wfformat):
        raise ValueError("give --dataset DATASET --workflow-uid U, or --wfformat FILE (one of them)")
    if args.dataset and not args.workflow_uid:
        raise ValueError("--dataset needs --workflow-uid (the run to build)")
    if args.wfformat and (args.workflow_uid or args.train or args.save_models):
        raise ValueError("--workflow-uid, --train and --save-models go with --dataset, not --wfformat")
    models = {"runtime_seconds": args.runtime_model, "energy_joules": args.energy_model}
    if args.wfformat:
        workflow = workflow_from_wfformat(args.wfformat, args.platform, models)
    else:
        from pipelines.model_commands import training_progress

        bar, step = training_progress() if args.train or args.save_models else (None, None)
        try:
            workflow = workflow_from_dataset(
                args.dataset,
                args.workflow_uid,
                args.platform,
                models,
                train=args.train,
                progress=step,
                save_models=args.save_models,
            )
        finally:
            if bar is not None:
                bar.close()
    write_json(workflow_to_json(workflow), Path(args.out))
    print(f"wrote {args.out}: {len(workflow.tasks)} tasks, {len(workflow.edges)} edges; {_counts(workflow)}")
    return 0


def add_build_commands(sub) -> None:
    p = sub.add_parser(
        "platform", help="a platform (P.json) from a trace dataset: machines, fitted speed and power"
    )
    p.add_argument("--dataset", required=True, help="trace dataset folder (machines, tasks, power_samples)")
    p.add_argument(
        "--bandwidth",
        metavar="BYTES_PER_S",
        help="bytes per second between two machines (datasets do not record it; default 1.25e9, 10 Gbit/s)",
    )
    p.add_argument(
        "--cost-per-hour",
        help="price of every machine per hour (datasets do not record it; default: none, P.json readers take 0)",
    )
    p.add_argument(
        "--idle-watts",
        help="idle watts of machines whose power cannot be fitted (no readings; default: none, P.json readers "
        "take 0)",
    )
    p.add_argument(
        "--busy-watts",
        help="busy watts of machines whose power cannot be fitted (default: none, P.json readers take the idle "
        "watts)",
    )
    p.add_argument("--name", help="platform name (default: the dataset folder's name)")
    p.add_argument("--out", required=True, help="P.json to write")
    p.set_defaults(run=cmd_platform)

    w = sub.add_parser(
        "workflow", help="a workflow (WF.json) for scheduling from a dataset's run or a WfFormat file"
    )
    w.add_argument("--dataset", help="trace dataset folder holding the run (this or --wfformat)")
    w.add_argument(
        "--workflow-uid", help="with --dataset: the run (workflows.workflow_uid); required with it"
    )
    w.add_argument(
        "--wfformat", help="a WfFormat (WfCommons) JSON file instead of a dataset (this or --dataset)"
    )
    w.add_argument(
        "--platform",
        help="P.json whose machines get numbers (default: the dataset's machines, or the file's machines)",
    )
    w.add_argument(
        "--runtime-model",
        help="model folder predicting runtime_seconds (jouletrace train; default: none, runtime x speed ratio)",
    )
    w.add_argument(
        "--energy-model",
        help="model folder predicting energy above idle (saved by --save-models; default: none, measured energy "
        "scaled by the machines' fitted watts)",
    )
    w.add_argument(
        "--train",
        action="store_true",
        help="with --dataset: train the missing regressors on it (default: work/speed and scaled energy)",
    )
    w.add_argument(
        "--save-models",
        help="with --dataset: train the missing regressors and keep them in this folder (default: not kept)",
    )
    w.add_argument("--out", required=True, help="WF.json to write")
    w.set_defaults(run=cmd_workflow)
