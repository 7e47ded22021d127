"""Ingest (notebook 1, `aik ingest`): put iPinYou logs under `/aik/raw_data` and point the sources at them.

Three ways in: `--synthetic` (generated logs with a known truth), `--from DIR` (dataset files already on
disk or under an S3 prefix), `--download` (the real dataset from Kaggle through opendatasets, then as
`--from`). Files land in `<raw_data>/{bid,imp,clk,conv}/` under their own names, byte for byte; while
copying, every line is checked (`aik.ipinyou`) and malformed ones are written to
`<raw_data>/rejects/<file>.rejects.tsv` with their line number and reason. `/aik/bid_source`,
`/aik/imp_source` and `/aik/clk_source` then point at the kind directories, and
`<raw_data>/ingest-report.json` records what was done. An ingest appends the days not ingested yet;
a day already there with the same size is skipped and reported (`already_ingested`), and `replace`
(`aik ingest --replace`) replaces the whole raw data instead (`aik.ingest.raw`).
"""

from __future__ import annotations

from typing import Any

from aik.context import Context
from aik.ingest.files import find_log_files, ingest_from
from aik.ingest.kaggle import download_kaggle, kaggle_credentials_available
from aik.ingest.raw import OWNED, REPORT_NAME
from aik.ingest.synthetic import ingest_synthetic

__all__ = [
    "OWNED",
    "REPORT_NAME",
    "download_kaggle",
    "find_log_files",
    "ingest_from",
    "ingest_source",
    "ingest_synthetic",
    "kaggle_credentials_available",
]


def ingest_source(
    ctx: Context, source: str, *, rows: int = 200_000, seed: int = 7, replace: bool = False
) -> dict[str, Any]:
    """Notebook 1's one call: `synthetic`, `kaggle` (the real download) or a directory of dataset files."""
    if source == "synthetic":
        return ingest_synthetic(ctx, rows=rows, seed=seed, replace=replace)
    if source == "kaggle":
        return download_kaggle(ctx, replace=replace)
    return ingest_from(ctx, source, replace=replace)
