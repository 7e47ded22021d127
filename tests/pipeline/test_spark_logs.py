"""The Spark parser applies exactly the rules of `aik.ipinyou` (same verdicts, reasons and values)."""

from __future__ import annotations

import bz2
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from aik.features.logs import parse_lines, read_logs
from aik.ipinyou import check_line, parse_line, scan_log

from .test_ipinyou import CASES, bid_line

if TYPE_CHECKING:
    from pyspark.sql import SparkSession


@pytest.mark.parametrize("kind", ["bid", "imp", "clk"])
def test_spark_and_python_agree_on_every_rule(spark: SparkSession, kind: str) -> None:
    lines = [line for line, k, _ in CASES] + ["\t".join(["x"] * 23)]
    frame = spark.createDataFrame([(line, "f") for line in lines], "value string, source string")
    rows = parse_lines(frame, kind).collect()
    assert [r["line"] for r in rows] == lines
    for line, row in zip(lines, rows, strict=True):
        assert row["reason"] == check_line(line, kind), line
        if row["reason"] is None:
            values = {k: v for k, v in row.asDict().items() if k not in ("source", "line", "reason")}
            assert values == parse_line(line, kind)
        else:
            assert all(row[c] is None for c in ("BidID", "Timestamp", "AdvertiserID"))


def test_spark_reads_files_as_the_python_reader_does(spark: SparkSession, tmp_path: Path) -> None:
    text = (
        bid_line() + "\r\n" + "garbage\n" + bid_line(BidID="b2") + "\r" + bid_line(Timestamp="2013") + "\n"
    ).encode()
    plain = tmp_path / "bid.20130606.txt"
    plain.write_bytes(text)
    packed = tmp_path / "bid.20130607.txt.bz2"
    packed.write_bytes(bz2.compress(text))
    parsed = read_logs(spark, [str(plain), str(packed)], "bid").collect()
    for path in (plain, packed):
        rows = [r for r in parsed if r["source"] == path.name]
        report = scan_log(str(path))
        assert len(rows) == report.lines == 4
        assert sum(r["reason"] is None for r in rows) == report.accepted == 2
        assert sorted(r["BidID"] for r in rows if r["BidID"]) == sorted([bid_line().split("\t")[0], "b2"])
