"""`jouletrace schedule`, `simulate` and `evaluate-scheduling` (docs/scheduling.md)."""

from __future__ import annotations

import sys
from pathlib import Path


def load_problem(workflow_path: str, platform_path: str):
    """WF.json and P.json as a scheduling problem; errors name the file they come from."""
    from allocate.io import read_json, workflow_from_json
    from allocate.scheduling.platform import platform_from_json
    from allocate.scheduling.problem import build_problem

    workflow_data = read_json(workflow_path, "--workflow")  # errors name the file and option
    platform_data = read_json(platform_path, "--platform")
    try:
        workflow = workflow_from_json(workflow_data)
    except (ValueError, KeyError, TypeError) as exc:
        raise ValueError(f"{workflow_path}: {exc}") from exc
    try:
        platform = platform_from_json(platform_data)
    except ValueError as exc:
        raise ValueError(f"{platform_path}: {exc}") from exc
    try:
        problem = build_problem(workflow, platform)
    except ValueError as exc:
        raise ValueError(f"{workflow_path} on {platform_path}: {exc}") from exc
    if problem.machines_not_on_platform:
        others = problem.machines_not_on_platform
        print(
            f"note: {workflow_path} has numbers for {len(others)} machine(s) not on {platform_path} "
            f"({', '.join(others[:3])}); tasks there use work_seconds / speed",
            file=sys.stderr,
        )
    return problem


def options_from_args(args):
    from allocate.scheduling.schedulers import SchedulingOptions

    return SchedulingOptions(
        algorithm=args.algorithm,
        energy_budget_joules=args.energy_budget,
        budget=args.budget,
        weight=args.weight,
        slack=args.slack,
    )


def describe(figures: dict) -> str:
    return (
        f"makespan {figures['makespan_seconds']:,.1f} s, energy {figures['energy_joules']:,.1f} J "
        f"(busy {figures['busy_energy_joules']:,.1f} J, idle {figures['idle_energy_joules']:,.1f} J), "
        f"cost {figures['cost']:,.4f}, {figures['machines_used']} machine(s) used"
    )


def cmd_schedule(args) -> int:
    from allocate.io import write_json
    from allocate.scheduling.schedule import schedule_to_json
    from allocate.scheduling.schedulers import run

    if args.algorithm == "policy":  # the learned policy (pipelines/policy_commands.py, docs/policy.md)
        from pipelines.policy_commands import policy_result

        result = policy_result(load_problem(args.workflow, args.platform), args.policy, args.weight)
    else:
        options = options_from_args(args)  # checks the options before any file is read
        result = run(load_problem(args.workflow, args.platform), options)
    figures = result.simulation.figures()
    write_json(schedule_to_json(result.schedule, figures), args.out)
    print(
        f"wrote {args.out}: {args.algorithm} on {len(result.schedule.assignments)} tasks, {describe(figures)}, "
        f"scheduled in {result.schedule.seconds_to_schedule:.3f} s"
    )
    for note in result.notes:
        print(f"note: {note}")
    return 0


def cmd_simulate(args) -> int:
    from allocate.io import read_json
    from allocate.scheduling.schedule import schedule_from_json
    from allocate.scheduling.simulator import simulate

    problem = load_problem(args.workflow, args.platform)
    try:
        schedule = schedule_from_json(read_json(args.schedule, "--schedule"))
    except ValueError as exc:
        raise ValueError(f"{args.schedule}: {exc}") from exc
    simulation = simulate(problem, schedule)
    print(f"{schedule.algorithm} schedule of {problem.name}: {describe(simulation.figures())}")
    for problem_line in simulation.problems:
        print(f"invalid: {args.schedule}: {problem_line}", file=sys.stderr)
    if simulation.problems:
        print(
            f"{args.schedule}: {len(simulation.problems)} problem(s); the schedule cannot run",
            file=sys.stderr,
        )
        return 1
    print("valid: precedence with transfers, cores and devices per machine, runtimes")
    return 0


def cmd_evaluate_scheduling(args) -> int:
    from allocate.scheduling.evaluate import EvaluationOptions, evaluate_cases, gather_cases, write_outputs

    options = EvaluationOptions(
        workloads=tuple(w.strip() for w in (args.workloads or "").split(",") if w.strip()),
        repetitions=args.repetitions,
        tasks=args.tasks,
        seed=args.seed,
    )
    online = None
    stray = [
        f"--{n.replace('_', '-')}" for n in ("policy", "traced_noise", "ray_address") if getattr(args, n)
    ]
    if stray and not args.online:
        raise ValueError(f"{', '.join(stray)}: for the online runs only; add --online")
    if args.online:  # checked before the offline sweep: no torch, or bad online options, stop at once
        from pipelines.policy_commands import evaluation_options_from_args, require_policy_extra

        require_policy_extra()
        online = evaluation_options_from_args(args)
    cases = gather_cases(options, dataset=args.dataset, wfformat=args.wfformat, platform_path=args.platform)
    from tqdm import tqdm

    results = evaluate_cases(tqdm(cases, desc="workflows", unit="workflow", file=sys.stderr))
    written = write_outputs(results, Path(args.out))
    print(written["summary_text"])
    print(f"wrote {', '.join(str(p) for k, p in written.items() if k != 'summary_text')}")
    if online is not None:
        _evaluate_online(args, cases, online)
    return 0


ONLINE_OUTPUTS = {
    "results": "online_results.parquet",
    "summary": "online_summary.json",
    "plot": "online_pareto.png",
    "curve": "policy_learning_curve.png",
}


def _evaluate_online(args, cases, options) -> None:
    """--online: the learned policy and the online baselines on the same workflows under runtime noise
    (pipelines/policy_commands.py, docs/policy.md), written beside the offline outputs."""
    from pipelines.policy_commands import evaluate_policy_on

    if args.workloads and args.seed < 1000:
        print(
            "note: --online on generated workloads with --seed below 1000: the shipped policy trained on "
            "seeds 0-5 of fft,strassen,random,montage,epigenomics; --seed 1000 gives workflows it never saw",
            file=sys.stderr,
        )
    set_name = "trace dataset" if args.dataset else "wfformat runs" if args.wfformat else "generated"
    evaluate_policy_on(cases, set_name, args.policy, options, Path(args.out), ONLINE_OUTPUTS)


def add_scheduling_commands(sub) -> None:
    from allocate.scheduling import ALGORITHMS
    from pipelines.policy_commands import add_online_arguments

    s = sub.add_parser("schedule", help="schedule a workflow (WF.json) on a platform (P.json)")
    s.add_argument("--workflow", required=True, help="WF.json")
    s.add_argument("--platform", required=True, help="P.json")
    s.add_argument("--algorithm", choices=(*ALGORITHMS, "policy"), default="heft")
    s.add_argument("--policy", help="policy: a train-policy directory (default: the shipped policy)")
    s.add_argument(
        "--energy-budget",
        type=float,
        help="joules for one run, >= 0 (required by energy-budget; no default)",
    )
    s.add_argument(
        "--budget",
        type=float,
        help="money for one run, >= 0 (required by budget-heft; no default)",
    )
    s.add_argument(
        "--weight", type=float, default=0.5, help="weighted, policy: 1 = makespan only, 0 = energy only"
    )
    s.add_argument("--slack", type=float, default=0.0, help="merge: makespan allowed over HEFT's, 0.05 = 5%%")
    s.add_argument("--out", required=True, help="S.json to write")
    s.set_defaults(run=cmd_schedule)

    m = sub.add_parser("simulate", help="replay a schedule: validity, makespan, energy, cost")
    m.add_argument("--workflow", required=True, help="WF.json")
    m.add_argument("--platform", required=True, help="P.json")
    m.add_argument("--schedule", required=True, help="S.json")
    m.set_defaults(run=cmd_simulate)

    e = sub.add_parser(
        "evaluate-scheduling", help="every scheduler on workflows: Pareto fronts, energy saved"
    )
    source = e.add_mutually_exclusive_group(required=True)
    source.add_argument(
        "--dataset", help="trace dataset: each workflow, predictions where a task did not run"
    )
    source.add_argument(
        "--wfformat", nargs="+", help="WfFormat files (WfInstances runs); one source is required"
    )
    source.add_argument(
        "--workloads",
        help="comma list of fft,strassen,random and WfCommons recipes (montage,epigenomics,...)",
    )
    e.add_argument("--platform", help="P.json (default: the dataset's machines, else the reference platform)")
    e.add_argument("--repetitions", type=int, default=3, help="generated workflows per workload")
    e.add_argument("--tasks", type=int, default=100, help="tasks per generated workflow (random, recipes)")
    e.add_argument("--seed", type=int, default=0)
    e.add_argument("--out", required=True, help="folder for results.parquet, summary.json and PNG plots")
    online = e.add_argument_group(
        "online", "--online: the learned policy and the online baselines under runtime noise"
    )
    online.add_argument(
        "--online",
        action="store_true",
        help="also run the policy and the online baselines (needs jouletrace[policy]); writes online_*",
    )
    add_online_arguments(online)
    e.set_defaults(run=cmd_evaluate_scheduling)
