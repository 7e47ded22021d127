"""`aik train`: train, evaluate, gate and publish the model (notebook 3)."""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING

from aik import releases as R
from aik.context import Context
from aik.errors import AikError
from aik.settings import positive_int

if TYPE_CHECKING:
    from aik.train.workflow import TrainResult


def _fraction(text: str) -> float:
    value = float(text)
    if not 0.0 < value < 1.0:
        raise argparse.ArgumentTypeError(f"must be between 0 and 1, got {value}")
    return value


def register(sub: argparse._SubParsersAction) -> None:
    """Add the subcommand."""
    from aik.train.families import FAMILIES
    from aik.train.gates import GateLimits
    from aik.train.presets import PRESETS

    limits = GateLimits()
    p = sub.add_parser(
        "train",
        help="train, evaluate, gate and publish the model (notebook 3)",
        description="Train XGBoost on the train split with early stopping on the valid split (locally, or "
        "as a SageMaker job with --sagemaker), evaluate it on the test split against logistic regression, "
        "an MLP and, on synthetic data, the ground truth; write metrics.json and PNG plots; publish it to "
        "/aik/xgboost/path only if every gate passes (otherwise exit 1 and leave the previous model).",
    )
    model = p.add_argument_group("model")
    model.add_argument(
        "--model",
        dest="family",
        choices=FAMILIES,
        default="xgboost",
        help="model family: xgboost (default; the one the filtering server serves), or a PyTorch family "
        "on the CPU (the neural extra): logreg (logistic regression), fm (factorization machine), mlp "
        "(embedding-MLP), wide-deep; these are evaluated and gated the same way but stay candidates "
        "(--set NAME=VALUE sets their hyperparameters, see docs/training.md)",
    )
    model.add_argument(
        "--preset",
        choices=sorted(PRESETS),
        default=None,
        help="hyperparameter preset: "
        + "; ".join(f"{name}: {preset.description}" for name, preset in PRESETS.items())
        + " (default: default locally, numeric with --sagemaker)",
    )
    model.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="override an xgboost parameter or num_round, early_stopping_rounds, refit, unseen_fraction "
        "(repeatable; VALUE none removes a parameter); with a PyTorch family one of its hyperparameters "
        "(embedding_dim, hidden, lr, l2, max_epochs, patience, crosses, ...)",
    )
    model.add_argument(
        "--num-round", type=positive_int, help="boosting rounds (upper bound with early stopping)"
    )
    model.add_argument("--max-depth", type=int, help="tree depth")
    model.add_argument("--eta", type=float, help="learning rate")
    model.add_argument("--early-stopping-rounds", type=positive_int, help="patience on the valid split")
    model.add_argument("--seed", type=int, default=0, help="seed of sampling and training (default 0)")
    model.add_argument(
        "--threads", type=positive_int, default=None, help="xgboost threads (default: all cores)"
    )
    model.add_argument(
        "--model-file",
        "--model-uri",
        dest="model_uri",
        metavar="URI",
        help="evaluate, gate and publish this model file (of the --model family; for xgboost also a "
        "SageMaker job's model.tar.gz) instead of training one",
    )
    data = p.add_argument_group("data")
    data.add_argument(
        "--use-case",
        choices=("bid-filtering", "ctr"),
        default="bid-filtering",
        help="what the labels mean (the truth model used for the oracle; default bid-filtering)",
    )
    data.add_argument(
        "--max-rows",
        type=positive_int,
        default=None,
        help="read at most N rows per split (a seeded uniform sample when larger); default: all, refused "
        "when they would not fit in memory",
    )
    report = p.add_argument_group("evaluation and gates")
    report.add_argument("--no-baselines", dest="baselines", action="store_false", help="skip the baselines")
    report.add_argument(
        "--baseline-max-rows",
        type=positive_int,
        default=200_000,
        help="train rows the baselines use (a sample above it; default 200000)",
    )
    report.add_argument(
        "--target-recall",
        type=_fraction,
        default=0.95,
        help="the chosen lower threshold keeps this share of positives on the valid split (default 0.95)",
    )
    report.add_argument(
        "--min-auc", type=float, default=limits.min_auc, help=f"AUC floor (default {limits.min_auc})"
    )
    report.add_argument(
        "--max-mean-error",
        type=float,
        default=limits.max_mean_error,
        help="largest |mean prediction - base rate| / base rate (default "
        f"{limits.max_mean_error}, widened to 4 standard errors on small splits)",
    )
    report.add_argument(
        "--min-oracle-ratio",
        type=_fraction,
        default=None,
        help="AUC / oracle AUC floor on synthetic data (off)",
    )
    report.add_argument(
        "--no-publish", dest="publish", action="store_false", help="evaluate and report only; never publish"
    )
    cloud = p.add_argument_group("SageMaker (aws backend)")
    cloud.add_argument("--sagemaker", action="store_true", help="train as a SageMaker job (built-in XGBoost)")
    cloud.add_argument("--role", default=None, help="execution role ARN or name (default: the caller's role)")
    cloud.add_argument(
        "--instance-type", default="ml.m5.2xlarge", help="training instance (default ml.m5.2xlarge)"
    )
    cloud.add_argument("--instance-count", type=positive_int, default=1, help="instances (default 1)")
    cloud.add_argument("--volume-size", type=positive_int, default=30, help="EBS volume in GB (default 30)")
    cloud.add_argument(
        "--max-run", type=positive_int, default=5400, help="maximum run time in s (default 5400)"
    )
    cloud.add_argument("--spot", action="store_true", help="managed spot training with checkpoints in S3")
    cloud.add_argument(
        "--max-wait",
        type=positive_int,
        default=7200,
        help="with --spot: max wait + run time in s (default 7200)",
    )
    p.set_defaults(func=run)


def _overrides(args: argparse.Namespace) -> dict[str, object]:
    from aik.train.presets import parse_overrides

    overrides = parse_overrides(args.overrides)
    for name in ("num_round", "max_depth", "eta", "early_stopping_rounds"):
        value = getattr(args, name)
        if value is not None:
            if args.family != "xgboost":
                raise AikError(f"--{name.replace('_', '-')} is xgboost's: --model {args.family} takes --set")
            overrides[name] = value
    return overrides


def run(args: argparse.Namespace, ctx: Context) -> int:
    """Run notebook 3 and print where everything went (name=value lines)."""
    from aik.train.gates import GateLimits
    from aik.train.sagemaker_job import SageMakerJob
    from aik.train.workflow import TrainOptions, train_and_publish

    if args.sagemaker and ctx.settings.backend != "aws":
        raise AikError("--sagemaker needs the aws backend (--backend aws): the job reads the splits from S3")
    if args.sagemaker and args.model_uri:
        raise AikError("--model-file evaluates an existing model: it cannot be combined with --sagemaker")
    if args.family != "xgboost" and (args.preset or args.sagemaker):
        raise AikError(
            f"--preset and --sagemaker are xgboost's: --model {args.family} takes --set NAME=VALUE"
        )
    job = (
        SageMakerJob(
            role=args.role,
            instance_type=args.instance_type,
            instance_count=args.instance_count,
            volume_size_gb=args.volume_size,
            max_run_s=args.max_run,
            spot=args.spot,
            max_wait_s=args.max_wait,
        )
        if args.sagemaker
        else None
    )
    options = TrainOptions(
        family=args.family,
        preset=args.preset,
        overrides=_overrides(args),
        use_case=args.use_case,
        seed=args.seed,
        max_rows=args.max_rows,
        publish=args.publish,
        baselines=args.baselines,
        baseline_max_rows=args.baseline_max_rows,
        target_recall=args.target_recall,
        limits=GateLimits(
            min_auc=args.min_auc, max_mean_error=args.max_mean_error, min_oracle_ratio=args.min_oracle_ratio
        ),
        model_uri=args.model_uri,
        sagemaker=job,
        nthread=args.threads,
    )
    result = train_and_publish(ctx, options)
    m = result.metrics
    lines = {
        "release": result.release.id,
        "model": _published_model(result)
        if result.published
        else f"{result.candidate_uri} (not published: {m.not_published_because or '--no-publish'})",
        "metrics": result.published_reports.get("metrics.json") or result.candidate_reports["metrics.json"],
        "auc": m.test.auc,
        "oracle_auc": m.oracle_auc,
        "oracle_ratio": m.oracle_ratio,
        "logloss": m.test.logloss,
        "base_rate": m.test.base_rate,
        "mean_prediction": m.test.mean_prediction,
    }
    for name, baseline in m.baselines.items():
        lines[f"baseline.{name}.auc"] = baseline.auc
    for name, value in lines.items():
        if value is not None:
            print(f"{name}={value}")
    for warning in result.warnings:  # after the release was written and switched: still a success
        print(f"aik train: warning: {warning}", file=sys.stderr)
    return 0


def _published_model(result: TrainResult) -> str:
    """Where the live model is: the booster mirror at `/aik/xgboost/path`, or a neural release's ONNX."""
    release = result.release
    if release.family == R.BOOSTER_FAMILY:
        return result.model_uri
    return release.file_uri(release.served_role)
