"""Ingest iPinYou log files found under a directory or S3 prefix: copied byte for byte, every line checked."""

from __future__ import annotations

import fnmatch
import logging
import time
from typing import Any

from aik import storage
from aik.context import Context
from aik.errors import AikError
from aik.ingest.raw import (
    day_key,
    final_uris,
    holds_truth,
    ingested_logs,
    plan_append,
    point_sources,
    staged,
    write_report,
)
from aik.ipinyou import FILE_NAME, KINDS, LogReport, scan_log
from aik.params import RAW_DATA
from aik.progress import Progress

log = logging.getLogger("aik.ingest")


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


def ingest_from(
    ctx: Context, directory: str, *, match: str = "*", validate: bool = True, replace: bool = False
) -> dict[str, Any]:
    """Copy iPinYou log files found under `directory` into `/aik/raw_data`, checking every line.

    Appends the days not ingested yet (the report's `files`; `already_ingested` lists the files skipped
    as the same day with the same size); `replace`, or raw data without logs, replaces the whole area.
    """
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
    present: list[tuple[str, str]] = []
    appending = not replace and bool(ingested_logs(raw_data))
    if appending:
        if holds_truth(raw_data):
            raise AikError(
                f"the raw data under {raw_data} is a synthetic world (its truth is under truth/): appending "
                "real logs would mix them; ingest with --replace to replace it"
            )
        plan = plan_append(raw_data, files)
        files, present = plan.new, plan.present
        if present:
            log.info(
                "ingest: %d file(s) already ingested, skipped: %s",
                len(present),
                ", ".join(day_key(u) for u, _ in present),
            )
        if not files:
            return _nothing_new(ctx, directory, raw_data, present)
    start = time.monotonic()
    reports: list[LogReport] = []
    with staged(raw_data, append=appending) as stage, Progress("ingest", unit="lines") as progress:
        for uri, kind in sorted(files, key=lambda f: f[0]):
            name = uri.rsplit("/", 1)[-1]
            target = storage.join(stage, kind, name)
            if validate:
                rejects = storage.join(stage, "rejects", f"{name}.rejects.tsv")
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
        report_doc = _report(directory, raw_data, validate, reports, skipped, start)
        report_doc["appended"] = appending
        report_doc["already_ingested"] = [u for u, _ in present]
        report_doc = final_uris(report_doc, stage, raw_data)
        write_report(stage, report_doc)  # swapped in with the logs
    report_doc["sources"] = point_sources(ctx, raw_data)
    write_report(raw_data, report_doc)
    return report_doc


def _nothing_new(
    ctx: Context, directory: str, raw_data: str, present: list[tuple[str, str]]
) -> dict[str, Any]:
    """The report of an ingest that found every day already ingested (nothing written but the sources)."""
    return {
        "source": "files",
        "from": directory,
        "raw_data": raw_data,
        "validated": False,
        "appended": True,
        "totals": {},
        "files": [],
        "skipped": [],
        "already_ingested": [u for u, _ in present],
        "sources": point_sources(ctx, raw_data),
    }


def _report(
    directory: str,
    raw_data: str,
    validate: bool,
    reports: list[LogReport],
    skipped: list[str],
    start: float,
) -> dict[str, Any]:
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
    }
    return report_doc
