"""The learned scheduling policy in Dagster: one asset trains it (or loads the shipped one), one evaluates
it against the online baselines on the trace dataset's workflows; learning curve and ratios as metadata.

Both run on the reference platform (the policy is tied to a platform's shape): the dataset's workflows
are placed on it as `jouletrace workflow --platform` would, with the runtimes and energies they measured
scaled to its machines (docs/scheduling.md).
"""

import importlib.util
import json
import tempfile
from pathlib import Path

import dagster as dg
import pyarrow as pa

from pipelines.metadata import png_markdown
from pipelines.traces.assets import TraceDatasetResource


class LearnedPolicyConfig(dg.Config):
    """``train: false`` (the default) loads ``policy_dir`` (empty: the policy shipped in
    allocate/policy/default); ``train: true`` trains one with these options and writes it there."""

    train: bool = False
    policy_dir: str = ""
    workloads: list[str] = ["fft", "strassen", "random", "montage", "epigenomics"]
    workflows_per_workload: int = 6
    max_tasks: int = 100
    minutes: float = 10.0
    timesteps: int = 0  # > 0: a step budget instead of minutes
    workers: int = 1
    seed: int = 0
    ray_address: str = ""  # rollouts in Ray actors on this cluster ("auto"); empty: this machine, no Ray
    envs_per_worker: int = 1  # with ray_address: environments per Ray actor


def _folder(config: LearnedPolicyConfig) -> Path:
    from allocate.policy.store import DEFAULT_POLICY

    return Path(config.policy_dir) if config.policy_dir else DEFAULT_POLICY


@dg.asset(group_name="policy", kinds={"pytorch"})
def learned_policy(context: dg.AssetExecutionContext, config: LearnedPolicyConfig) -> dg.Output:
    """The policy's learning curve (one row per training episode); the model card in metadata."""
    from allocate.policy.plots import learning_curve_png
    from allocate.policy.store import load_policy
    from allocate.policy.training import TrainingOptions
    from allocate.scheduling.workloads import reference_platform
    from pipelines.policy_commands import held_out_problems, train_and_save

    platform, folder = reference_platform(), _folder(config)
    if config.train:
        options = TrainingOptions(
            workloads=tuple(config.workloads),
            workflows_per_workload=config.workflows_per_workload,
            max_tasks=config.max_tasks,
            minutes=config.minutes,
            timesteps=config.timesteps or None,
            workers=config.workers,
            seed=config.seed,
            ray_address=config.ray_address or None,
            envs_per_worker=config.envs_per_worker,
        )
        context.log.info(
            f"training on {options.workloads} for {options.timesteps or options.minutes} (steps or min)"
        )
        train_and_save(options, platform, held_out_problems(platform, options.seed), folder)
    load_policy(folder, platform)  # refuses a folder for another platform shape or feature set
    card = json.loads((folder / "model_card.json").read_text())
    curve = [c for c in card.get("curve", []) if "reward" in c]
    with tempfile.TemporaryDirectory() as tmp:
        png = learning_curve_png(card.get("curve", []), Path(tmp) / "curve.png").read_bytes()
    return dg.Output(
        pa.Table.from_pylist(
            curve or [{"timesteps": 0, "minutes": 0.0, "reward": float("nan"), "weight": 0.0}]
        ),
        metadata={
            "policy_dir": str(folder),
            "trained_here": config.train,
            "timesteps": card.get("timesteps"),
            "episodes": card.get("episodes"),
            "training_minutes": card.get("training_minutes"),
            "held_out_makespan_vs_dynamic_heft_at_w1": card.get("held_out_makespan_vs_dynamic_heft_at_w1"),
            "library_versions": card.get("library_versions"),
            "learning_curve": png_markdown(png, "learning curve", "Training reward and held-out ratio"),
        },
    )


class PolicyEvaluationConfig(dg.Config):
    """The noise draws, weights and runtime noise of the evaluation (``jouletrace evaluate-policy`` and
    benchmarks/policy.py run larger sweeps)."""

    policy_dir: str = ""
    seeds: int = 1
    weights: list[float] = [0.5, 1.0]
    noise_spread: float = 0.3
    ray_address: str = ""  # the sweep as Ray tasks on this cluster ("auto"); empty: in this process


@dg.asset(group_name="policy", kinds={"parquet"}, deps=["energy_traces", "learned_policy"])
def policy_evaluation(
    context: dg.AssetExecutionContext, config: PolicyEvaluationConfig, dataset: TraceDatasetResource
) -> dg.Output:
    """The policy and the online baselines on each traced workflow under runtime noise: one row per run;
    geometric-mean makespan and energy against dynamic HEFT in metadata."""
    from allocate.policy.evaluate import EvaluationCase, PolicyEvaluationOptions, evaluate, summary
    from allocate.policy.plots import tradeoffs_png
    from allocate.policy.store import DEFAULT_POLICY, load_policy
    from allocate.scheduling.evaluate import dataset_cases
    from allocate.scheduling.problem import build_problem
    from allocate.scheduling.workloads import reference_platform

    platform = reference_platform()
    network = load_policy(Path(config.policy_dir) if config.policy_dir else DEFAULT_POLICY, platform)
    cases, left_out = [], []
    for case in dataset_cases(dataset.root, platform):
        try:
            cases.append(EvaluationCase("trace dataset", case.family, build_problem(case.workflow, platform)))
        except ValueError as exc:  # e.g. an FPGA task: the reference platform has no FPGA
            left_out.append(f"{case.workflow.name}: {exc}")
    for line in left_out:
        context.log.info(f"left out {line}")
    options = PolicyEvaluationOptions(
        tuple(config.weights), config.seeds, config.noise_spread, ray_address=config.ray_address or None
    )
    context.log.info(f"evaluating the policy on {len(cases)} traced workflows, {config.seeds} noise draw(s)")
    results = evaluate(network, cases, options)
    table = summary(results, options.weights)
    policy = table[table["scheduler"] == "policy"]
    with tempfile.TemporaryDirectory() as tmp:
        png = tradeoffs_png(table, Path(tmp) / "tradeoffs.png").read_bytes()
    return dg.Output(
        pa.Table.from_pandas(results, preserve_index=False),
        metadata={
            "dagster/row_count": len(results),
            "workflows": len(cases),
            "left_out": dg.MetadataValue.md("\n".join(f"- {line}" for line in left_out) or "none"),
            "summary": dg.MetadataValue.md(table.to_markdown(index=False, floatfmt=".3f")),
            "tradeoffs": png_markdown(png, "trade-offs", "Makespan and energy against dynamic HEFT"),
            "policy_makespan_vs_dynamic_heft": {
                str(w): float(v)
                for w, v in zip(policy["weight"], policy["makespan_vs_dynamic_heft"], strict=True)
            },
            "policy_energy_vs_dynamic_heft": {
                str(w): float(v)
                for w, v in zip(policy["weight"], policy["energy_vs_dynamic_heft"], strict=True)
            },
        },
    )


# Only with the optional extra installed (pip install 'jouletrace[policy]'): without torch they could not run.
policy_assets = [learned_policy, policy_evaluation] if importlib.util.find_spec("torch") else []
