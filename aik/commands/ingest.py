"""`aik ingest` (notebook 1): put iPinYou logs under `/aik/raw_data` and point the sources at them.

Three ways in: `--synthetic` (generated logs with a known truth), `--from DIR` (dataset files already on
disk or under an S3 prefix), `--download` (the real dataset from Kaggle through opendatasets, then as
`--from`). Files land in `<raw_data>/{bid,imp,clk,conv}/` under their own names, byte for byte; while
copying, every line is checked (`aik.ipinyou`) and malformed ones are written to
`<raw_data>/rejects/<file>.rejects.tsv` with their line number and reason. `/aik/bid_source`,
`/aik/imp_source` and `/aik/clk_source` then point at the kind directories, and
`<raw_data>/ingest-report.json` records what was done.
"""

from __future__ import annotations

import argparse
import datetime
import fnmatch
import json
import logging
import os
import shutil
import sys
import time
from pathlib import Path
from typing import Any

from aik import storage
from aik.context import Context
from aik.errors import AikError, ParameterNotFound
from aik.ipinyou import CLK_SOURCE, FILE_NAME, KINDS, LogReport, scan_log
from aik.params import BID_SOURCE, DEFAULT_DOWNLOAD_URL, DOWNLOAD_URL, IMP_SOURCE, RAW_DATA
from aik.progress import Progress

log = logging.getLogger("aik.ingest")

#: Subdirectories of `/aik/raw_data` that ingest owns (cleared before it writes).
OWNED = (*KINDS, "truth", "rejects")
REPORT_NAME = "ingest-report.json"


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Add the subcommand."""
    p = sub.add_parser(
        "ingest",
        help="generate or load iPinYou logs (notebook 1)",
        description="Put iPinYou logs under /aik/raw_data and point /aik/bid_source, /aik/imp_source and "
        "/aik/clk_source at them: synthetic logs with a known truth, dataset files already on disk, or the "
        "real dataset downloaded from Kaggle. Malformed lines are counted and written aside, never fatal.",
    )
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument("--synthetic", action="store_true", help="generate synthetic logs")
    source.add_argument("--from", dest="from_dir", metavar="DIR", help="ingest iPinYou log files under DIR")
    source.add_argument(
        "--download",
        action="store_true",
        help="download the real dataset from Kaggle (opendatasets; needs Kaggle credentials), then ingest it",
    )
    synthetic = p.add_argument_group("synthetic data")
    synthetic.add_argument("--rows", type=_positive, default=200_000, help="bid requests (default 200000)")
    synthetic.add_argument(
        "--seed", type=int, default=7, help="seed of the world, truth and rows (default 7)"
    )
    synthetic.add_argument("--days", type=_positive, default=7, help="days of logs (default 7)")
    synthetic.add_argument(
        "--start",
        type=_date,
        default=datetime.date(2013, 6, 6),
        help="first day, YYYY-MM-DD (default 2013-06-06)",
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


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be positive, got {value}")
    return value


def _date(text: str) -> datetime.date:
    try:
        return datetime.date.fromisoformat(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"not a date (YYYY-MM-DD): {text}") from exc


def _delete_tree(uri: str) -> None:
    """Remove a directory (locally) or every object under a prefix (S3)."""
    if storage.is_s3(uri):
        for item in storage.list_uris(uri):
            storage.delete(item)
    else:
        shutil.rmtree(storage.local_path(uri), ignore_errors=True)


def _reset_raw(raw_data: str) -> None:
    """Clear what an earlier ingest left (logs, truth, rejects) so runs never mix."""
    for name in OWNED:
        _delete_tree(storage.join(raw_data, name + "/"))
    storage.delete(storage.join(raw_data, REPORT_NAME))


def _point_sources(ctx: Context, raw_data: str) -> dict[str, str]:
    values = {
        BID_SOURCE: storage.join(raw_data, "bid/"),
        IMP_SOURCE: storage.join(raw_data, "imp/"),
        CLK_SOURCE: storage.join(raw_data, "clk/"),
    }
    ctx.params.put_many(values)
    return values


def _write_report(raw_data: str, report: dict[str, Any]) -> None:
    storage.write_text(storage.join(raw_data, REPORT_NAME), json.dumps(report, indent=2) + "\n")


def ingest_synthetic(
    ctx: Context,
    rows: int = 200_000,
    seed: int = 7,
    *,
    days: int = 7,
    start: datetime.date = datetime.date(2013, 6, 6),
    **overrides: Any,
) -> dict[str, Any]:
    """Generate synthetic logs and their truth under `/aik/raw_data`; point the sources at them."""
    from aik.synthetic import SyntheticConfig, generate

    raw_data = ctx.params.get(RAW_DATA)
    try:
        config = SyntheticConfig(rows=rows, seed=seed, days=days, start=start, **overrides)
    except (TypeError, ValueError) as exc:
        raise AikError(f"invalid synthetic settings: {exc}") from exc
    _reset_raw(raw_data)
    result = generate(raw_data, config)
    report = {
        "source": "synthetic",
        "raw_data": raw_data,
        **result.to_dict(),
        "sources": _point_sources(ctx, raw_data),
    }
    _write_report(raw_data, report)
    return report


def find_log_files(directory: str, match: str = "*") -> tuple[list[tuple[str, str]], list[str]]:
    """(uri, kind) of every iPinYou log file under a directory/prefix, and the other files skipped."""
    found: list[tuple[str, str]] = []
    skipped: list[str] = []
    for uri in storage.list_uris(directory):
        name = uri.rsplit("/", 1)[-1]
        m = FILE_NAME.match(name)
        if m and fnmatch.fnmatch(name, match):
            found.append((uri, m.group(1)))
        else:
            skipped.append(uri)
    return found, skipped


def _check_unique(files: list[tuple[str, str]]) -> None:
    seen: dict[str, str] = {}
    for uri, _ in files:
        name = uri.rsplit("/", 1)[-1]
        day = name.split(".txt", 1)[0]  # e.g. imp.20130606, whether plain or compressed
        if day in seen:
            raise AikError(
                f"{seen[day]} and {uri} hold the same day's log; keep one of them (or use --match)"
            )
        seen[day] = uri


def _outside(directory: str, raw_data: str) -> None:
    if storage.is_s3(directory) or storage.is_s3(raw_data):
        inside = directory.rstrip("/").startswith(raw_data.rstrip("/"))
    else:
        src, raw = storage.local_path(directory).resolve(), storage.local_path(raw_data).resolve()
        inside = src == raw or raw in src.parents
    if inside:
        raise AikError(
            f"{directory} is inside /aik/raw_data ({raw_data}); ingest from a directory outside it"
        )


def ingest_from(ctx: Context, directory: str, *, match: str = "*", validate: bool = True) -> dict[str, Any]:
    """Copy iPinYou log files found under `directory` into `/aik/raw_data`, checking every line."""
    raw_data = ctx.params.get(RAW_DATA)
    if not storage.is_s3(directory) and not storage.local_path(directory).is_dir():
        raise AikError(f"not a directory: {directory}")
    _outside(directory, raw_data)
    files, skipped = find_log_files(directory, match)
    if not files:
        raise AikError(
            f"no iPinYou log files under {directory} (names like bid.20130606.txt.bz2, imp.20130606.txt"
            + (f" matching {match!r}" if match != "*" else "")
            + ")"
        )
    _check_unique(files)
    if skipped:
        log.info("ingest: skipping %d file(s) that are not iPinYou logs, e.g. %s", len(skipped), skipped[0])
    start = time.monotonic()
    _reset_raw(raw_data)
    reports: list[LogReport] = []
    with Progress("ingest", unit="lines") as progress:
        for uri, kind in sorted(files, key=lambda f: f[0]):
            name = uri.rsplit("/", 1)[-1]
            target = storage.join(raw_data, kind, name)
            if validate:
                rejects = storage.join(raw_data, "rejects", f"{name}.rejects.tsv")
                report = scan_log(uri, kind, rejects_uri=rejects, copy_to=target, progress=progress)
                log.info(
                    "ingest: %s: %s lines, %s accepted, %s rejected",
                    name,
                    f"{report.lines:,}",
                    f"{report.accepted:,}",
                    f"{report.rejected:,}",
                )
            else:
                storage.copy(uri, target)
                report = LogReport(uri=uri, kind=kind, copied_to=target)
                log.info("ingest: %s copied without checking", name)
            reports.append(report)
    totals = {
        kind: {
            "files": sum(1 for r in reports if r.kind == kind),
            "lines": sum(r.lines for r in reports if r.kind == kind),
            "accepted": sum(r.accepted for r in reports if r.kind == kind),
            "rejected": sum(r.rejected for r in reports if r.kind == kind),
        }
        for kind in KINDS
        if any(r.kind == kind for r in reports)
    }
    report_doc = {
        "source": "files",
        "from": directory,
        "raw_data": raw_data,
        "validated": validate,
        "totals": totals,
        "files": [r.to_dict() for r in reports],
        "skipped": skipped,
        "seconds": round(time.monotonic() - start, 1),
        "sources": _point_sources(ctx, raw_data),
    }
    _write_report(raw_data, report_doc)
    return report_doc


def kaggle_credentials_available() -> bool:
    """Whether opendatasets can authenticate: ./kaggle.json (what it reads), or a terminal to prompt on."""
    return Path("kaggle.json").is_file() or sys.stdin.isatty()


def download_kaggle(
    ctx: Context,
    *,
    url: str | None = None,
    dest: str | os.PathLike[str] | None = None,
    match: str = "*",
    validate: bool = True,
) -> dict[str, Any]:
    """Download the iPinYou dataset from Kaggle with opendatasets (notebook 1), then ingest it."""
    if url is None:
        try:
            url = ctx.params.get(DOWNLOAD_URL)
        except ParameterNotFound:
            url = DEFAULT_DOWNLOAD_URL
    target = Path(dest) if dest else ctx.settings.workspace / "downloads"
    if not kaggle_credentials_available():
        raise AikError(
            "Kaggle credentials needed: put kaggle.json (kaggle.com > Settings > API > Create New Token) in "
            "the current directory, or run from a terminal to be prompted for your username and key"
        )
    try:
        import opendatasets
    except ImportError as exc:
        raise AikError("the download needs opendatasets: pip install '.[download]'") from exc
    target.mkdir(parents=True, exist_ok=True)
    log.info("ingest: downloading %s into %s (several GB; opendatasets shows its own progress)", url, target)
    try:
        opendatasets.download(url, data_dir=str(target))
    except Exception as exc:  # network, authentication, disk: one line, the cause chained
        raise AikError(f"download of {url} failed: {exc}") from exc
    report = ingest_from(ctx, str(target), match=match, validate=validate)
    report["source"] = "kaggle"
    report["download_url"] = url
    _write_report(report["raw_data"], report)
    return report


def ingest_source(ctx: Context, source: str, *, rows: int = 200_000, seed: int = 7) -> dict[str, Any]:
    """Notebook 1's one call: `synthetic`, `kaggle` (the real download) or a directory of dataset files."""
    if source == "synthetic":
        return ingest_synthetic(ctx, rows=rows, seed=seed)
    if source == "kaggle":
        return download_kaggle(ctx)
    return ingest_from(ctx, source)


def run(args: argparse.Namespace, ctx: Context) -> int:
    """Dispatch to the chosen source and print a summary (the demo calls this with synthetic=True)."""
    match = getattr(args, "match", "*")
    validate = not getattr(args, "no_validate", False)
    if getattr(args, "synthetic", False):
        report = ingest_synthetic(
            ctx,
            rows=getattr(args, "rows", 200_000),
            seed=getattr(args, "seed", 7),
            days=getattr(args, "days", 7),
            start=getattr(args, "start", datetime.date(2013, 6, 6)),
        )
        print(
            f"ingest: {report['rows']:,} bid requests, {report['impressions']:,} impressions, "
            f"{report['clicks']:,} clicks (win rate {100 * report['win_rate']:.1f} %, "
            f"CTR {100 * (report['ctr'] or 0):.2f} %) in {report['seconds']:.1f} s"
        )
        print(
            f"ingest: oracle AUC over all rows: win {report['oracle_auc_win']:.3f}, "
            f"click {report['oracle_auc_click']:.3f} (truth in {report['truth_uri']})"
        )
    elif getattr(args, "from_dir", None):
        report = ingest_from(ctx, args.from_dir, match=match, validate=validate)
        _print_files(report)
    elif getattr(args, "download", False):
        report = download_kaggle(
            ctx,
            url=getattr(args, "url", None),
            dest=getattr(args, "dest", None),
            match=match,
            validate=validate,
        )
        _print_files(report)
    else:
        raise AikError("choose --synthetic, --from DIR or --download")
    for name, value in report["sources"].items():
        print(f"{name}={value}")
    return 0


def _print_files(report: dict[str, Any]) -> None:
    for kind, t in report["totals"].items():
        checked = f", {t['accepted']:,} accepted, {t['rejected']:,} rejected" if report["validated"] else ""
        print(f"ingest: {kind}: {t['files']} file(s), {t['lines']:,} lines{checked}")
    rejected = sum(t["rejected"] for t in report["totals"].values())
    if rejected:
        print(
            f"ingest: rejected lines and their reasons are in {storage.join(report['raw_data'], 'rejects/')}"
        )
