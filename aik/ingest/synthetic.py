"""Ingest generated logs: synthetic iPinYou logs and their ground truth under `/aik/raw_data`."""

from __future__ import annotations

import datetime
import logging
from typing import Any

from aik.context import Context
from aik.errors import AikError
from aik.ingest.raw import (
    day_key,
    delete_tree,
    final_uris,
    ingested_logs,
    plan_append,
    point_sources,
    staged,
    write_report,
)
from aik.ipinyou import KINDS
from aik.params import RAW_DATA

log = logging.getLogger("aik.ingest")


def ingest_synthetic(
    ctx: Context,
    rows: int = 200_000,
    seed: int = 7,
    *,
    days: int = 7,
    start: datetime.date = datetime.date(2013, 6, 6),
    replace: bool = False,
    **overrides: Any,
) -> dict[str, Any]:
    """Generate synthetic logs and their truth under `/aik/raw_data`; point the sources at them.

    Over raw data that already holds logs (and without `replace`), the same world generated again is
    already ingested (nothing changes, the report says `already_ingested`); any other world or day is
    refused: a world's truth covers exactly the days generated with it, so new days of one world are
    `aik pipeline run`'s (a drifting world continued day by day), and another world needs `replace`.
    """
    from aik.synthetic import SyntheticConfig, generate

    raw_data = ctx.params.get(RAW_DATA)
    try:
        config = SyntheticConfig(rows=rows, seed=seed, days=days, start=start, **overrides)
    except (TypeError, ValueError) as exc:
        raise AikError(f"invalid synthetic settings: {exc}") from exc
    appending = not replace and bool(ingested_logs(raw_data))
    with staged(raw_data, append=appending) as stage:
        result = generate(stage, config)
        if appending:
            return _same_world(ctx, raw_data, stage, result.files)
        report = {"source": "synthetic", "raw_data": raw_data, **result.to_dict()}
        report = final_uris(report, stage, raw_data)
        write_report(stage, report)  # swapped in with the logs
    report["sources"] = point_sources(ctx, raw_data)
    write_report(raw_data, report)
    return report


def _same_world(ctx: Context, raw_data: str, stage: str, files: list[str]) -> dict[str, Any]:
    """The generated logs are the ones already ingested: discard them and say so; otherwise refuse."""
    generated = [(uri, uri[len(stage) :].split("/", 1)[0]) for uri in files]
    plan = plan_append(raw_data, [(u, k) for u, k in generated if k in KINDS])
    extra = sorted(set(ingested_logs(raw_data)) - {(k, day_key(u)) for u, k in generated})
    if plan.new or extra:
        differs = [day_key(u) for u, _ in plan.new] or [f"{k} {d}" for k, d in extra]
        named = ", ".join(differs[:3]) + (", ..." if len(differs) > 3 else "")
        raise AikError(
            f"the raw data under {raw_data} holds other logs than this synthetic world ({named} differ): "
            "a world is generated whole with its truth; ingest with --replace to replace the raw data, or "
            "add days of a drifting world with `aik pipeline run`"
        )
    delete_tree(stage)  # nothing to add: the merge that follows moves nothing
    log.info("ingest: the %d log file(s) of this synthetic world are already ingested", len(plan.present))
    return {
        "source": "synthetic",
        "raw_data": raw_data,
        "appended": True,
        "files": [],
        "already_ingested": [kept for _, kept in plan.present],
        "sources": point_sources(ctx, raw_data),
    }
