"""`aik features` (notebook 2): run the Spark feature job on the configured sources (local mode here)."""

from __future__ import annotations

import argparse
import logging

from aik.context import Context
from aik.errors import AikError
from aik.features.window import add_window_arguments, window_from_args

log = logging.getLogger("aik.features")

USE_CASES = ("bid-filtering", "ctr")


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Add the subcommand."""
    p = sub.add_parser(
        "features",
        help="run the Spark feature job (notebook 2)",
        description="Read the logs under /aik/bid_source, /aik/imp_source (and /aik/clk_source), join and "
        "label them, fit the StringIndexers and write the train/valid/test splits, the inference data, the "
        "MLeap bundle and the schema to their parameters' URIs. Runs Spark in local mode; on AWS run the "
        "same job on EMR (notebook 2 or spark-submit, see docs/pipeline.md).",
    )
    p.add_argument(
        "--use-case",
        choices=USE_CASES,
        default="bid-filtering",
        help="bid-filtering: label bid requests by impressions (default); ctr: label impressions by clicks",
    )
    p.add_argument("--seed", type=int, default=42, help="seed of the 80/10/10 split (default 42)")
    add_window_arguments(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace, ctx: Context) -> int:
    """Run the job and print where everything went."""
    from aik.features import run_features

    try:
        report = run_features(ctx, args.use_case, seed=args.seed, window=window_from_args(args))
    except AikError:
        raise
    except Exception as exc:  # a Spark failure: one line here, the whole trace with -v
        log.debug("the feature job failed", exc_info=True)
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise AikError(f"the Spark job failed: {reason} (run with -v for the trace)") from exc
    for kind, counts in report["inputs"].items():
        print(
            f"features: {kind} logs: {counts['lines']:,} lines, {counts['accepted']:,} accepted, "
            f"{counts['rejected']:,} rejected"
        )
    print(
        f"features: {report['rows']:,} rows, {report['positives']:,} positive "
        f"({100 * (report['positive_rate'] or 0):.1f} %) in {report['seconds']:.1f} s"
    )
    for name, split in report["splits"].items():
        print(f"features: {name}: {split['rows']:,} rows -> {split['uri']}")
    outputs = report["outputs"]
    print(f"features: bundle ({report['bundle_writer']}) -> {outputs['bundle']}")
    print(f"features: schema -> {outputs['schema']}")
    print(f"features: inference data -> {outputs['inference']}")
    print(f"features: report -> {outputs['report']}")
    return 0
