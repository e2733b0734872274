"""`jouletrace train-policy`, `evaluate-policy` and `schedule --algorithm policy` (docs/policy.md).

torch, stable-baselines3, sb3-contrib and gymnasium are the optional extra `policy`; without them these
commands say how to install it.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

MISSING = "the learned policy needs torch, stable-baselines3, sb3-contrib and gymnasium: pip install 'jouletrace[policy]'"


def require_policy_extra() -> None:
    try:
        import gymnasium  # noqa: F401
        import sb3_contrib  # noqa: F401
        import torch  # noqa: F401
    except ImportError:
        raise ValueError(MISSING) from None


def _platform(path: str | None):
    from allocate.io import read_json
    from allocate.scheduling.platform import platform_from_json
    from allocate.scheduling.workloads import reference_platform

    if not path:
        return reference_platform()
    try:
        return platform_from_json(read_json(path, "--platform"))
    except ValueError as exc:
        raise ValueError(f"{path}: {exc}") from exc


def training_problems(options, platform, dataset: str | None, files=()) -> tuple[list, list[str]]:
    """The training workflows as problems on ``platform`` (generated, plus a dataset's traced runs and
    WF.json files), and notes on what was left out. A workflow with a task no machine can run stops here,
    before training."""
    import numpy as np

    from allocate.io import read_json, workflow_from_json
    from allocate.scheduling.evaluate import dataset_cases
    from allocate.scheduling.problem import build_problem
    from allocate.scheduling.workloads import generated_workflow

    rng = np.random.default_rng(options.seed)
    workflows = []
    for family in options.workloads:
        for r in range(options.workflows_per_workload):
            size = int(rng.integers(options.min_tasks, options.max_tasks + 1))
            workflows.append(generated_workflow(family, size, options.seed + r))
    if dataset:
        workflows += [case.workflow for case in dataset_cases(dataset, platform)]
    for path in files or ():
        try:
            workflows.append(workflow_from_json(read_json(path, "--workflows")))
        except (KeyError, TypeError) as exc:
            raise ValueError(f"{path}: not a WF.json ({exc})") from exc
    problems, notes = [], []
    for workflow in workflows:
        try:
            problem = build_problem(workflow, platform)
        except ValueError as exc:
            raise ValueError(f"training set: {exc}") from exc
        if len(problem) > options.max_tasks:
            notes.append(f"{problem.name}: {len(problem)} tasks, more than --max-tasks; left out")
            continue
        problems.append(problem)
    if not problems:
        raise ValueError("training set: no workflow within --max-tasks; raise it or change --workloads")
    return problems, notes


def held_out_problems(platform, seed: int) -> list:
    """Held-out workflows for the progress bar: a larger random DAG and an FFT with seeds not trained on."""
    from allocate.scheduling.problem import build_problem
    from allocate.scheduling.workloads import generated_workflow

    return [
        build_problem(generated_workflow(f, n, 10_000 + seed), platform)
        for f, n in (("random", 150), ("fft", 64))
    ]


# TrainingOptions field <- command-line option
_TRAINING_ARGUMENTS = {
    "workflows_per_workload": "workflows_per_workload",
    "min_tasks": "min_tasks",
    "max_tasks": "max_tasks",
    "minutes": "minutes",
    "timesteps": "timesteps",
    "workers": "workers",
    "seed": "seed",
    "noise_spread": "noise",
    "ray_address": "ray_address",
    "envs_per_worker": "envs_per_worker",
}


def traced_factors(args) -> tuple[float, ...]:
    """--traced-noise DATASET: runtime factors measured in a trace (allocate/policy/traced.py)."""
    if not args.traced_noise:
        return ()
    from allocate.policy.traced import traced_runtime_factors

    return traced_runtime_factors(args.traced_noise)


def training_options_from_args(args):
    from allocate.policy.training import TRAINING_WORKLOADS, TrainingOptions

    workloads = tuple(w.strip() for w in (args.workloads or "").split(",") if w.strip()) or TRAINING_WORKLOADS
    chosen = {f: getattr(args, a) for f, a in _TRAINING_ARGUMENTS.items()}
    return TrainingOptions(workloads=workloads, traced_factors=traced_factors(args), **chosen)


def train_and_save(options, platform, held_out, out: Path, problems=None, report=None, sources=None) -> dict:
    """Train (on ``problems``, default: the generated training set), save the policy, its model card and
    learning curve in ``out``; the card. Shared by train-policy and the Dagster asset."""
    from allocate.policy.evaluate import held_out_ratio
    from allocate.policy.plots import learning_curve_png
    from allocate.policy.store import library_versions, save_policy
    from allocate.policy.training import train

    if problems is None:
        problems, _ = training_problems(options, platform, None)
    started = time.perf_counter()
    network, record = train(
        problems,
        options,
        lambda net: held_out_ratio(net, held_out, options.noise),
        report or (lambda **_: None),
    )
    card = {
        "what": "graph policy for online workflow scheduling, trained with MaskablePPO (docs/policy.md)",
        "platform": platform.name,
        "seed": options.seed,
        "options": options.card(),
        "training_set": [{"workflow": p.name, "tasks": len(p)} for p in problems],
        "training_set_sources": sources or {},
        "held_out": [{"workflow": p.name, "tasks": len(p)} for p in held_out],
        "held_out_makespan_vs_dynamic_heft_at_w1": held_out_ratio(network, held_out, options.noise),
        "library_versions": library_versions(),
        **record,
        "wall_minutes": (time.perf_counter() - started) / 60.0,
    }
    save_policy(network, platform, card, out)
    learning_curve_png(record["curve"], Path(out) / "learning_curve.png")
    return card


def cmd_train_policy(args) -> int:
    require_policy_extra()
    options = training_options_from_args(args)
    platform = _platform(args.platform)
    problems, notes = training_problems(options, platform, args.dataset, args.workflows)
    for note in notes:
        print(f"note: {note}", file=sys.stderr)
    from tqdm import tqdm

    total = options.timesteps or int(options.minutes * 60)
    bar = tqdm(total=total, desc="train-policy", unit="step" if options.timesteps else "s", file=sys.stderr)

    def report(seconds, timesteps, episodes, reward, held_out_ratio):
        postfix = {
            "episodes": episodes,
            "reward": f"{reward:.3f}",
            "held_out_vs_dynamic_heft": f"{held_out_ratio:.3f}",
        }
        bar.set_postfix(postfix, refresh=False)
        bar.update(
            min(timesteps if options.timesteps else int(seconds), total) - bar.n
        )  # redraws 10/s at most

    held_out = held_out_problems(platform, options.seed)
    sources = {"dataset": args.dataset, "files": args.workflows, "platform": args.platform}
    card = train_and_save(options, platform, held_out, Path(args.out), problems, report, sources)
    bar.close()
    print(
        f"wrote {args.out}: {card['episodes']} episodes, {card['timesteps']} steps in "
        f"{card['training_minutes']:.1f} min on {len(problems)} workflows; held-out makespan "
        f"{card['held_out_makespan_vs_dynamic_heft_at_w1']:.3f}x dynamic HEFT's at w=1 ({len(held_out)} "
        "workflows, one noise draw)"
    )
    return 0


def policy_result(problem, policy_dir: str | None, weight: float):
    """`schedule --algorithm policy`: the policy's plan on expected runtimes (default: the shipped one)."""
    require_policy_extra()
    from allocate.policy.scheduler import schedule_with_policy
    from allocate.policy.store import DEFAULT_POLICY, load_policy

    if not 0.0 <= weight <= 1.0:
        raise ValueError(f"--weight must be in [0, 1], not {weight}")
    network = load_policy(Path(policy_dir) if policy_dir else DEFAULT_POLICY, problem.platform)
    return schedule_with_policy(network, problem, weight)


def evaluation_options_from_args(args):
    """PolicyEvaluationOptions from evaluate-policy's (or evaluate-scheduling --online's) options."""
    from allocate.policy.evaluate import PolicyEvaluationOptions

    try:
        weights = tuple(float(w) for w in args.weights.split(","))
    except ValueError:
        raise ValueError(
            f"--weights: give numbers in [0, 1] separated by commas, not {args.weights!r}"
        ) from None
    return PolicyEvaluationOptions(
        weights, args.seeds, args.noise, traced_factors=traced_factors(args), ray_address=args.ray_address
    )


def evaluate_policy_on(cases, set_name: str, policy_dir: str | None, options, out: Path, names: dict):
    """The policy (default: the shipped one) and the online baselines on evaluate-scheduling's ``cases``
    (allocate.scheduling.evaluate.Case); writes the runs, the summary and the trade-off plot in ``out``
    under ``names`` (keys results, summary, plot, and curve: the policy's learning curve from its model
    card) and returns the summary. Shared by evaluate-policy and
    evaluate-scheduling --online."""
    require_policy_extra()
    from tqdm import tqdm

    from allocate.policy.evaluate import EvaluationCase, evaluate, summary
    from allocate.policy.plots import learning_curve_png, tradeoffs_png
    from allocate.policy.store import DEFAULT_POLICY, load_policy
    from allocate.scheduling.evaluate import family_of
    from allocate.scheduling.problem import build_problem

    problems = [
        EvaluationCase(
            set_name, c.family or family_of(c.workflow.name), build_problem(c.workflow, c.platform)
        )
        for c in cases
    ]
    folder = Path(policy_dir) if policy_dir else DEFAULT_POLICY
    network = load_policy(folder, problems[0].problem.platform)
    bars = []  # drawn from the first finished part: an error before it (e.g. a Ray address) stays one line

    def progress(done: int, total: int) -> None:
        if not bars:
            bars.append(
                tqdm(
                    total=total, desc=f"online runs, {len(problems)} workflows", unit="part", file=sys.stderr
                )
            )
        bars[0].update(done - bars[0].n)

    results = evaluate(network, problems, options, progress)
    for bar in bars:
        bar.close()
    table = summary(results, options.weights)
    out.mkdir(parents=True, exist_ok=True)
    results.to_parquet(out / names["results"], index=False)
    (out / names["summary"]).write_text(json.dumps(table.to_dict(orient="records"), indent=1))
    written = [out / names["results"], out / names["summary"], tradeoffs_png(table, out / names["plot"])]
    card = folder / "model_card.json"
    if "curve" in names and card.is_file():  # the policy's own learning curve, beside its evaluation
        curve = json.loads(card.read_text()).get("curve", [])
        written.append(learning_curve_png(curve, out / names["curve"]))
    print(table.to_string(index=False, float_format=lambda x: f"{x:.3f}"))
    print(f"wrote {', '.join(str(path) for path in written)}")
    return table


def cmd_evaluate_policy(args) -> int:
    require_policy_extra()
    from allocate.scheduling.evaluate import EvaluationOptions, gather_cases

    options = evaluation_options_from_args(args)
    workloads = tuple(w.strip() for w in (args.workloads or "").split(",") if w.strip())
    cases = gather_cases(
        EvaluationOptions(workloads, args.repetitions, args.tasks, args.seed),
        dataset=args.dataset,
        wfformat=args.wfformat,
        platform_path=args.platform,
    )
    names = {"results": "policy_results.parquet", "summary": "policy_summary.json", "plot": "tradeoffs.png"}
    evaluate_policy_on(cases, args.set_name, args.policy, options, Path(args.out), names)
    return 0


def _add_ray_address(parser, what: str) -> None:
    parser.add_argument(
        "--ray-address",
        metavar="ADDRESS",
        help=f"{what} on this Ray cluster (host:port, ray://host:port, or auto); default: this machine, no Ray",
    )


def _add_noise_arguments(parser) -> None:
    parser.add_argument(
        "--noise", type=float, default=0.3, help="runtime noise: actual = expected x U(1-n, 1+n)"
    )
    parser.add_argument(
        "--traced-noise", metavar="DATASET", help="draw runtime factors from a trace instead of --noise"
    )


def add_online_arguments(parser) -> None:
    """The options evaluation_options_from_args reads, for evaluate-policy and evaluate-scheduling --online."""
    parser.add_argument("--policy", help="policy directory (default: the shipped policy)")
    parser.add_argument("--seeds", type=int, default=3, help="noise draws per workflow")
    _add_noise_arguments(parser)
    parser.add_argument("--weights", default="0,0.5,1", help="weights w of the policy and the weighted rule")
    _add_ray_address(parser, "the online sweep as Ray tasks")


def add_policy_commands(sub) -> None:
    t = sub.add_parser(
        "train-policy", help="train the learned scheduling policy (MaskablePPO, graph network)"
    )
    t.add_argument("--platform", help="P.json (default: the reference platform)")
    t.add_argument(
        "--workloads",
        help="comma list of generated workloads (default: fft,strassen,random,montage,epigenomics)",
    )
    t.add_argument("--dataset", help="trace dataset whose workflows join the training set")
    t.add_argument(
        "--workflows", nargs="+", help="WF.json files (e.g. from jouletrace workflow) that join it"
    )
    t.add_argument("--workflows-per-workload", type=int, default=6)
    t.add_argument("--min-tasks", type=int, default=20)
    t.add_argument("--max-tasks", type=int, default=100, help="larger training workflows are left out")
    t.add_argument("--minutes", type=float, default=10.0, help="training time budget")
    t.add_argument("--timesteps", type=int, help="a step budget instead of --minutes")
    t.add_argument("--workers", type=int, default=1, help="rollout processes (SubprocVecEnv), or Ray actors")
    _add_ray_address(t, "rollouts in Ray actors")
    t.add_argument(
        "--envs-per-worker", type=int, default=1, help="with --ray-address: environments per actor"
    )
    _add_noise_arguments(t)
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--out", required=True, help="policy directory to write")
    t.set_defaults(run=cmd_train_policy)

    e = sub.add_parser("evaluate-policy", help="the policy against online baselines under runtime noise")
    source = e.add_mutually_exclusive_group(required=True)
    source.add_argument("--dataset", help="trace dataset")
    source.add_argument("--wfformat", nargs="+", help="WfFormat files")
    source.add_argument("--workloads", help="comma list of generated workloads")
    e.add_argument("--platform", help="P.json (default: the dataset's machines, else the reference platform)")
    e.add_argument("--repetitions", type=int, default=2)
    e.add_argument("--tasks", type=int, default=100)
    e.add_argument("--seed", type=int, default=1000, help="workflow seed (training uses 0..)")
    add_online_arguments(e)
    e.add_argument("--set-name", default="evaluation")
    e.add_argument("--out", required=True, help="folder for policy_results.parquet and policy_summary.json")
    e.set_defaults(run=cmd_evaluate_policy)
