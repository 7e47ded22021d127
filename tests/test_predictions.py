"""The prediction log: records, the Firehose hour layout, and reading plain, gzip, local and S3 files."""

from __future__ import annotations

import gzip
import json
from datetime import UTC, datetime
from pathlib import Path

import boto3
import pytest
from moto import mock_aws

from aik import predictions as P

T = int(datetime(2026, 11, 30, 21, 5, tzinfo=UTC).timestamp() * 1000)


def _record(i: int, ts_ms: int = T, arm: str = "champion") -> P.Prediction:
    return P.Prediction(f"bid-{i}", ts_ms, "exp1", arm, "R1", i / 10)


def test_a_record_is_one_json_line_with_the_contract_fields() -> None:
    line = _record(3).to_line()
    assert line.endswith("\n") and line.count("\n") == 1
    assert json.loads(line) == {
        "bid_id": "bid-3",
        "ts_ms": T,
        "experiment": "exp1",
        "arm": "champion",
        "release": "R1",
        "likelihood": 0.3,
    }


def test_files_follow_firehose_utc_hour_prefixes(tmp_path: Path) -> None:
    root = str(tmp_path / "predictions")
    assert P.file_uri(root, T, "host-1") == f"{root}/2026/11/30/21/host-1.jsonl"


def test_written_records_read_back_in_a_frame(tmp_path: Path) -> None:
    root = str(tmp_path / "predictions")
    later = T + 3600 * 1000
    P.write_local(root, [_record(1), _record(2, later, "challenger")], "w1")
    P.write_local(root, [_record(3)], "w1")
    frame = P.read_predictions(root)
    assert list(frame.columns) == list(P.FIELDS)
    assert sorted(frame["bid_id"]) == ["bid-1", "bid-2", "bid-3"]
    assert (tmp_path / "predictions/2026/11/30/22/w1.jsonl").exists()


def test_an_empty_log_is_an_empty_frame_with_the_columns(tmp_path: Path) -> None:
    frame = P.read_predictions(str(tmp_path / "none"))
    assert frame.empty and list(frame.columns) == list(P.FIELDS)


def test_a_torn_last_line_is_skipped_and_the_rest_kept(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    root = str(tmp_path / "predictions")
    (path,) = P.write_local(root, [_record(1), _record(2)], "w1")
    with open(path, "a") as f:
        f.write('{"bid_id": "bid-3", "ts_')
    assert [r.bid_id for r in P.iter_predictions(root)] == ["bid-1", "bid-2"]
    assert "skipped 1 line(s)" in caplog.text


def test_the_time_range_filters_hours_and_records(tmp_path: Path) -> None:
    root = str(tmp_path / "predictions")
    hour = 3600 * 1000
    P.write_local(root, [_record(i, T + i * hour) for i in range(4)], "w1")
    start = datetime.fromtimestamp((T + hour) / 1000, UTC)
    end = datetime.fromtimestamp((T + 3 * hour) / 1000, UTC)
    assert [r.bid_id for r in P.iter_predictions(root, start=start, end=end)] == ["bid-1", "bid-2"]


@mock_aws
def test_firehose_objects_in_s3_are_read_gzip_or_plain() -> None:
    s3 = boto3.client("s3", region_name="us-east-1")
    s3.create_bucket(Bucket="data")
    body = "".join(_record(i).to_line() for i in range(3)).encode()
    # the delivery stream's object names: <stream>-<version>-<date>-<uuid>, .gz when compressed
    s3.put_object(
        Bucket="data",
        Key="predictions/2026/11/30/21/aik-predictions-1-2026-11-30-21-05-00-abc.gz",
        Body=gzip.compress(body),
    )
    s3.put_object(
        Bucket="data", Key="predictions/2026/11/30/21/aik-predictions-1-2026-11-30-21-06-00-def", Body=body
    )
    frame = P.read_predictions("s3://data/predictions/")
    assert len(frame) == 6 and frame["likelihood"].sum() == pytest.approx(0.6)


def test_a_record_without_a_field_is_refused() -> None:
    with pytest.raises(ValueError, match="no field 'arm'"):
        P.Prediction.from_dict(
            {"bid_id": "b", "ts_ms": 1, "experiment": None, "release": "R", "likelihood": 0}
        )
