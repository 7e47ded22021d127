"""StatsD metrics: exact counts, millisecond timers, the contract's names, nothing lost at shutdown."""

from __future__ import annotations

import logging
import threading
import time

import pytest
import statsd
from serve_live import run_server
from serving_fixtures import Artifacts, StatsdLines

from ad_server_emulator.emulator import bid_request
from aik import dashboard
from filtering_api.idl import BidRequest
from filtering_api.metrics import (
    TIMER_CHUNK,
    MetricNames,
    MetricsAggregator,
    statsd_address,
    statsd_client,
)
from filtering_server.__main__ import SERVER_METRICS
from filtering_server.model import ServedModel

COUNT = f"{dashboard.SERVER_PREFIX}.{dashboard.FILTERING_COUNT}"
LATENCY = f"{dashboard.SERVER_PREFIX}.{dashboard.FILTERING_LATENCY}"


def server_metrics(receiver: StatsdLines, **kwargs: object) -> MetricsAggregator:
    """The server's aggregator, sending to the test receiver."""
    client = statsd_client("127.0.0.1", receiver.port, dashboard.SERVER_PREFIX)
    return MetricsAggregator(client, SERVER_METRICS, flush_interval=0.05, **kwargs).start()  # type: ignore[arg-type]


def test_server_counts_every_request_exactly_and_times_them_in_ms(
    numeric_artifacts: Artifacts, numeric_model: ServedModel, statsd_receiver: StatsdLines
) -> None:
    metrics = server_metrics(statsd_receiver)
    with run_server(numeric_artifacts, model=numeric_model, metrics=metrics) as live:
        client = live.client()
        request = bid_request(numeric_artifacts.rows[0])
        for _ in range(300):
            client.filter(request)
        client.filterBatch([request] * 50)
        with pytest.raises(Exception, match="userAgent"):
            client.filter(BidRequest(userAgent="x" * 10_000))
    metrics.stop()
    assert statsd_receiver.wait_for(lambda _: sum(statsd_receiver.values(COUNT, "c")) >= 350)
    time.sleep(0.2)
    assert sum(statsd_receiver.values(COUNT, "c")) == 350  # exact, batches counted per request
    timings = statsd_receiver.values(LATENCY, "ms")
    assert len(timings) == 301  # one per call
    assert all(0.0 < t < 1000.0 for t in timings)  # milliseconds, as floats
    assert any(t != int(t) for t in timings)
    assert sum(statsd_receiver.values(f"{dashboard.SERVER_PREFIX}.filtering_errors", "c")) == 1


def test_timings_are_sampled_above_the_cap_but_the_count_stays_exact(statsd_receiver: StatsdLines) -> None:
    client = statsd_client("127.0.0.1", statsd_receiver.port, "p")
    metrics = MetricsAggregator(client, MetricNames(timer="t", counter="n", gauge="g"), max_timings=10)
    for i in range(1000):
        metrics.record(1, float(i), gauge=0.25)
    metrics.flush()
    assert statsd_receiver.wait_for(lambda _: len(statsd_receiver.values("p.t", "ms")) >= 10)
    time.sleep(0.1)
    assert statsd_receiver.values("p.n", "c") == [1000.0]
    assert len(statsd_receiver.values("p.t", "ms")) == 10
    assert statsd_receiver.values("p.g", "g") == [0.25]  # the mean of the gauge values of the period


class CapturingClient(statsd.StatsClient):  # type: ignore[misc]
    """A real statsd UDP client whose datagrams are kept instead of sent."""

    def __init__(self, prefix: str | None = "p") -> None:
        super().__init__("127.0.0.1", 9, prefix=prefix)
        self.datagrams: list[str] = []

    def _send(self, data: str) -> None:
        self.datagrams.append(data)


def _count_yields(monkeypatch: pytest.MonkeyPatch, client: CapturingClient) -> list[int]:
    """The flusher's `time.sleep` calls in this thread, each as the datagrams sent before it; other
    threads of the process (earlier tests' servers) sleep as usual and are not counted."""
    yields: list[int] = []
    sleep, flusher = time.sleep, threading.get_ident()

    def counted(seconds: float) -> None:
        if threading.get_ident() == flusher:
            yields.append(len(client.datagrams))
        else:
            sleep(seconds)

    monkeypatch.setattr(time, "sleep", counted)
    return yields


def _timer_values(datagrams: list[str], stat: str) -> list[float]:
    lines = [line for datagram in datagrams for line in datagram.split("\n")]
    return [float(line.split(":")[1][: -len("|ms")]) for line in lines if line.startswith(f"{stat}:")]


def test_timers_leave_in_chunks_with_the_gil_yielded_between_them(monkeypatch: pytest.MonkeyPatch) -> None:
    client = CapturingClient()
    yields = _count_yields(monkeypatch, client)
    metrics = MetricsAggregator(client, MetricNames(timer="t", counter="n"), max_timings=2000)
    for i in range(2000):
        metrics.record(1, float(i))
    metrics.flush()
    assert sorted(_timer_values(client.datagrams, "p.t")) == [float(i) for i in range(2000)]
    chunks = [_timer_values(client.datagrams[a:b], "p.t") for a, b in zip([0, *yields], yields, strict=False)]
    assert len(chunks) == 2000 // TIMER_CHUNK  # a yield after each chunk
    assert all(0 < len(chunk) <= TIMER_CHUNK for chunk in chunks)


def test_per_arm_timers_leave_in_chunks_with_the_gil_yielded_between_them(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    client = CapturingClient()
    yields = _count_yields(monkeypatch, client)
    names = MetricNames(timer="t", counter="n", arm_counter="arm_n", arm_timer="arm_t")
    metrics = MetricsAggregator(client, names, max_timings=2000)
    for i in range(2000):
        metrics.record(1, float(i), arms=(("champion", 1, 0.5),))
    metrics.flush()
    stat = "p.arm_t,arm=champion"
    assert sorted(_timer_values(client.datagrams, stat)) == [float(i) for i in range(2000)]
    chunks = [_timer_values(client.datagrams[a:b], stat) for a, b in zip([0, *yields], yields, strict=False)]
    assert max(len(chunk) for chunk in chunks) <= TIMER_CHUNK < 2000


@pytest.mark.parametrize("prefix", ["aik.server", None])
def test_timer_datagrams_are_the_ones_statsd_pipeline_sends(
    monkeypatch: pytest.MonkeyPatch, prefix: str | None
) -> None:
    monkeypatch.setattr(time, "sleep", lambda seconds: None)
    values = [0.1234567, 12.5, 1e-7, 999.999999, *[i / 7 for i in range(300)]]
    ours = CapturingClient(prefix)
    metrics = MetricsAggregator(ours, MetricNames(timer="filtering_latency"), max_timings=len(values))
    for ms in values:
        metrics.record(1, ms)
    metrics.flush()
    theirs = CapturingClient(prefix)
    for start in range(0, len(values), TIMER_CHUNK):
        with theirs.pipeline() as pipe:
            for ms in values[start : start + TIMER_CHUNK]:
                pipe.timing("filtering_latency", ms)
    assert ours.datagrams == theirs.datagrams
    assert max(len(d) for d in ours.datagrams) < ours._maxudpsize


def test_periodic_log_line_reports_count_rate_and_latency(caplog: pytest.LogCaptureFixture) -> None:
    metrics = MetricsAggregator(None, MetricNames(timer="t"), log_interval=0.0, label="filtering")
    metrics.extra_log = lambda: "model abc"
    for ms in (1.0, 2.0, 3.0):
        metrics.record(1, ms)
    with caplog.at_level(logging.INFO):
        metrics.flush()
    line = caplog.records[-1].getMessage()
    assert line.startswith("filtering: 3 in the last ")
    assert "latency avg 2.000 ms" in line
    assert line.endswith("0 errors; model abc")


def test_statsd_address_from_options_then_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AIK_STATSD_HOST", raising=False)
    monkeypatch.delenv("AIK_STATSD_PORT", raising=False)
    assert statsd_address() == ("localhost", 8125)
    monkeypatch.setenv("AIK_STATSD_HOST", "agent")
    monkeypatch.setenv("AIK_STATSD_PORT", "9125")
    assert statsd_address() == ("agent", 9125)
    assert statsd_address("other", 1) == ("other", 1)


def test_an_unresolvable_statsd_host_is_a_one_line_error() -> None:
    from aik.errors import AikError

    with pytest.raises(AikError, match=r"cannot reach StatsD at no-such-host\.invalid:8125"):
        statsd_client("no-such-host.invalid", 8125, "x")


def test_each_arm_gets_its_count_latencies_and_mean_likelihood_tagged_with_its_name(
    statsd_receiver: StatsdLines,
) -> None:
    client = statsd_client("127.0.0.1", statsd_receiver.port, dashboard.SERVER_PREFIX)
    metrics = MetricsAggregator(client, SERVER_METRICS, max_timings=10)
    for _ in range(3):
        metrics.record(1, 0.5, arms=[("champion", 1, 0.2)])
    metrics.record(40, 2.0, arms=[("champion", 30, 3.0), ("challenger", 10, 5.0)])
    metrics.flush()
    prefix = dashboard.SERVER_PREFIX
    assert statsd_receiver.wait_for(
        lambda _: statsd_receiver.values(f"{prefix}.arm_likelihood,arm=challenger", "g")
    )
    assert statsd_receiver.values(f"{prefix}.arm_count,arm=champion", "c") == [33]
    assert statsd_receiver.values(f"{prefix}.arm_count,arm=challenger", "c") == [10]
    assert statsd_receiver.values(f"{prefix}.arm_likelihood,arm=champion", "g") == [pytest.approx(3.6 / 33)]
    assert statsd_receiver.values(f"{prefix}.arm_likelihood,arm=challenger", "g") == [0.5]
    assert sorted(statsd_receiver.values(f"{prefix}.arm_latency,arm=champion", "ms")) == [0.5, 0.5, 0.5, 2.0]
    assert sum(statsd_receiver.values(COUNT, "c")) == 43
