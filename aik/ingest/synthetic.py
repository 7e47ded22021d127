"""Ingest generated logs: synthetic iPinYou logs and their ground truth under `/aik/raw_data`."""

from __future__ import annotations

import datetime
from typing import Any

from aik.context import Context
from aik.errors import AikError
from aik.ingest.raw import final_uris, point_sources, staged, write_report
from aik.params import RAW_DATA


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
    with staged(raw_data) as stage:
        result = generate(stage, config)
        report = {"source": "synthetic", "raw_data": raw_data, **result.to_dict()}
        report = final_uris(report, stage, raw_data)
        write_report(stage, report)  # swapped in with the logs
    report["sources"] = point_sources(ctx, raw_data)
    write_report(raw_data, report)
    return report
