"""The raw-data area ingest owns under `/aik/raw_data`: staging and swapping it, its report, the sources.

Ingest appends by day: a log file whose day (its name before `.txt`, e.g. `bid.20130606`) is already
under `/aik/raw_data` with the same size is skipped as already ingested (re-ingesting is idempotent),
one with another size is refused, and only the new days are added (`plan_append`). `replace=True`
(`aik ingest --replace`) replaces the whole area instead.

An ingest is a transaction: everything (logs, truth, rejects, the report) is written under
`<raw_data>/.staging/` and swapped in for the previous data only once every input was read; a failure
removes the staging area and leaves the previous data as it was. Locally the swap is a handful of
directory renames (the previous entries are moved to `<raw_data>/.previous/` first, then removed). S3
has no rename: the staged objects are copied over, then the previous objects they did not replace are
deleted, the report last of all, so a failure during that copy can leave new and old files side by
side (with the old report) — the one window that is not atomic.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from aik import storage
from aik.context import Context
from aik.errors import AikError
from aik.ipinyou import CLK_SOURCE, KINDS
from aik.params import BID_SOURCE, IMP_SOURCE

#: Subdirectories of `/aik/raw_data` that ingest owns (replaced as a whole by a replacing ingest).
OWNED = (*KINDS, "truth", "rejects")
REPORT_NAME = "ingest-report.json"
STAGING = ".staging"
PREVIOUS = ".previous"

log = logging.getLogger("aik.ingest")


def delete_tree(uri: str) -> None:
    """Remove a directory (locally) or every object under a prefix (S3)."""
    if storage.is_s3(uri):
        for item in storage.list_uris(uri):
            storage.delete(item)
    else:
        shutil.rmtree(storage.local_path(uri), ignore_errors=True)


@contextlib.contextmanager
def staged(raw_data: str, *, append: bool = False) -> Iterator[str]:
    """Yield a staging root to write a whole ingest into; swap it in on success, discard it on failure.

    `append`: the staged files join the previous ones (same names replaced) instead of replacing them
    all, for ingests that add new days (`aik pipeline run`).
    """
    stage = storage.join(raw_data, STAGING + "/")
    delete_tree(stage)  # what a killed earlier attempt left
    try:
        yield stage
    except BaseException:
        delete_tree(stage)
        log.info("ingest: failed; the previous data under %s is unchanged", raw_data)
        raise
    if append:
        _merge_in(raw_data, stage)
    else:
        _swap_in(raw_data, stage)


def final_uris(value: Any, stage: str, raw_data: str) -> Any:
    """`value` (a report) with every URI under the staging root rewritten to where it now lives."""
    if isinstance(value, str) and value.startswith(stage):
        return storage.join(raw_data, value[len(stage) :])
    if isinstance(value, dict):
        return {k: final_uris(v, stage, raw_data) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [final_uris(v, stage, raw_data) for v in value]
    return value


def _merge_in(raw_data: str, stage: str) -> None:
    """Move every staged file to its place under `raw_data` (the report last)."""
    staged_files = storage.list_uris(stage)
    report = storage.join(stage, REPORT_NAME)
    for uri in sorted(staged_files, key=lambda u: u == report):
        target = storage.join(raw_data, uri[len(stage) :])
        if storage.is_s3(raw_data):
            storage.copy(uri, target)
        else:
            path = storage.local_path(target)
            path.parent.mkdir(parents=True, exist_ok=True)
            os.replace(storage.local_path(uri), path)
    delete_tree(stage)


def _swap_in(raw_data: str, stage: str) -> None:
    names = [*(n + "/" for n in OWNED), REPORT_NAME]
    if storage.is_s3(raw_data):
        staged_objects = storage.list_uris(stage)
        report = storage.join(stage, REPORT_NAME)
        keep = set()
        for uri in staged_objects:  # the report last: it marks the new set complete
            if uri != report:
                target = storage.join(raw_data, uri[len(stage) :])
                storage.copy(uri, target)
                keep.add(target)
        for name in names[:-1]:
            for uri in storage.list_uris(storage.join(raw_data, name)):
                if uri not in keep:
                    storage.delete(uri)
        if report in staged_objects:
            storage.copy(report, storage.join(raw_data, REPORT_NAME))
        else:
            storage.delete(storage.join(raw_data, REPORT_NAME))
        delete_tree(stage)
        return
    root, new = storage.local_path(raw_data), storage.local_path(stage)
    old = root / PREVIOUS
    shutil.rmtree(old, ignore_errors=True)
    old.mkdir(parents=True)
    for name in names:
        entry = root / name.rstrip("/")
        if entry.exists():
            os.rename(entry, old / entry.name)
    for name in names:
        entry = new / name.rstrip("/")
        if entry.exists():
            os.rename(entry, root / entry.name)
    shutil.rmtree(old, ignore_errors=True)
    shutil.rmtree(new, ignore_errors=True)


def day_key(name: str) -> str:
    """What names one day's log of a kind: the file name before `.txt` (`bid.20130606`,
    `imp.20131021.adv2821`), whether the file is plain or compressed."""
    return name.rsplit("/", 1)[-1].split(".txt", 1)[0]


def ingested_logs(raw_data: str) -> dict[tuple[str, str], str]:
    """(kind, day key) -> URI of every log file already under `raw_data`."""
    return {
        (kind, day_key(uri)): uri
        for kind in KINDS
        for uri in storage.list_uris(storage.join(raw_data, kind + "/"))
    }


def holds_truth(raw_data: str) -> bool:
    """Whether `raw_data` holds a synthetic world's truth (its logs are generated, not real)."""
    return storage.exists(storage.join(raw_data, "truth/"))


@dataclass
class AppendPlan:
    """Which of the offered log files are new days and which are already ingested."""

    new: list[tuple[str, str]] = field(default_factory=list)
    #: (offered URI, the ingested file it matches)
    present: list[tuple[str, str]] = field(default_factory=list)


def plan_append(raw_data: str, files: Sequence[tuple[str, str]]) -> AppendPlan:
    """Split (uri, kind) files into new days and days already ingested with the same size.

    Name and size are the identity (rsync's quick check without the time, which a copy changes):
    reading every byte of every ingested day again on each run would cost more than the ingest.
    A day already ingested with another size is refused (AikError naming both files).
    """
    have = ingested_logs(raw_data)
    plan = AppendPlan()
    for uri, kind in files:
        key = day_key(uri)
        existing = have.get((kind, key))
        if existing is None:
            plan.new.append((uri, kind))
            continue
        offered, kept = storage.size(uri), storage.size(existing)
        if offered != kept:
            raise AikError(
                f"{uri} is {key}, already ingested as {existing} with other contents ({offered:,} bytes, "
                f"ingested {kept:,}); ingest with --replace to replace the raw data"
            )
        plan.present.append((uri, existing))
    return plan


def point_sources(ctx: Context, raw_data: str) -> dict[str, str]:
    """Point `/aik/bid_source`, `/aik/imp_source` and `/aik/clk_source` at the kind directories."""
    values = {
        BID_SOURCE: storage.join(raw_data, "bid/"),
        IMP_SOURCE: storage.join(raw_data, "imp/"),
        CLK_SOURCE: storage.join(raw_data, "clk/"),
    }
    ctx.params.put_many(values)
    return values


def write_report(raw_data: str, report: dict[str, Any]) -> None:
    """Write `<raw_data>/ingest-report.json`."""
    storage.write_text(storage.join(raw_data, REPORT_NAME), json.dumps(report, indent=2) + "\n")
