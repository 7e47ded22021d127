"""`aik backtest EXPERIMENTS.yaml`: train candidates side by side on the same splits and compare them."""

from __future__ import annotations

import argparse

from aik.context import Context
from aik.errors import AikError
from aik.settings import positive_int


def register(sub: argparse._SubParsersAction) -> None:
    """Add the subcommand."""
    p = sub.add_parser(
        "backtest",
        help="compare model candidates side by side on the same splits (MLflow-recorded)",
        description="Train every candidate of EXPERIMENTS.yaml (model family, hyperparameters, feature "
        "subset, training window) on the pipeline's splits, in parallel processes (or, with --backend aws "
        "--on sagemaker, as parallel SageMaker training jobs in the kit's image), judge each on the same "
        "test split, and write one report under backtests/<id>/ beside the published model: a table (AUC, "
        "log loss, oracle ratio, calibration ratio, train time, per-request cost) and overlaid ROC and "
        "calibration plots. Every run is recorded in MLflow (the tracking extra). Nothing is published. "
        "The file's format is in docs/training.md.",
    )
    p.add_argument("experiments", metavar="EXPERIMENTS.yaml", help="the candidates (a path or URI)")
    p.add_argument(
        "--jobs", type=positive_int, default=2, help="candidates trained at the same time (default 2)"
    )
    p.add_argument(
        "--threads",
        type=positive_int,
        default=None,
        help="threads per candidate (default: 1 locally, every vCPU of a SageMaker instance)",
    )
    p.add_argument(
        "--on",
        choices=("local", "sagemaker"),
        default="local",
        help="where the candidates train: local processes (default) or one SageMaker training job each "
        "(--backend aws; the image and role come from /aik/backtest/sagemaker, which aik/loop writes)",
    )
    p.add_argument(
        "--use-case",
        choices=("bid-filtering", "ctr"),
        default="bid-filtering",
        help="what the labels mean (the truth used for the oracle; default bid-filtering)",
    )
    p.add_argument(
        "--no-mlflow", dest="mlflow", action="store_false", help="do not record the runs in MLflow"
    )
    cloud = p.add_argument_group("SageMaker (--on sagemaker)")
    cloud.add_argument(
        "--instance-type", default="ml.m5.xlarge", help="each job's instance (default ml.m5.xlarge)"
    )
    cloud.add_argument("--volume-size", type=positive_int, default=30, help="EBS volume in GB (default 30)")
    cloud.add_argument(
        "--max-run", type=positive_int, default=3600, help="each job's maximum run time in s (default 3600)"
    )
    cloud.add_argument(
        "--poll", type=float, default=30.0, help="seconds between two looks at the jobs (default 30)"
    )
    cloud.add_argument("--image", default=None, help="the training image URI (default: the parameter's)")
    cloud.add_argument("--role", default=None, help="the jobs' execution role ARN (default: the parameter's)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace, ctx: Context) -> int:
    """Run the backtest, print the table and where the report went; exit 1 if a candidate failed."""
    from aik.backtest import BacktestOptions, run_backtest
    from aik.backtest.sagemaker import SageMakerBacktest
    from aik.backtest.spec import load

    if args.poll <= 0:
        raise AikError(f"--poll must be positive, got {args.poll}")
    experiments = load(args.experiments)
    result = run_backtest(
        ctx,
        experiments,
        BacktestOptions(
            processes=args.jobs,
            threads=args.threads,
            use_case=args.use_case,
            mlflow=args.mlflow,
            on=args.on,
            sagemaker=SageMakerBacktest(
                instance_type=args.instance_type,
                volume_size_gb=args.volume_size,
                max_run_s=args.max_run,
                poll_s=args.poll,
                image_uri=args.image,
                role=args.role,
            ),
        ),
    )
    print(result.markdown)
    for name, uri in result.reports.items():
        print(f"{name}={uri}")
    if result.mlflow:
        print(f"mlflow.tracking_uri={result.mlflow['tracking_uri']}")
        print(f"mlflow.experiment={result.mlflow['experiment']} (id {result.mlflow['experiment_id']})")
        print(f"mlflow.parent_run_id={result.mlflow['parent_run_id']}")
    if result.failed:
        print(f"failed: {', '.join(result.failed)}")
        return 1
    return 0
