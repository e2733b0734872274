"""`jouletrace train` and `jouletrace predict` (docs/models.md)."""

from __future__ import annotations

import sys

from models.options import MODEL_CHOICES, MODES, TrainOptions


def training_progress():
    """A progress bar on stderr that counts fits and shows what is being fitted."""
    from tqdm import tqdm

    # disable=None: a bar on a terminal only, so logs and error output hold no bar text.
    bar = tqdm(unit="fit", file=sys.stderr, desc="training", leave=False, disable=None)

    def step(message: str) -> None:
        bar.set_postfix_str(message[:60], refresh=False)
        bar.update()

    return bar, step


def options_from_args(args) -> TrainOptions:
    return TrainOptions(
        target=args.target,
        features=args.features,
        exclude=args.exclude,
        split=args.split,
        test_fraction=args.test_fraction,
        seed=args.seed,
        model=args.model,
        interval_level=args.interval,
        mode=args.mode,
        device_kind=args.device_kind,
    )


def _summary(run) -> str:
    m = run.metrics
    mape = "n/a" if m["mape"] is None else f"{m['mape']:.1%}"
    r2 = "n/a" if m["r2"] is None else f"{m['r2']:.3f}"
    lines = [
        f"trained {m['model']} on {m['n_train']} rows, scored on {m['n_test']} held-out rows (split {m['split']}):",
        f"  {'model ' + m['model']:<24} MAE {m['mae']:>12,.4g}  MAPE {mape:>8}  R2 {r2:>7}  "
        f"{m['interval_level']:.0%} interval coverage {m['interval_coverage']:.1%}",
    ]
    for name, b in m["baselines"].items():
        b_mape = "n/a" if b["mape"] is None else f"{b['mape']:.1%}"
        b_r2 = "n/a" if b["r2"] is None else f"{b['r2']:.3f}"
        lines.append(f"  {'baseline ' + name:<24} MAE {b['mae']:>12,.4g}  MAPE {b_mape:>8}  R2 {b_r2:>7}")
    verdict = "beats every baseline" if m["beats_every_baseline"] else "does NOT beat every baseline"
    lines.append(f"  the model {verdict} on MAE")
    for name, result in m.get("evaluation", {}).items():
        if "skipped" not in result:
            lines.append(
                f"  {name:<28} MAE {result['mae']:>12,.4g}  MAPE {result['mape']:>8.1%}  ({result['model']}; "
                f"best baseline MAE {min(b['mae'] for b in result['baselines'].values()):,.4g})"
            )
    if m.get("features_left_out"):
        lines.append("  not used as features: " + ", ".join(m["features_left_out"]))
    pictures = [str(p) for name, p in run.files.items() if str(p).endswith(".png")]
    lines.append(f"wrote {run.out_dir}: metrics.json, model_card.json, model.joblib, report.md")
    lines.append("plots: " + ", ".join(pictures))
    return "\n".join(lines)


def cmd_train(args) -> int:
    from models.api import train_dataset, train_table_file
    from models.errors import ModelInputError

    if bool(args.table) == bool(args.dataset):
        raise ModelInputError("give --table FILE or --dataset DATASET (one of them)")
    options = options_from_args(args)
    bar, step = training_progress()
    try:
        if args.table:
            run = train_table_file(args.table, options, args.out, progress=step)
        else:
            run = train_dataset(args.dataset, options, args.out, progress=step)
    finally:
        bar.close()
    print(_summary(run))
    return 0


def cmd_predict(args) -> int:
    from models.api import predict_dataset, predict_dataset_on_machines, predict_table_file, write_predictions
    from models.errors import ModelInputError

    if bool(args.table) == bool(args.dataset):
        raise ModelInputError("give --table FILE or --dataset DATASET (one of them)")
    if args.on_machines and not args.dataset:
        raise ModelInputError("--on-machines needs --dataset (its machines table)")
    if args.table:
        frame = predict_table_file(args.model, args.table)
    elif args.on_machines:
        frame = predict_dataset_on_machines(args.model, args.dataset)
    else:
        frame = predict_dataset(args.model, args.dataset)
    path = write_predictions(frame, args.out)
    predicted = [c for c in frame.columns if c.endswith("_predicted")]
    print(f"wrote {path}: {len(frame)} rows with {', '.join(predicted)} and its interval (_lower, _upper)")
    return 0


def add_model_commands(sub) -> None:
    t = sub.add_parser(
        "train", help="train a regressor on a table or a trace dataset; writes the model folder"
    )
    source = t.add_argument_group("what to learn from (one of)")
    source.add_argument(
        "--table", help="a CSV or Parquet table (any power or energy table); this or --dataset"
    )
    source.add_argument(
        "--dataset", help="a trace dataset folder: one row per task and device kind; this or --table"
    )
    t.add_argument(
        "--target",
        required=True,
        help="column to predict (dataset: energy_joules, avg_power_watts, runtime_seconds)",
    )
    t.add_argument("--features", default="auto", help="auto, or a comma list of columns")
    t.add_argument("--exclude", default="", help="comma list of columns auto must leave out")
    t.add_argument(
        "--split",
        help="random | group:COLUMN | time:COLUMN (the test part is the last fraction in time); "
        "default random on a table, group:workflow_uid on a dataset",
    )
    t.add_argument("--test-fraction", type=float, default=0.2)
    t.add_argument("--seed", type=int, default=0)
    t.add_argument(
        "--model", choices=MODEL_CHOICES, default="auto", help="auto: chosen by grouped cross-validation"
    )
    t.add_argument("--interval", type=float, default=0.9, help="coverage level of the prediction intervals")
    t.add_argument("--mode", choices=MODES, default="before-run", help="dataset: what the features may know")
    t.add_argument(
        "--device-kind",
        help="dataset: only rows of this device kind (cpu_package, dram, gpu, fpga; default: every kind)",
    )
    t.add_argument("--out", required=True, help="model folder to write (model, card, metrics.json, report)")
    t.set_defaults(run=cmd_train)

    p = sub.add_parser("predict", help="predict with a trained model folder, with interval columns")
    p.add_argument("--model", required=True, help="model folder written by `jouletrace train`")
    p.add_argument(
        "--table", help="a CSV or Parquet table holding the model's feature columns; this or --dataset"
    )
    p.add_argument("--dataset", help="a trace dataset (for a model trained with --dataset); this or --table")
    p.add_argument(
        "--on-machines",
        action="store_true",
        help="dataset: predict every task on every machine that has the devices it needs (cross-machine)",
    )
    p.add_argument("--out", required=True, help="predictions file (.parquet, or .csv)")
    p.set_defaults(run=cmd_predict)
