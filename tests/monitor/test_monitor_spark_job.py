"""The monitor's Spark job alone: its joined table holds the in-process join's rows and counts.

Needs only what an EMR node has (no report, no scipy), so `make test-spark35` runs it under EMR 7's
Spark 3.5 as well.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from aik.monitor import MonitorOptions, join_in_process, read_table
from aik.monitor.spark_job import JoinJob, run_join
from aik.monitor.table import COLUMNS
from aik.predictions import Prediction

from .test_monitor_join import _bid_line, _experiment_data, _logs, _write_predictions

if TYPE_CHECKING:
    from pyspark.sql import SparkSession


def _messy_log(root: Path) -> list[Prediction]:
    """Records of two experiments, retries, requests no bid line knows, a torn line, plain and gzip files."""
    auctions, records, win, click = _experiment_data(1_500, seed=8)
    _logs(str(root / "logs"), auctions, list(win), list(click))
    retries = [replace(r, ts_ms=r.ts_ms + 5, likelihood=0.99) for r in records[:40]]
    unknown = [
        Prediction(f"f{i:031x}", 1_700_000_100_000 + i, "exp", "champion", "r", 0.3) for i in range(25)
    ]
    older = [replace(r, experiment="old", ts_ms=r.ts_ms - 10**6) for r in records[100:300]]
    _write_predictions(str(root / "predictions"), [*records[:900], *unknown])
    plain = root / "predictions" / "2023" / "11" / "14" / "22" / "writer.jsonl"
    plain.parent.mkdir(parents=True, exist_ok=True)
    lines = [r.to_line() for r in [*records[900:], *retries, *older]]
    plain.write_text("".join(lines) + '{"bid_id": "torn", "ts_ms": 17\n\n')
    # a request logged twice by the exchange, its later line first in file order
    bid = records[0].bid_id
    bids = root / "logs" / "bid"
    (bids / "bid.20130610.a.txt").write_text(_bid_line(bid, "20130614230000000", "2000"))
    (bids / "bid.20130610.b.txt").write_text(_bid_line(bid, "20130610000000000", "3000"))
    return records


def test_the_joined_table_holds_the_in_process_joins_rows_and_counts(
    spark: SparkSession, tmp_path: Path
) -> None:
    import pandas as pd

    _messy_log(tmp_path)
    options = MonitorOptions(predictions=str(tmp_path / "predictions"), logs=str(tmp_path / "logs"))
    expected = join_in_process(options)
    run_join(spark, JoinJob(options.predictions, options.logs, str(tmp_path / "joined")))
    got = read_table(str(tmp_path / "joined"))
    assert got.counts == expected.counts and got.experiment == expected.experiment == "exp"
    order = ["ts_ms", "bid_id"]
    want = expected.frame[list(COLUMNS)].astype(COLUMNS).sort_values(order).reset_index(drop=True)
    pd.testing.assert_frame_equal(got.frame.sort_values(order).reset_index(drop=True), want)


def test_no_prediction_of_the_named_experiment_is_a_clear_error(spark: SparkSession, tmp_path: Path) -> None:
    from aik.errors import AikError

    _messy_log(tmp_path)
    job = JoinJob(str(tmp_path / "predictions"), str(tmp_path / "logs"), str(tmp_path / "joined"), "nope")
    with pytest.raises(AikError, match="no prediction records of experiment nope under"):
        run_join(spark, job)
