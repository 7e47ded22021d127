"""`aik ingest` (notebook 1): the command line of `aik.ingest` (synthetic, files on disk, or the download)."""

from __future__ import annotations

import argparse
import datetime
from typing import Any

from aik import storage
from aik.context import Context
from aik.errors import AikError
from aik.ingest import download_kaggle, ingest_from, ingest_synthetic
from aik.ingest.raw import day_key
from aik.settings import iso_date, positive_int


def register(sub: argparse._SubParsersAction) -> None:
    """Add the subcommand."""
    p = sub.add_parser(
        "ingest",
        help="generate or load iPinYou logs (notebook 1)",
        description="Put iPinYou logs under /aik/raw_data and point /aik/bid_source, /aik/imp_source and "
        "/aik/clk_source at them: synthetic logs with a known truth, dataset files already on disk, or the "
        "real dataset downloaded from Kaggle. Malformed lines are counted and written aside, never fatal. "
        "New days are appended: a day already ingested with the same size is skipped (and said so), one "
        "with other contents is refused; --replace replaces the whole raw data instead.",
    )
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument("--synthetic", action="store_true", help="generate synthetic logs")
    source.add_argument("--from", dest="from_dir", metavar="DIR", help="ingest iPinYou log files under DIR")
    source.add_argument(
        "--download",
        action="store_true",
        help="download the real dataset from Kaggle (opendatasets; needs Kaggle credentials), then ingest it",
    )
    p.add_argument(
        "--replace",
        action="store_true",
        help="replace everything under /aik/raw_data instead of appending new days",
    )
    synthetic = p.add_argument_group("synthetic data")
    synthetic.add_argument("--rows", type=positive_int, default=200_000, help="bid requests (default 200000)")
    synthetic.add_argument(
        "--seed", type=int, default=7, help="seed of the world, truth and rows (default 7)"
    )
    synthetic.add_argument("--days", type=positive_int, default=7, help="days of logs (default 7)")
    synthetic.add_argument(
        "--start",
        type=iso_date,
        default=datetime.date(2013, 6, 6),
        help="first day, YYYY-MM-DD (default 2013-06-06)",
    )
    synthetic.add_argument(
        "--interactions",
        type=_interactions,
        default=(),
        metavar="SPEC",
        help="interaction terms of the truth: none (default: an additive truth), default "
        "(advertiser:domain=0.6,device_type:hour=0.5,advertiser:device_type=0.4), or term:term=sd,... "
        "with terms advertiser, domain, region, city, device_type, hour, dow",
    )
    files = p.add_argument_group("dataset files (--from, --download)")
    files.add_argument(
        "--match",
        default="*",
        metavar="GLOB",
        help="only files whose name matches, e.g. 'imp.201306*' (default *)",
    )
    files.add_argument(
        "--no-validate", action="store_true", help="copy without checking lines (no rejects report)"
    )
    files.add_argument("--url", default=None, help="dataset URL for --download (default /aik/download_url)")
    files.add_argument(
        "--dest", default=None, metavar="DIR", help="download directory (default WORKSPACE/downloads)"
    )
    p.set_defaults(func=run)


def _interactions(text: str) -> tuple[tuple[str, str, float], ...]:
    from aik.synthetic import parse_interactions

    try:
        return parse_interactions(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from exc


def run(args: argparse.Namespace, ctx: Context) -> int:
    """Dispatch to the chosen source and print a summary."""
    match = args.match
    validate = not args.no_validate
    if args.synthetic:
        report = ingest_synthetic(
            ctx,
            rows=args.rows,
            seed=args.seed,
            days=args.days,
            start=args.start,
            interactions=args.interactions,
            replace=args.replace,
        )
        if not _said_nothing_new(report):
            _print_synthetic(report)
    elif args.from_dir:
        report = ingest_from(ctx, args.from_dir, match=match, validate=validate, replace=args.replace)
        if not _said_nothing_new(report):
            _print_files(report)
    elif args.download:
        report = download_kaggle(
            ctx, url=args.url, dest=args.dest, match=match, validate=validate, replace=args.replace
        )
        if not _said_nothing_new(report):
            _print_files(report)
    else:
        raise AikError("choose --synthetic, --from DIR or --download")
    for name, value in report["sources"].items():
        print(f"{name}={value}")
    return 0


def _said_nothing_new(report: dict[str, Any]) -> bool:
    """Say which offered files were already ingested; True when that was all of them (nothing changed)."""
    present = report.get("already_ingested") or []
    if report.get("files") or not present:
        if present:
            print(f"ingest: {len(present)} file(s) already ingested, skipped")
        return False
    days = sorted({day_key(uri) for uri in present})
    print(
        f"ingest: nothing new: {len(present)} file(s) already ingested "
        f"({', '.join(days[:4])}{', ...' if len(days) > 4 else ''}); the raw data is unchanged"
    )
    return True


def _print_synthetic(report: dict[str, Any]) -> None:
    print(
        f"ingest: {report['rows']:,} bid requests, {report['impressions']:,} impressions, "
        f"{report['clicks']:,} clicks (win rate {100 * report['win_rate']:.1f} %, "
        f"CTR {100 * (report['ctr'] or 0):.2f} %) in {report['seconds']:.1f} s"
    )
    print(
        f"ingest: oracle AUC over all rows: win {report['oracle_auc_win']:.3f}, "
        f"click {report['oracle_auc_click']:.3f} (truth in {report['truth_uri']})"
    )


def _print_files(report: dict[str, Any]) -> None:
    for kind, t in report["totals"].items():
        checked = f", {t['accepted']:,} accepted, {t['rejected']:,} rejected" if report["validated"] else ""
        print(f"ingest: {kind}: {t['files']} file(s), {t['lines']:,} lines{checked}")
    rejected = sum(t["rejected"] for t in report["totals"].values())
    if rejected:
        print(
            f"ingest: rejected lines and their reasons are in {storage.join(report['raw_data'], 'rejects/')}"
        )
