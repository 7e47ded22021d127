"""`aik monitor`'s inputs: the prediction log joined by BidID with the exchange's logs, locally and in S3."""

from __future__ import annotations

import gzip
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from aik import storage
from aik.errors import AikError
from aik.monitor import MonitorOptions, run_monitor
from aik.monitor.exchange import Outcomes, timestamps, write_logs
from aik.monitor.join import join
from aik.predictions import FIELDS, Prediction

AGENT_PC = "Mozilla/4.0 (compatible; MSIE 8.0; Windows NT 5.1; Trident/4.0)"
AGENT_PHONE = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 6_1_3 like Mac OS X) AppleWebKit/536.26 (KHTML, like Gecko) "
    "Version/6.0 Mobile/10B329 Safari/8536.25"
)


def _auction(i: int, **fields: Any) -> dict[str, Any]:
    return {
        "BidID": f"{i:032x}",
        "dow": 2,
        "hour": "05",
        "RegionID": "1",
        "CityID": "2",
        "Domain": "dom",
        "AdvertiserID": "1458",
        "BiddingPrice": 300,
        "PayingPrice": 80,
        "UserAgent": AGENT_PC,
        **fields,
    }


def _logs(root: str, auctions: list[dict[str, Any]], win: list[bool], click: list[bool]) -> None:
    n = len(auctions)
    outcomes = Outcomes(
        [a["BidID"] for a in auctions], np.full(n, 0.2), np.full(n, 0.01), np.array(win), np.array(click)
    )
    write_logs(root, auctions, outcomes, timestamps(auctions, 0))


def _predictions(records: list[Prediction]) -> pd.DataFrame:
    return pd.DataFrame([asdict(r) for r in records], columns=list(FIELDS))


def test_each_request_gets_its_outcomes_and_segments(tmp_path: Path) -> None:
    auctions = [
        _auction(0),
        _auction(1, hour="17", UserAgent=AGENT_PHONE, AdvertiserID="3358"),
        _auction(2),
    ]
    _logs(str(tmp_path / "logs"), auctions, [True, True, False], [True, False, False])
    records = [Prediction(a["BidID"], 1_000 + i, "e", "champion", "r1", 0.3) for i, a in enumerate(auctions)]
    joined, counts = join(_predictions(records), str(tmp_path / "logs"))
    assert joined["impression"].tolist() == [1, 1, 0]
    assert joined["click"].tolist() == [1, 0, 0]
    assert joined["advertiser"].tolist() == ["1458", "3358", "1458"]
    assert joined["device_type"].tolist() == ["pc", "smartphone", "pc"]
    assert joined["hour"].tolist() == [5, 17, 5]
    assert counts.requests == 3


def test_a_request_answered_twice_counts_once_with_its_first_answer(tmp_path: Path) -> None:
    _logs(str(tmp_path / "logs"), [_auction(0)], [True], [False])
    bid = _auction(0)["BidID"]
    records = [
        Prediction(bid, 2_000, "e", "champion", "r1", 0.9),
        Prediction(bid, 1_000, "e", "champion", "r1", 0.1),
    ]
    joined, counts = join(_predictions(records), str(tmp_path / "logs"))
    assert joined["likelihood"].tolist() == [0.1]
    assert counts.duplicate_records == 1


def test_predictions_the_bid_log_does_not_know_are_left_out_and_counted(tmp_path: Path) -> None:
    _logs(str(tmp_path / "logs"), [_auction(0)], [True], [False])
    records = [
        Prediction(_auction(0)["BidID"], 1, "e", "champion", "r1", 0.5),
        Prediction("f" * 32, 2, "e", "champion", "r1", 0.5),
    ]
    joined, counts = join(_predictions(records), str(tmp_path / "logs"))
    assert joined["bid_id"].tolist() == [_auction(0)["BidID"]]
    assert counts.without_bid_line == 1


def test_logs_without_impressions_are_refused_with_the_reason(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    records = [Prediction("a" * 32, 1, "e", "champion", "r1", 0.5)]
    with pytest.raises(AikError, match="no impression logs"):
        join(_predictions(records), str(tmp_path / "empty"))


def _experiment_data(
    n: int, seed: int
) -> tuple[list[dict[str, Any]], list[Prediction], np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    auctions = [_auction(i, hour=f"{i % 24:02d}", AdvertiserID=str(1000 + i % 3)) for i in range(n)]
    p = rng.uniform(0.05, 0.5, n)
    win = rng.random(n) < p
    arms = np.where(rng.random(n) < 0.5, "champion", "challenger")
    records = [
        Prediction(a["BidID"], 1_700_000_000_000 + i, "exp", str(arm), f"r-{arm}", float(q))
        for i, (a, arm, q) in enumerate(zip(auctions, arms, p, strict=True))
    ]
    return auctions, records, win, win & (rng.random(n) < 0.1)


def _write_predictions(root: str, records: list[Prediction]) -> None:
    """As Firehose delivers them: gzip-compressed JSON lines under the hour's prefix."""
    data = gzip.compress("".join(r.to_line() for r in records).encode())
    storage.write_bytes(storage.join(root, "2023/11/14/22/aik-predictions-1.gz"), data)


def test_the_report_reads_s3_as_it_reads_local_files(tmp_path: Path, aws: None) -> None:
    import boto3

    auctions, records, win, click = _experiment_data(2_000, seed=1)
    boto3.client("s3").create_bucket(Bucket="aik-data")
    reports = {}
    for name, root in (("local", str(tmp_path) + "/"), ("s3", "s3://aik-data/")):
        _logs(storage.join(root, "logs"), auctions, list(win), list(click))
        _write_predictions(storage.join(root, "predictions"), records)
        report = run_monitor(
            MonitorOptions(
                predictions=storage.join(root, "predictions"),
                logs=storage.join(root, "logs"),
                out=storage.join(root, "monitor"),
                min_segment=50,
            )
        )
        reports[name] = report.to_dict()
        assert storage.exists(storage.join(root, "monitor", "monitor-report.json"))
        assert storage.exists(storage.join(root, "monitor", "calibration.png"))
    local, s3 = reports["local"], reports["s3"]
    assert local["arms"] == s3["arms"] and local["verdicts"] == s3["verdicts"]
    assert local["arms"]["champion"]["n"] + local["arms"]["challenger"]["n"] == 2_000


def test_the_newest_experiment_is_judged_unless_one_is_named(tmp_path: Path) -> None:
    auctions, records, win, click = _experiment_data(400, seed=2)
    _logs(str(tmp_path / "logs"), auctions, list(win), list(click))
    older = [
        Prediction(r.bid_id, r.ts_ms - 10**6, "old", r.arm, r.release, r.likelihood) for r in records[:100]
    ]
    _write_predictions(str(tmp_path / "predictions"), [*older, *records])
    newest = run_monitor(
        MonitorOptions(predictions=str(tmp_path / "predictions"), logs=str(tmp_path / "logs"))
    )
    named = run_monitor(
        MonitorOptions(
            predictions=str(tmp_path / "predictions"), logs=str(tmp_path / "logs"), experiment="old"
        )
    )
    assert newest.experiment == "exp" and sum(m.n for m in newest.arms.values()) == 400
    assert named.experiment == "old" and sum(m.n for m in named.arms.values()) == 100


def test_read_log_yields_only_the_named_requests(tmp_path: Path) -> None:
    from aik.ipinyou import read_log

    auctions = [_auction(i) for i in range(5)]
    _logs(str(tmp_path / "logs"), auctions, [True] * 5, [False] * 5)
    (uri,) = storage.list_uris(str(tmp_path / "logs" / "bid"))
    wanted = {auctions[1]["BidID"], auctions[3]["BidID"], "not-in-the-log"}
    assert sorted(r["BidID"] for r in read_log(uri, "bid", bid_ids=wanted)) == sorted(
        wanted - {"not-in-the-log"}
    )


def _bid_line(bid_id: str, timestamp: str, advertiser: str) -> str:
    from aik.schema import BID_LOG_COLUMNS

    known = {"BidID": bid_id, "Timestamp": timestamp, "AdvertiserID": advertiser, "UserAgent": AGENT_PC}
    return "\t".join(known.get(c, "null") for c in BID_LOG_COLUMNS) + "\n"


def test_a_request_with_two_bid_lines_takes_its_earliest_wherever_the_files_put_it(tmp_path: Path) -> None:
    """The feature job's rule (earliest Timestamp, then the smallest fields), not the files' order."""
    bid = "c" * 32
    _logs(str(tmp_path / "logs"), [_auction(1)], [True], [False])
    (tmp_path / "logs" / "bid" / "bid.20130610.a.txt").write_text(_bid_line(bid, "20130610120000000", "2000"))
    (tmp_path / "logs" / "bid" / "bid.20130610.b.txt").write_text(_bid_line(bid, "20130610090000000", "3000"))
    joined, _ = join(_predictions([Prediction(bid, 1, "e", "champion", "r1", 0.5)]), str(tmp_path / "logs"))
    assert joined["advertiser"].tolist() == ["3000"] and joined["hour"].tolist() == [9]
