"""The ad-server emulator: waits for readiness, replays inference rows, reports, plots, sends metrics."""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pytest
from serve_live import LiveServer
from serving_fixtures import StatsdLines

from ad_server_emulator.emulator import (
    EmulatorConfig,
    bid_request,
    load_rows,
    run_emulator,
)
from ad_server_emulator.report import REPORT_JSON, REPORT_PNG
from aik import dashboard, params, storage
from aik.errors import AikError
from filtering_api.client import wait_until_ready


def config(live: LiveServer, **kwargs: object) -> EmulatorConfig:
    """A quick run against the live server, without StatsD unless asked."""
    values: dict[str, object] = {
        "host": "127.0.0.1",
        "port": live.port,
        "threads": 2,
        "requests": 400,
        "warmup": 5,
        "statsd": False,
        "wait_ready": 10,
    }
    values.update(kwargs)
    return EmulatorConfig(**values)  # type: ignore[arg-type]


def test_run_reports_throughput_latency_and_likelihoods(live: LiveServer, tmp_path: Path) -> None:
    report = run_emulator(config(live, output_dir=tmp_path), store=live.artifacts.store)
    assert report["errors"] == 0
    assert report["requests_measured"] == 400
    assert report["requests_answered"] == 410  # with the warm-up
    assert report["throughput_rps"] > 0
    lat = report["latency_ms"]
    assert 0 < lat["min"] <= lat["p50"] <= lat["p95"] <= lat["p99"] <= lat["max"]
    lik = report["likelihood"]
    assert 0 <= lik["min"] <= lik["p50"] <= lik["max"] <= 1
    assert sum(lik["histogram"]["counts"]) == 400
    assert live.holder.current is not None
    assert report["model_version"] == live.holder.current.version
    assert json.loads((tmp_path / REPORT_JSON).read_text())["requests_measured"] == 400
    assert (tmp_path / REPORT_PNG).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_likelihoods_are_the_models_scores_of_the_rows(live: LiveServer) -> None:
    rows = live.artifacts.rows[:1]  # one row: every request is the same
    model = live.holder.current
    assert model is not None
    report = run_emulator(config(live, requests=50, threads=1), rows=rows)
    expected = model.score(bid_request(rows[0]))
    assert report["likelihood"]["min"] == report["likelihood"]["max"] == expected


def test_batch_mode_and_device_type_only_requests(live: LiveServer) -> None:
    report = run_emulator(
        config(live, batch_size=25, requests=500, send_user_agent=False), rows=live.artifacts.rows[:300]
    )
    assert report["errors"] == 0
    assert report["requests_measured"] == 500
    assert report["calls_measured"] == 20


def test_column_mode_sends_batches_as_columns_scored_as_the_model_scores_them(live: LiveServer) -> None:
    rows = live.artifacts.rows[:1]  # one row: every request is the same
    report = run_emulator(config(live, batch_size=50, requests=500, columns=True), rows=rows)
    assert report["errors"] == 0
    assert (report["requests_measured"], report["calls_measured"]) == (500, 10)
    model = live.holder.current
    assert model is not None
    expected = model.score(bid_request(rows[0]))
    assert report["likelihood"]["min"] == report["likelihood"]["max"] == expected


def test_duration_and_rate_bound_the_run(live: LiveServer) -> None:
    started = time.monotonic()
    report = run_emulator(
        config(live, requests=0, duration=1.0, rate=200, threads=2, warmup=0), rows=live.artifacts.rows[:50]
    )
    assert time.monotonic() - started < 10
    assert 100 <= report["requests_measured"] <= 260  # about rate x duration


def test_client_metrics_use_the_dashboard_names(live: LiveServer, statsd_receiver: StatsdLines) -> None:
    run_emulator(
        config(live, statsd=True, statsd_host="127.0.0.1", statsd_port=statsd_receiver.port, requests=100),
        rows=live.artifacts.rows[:20],
    )
    latency = f"{dashboard.CLIENT_PREFIX}.{dashboard.CLIENT_LATENCY}"
    gauge = f"{dashboard.CLIENT_PREFIX}.{dashboard.LIKELIHOOD}"
    # the gauge comes last in the final flush, in a datagram of its own: wait for it too
    assert statsd_receiver.wait_for(
        lambda _: len(statsd_receiver.values(latency, "ms")) >= 100 and statsd_receiver.values(gauge, "g")
    )
    assert all(v > 0 for v in statsd_receiver.values(latency, "ms"))
    assert statsd_receiver.values(gauge, "g")
    assert all(0 <= v <= 1 for v in statsd_receiver.values(gauge, "g"))


def test_waiting_for_a_server_that_never_comes_fails_with_a_reason() -> None:
    started = time.monotonic()
    with pytest.raises(AikError, match=r"not ready within 1 s \(ConnectionRefused|not ready within 1 s"):
        wait_until_ready("127.0.0.1", 1, timeout=1.0)
    assert time.monotonic() - started < 5


def test_errors_are_counted_not_fatal(live: LiveServer) -> None:
    rows = [{"UserAgent": "x" * 10_000, "hour": "1"}]  # the server refuses an over-long user agent
    report = run_emulator(config(live, requests=20, threads=1, warmup=0), rows=rows)
    assert report["errors"] == 20
    assert report["requests_measured"] == 0
    assert "userAgent is 10000 characters" in next(iter(report["error_messages"]))


def test_rows_from_inference_data_skip_spark_markers_and_malformed_lines(tmp_path: Path) -> None:
    root = tmp_path / "inference-data"
    storage.write_text(str(root / "_SUCCESS"), "")
    storage.write_text(str(root / ".part-00000.json.crc"), "garbage")
    lines = [json.dumps({"BidID": "a", "hour": "01"}), "{not json", "[1, 2]", "", json.dumps({"BidID": "b"})]
    storage.write_text(str(root / "part-00000.json"), "\n".join(lines) + "\n")
    assert [r["BidID"] for r in load_rows(str(root) + "/", 10)] == ["a", "b"]
    assert len(load_rows(str(root) + "/", 1)) == 1
    with pytest.raises(AikError, match="no inference data"):
        load_rows(str(tmp_path / "empty") + "/", 10)


def test_bid_request_from_a_raw_row() -> None:
    row = {
        "BidID": "x1",
        "dow": 3,
        "hour": "07",
        "RegionID": 80,
        "CityID": 85.0,
        "Domain": "trqRTu",
        "AdvertiserID": "1458",
        "BiddingPrice": 300,
        "PayingPrice": None,
        "UserAgent": "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X)",
    }
    request = bid_request(row)
    assert (request.regionId, request.cityId, request.hour, request.dayOfWeek) == ("80", "85", "07", 3)
    assert request.payingPrice is None and request.biddingPrice == 300
    assert request.deviceTypeId == 0  # smartphone, by the shared function
    assert bid_request(row, send_user_agent=False).userAgent is None
    assert bid_request({}).deviceTypeId == 6


def test_run_without_rows_reads_the_inference_parameter(live: LiveServer) -> None:
    uri = live.artifacts.store.get(params.INFERENCE_DATA)
    assert storage.list_uris(uri)
    report = run_emulator(config(live, requests=10, threads=1, max_rows=7), store=live.artifacts.store)
    assert report["errors"] == 0
    assert np.isfinite(report["latency_ms"]["p99"])
