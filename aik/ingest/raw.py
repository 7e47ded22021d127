"""The raw-data area ingest owns under `/aik/raw_data`: clearing it, its report, and the source parameters."""

from __future__ import annotations

import json
import shutil
from typing import Any

from aik import storage
from aik.context import Context
from aik.ipinyou import CLK_SOURCE, KINDS
from aik.params import BID_SOURCE, IMP_SOURCE

#: Subdirectories of `/aik/raw_data` that ingest owns (cleared before it writes).
OWNED = (*KINDS, "truth", "rejects")
REPORT_NAME = "ingest-report.json"


def delete_tree(uri: str) -> None:
    """Remove a directory (locally) or every object under a prefix (S3)."""
    if storage.is_s3(uri):
        for item in storage.list_uris(uri):
            storage.delete(item)
    else:
        shutil.rmtree(storage.local_path(uri), ignore_errors=True)


def reset_raw(raw_data: str) -> None:
    """Clear what an earlier ingest left (logs, truth, rejects) so runs never mix."""
    for name in OWNED:
        delete_tree(storage.join(raw_data, name + "/"))
    storage.delete(storage.join(raw_data, REPORT_NAME))


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
