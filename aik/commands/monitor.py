"""`aik monitor`: join the prediction log with the exchange's logs; calibration, accuracy, the A/B verdict."""

from __future__ import annotations

import argparse
import datetime
import json

from aik import storage
from aik.context import Context
from aik.params import DATA_BUCKET, RAW_DATA, bucket_root
from aik.settings import positive_int


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
    from aik.monitor.join import OUTCOMES

    p = sub.add_parser(
        "monitor",
        help="predictions against outcomes per arm and segment, with the A/B verdict",
        description="Join the prediction log (<workspace>/predictions/ locally, s3://<data bucket>/"
        "predictions/ in AWS) with the bid, impression and click logs of the same requests by BidID, and "
        "report per arm and per segment (advertiser, device type, hour): the realized rate, the expected/"
        "actual ratio, log loss and AUC with confidence intervals, calibration plots, and for each "
        "challenger against the champion the difference in log loss and outcome rate and whether it is "
        "significant at --alpha. Writes monitor-report.json, monitor-report.txt and PNGs to --out.",
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
    p.set_defaults(func=run)


def run(args: argparse.Namespace, ctx: Context) -> int:
    """Build and print the report; write it and its plots."""
    from aik.monitor import MonitorOptions, run_monitor
    from aik.predictions import root_for

    out = args.out or storage.join(bucket_root(ctx.params.get(DATA_BUCKET)), "monitor") + "/"
    report = run_monitor(
        MonitorOptions(
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
        )
    )
    if args.json:
        print(json.dumps(report.to_dict(), indent=2))
    else:
        print("\n".join(report.lines()))
        print(
            f"wrote {storage.join(out, 'monitor-report.json')} and {storage.join(out, 'monitor-report.txt')}"
        )
    return 0
