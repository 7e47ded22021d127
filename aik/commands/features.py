"""`aik features` (notebook 2): run the Spark feature job on the configured sources (local mode here)."""

from __future__ import annotations

import argparse
import logging

from aik.context import Context
from aik.errors import AikError
from aik.features.window import add_window_arguments, window_from_args
from aik.settings import positive_int

log = logging.getLogger("aik.features")

USE_CASES = ("bid-filtering", "ctr")


def register(sub: argparse._SubParsersAction) -> None:
    """Add the subcommand."""
    p = sub.add_parser(
        "features",
        help="run the Spark feature job (notebook 2)",
        description="Read the logs under /aik/bid_source, /aik/imp_source (and /aik/clk_source), join and "
        "label them, fit the StringIndexers and write the train/valid/test splits, the inference data, the "
        "MLeap bundle and the schema to their parameters' URIs. Runs Spark in local mode, or with --on emr "
        "as the one step of a transient EMR cluster (see docs/pipeline.md).",
    )
    p.add_argument(
        "--use-case",
        choices=USE_CASES,
        default="bid-filtering",
        help="bid-filtering: label bid requests by impressions (default); ctr: label impressions by clicks",
    )
    p.add_argument("--seed", type=int, default=42, help="seed of the 80/10/10 split (default 42)")
    add_window_arguments(p)
    p.add_argument(
        "--on",
        choices=("local", "emr"),
        default="local",
        help="local: Spark in local mode here (default); emr: a transient EMR cluster runs the job as its "
        "one step and terminates (aws backend; needs the aik/loop stack)",
    )
    emr = p.add_argument_group("--on emr")
    emr.add_argument(
        "--wait", action="store_true", help="wait for the step to end (default: submit and return)"
    )
    emr.add_argument("--core-instances", type=positive_int, default=2, help="core nodes (default 2)")
    emr.add_argument(
        "--instance-type", default="m5.xlarge", help="main and core instance type (default m5.xlarge)"
    )
    p.set_defaults(func=run)


def run_on_emr(args: argparse.Namespace, ctx: Context) -> int:
    """Submit the job to a transient EMR cluster (the same cluster and step as the loop's state machine)."""
    from aik.features import emr_job as emr

    if ctx.settings.backend != "aws":
        raise AikError("--on emr needs the aws backend (--backend aws): the cluster reads the SSM parameters")
    client, environment, region = emr.connect(ctx.params, ctx.settings.region)
    size = emr.ClusterSize(
        main_instance_type=args.instance_type,
        core_instance_type=args.instance_type,
        core_instance_count=args.core_instances,
    )
    submitted = emr.submit(
        client,
        environment,
        size,
        region=region,
        use_case=args.use_case,
        seed=args.seed,
        window=window_from_args(args),
    )
    print(f"features: EMR cluster {submitted.cluster_id} runs step {submitted.step_id} and then terminates")
    print(f"features: logs -> {submitted.log_uri}")
    if args.wait:
        emr.wait(client, submitted)
        print(f"features: step {submitted.step_id} completed")
    return 0


def run(args: argparse.Namespace, ctx: Context) -> int:
    """Run the job and print where everything went."""
    from aik.features import run_features

    if getattr(args, "on", "local") == "emr":
        return run_on_emr(args, ctx)

    try:
        report = run_features(ctx, args.use_case, seed=args.seed, window=window_from_args(args))
    except AikError:
        raise
    except Exception as exc:  # a Spark failure: one line here, the whole trace with -v
        log.debug("the feature job failed", exc_info=True)
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise AikError(f"the Spark job failed: {reason} (run with -v for the trace)") from exc
    for kind, counts in report.inputs.items():
        print(
            f"features: {kind} logs: {counts.lines:,} lines, {counts.accepted:,} accepted, "
            f"{counts.rejected:,} rejected"
        )
    print(
        f"features: {report.rows:,} rows, {report.positives:,} positive "
        f"({100 * (report.positive_rate or 0):.1f} %) in {report.seconds:.1f} s"
    )
    for name, split in report.splits.items():
        print(f"features: {name}: {split.rows:,} rows -> {split.uri}")
    outputs = report.outputs
    print(f"features: bundle ({report.bundle_writer}) -> {outputs.bundle}")
    print(f"features: schema -> {outputs.schema}")
    print(f"features: inference data -> {outputs.inference}")
    print(f"features: report -> {outputs.report}")
    return 0
