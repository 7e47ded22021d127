"""The live UDP receiver on an ephemeral port, fed by the real `statsd` client with the dashboard's names."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import statsd

from aik.dashboard import (
    CLIENT_LATENCY,
    CLIENT_PREFIX,
    FILTERING_COUNT,
    FILTERING_LATENCY,
    LIKELIHOOD,
    SERVER_PREFIX,
    WIDGETS,
)
from aik.errors import AikError
from aik.monitoring.receiver import StatsdReceiver

T0 = 1_700_000_000.0


class FakeClock:
    """A wall clock the test moves by hand (read from the receiver's thread)."""

    def __init__(self, now: float) -> None:
        self.now = now
        self._lock = threading.Lock()

    def __call__(self) -> float:
        with self._lock:
            return self.now

    def set(self, now: float) -> None:
        with self._lock:
            self.now = now


def read_records(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


@pytest.fixture
def receiver(tmp_path: Path) -> Iterator[StatsdReceiver]:
    rec = StatsdReceiver(tmp_path / "metrics.jsonl", port=0).start()
    yield rec
    if rec.running:
        rec.stop()


def test_binds_an_ephemeral_port_on_localhost(receiver: StatsdReceiver) -> None:
    host, port = receiver.address
    assert host == "127.0.0.1"
    assert port > 0


def test_dashboard_metrics_from_the_statsd_client_are_aggregated_as_cloudwatch_would(
    receiver: StatsdReceiver,
) -> None:
    server = statsd.StatsClient("127.0.0.1", receiver.port, prefix=SERVER_PREFIX)
    client = statsd.StatsClient("127.0.0.1", receiver.port, prefix=CLIENT_PREFIX)
    rng = np.random.default_rng(11)
    server_ms = rng.lognormal(-1.5, 0.5, 400)
    client_ms = server_ms + rng.uniform(0.1, 0.5, 400)
    likelihood = rng.uniform(0, 1, 400)
    for i in range(400):
        server.incr(FILTERING_COUNT)
        server.timing(FILTERING_LATENCY, server_ms[i])
        client.timing(CLIENT_LATENCY, client_ms[i])
        client.gauge(LIKELIHOOD, likelihood[i])
    assert receiver.wait_for(1600)
    stats = receiver.stop()
    assert (stats.datagrams, stats.lines, stats.malformed) == (1600, 1600, 0)

    records = read_records(receiver.out)  # type: ignore[arg-type]
    # the test may straddle a window boundary: sum the windows
    names = {(r["name"], r["metric_type"]) for r in records}
    wanted = {(m.cloudwatch_name, m.metric_type) for w in WIDGETS for m in w.metrics}
    assert names == wanted
    counts = [r for r in records if r["name"] == "filtering_server_filtering_count"]
    assert sum(r["sum"] for r in counts) == 400
    assert all(r["dimensions"] == {} and r["period"] == 10 for r in records)
    timings = [r for r in records if r["name"] == "filtering_server_filtering_latency"]
    if len(timings) == 1:  # one window: its p99 is the p99 of every value sent (6 decimals on the wire)
        sent = np.round(server_ms, 6)
        assert timings[0]["p99"] == pytest.approx(np.percentile(sent, 99, method="inverted_cdf"))
        assert timings[0]["max"] == pytest.approx(sent.max())
    gauges = [r for r in records if r["name"] == "adserver_client_likelihood_to_bid"]
    assert sum(r["sum"] for r in gauges) == pytest.approx(likelihood.sum())
    assert receiver.records and len(receiver.records) == len(records)


def test_a_moderate_burst_loses_nothing(receiver: StatsdReceiver) -> None:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.connect(receiver.address)
    sent = 20_000
    for i in range(sent):
        sock.send(b"filtering_server.filtering_count:1|c")
        # moderate: never more than ~2000 datagrams ahead of the reader (well inside any socket buffer)
        if i % 500 == 0:
            assert receiver.wait_for(i - 1500, timeout=10)
    assert receiver.wait_for(sent, timeout=10)
    stats = receiver.stop()
    assert stats.datagrams == sent
    assert sum(r.sum for r in receiver.records) == sent
    if stats.kernel_drops is not None:
        assert stats.kernel_drops == 0


def test_malformed_lines_are_counted_set_aside_and_serving_goes_on(receiver: StatsdReceiver) -> None:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.sendto(b"total garbage", receiver.address)
    sock.sendto(b"hits:1|c\nhits:oops|c\nhits:2|c", receiver.address)
    sock.sendto(b"hits:1|c", receiver.address)
    assert receiver.wait_for(3)
    stats = receiver.stop()
    assert (stats.datagrams, stats.lines, stats.malformed) == (3, 5, 2)
    assert sum(r.sum for r in receiver.records) == 4
    rejected = receiver.rejected_path.read_text().splitlines()  # type: ignore[union-attr]
    assert [line.split("\t")[0] for line in rejected] == ["'total garbage'", "'hits:oops|c'"]


def test_closed_windows_are_written_while_running_and_the_open_one_at_stop(tmp_path: Path) -> None:
    clock = FakeClock(T0 + 1)
    out = tmp_path / "metrics.jsonl"
    with StatsdReceiver(out, port=0, clock=clock) as receiver:
        client = statsd.StatsClient("127.0.0.1", receiver.port, prefix=SERVER_PREFIX)
        client.incr(FILTERING_COUNT, 5)
        assert receiver.wait_for(1)
        clock.set(T0 + 10.5)  # the first window has ended; the receiver notices within its poll
        deadline = time.monotonic() + 5
        while not out.read_text() and time.monotonic() < deadline:
            time.sleep(0.02)
        assert [(r["timestamp"], r["sum"]) for r in read_records(out)] == [(int(T0), 5.0)]
        client.incr(FILTERING_COUNT, 2)
        assert receiver.wait_for(2)
    assert [(r["timestamp"], r["sum"]) for r in read_records(out)] == [(int(T0), 5.0), (int(T0) + 10, 2.0)]


def test_datagrams_queued_before_stop_are_still_counted(tmp_path: Path) -> None:
    receiver = StatsdReceiver(tmp_path / "m.jsonl", port=0).start()
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    for _ in range(500):
        sock.sendto(b"hits:1|c", receiver.address)
    stats = receiver.stop()  # no wait: stop() drains the socket before the last flush
    assert stats.datagrams == 500
    assert receiver.records[-1].sum + sum(r.sum for r in receiver.records[:-1]) == 500


def test_a_port_in_use_is_a_one_line_error(receiver: StatsdReceiver) -> None:
    with pytest.raises(AikError, match=f"cannot listen for StatsD on udp 127.0.0.1:{receiver.port}"):
        StatsdReceiver(port=receiver.port).start()


def test_without_an_output_file_records_stay_in_memory() -> None:
    with StatsdReceiver(port=0) as receiver:
        statsd.StatsClient("127.0.0.1", receiver.port).gauge("level", 3)
        assert receiver.wait_for(1)
    assert [(r.name, r.last) for r in receiver.records] == [("level", 3.0)]
