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
    LOOPBACK_MAX_UDP,
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

    def __init__(self, prefix: str | None = "p", maxudpsize: int = 512) -> None:
        super().__init__("127.0.0.1", 9, prefix=prefix, maxudpsize=maxudpsize)
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


@pytest.mark.parametrize("maxudpsize", [512, LOOPBACK_MAX_UDP, 40])
@pytest.mark.parametrize("prefix", ["aik.server", None])
def test_timer_datagrams_are_the_ones_statsd_pipeline_sends(
    monkeypatch: pytest.MonkeyPatch, prefix: str | None, maxudpsize: int
) -> None:
    monkeypatch.setattr(time, "sleep", lambda seconds: None)
    values = [0.1234567, 12.5, 1e-7, 999.999999, *[i / 7 for i in range(300)]]
    ours = CapturingClient(prefix, maxudpsize)
    metrics = MetricsAggregator(ours, MetricNames(timer="filtering_latency"), max_timings=len(values))
    for ms in values:
        metrics.record(1, ms)
    metrics.flush()
    theirs = CapturingClient(prefix, maxudpsize)
    for start in range(0, len(values), TIMER_CHUNK):
        with theirs.pipeline() as pipe:
            for ms in values[start : start + TIMER_CHUNK]:
                pipe.timing("filtering_latency", ms)
    assert ours.datagrams == theirs.datagrams
    # a datagram of several lines stays below the limit; a line longer than it goes alone
    assert max((len(d) for d in ours.datagrams if "\n" in d), default=0) < maxudpsize


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


def test_a_statsd_on_this_host_gets_datagrams_up_to_the_loopback_size(statsd_receiver: StatsdLines) -> None:
    client = statsd_client("localhost", statsd_receiver.port, "p")
    metrics = MetricsAggregator(client, MetricNames(timer="t"), max_timings=2000)
    for i in range(2000):
        metrics.record(1, float(i))
    sizes: list[int] = []
    send = client._send
    client._send = lambda data: (sizes.append(len(data)), send(data))
    metrics.flush()
    assert statsd_receiver.wait_for(lambda _: len(statsd_receiver.values("p.t", "ms")) == 2000)
    assert 512 < max(sizes) < LOOPBACK_MAX_UDP


def test_a_statsd_on_another_host_keeps_statsds_default_datagram_size() -> None:
    client = statsd_client("192.0.2.1", 8125, "p")  # TEST-NET-1: no DNS, nothing listens
    assert client._maxudpsize == statsd.StatsClient("192.0.2.1", 8125)._maxudpsize == 512


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


def test_calls_recorded_from_many_threads_at_once_are_each_counted_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    client = CapturingClient()
    names = MetricNames(timer="t", counter="n", arm_counter="arm_n")
    metrics = MetricsAggregator(client, names, max_timings=10)
    threads, calls = 4, 20_000

    def serve(k: int) -> None:
        for _ in range(calls):
            metrics.record(1, 0.5, arms=((f"arm{k % 2}", 1, 0.25),))

    workers = [threading.Thread(target=serve, args=(k,)) for k in range(threads)]
    for worker in workers:
        worker.start()
    while any(worker.is_alive() for worker in workers):
        metrics.flush()  # while the threads record
    metrics.flush()
    lines = [line for datagram in client.datagrams for line in datagram.split("\n")]
    counted = [int(line.split(":")[1][: -len("|c")]) for line in lines if line.startswith("p.n:")]
    per_arm = {
        arm: sum(
            int(line.split(":")[1][: -len("|c")]) for line in lines if line.startswith(f"p.arm_n,arm={arm}:")
        )
        for arm in ("arm0", "arm1")
    }
    assert sum(counted) == threads * calls
    assert per_arm == {"arm0": threads * calls // 2, "arm1": threads * calls // 2}


def test_the_only_arms_timer_sends_the_same_sample_as_the_main_timer() -> None:
    client = CapturingClient()
    metrics = MetricsAggregator(client, MetricNames(timer="t", arm_timer="arm_t"), max_timings=50)
    for i in range(1000):
        metrics.record(1, float(i), arms=(("champion", 1, 0.5),))
    metrics.flush()
    main = _timer_values(client.datagrams, "p.t")
    assert len(main) == 50
    assert _timer_values(client.datagrams, "p.arm_t,arm=champion") == main


def test_calls_each_answered_by_one_of_several_arms_add_up_per_arm(statsd_receiver: StatsdLines) -> None:
    client = statsd_client("127.0.0.1", statsd_receiver.port, dashboard.SERVER_PREFIX)
    metrics = MetricsAggregator(client, SERVER_METRICS, max_timings=100)
    for i in range(30):  # an experiment's `filter` calls: one arm each, in turns
        arm = ("champion", "challenger", "champion")[i % 3]
        metrics.record(1, float(i), arms=((arm, 1, 0.1 if arm == "champion" else 0.4),))
    metrics.flush()
    prefix = dashboard.SERVER_PREFIX
    assert statsd_receiver.wait_for(
        lambda _: len(statsd_receiver.values(f"{prefix}.arm_latency,arm=challenger", "ms")) == 10
    )
    assert statsd_receiver.values(f"{prefix}.arm_count,arm=champion", "c") == [20]
    assert statsd_receiver.values(f"{prefix}.arm_count,arm=challenger", "c") == [10]
    assert statsd_receiver.values(f"{prefix}.arm_likelihood,arm=champion", "g") == [pytest.approx(0.1)]
    assert statsd_receiver.values(f"{prefix}.arm_likelihood,arm=challenger", "g") == [pytest.approx(0.4)]
    challenger = sorted(statsd_receiver.values(f"{prefix}.arm_latency,arm=challenger", "ms"))
    assert challenger == [float(i) for i in range(30) if i % 3 == 1]
    assert statsd_receiver.wait_for(
        lambda _: len(statsd_receiver.values(f"{prefix}.arm_latency,arm=champion", "ms")) == 20
    )
    assert sorted(statsd_receiver.values(f"{prefix}.arm_latency,arm=champion", "ms")) == [
        float(i) for i in range(30) if i % 3 != 1
    ]


def test_record_scored_counts_each_kind_of_reply_as_requests_scored_does() -> None:
    from filtering_api.idl import BidResponse, HealthStatus
    from filtering_server.handler import (
        Answer,
        ArmAnswer,
        BatchAnswer,
        ColumnsAnswer,
        record_scored,
        requests_scored,
    )

    tally = (("champion", 1, 0.5),)
    replies = [
        Answer(likelihoodToBid=0.5),
        ArmAnswer(likelihoodToBid=0.5),
        BidResponse(likelihoodToBid=0.5),  # the echo's
        BatchAnswer(likelihoodToBid=[0.5, 0.5, 0.5]),
        ColumnsAnswer(likelihoodToBid=bytes(8 * 4)),
        HealthStatus(ready=True),
    ]
    for reply in replies[:2]:
        reply.tally = tally
    metrics = MetricsAggregator(None, MetricNames(timer="t"))
    counted = [record_scored(metrics, reply, time.perf_counter()) for reply in replies]
    assert counted == [requests_scored(reply) for reply in replies] == [1, 1, 1, 3, 4, 0]
    count, _, latencies, _, _, arms = metrics._take()
    assert (count, len(latencies), arms["champion"].count) == (10, 5, 2)
