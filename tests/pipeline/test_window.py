"""Time windows: which days train and which test, from the log files' names; the temporal split."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from aik.errors import AikError
from aik.features.transforms import SPLIT, TEST, TRAIN, VALID, with_temporal_split
from aik.features.window import Window, choose, file_day, select_files

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

DAYS = [f"201306{d:02d}" for d in range(6, 13)]


def test_the_newest_days_test_and_the_window_before_them_trains() -> None:
    chosen = choose(DAYS, Window(days=3, test_days=2))
    assert chosen.train_days == ("20130608", "20130609", "20130610")
    assert chosen.test_days == ("20130611", "20130612")


def test_a_window_longer_than_the_history_trains_on_every_earlier_day() -> None:
    chosen = choose(DAYS[:3], Window(days=7))
    assert chosen.train_days == ("20130606", "20130607") and chosen.test_days == ("20130608",)


def test_too_few_days_for_a_temporal_split_is_a_clear_error() -> None:
    with pytest.raises(AikError, match="needs more than 1 day"):
        choose(DAYS[:1], Window(days=7))


def test_only_the_windows_files_are_read_with_tagged_names_too() -> None:
    files = {
        "bid": [f"/raw/bid/bid.{d}.txt.bz2" for d in DAYS],
        "imp": [f"/raw/imp/imp.{d}.adv2821.txt" for d in DAYS],
    }
    selected, chosen = select_files(files, "bid", Window(days=2))
    assert [file_day(u) for u in selected["bid"]] == ["20130610", "20130611", "20130612"]
    assert [file_day(u) for u in selected["imp"]] == ["20130610", "20130611", "20130612"]
    assert chosen.test_days == ("20130612",)


def test_temporal_split_tests_on_the_days_from_the_first_test_day(spark: SparkSession) -> None:
    rows = [(f"bid{i}", f"201306{6 + i % 4:02d}1200000000") for i in range(400)]
    df = with_temporal_split(spark.createDataFrame(rows, "BidID string, Timestamp string"), "20130608")
    split = {r.BidID: r[SPLIT] for r in df.collect()}
    day = {b: int(t[6:8]) for b, t in rows}
    assert all((split[b] == TEST) == (day[b] >= 8) for b in split)
    valid = sum(1 for b in split if split[b] == VALID)
    assert {split[b] for b in split if day[b] < 8} == {TRAIN, VALID} and 5 < valid < 40  # about 10 % of 200
