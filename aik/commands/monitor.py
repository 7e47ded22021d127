"""`aik monitor`: join the prediction log with the exchange's logs; calibration, accuracy, the A/B verdict."""

from __future__ import annotations

import argparse
import datetime
import json
from typing import TYPE_CHECKING

from aik import storage
from aik.context import Context
from aik.errors import AikError
from aik.params import DATA_BUCKET, RAW_DATA, bucket_root
from aik.settings import positive_int

if TYPE_CHECKING:
    from aik.monitor import MonitorOptions


def _alpha(text: str) -> float:
    value = float(text)
    if not 0.0 < value < 1.0:
        raise argparse.ArgumentTypeError(f"must be between 0 and 1, got {value}")
    return value


def _utc(text: str) -> datetime.datetime:
    try:
        value = datetime.datetime.fromisoformat(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"not a time (YYYY-MM-DD[THH:MM]): {text}") from exc
    return value if value.tzinfo else value.replace(tzinfo=datetime.UTC)


def register(sub: argparse._SubParsersAction) -> None:
    """Add the subcommand."""
    from aik.monitor import ENGINES
    from aik.monitor.join import OUTCOMES

    p = sub.add_parser(
        "monitor",
        help="predictions against outcomes per arm and segment, with the A/B verdict",
        description="Join the prediction log (<workspace>/predictions/ locally, s3://<data bucket>/"
        "predictions/ in AWS) with the bid, impression and click logs of the same requests by BidID, and "
        "report per arm and per segment (advertiser, device type, hour): the realized rate, the expected/"
        "actual ratio, log loss and AUC with confidence intervals, calibration plots, and for each "
        "challenger against the champion the difference in log loss and outcome rate and whether it is "
        "significant at --alpha. Writes monitor-report.json, monitor-report.txt and PNGs to --out. The join "
        "runs in this process (--engine pandas), as a Spark job (--engine spark: local mode; --on emr: an "
        "EMR step, aws backend) that writes the joined table to <out>/joined/, or is read from such a table "
        "(--joined URI); the report is the same (docs/monitoring.md).",
    )
    p.add_argument("--predictions", metavar="URI", help="prediction log root (default: the backend's)")
    p.add_argument(
        "--logs",
        metavar="URI",
        help="root of the bid/imp/clk logs, searched recursively (default /aik/raw_data)",
    )
    p.add_argument("--out", metavar="URI", help="where to write the report (default <data bucket>/monitor/)")
    p.add_argument("--outcome", choices=OUTCOMES, default="impression", help="what the model predicts")
    p.add_argument("--alpha", type=_alpha, default=0.05, help="significance level (default 0.05)")
    p.add_argument("--experiment", help="only this experiment's records (default: the newest record's)")
    p.add_argument(
        "--min-segment",
        type=positive_int,
        default=200,
        help="smallest group of requests an arm's segment row is reported for (default 200)",
    )
    p.add_argument(
        "--truth",
        metavar="URI",
        help="a synthetic exchange's realized truth (<logs>/truth/auctions.parquet): what each estimate "
        "should find, and whether its interval covers it",
    )
    p.add_argument("--start", type=_utc, help="only records from this UTC time")
    p.add_argument("--end", type=_utc, help="only records before this UTC time")
    p.add_argument("--json", action="store_true", help="print the report as JSON instead of text")
    engine = p.add_mutually_exclusive_group()
    engine.add_argument(
        "--engine",
        choices=ENGINES,
        default="pandas",
        help="who joins: pandas in this process (default), or spark (the Spark job in local mode)",
    )
    engine.add_argument(
        "--joined",
        metavar="URI",
        help="judge a joined table the Spark job already wrote (its experiment and time range stand)",
    )
    engine.add_argument(
        "--on",
        choices=("local", "emr"),
        default="local",
        help="emr: the Spark job runs as an EMR step (aws backend; a transient cluster from the aik/loop "
        "stack's /aik/loop/emr, or the running cluster --cluster-id), then the report reads its table "
        "from S3",
    )
    emr = p.add_argument_group("--on emr")
    emr.add_argument("--cluster-id", help="add the step to this running cluster instead of a transient one")
    emr.add_argument(
        "--core-instances", type=positive_int, default=2, help="transient core nodes (default 2)"
    )
    emr.add_argument(
        "--instance-type", default="m5.xlarge", help="transient instance type (default m5.xlarge)"
    )
    emr.add_argument(
        "--poll", type=positive_int, default=30, help="seconds between looks at the step (default 30)"
    )
    p.set_defaults(func=run)


def join_on_emr(args: argparse.Namespace, ctx: Context, options: MonitorOptions) -> str:
    """Run the join as an EMR step writing under `options.out`, wait for it; the table's URI."""
    from aik.features import emr_job
    from aik.monitor import JOINED_DIR
    from aik.monitor import emr as monitor_emr
    from aik.monitor.spark_job import JoinJob

    if ctx.settings.backend != "aws":
        raise AikError("--on emr needs the aws backend (--backend aws): the cluster reads the logs in S3")
    joined = storage.join(options.out or "", JOINED_DIR)
    for name, uri in (("--predictions", options.predictions), ("--logs", options.logs), ("--out", joined)):
        if not storage.is_s3(uri):
            raise AikError(
                f"{name} must be in S3 for --on emr (the cluster reads and writes there), got {uri}"
            )
    client, environment, region = emr_job.connect(ctx.params, ctx.settings.region)
    step = JoinJob(options.predictions, options.logs, joined, options.experiment, options.start, options.end)
    if args.cluster_id:
        submitted = monitor_emr.add_to_cluster(
            client, environment, step, cluster_id=args.cluster_id, region=region
        )
        print(f"monitor: step {submitted.step_id} added to EMR cluster {submitted.cluster_id}")
    else:
        size = emr_job.ClusterSize(
            main_instance_type=args.instance_type,
            core_instance_type=args.instance_type,
            core_instance_count=args.core_instances,
        )
        submitted = monitor_emr.submit_transient(client, environment, size, step, region=region)
        print(
            f"monitor: EMR cluster {submitted.cluster_id} runs step {submitted.step_id} and then terminates"
        )
    if submitted.log_uri:
        print(f"monitor: logs -> {submitted.log_uri}")
    monitor_emr.wait_with_progress(client, submitted, delay_s=args.poll)
    return joined


def run(args: argparse.Namespace, ctx: Context) -> int:
    """Build and print the report; write it and its plots."""
    from dataclasses import replace

    from aik.monitor import MonitorOptions, run_monitor
    from aik.predictions import root_for

    if args.on != "emr" and args.cluster_id:
        raise AikError("--cluster-id names the cluster of --on emr")
    if args.joined and (args.experiment or args.start or args.end):
        raise AikError(
            "--joined judges the table as the job selected it: pass --experiment/--start/--end to the job"
        )
    out = args.out or storage.join(bucket_root(ctx.params.get(DATA_BUCKET)), "monitor") + "/"
    options = MonitorOptions(
        predictions=args.predictions or root_for(ctx.settings, ctx.params),
        logs=args.logs or ctx.params.get(RAW_DATA),
        out=out,
        outcome=args.outcome,
        alpha=args.alpha,
        experiment=args.experiment,
        min_segment=args.min_segment,
        truth=args.truth,
        start=args.start,
        end=args.end,
        engine=args.engine,
        joined=args.joined,
    )
    if args.on == "emr":
        options = replace(options, joined=join_on_emr(args, ctx, options))
    report = run_monitor(options)
    if args.json:
        print(json.dumps(report.to_dict(), indent=2))
    else:
        print("\n".join(report.lines()))
        print(
            f"wrote {storage.join(out, 'monitor-report.json')} and {storage.join(out, 'monitor-report.txt')}"
        )
    return 0
