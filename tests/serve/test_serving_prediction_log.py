"""The prediction log: every answer of a live server sampled into files (or Firehose), never blocking."""

from __future__ import annotations

import math
from pathlib import Path

import boto3
import numpy as np
import pytest
from moto import mock_aws
from serve_live import run_server
from serving_fixtures import Artifacts

from ad_server_emulator.emulator import bid_request
from aik import predictions as P
from filtering_api.client import bid_columns_of, likelihoods
from filtering_server import prediction_log as L
from filtering_server.model import ServedModel
from filtering_server.serving import ArmModel

ARM = ArmModel("champion", "R1", 1.0, model=None)  # type: ignore[arg-type]  # the log reads the names only


def _records(n: int) -> list[P.Prediction]:
    return [P.Prediction(f"bid-{i}", 1_795_000_000_000 + i, None, "champion", "R1", i / n) for i in range(n)]


def test_a_live_server_logs_every_answer_at_rate_one(
    numeric_artifacts: Artifacts, numeric_model: ServedModel, tmp_path: Path
) -> None:
    log = L.PredictionLog(L.FileSink(str(tmp_path / "predictions"), writer="w"), rate=1.0).start()
    requests = [bid_request(row) for row in numeric_artifacts.rows[:200]]
    for i, request in enumerate(requests):
        request.bidId = f"bid-{i}"
    with run_server(numeric_artifacts, model=numeric_model, predictions=log) as live:
        client = live.client()
        answers = [client.filter(r).likelihoodToBid for r in requests[:150]]
        answers += client.filterBatch(requests[150:]).likelihoodToBid
    log.stop()
    frame = P.read_predictions(str(tmp_path / "predictions"))
    assert list(frame["bid_id"]) == [r.bidId for r in requests]
    assert list(frame["likelihood"]) == answers
    assert set(frame["arm"]) == {"champion"} and set(frame["release"]) == {numeric_model.version}
    assert frame["experiment"].isna().all()
    assert (log.written, log.dropped, log.failed) == (200, 0, 0)


def test_a_live_server_logs_the_rows_of_columnar_calls_as_the_champions(
    numeric_artifacts: Artifacts, numeric_model: ServedModel, tmp_path: Path
) -> None:
    log = L.PredictionLog(L.FileSink(str(tmp_path / "predictions"), writer="w"), rate=1.0).start()
    requests = [bid_request(row) for row in numeric_artifacts.rows[:120]]
    for i, request in enumerate(requests):
        request.bidId = f"bid-{i}"
    with run_server(numeric_artifacts, model=numeric_model, predictions=log) as live:
        reply = live.client().filterColumns(bid_columns_of(requests))
    log.stop()
    frame = P.read_predictions(str(tmp_path / "predictions"))
    assert list(frame["bid_id"]) == [r.bidId for r in requests]
    assert list(frame["likelihood"]) == likelihoods(reply).tolist()
    assert set(frame["arm"]) == {"champion"} and set(frame["release"]) == {numeric_model.version}
    assert frame["experiment"].isna().all()


def _ids_of(select: np.ndarray) -> list[str]:
    return [f"bid-{i}" for i in select.tolist()]


def test_columnar_rows_keep_the_sample_rates_share(tmp_path: Path) -> None:
    log = L.PredictionLog(L.FileSink(str(tmp_path)), rate=0.25, capacity=100_000)
    n = 20_000
    log.offer_rows(_ids_of, n, None, (ARM,), None, np.full(n, 0.5))
    assert abs(log.queued - n * 0.25) < 3 * math.sqrt(n * 0.25 * 0.75)


def test_columnar_rows_beyond_a_full_queue_are_dropped_and_counted(tmp_path: Path) -> None:
    log = L.PredictionLog(L.FileSink(str(tmp_path)), capacity=10)
    log.offer("bid-x", None, ARM, 0.5)
    log.offer_rows(_ids_of, 25, None, (ARM,), None, np.full(25, 0.5))
    assert (log.queued, log.dropped) == (10, 16)


def test_a_full_queue_drops_and_counts_instead_of_blocking() -> None:
    sink = L.FileSink("/nonexistent-never-written", writer="w")
    log = L.PredictionLog(sink, capacity=10)  # no writer thread: nothing drains the queue
    for i in range(25):
        log.offer(f"bid-{i}", None, ARM, 0.5)
    assert (log.queued, log.dropped) == (10, 15)


def test_the_sample_rate_keeps_its_share_of_answers(tmp_path: Path) -> None:
    log = L.PredictionLog(L.FileSink(str(tmp_path)), rate=0.25, capacity=100_000)
    n = 20_000
    for i in range(n):
        log.offer(f"bid-{i}", None, ARM, 0.5)
    assert abs(log.queued - n * 0.25) < 3 * math.sqrt(n * 0.25 * 0.75)


def test_a_failing_sink_counts_the_records_lost_and_the_log_goes_on(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    log = L.PredictionLog(L.FileSink(str(blocker)), rate=1.0)
    for i in range(5):
        log.offer(f"bid-{i}", None, ARM, 0.5)
    assert log.flush() == 5
    assert (log.written, log.failed) == (0, 5)
    log.sink = L.FileSink(str(tmp_path / "ok"))
    log.offer("bid-5", None, ARM, 0.5)
    log.flush()
    assert log.written == 1


def test_lines_are_packed_into_records_and_calls_within_firehose_limits() -> None:
    lines = [b"x" * 99 + b"\n"] * 30_000
    records = L.pack(lines, limit=L.PACK_BYTES)
    assert b"".join(records) == b"".join(lines)
    assert all(len(r) <= L.PACK_BYTES and r.endswith(b"\n") for r in records)
    batches = L.calls(records)
    assert [r for b in batches for r in b] == records
    assert all(
        len(b) <= L.FIREHOSE_CALL_RECORDS and sum(map(len, b)) <= L.FIREHOSE_CALL_BYTES for b in batches
    )


@mock_aws
def test_the_firehose_sink_delivers_the_log_readable_from_s3() -> None:
    s3 = boto3.client("s3", region_name="us-east-1")
    s3.create_bucket(Bucket="data")
    firehose = boto3.client("firehose", region_name="us-east-1")
    firehose.create_delivery_stream(
        DeliveryStreamName="aik-predictions",
        DeliveryStreamType="DirectPut",
        ExtendedS3DestinationConfiguration={
            "RoleARN": "arn:aws:iam::123456789012:role/firehose",
            "BucketARN": "arn:aws:s3:::data",
            "Prefix": "predictions/",
        },
    )
    records = _records(3000)
    sink = L.FirehoseSink("aik-predictions", client=firehose)
    assert sink.write(records) + sink.flush() == 0
    frame = P.read_predictions("s3://data/predictions/")  # one object per call, in no set order
    assert sorted(zip(frame["bid_id"], frame["likelihood"], strict=True)) == sorted(
        (r.bid_id, r.likelihood) for r in records
    )


def test_the_writer_hands_the_sink_small_chunks_and_yields_the_gil_between_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sink = L.FileSink(str(tmp_path))
    sizes: list[int] = []
    yields: list[int] = []
    write = sink.write
    monkeypatch.setattr(sink, "write", lambda records: sizes.append(len(records)) or write(records))
    monkeypatch.setattr(L.time, "sleep", lambda seconds: yields.append(len(sizes)))
    log = L.PredictionLog(sink, rate=1.0)
    for i in range(1000):
        log.offer(f"bid-{i}", None, ARM, 0.5)
    assert log.flush() == 1000
    assert sum(sizes) == 1000 and max(sizes) <= L.CHUNK < 1000
    assert yields == list(range(1, len(sizes) + 1))  # the GIL given back after every chunk
    assert len(P.read_predictions(str(tmp_path))) == 1000


@mock_aws
def test_the_firehose_sink_sends_full_calls_not_one_per_chunk() -> None:
    s3 = boto3.client("s3", region_name="us-east-1")
    s3.create_bucket(Bucket="data")
    firehose = boto3.client("firehose", region_name="us-east-1")
    firehose.create_delivery_stream(
        DeliveryStreamName="aik-predictions",
        DeliveryStreamType="DirectPut",
        ExtendedS3DestinationConfiguration={
            "RoleARN": "arn:aws:iam::123456789012:role/firehose",
            "BucketARN": "arn:aws:s3:::data",
            "Prefix": "predictions/",
        },
    )
    calls: list[str] = []
    firehose.meta.events.register("before-call.firehose.PutRecordBatch", lambda **kwargs: calls.append("put"))
    log = L.PredictionLog(L.FirehoseSink("aik-predictions", client=firehose), rate=1.0)
    for i in range(3000):
        log.offer(f"bid-{i}", None, ARM, 0.5)
    log.flush()
    assert len(calls) == 2  # 2,048 lines, then the rest at the end of the flush (not 47 chunks)
    assert (log.written, log.failed) == (3000, 0)
    written = P.read_predictions("s3://data/predictions/")["bid_id"]  # one object per call, in no set order
    assert sorted(written) == sorted(f"bid-{i}" for i in range(3000))
