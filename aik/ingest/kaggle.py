"""Ingest the real iPinYou dataset: downloaded from Kaggle with opendatasets (notebook 1), then as files."""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path
from typing import Any

from aik.context import Context
from aik.errors import AikError, ParameterNotFound
from aik.ingest.files import ingest_from
from aik.ingest.raw import write_report
from aik.params import DEFAULT_DOWNLOAD_URL, DOWNLOAD_URL

log = logging.getLogger("aik.ingest")


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
    replace: bool = False,
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
    report = ingest_from(ctx, str(target), match=match, validate=validate, replace=replace)
    report["source"] = "kaggle"
    report["download_url"] = url
    write_report(report["raw_data"], report)
    return report
