"""The feature job's outputs on a fixed dataset and seed, as digests: a change to how the job computes
must not change one byte of what it writes (splits, joined rows, inference data, rejects, bundle labels,
the report's counts).

The digests were taken from the job before its single-read refactor; they are of the artifacts'
contents in a canonical order (rows sorted), so partitioning and file names do not enter them.
"""

from __future__ import annotations

import bz2
import hashlib
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow.dataset as ds
import pytest

from aik import storage
from aik.bundle import read_bundle
from aik.features.job import outputs_from_params, run_features
from aik.features.window import Window
from aik.ingest import ingest_synthetic
from aik.params import BID_SOURCE, IMP_SOURCE

from .conftest import make_context
from .test_ipinyou import bid_line, imp_line

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

    from aik.context import Context

ROWS = 4_000
SEED = 5
BAD_BIDS = [bid_line(Timestamp="2013"), "garbage", bid_line(BidID="null"), bid_line(BiddingPrice="-3")]
BAD_IMPS = [imp_line(LogType="2"), ""]


def _sha(parts: list[str]) -> str:
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:16]


def _parquet(uri: str) -> str:
    table = ds.dataset(storage.local_path(uri), format="parquet").to_table()
    schema = [f"{f.name}:{f.type}" for f in table.schema]
    return _sha(schema + sorted(json.dumps(list(r.values())) for r in table.to_pylist()))


def _lines(uri: str, pattern: str) -> str:
    root = Path(storage.local_path(uri))
    rows = sorted(
        f"{path.parent.relative_to(root)}|{line.rstrip(chr(10))}"
        for path in root.rglob(pattern)
        for line in path.open(encoding="utf-8")
    )
    return _sha(rows)


def digests(ctx: Context) -> dict[str, Any]:
    """What the job wrote, each artifact reduced to a digest of its canonical content."""
    out = outputs_from_params(ctx.params)
    report = json.loads(Path(out.report).read_text())
    labels = read_bundle(out.bundle).labels
    counts = {k: report[k] for k in ("inputs", "rows", "positives", "labels", "split")}
    counts["splits"] = {name: (s["rows"], s["positives"]) for name, s in report["splits"].items()}
    return {
        "train": _parquet(out.train),
        "valid": _parquet(out.valid),
        "test": _parquet(out.test),
        "transformed": _parquet(out.transformed),
        "inference": _lines(out.inference, "part-*.json"),
        "rejects": _lines(out.rejects, "part-*.json"),
        "bundle": _sha([f"{column}={json.dumps(values)}" for column, values in sorted(labels.items())]),
        "schema": _sha([Path(out.schema).read_text()]),
        "report": _sha([json.dumps(counts, sort_keys=True)]),
    }


@pytest.fixture(scope="module")
def dataset(module_workspace: Path) -> Context:
    """4,000 synthetic bid requests over 3 days, seed 5, plus a file of malformed lines of each kind."""
    ctx = make_context(module_workspace)
    ingest_synthetic(ctx, rows=ROWS, seed=SEED, days=3)
    bids = Path(ctx.params.get(BID_SOURCE)) / "bid.20130607.bad.txt.bz2"
    bids.write_bytes(bz2.compress(("\n".join(BAD_BIDS) + "\n").encode()))
    imps = Path(ctx.params.get(IMP_SOURCE)) / "imp.20130607.bad.txt"
    imps.write_text("\n".join(BAD_IMPS) + "\n")
    return ctx


# Taken from the job as it was before its single-read refactor (same data, seed and Spark settings).
BID_FILTERING = {
    "train": "0cfe507e1c09d209",
    "valid": "ceeb9e64258a136e",
    "test": "8a896f8539e28270",
    "transformed": "b8a1bd883297752b",
    "inference": "dcb86a2547ddadda",
    "rejects": "ce4630d39e23b0a0",
    "bundle": "71c4d0bfa6bd3f8f",
    "schema": "2b42b2e0e363af5d",
    "report": "d8c4e226ede3ec3b",
}
CTR = {
    "train": "a5feb0c1f5a84631",
    "valid": "20cfbfd54cb5409b",
    "test": "8821cd5f40dc32c0",
    "transformed": "44882b1ea1c120a1",
    "inference": "4af17a640cbdf35b",
    "rejects": "5d66f9c0d760a9fb",
    "bundle": "b16e6d4e6052f8d2",
    "schema": "2b42b2e0e363af5d",
    "report": "1579039180de9542",
}
TEMPORAL = {
    "train": "520365a02189259e",
    "valid": "a2d992c21da2b0df",
    "test": "a8a82d05a38ac02f",
    "transformed": "b8a1bd883297752b",
    "inference": "dcb86a2547ddadda",
    "rejects": "ce4630d39e23b0a0",
    "bundle": "71c4d0bfa6bd3f8f",
    "schema": "2b42b2e0e363af5d",
    "report": "0c4b67772796ffc4",
}


def test_bid_filtering_outputs_are_unchanged(spark: SparkSession, dataset: Context) -> None:
    run_features(dataset, "bid-filtering", spark=spark)
    assert digests(dataset) == BID_FILTERING


def test_ctr_outputs_are_unchanged(spark: SparkSession, dataset: Context) -> None:
    run_features(dataset, "ctr", spark=spark)
    assert digests(dataset) == CTR


def test_temporal_window_outputs_are_unchanged(spark: SparkSession, dataset: Context) -> None:
    run_features(dataset, "bid-filtering", spark=spark, window=Window(days=2))
    assert digests(dataset) == TEMPORAL
