"""StatsD metrics off the hot path: requests record into memory, a thread flushes to a real StatsD client.

A request costs one uncontended lock, two appends and an addition; the flusher thread adds the calls up
per arm and sends the UDP packets (statsd's pipeline packs many metrics into each) every
`flush_interval` seconds. Counts are exact: the counter is sent as the exact number of requests since
the previous flush (`name:N|c`). Timer values are sent one per request, in milliseconds; above
`max_timings` per flush a uniform random sample of that size is sent instead (percentiles stay unbiased;
the exact request count is the counter's job).
A gauge, when configured, is sent once per flush as the mean of the values recorded since the last;
gauges added with `add_gauge` are read from their callable at each flush (e.g. the model check's age).
Per-arm metrics (an experiment's champion and challengers), when named: each arm's request count,
its calls' latencies and the mean likelihood its requests got, tagged `,arm=<arm>`.
The same aggregator logs, every `log_interval` seconds, the request count, rate and latency (average and
p99).
"""

from __future__ import annotations

import logging
import os
import threading
import time
from bisect import bisect_left
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from itertools import accumulate
from operator import add, itemgetter
from typing import Any

import numpy as np

log = logging.getLogger(__name__)

ENV_STATSD_HOST = "AIK_STATSD_HOST"
ENV_STATSD_PORT = "AIK_STATSD_PORT"
DEFAULT_STATSD_HOST = "localhost"
DEFAULT_STATSD_PORT = 8125
#: Timer values formatted and sent per GIL hold of the flusher.
TIMER_CHUNK = 100
#: Largest datagram sent to a StatsD on this host (the ECS task's agent listens on localhost): statsd's
#: default of 512 bytes is meant for paths across the internet; over loopback, where nothing fragments,
#: bigger datagrams mean fewer send calls. The CloudWatch agent (telegraf's statsd input) reads up to 64 KiB.
LOOPBACK_MAX_UDP = 8192


def statsd_address(host: str | None = None, port: int | None = None) -> tuple[str, int]:
    """Explicit values win, then `AIK_STATSD_HOST` / `AIK_STATSD_PORT`, then localhost:8125."""
    chosen_host = host or os.environ.get(ENV_STATSD_HOST) or DEFAULT_STATSD_HOST
    chosen_port = port or int(os.environ.get(ENV_STATSD_PORT) or DEFAULT_STATSD_PORT)
    return chosen_host, chosen_port


def statsd_client(host: str, port: int, prefix: str) -> Any:
    """A UDP StatsD client (the `statsd` package); an unresolvable host is a one-line error. Datagrams
    to a loopback address may be up to `LOOPBACK_MAX_UDP` bytes, to any other statsd's default 512."""
    import ipaddress
    import socket

    import statsd

    from aik.errors import AikError

    try:
        client = statsd.StatsClient(host, port, prefix=prefix)
    except (socket.gaierror, OSError) as exc:
        raise AikError(f"cannot reach StatsD at {host}:{port} ({exc})") from exc
    if ipaddress.ip_address(client._addr[0]).is_loopback:  # the address statsd resolved and sends to
        client._maxudpsize = LOOPBACK_MAX_UDP
    return client


@dataclass(frozen=True)
class MetricNames:
    """The names one process sends (without the prefix, which the client adds)."""

    timer: str
    counter: str | None = None
    gauge: str | None = None
    errors: str | None = None
    #: Per-arm metrics (the server's experiments): counter, timer and mean-likelihood gauge, each sent
    #: with the influx-style tag `,arm=<arm>` (a CloudWatch dimension `arm`).
    arm_counter: str | None = None
    arm_timer: str | None = None
    arm_gauge: str | None = None


#: Per arm that answered a call: (arm, requests, sum of their likelihoods).
ArmTally = Sequence[tuple[str, int, float]]
_first = itemgetter(0)
_second = itemgetter(1)
_third = itemgetter(2)


class _ArmWindow:
    """One arm's numbers since the last flush."""

    __slots__ = ("count", "latencies", "likelihood_sum")

    def __init__(
        self, count: int = 0, latencies: list[float] | None = None, likelihood_sum: float = 0.0
    ) -> None:
        self.count = count
        self.latencies: list[float] = [] if latencies is None else latencies
        self.likelihood_sum = likelihood_sum


def _arm_windows(latencies: list[float], tallies: Sequence[ArmTally]) -> dict[str, _ArmWindow]:
    """Each arm's count, latencies and likelihood sum over some calls (`tallies[i]`: call i's arms).

    When one arm answered every call (no experiment: the common case) it is added up by C loops (`map`),
    and its latencies are the calls' own list, the same object, which the flusher samples and formats
    once for both timers; otherwise a loop over the calls.
    """
    if not any(tallies):  # the echo's calls, or none
        return {}
    if set(map(len, tallies)) == {1}:
        heads = list(map(_first, tallies))
        arms = set(map(_first, heads))
        if len(arms) == 1:
            return {arms.pop(): _ArmWindow(sum(map(_second, heads)), latencies, sum(map(_third, heads)))}
    windows: dict[str, _ArmWindow] = {}
    for latency_ms, tally in zip(latencies, tallies, strict=True):
        for arm, n_requests, likelihood_sum in tally:
            window = windows.get(arm)
            if window is None:
                window = windows[arm] = _ArmWindow()
            window.count += n_requests
            window.latencies.append(latency_ms)
            window.likelihood_sum += likelihood_sum
    return windows


def tagged(name: str, arm: str) -> str:
    """A metric name with the arm as an influx-style tag (`name,arm=champion`)."""
    return f"{name},arm={arm}"


def _send_lines(client: Any, stat: str, numbers: list[str], digits: list[int], limit: int) -> None:
    """Send `stat:<number>|ms` per number in the datagrams statsd's `Pipeline._send` makes: lines are
    joined while the datagram stays below `limit` bytes (a longer line goes alone). `digits[k]`: the
    characters of the first k numbers."""
    step = len(stat) + 5  # the line's ":", "|ms" and the newline before the next
    head, glue = f"{stat}:", f"|ms\n{stat}:"
    # the datagram of lines i..e-1 is ends[e] - ends[i] - 1 characters long
    ends = list(map(add, digits, range(0, len(digits) * step, step)))
    start, n = 0, len(numbers)
    while start < n:
        stop = max(bisect_left(ends, limit + 1 + ends[start]) - 1, start + 1)
        client._after(head + glue.join(numbers[start:stop]) + "|ms")
        start = stop


class MetricsAggregator:
    """Collect per-request numbers in memory; flush them to StatsD and log a summary periodically."""

    def __init__(
        self,
        client: Any | None,
        names: MetricNames,
        *,
        flush_interval: float = 1.0,
        max_timings: int = 2000,
        log_interval: float = 20.0,
        label: str = "requests",
        logger: logging.Logger | None = None,
    ) -> None:
        self.client = client
        self.names = names
        self.flush_interval = flush_interval
        self.max_timings = max_timings
        self.log_interval = log_interval
        self.label = label
        self._log = logger or log
        self._lock = threading.Lock()
        #: draws the timer sample in C (random.sample's Python loop held the GIL for milliseconds)
        self._rng = np.random.default_rng()
        # since the last flush: requests, each call's latency and arms (added up per arm by the flusher)
        self._count = 0
        self._latencies: list[float] = []
        self._tallies: list[ArmTally] = []
        self._errors = 0
        self._gauge_sum = 0.0
        self._gauge_n = 0
        # totals and the window of the periodic log line
        self.total_count = 0
        self.total_errors = 0
        self._window_latencies: list[float] = []
        self._window_count = 0
        self._window_errors = 0
        self._window_start = time.monotonic()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.extra_log: Any = None  # callable -> str appended to the log line (e.g. the model version)
        self._polled: dict[str, Callable[[], float | None]] = {}

    def add_gauge(self, name: str, read: Callable[[], float | None]) -> None:
        """Send `name` as a gauge at every flush with the value `read()` returns (nothing when None)."""
        self._polled[name] = read

    def record(self, count: int, latency_ms: float, gauge: float | None = None, arms: ArmTally = ()) -> None:
        """Count `count` requests served in one call that took `latency_ms`; `arms`: per arm that
        answered, (arm, requests, sum of their likelihoods), added up per arm at the next flush."""
        lock = self._lock
        lock.acquire()  # not `with`: its context-manager calls cost more than the rest of this method
        try:
            self._count += count
            self._latencies.append(latency_ms)
            self._tallies.append(arms)
            if gauge is not None:
                self._gauge_sum += gauge
                self._gauge_n += 1
        finally:
            lock.release()

    def record_gauge_values(self, total: float, n: int) -> None:
        """Add `n` gauge values whose sum is `total` (a batch's likelihoods)."""
        with self._lock:
            self._gauge_sum += total
            self._gauge_n += n

    def record_error(self) -> None:
        """Count one failed request."""
        with self._lock:
            self._errors += 1

    def _take(self) -> tuple[int, int, list[float], float, int, dict[str, _ArmWindow]]:
        """Everything recorded since the last call: requests, errors, latencies, the gauge's sum and
        count, the arms' windows."""
        with self._lock:
            taken = (self._count, self._errors, self._latencies, self._gauge_sum, self._gauge_n)
            tallies = self._tallies
            self._count = 0
            self._errors = 0
            self._latencies = []
            self._tallies = []
            self._gauge_sum = 0.0
            self._gauge_n = 0
        return (*taken, _arm_windows(taken[2], tallies))

    def _sample(self, latencies: list[float]) -> list[float]:
        """All timer values, or a uniform random sample of `max_timings` of them (drawn in C)."""
        if len(latencies) <= self.max_timings:
            return latencies
        picked = self._rng.choice(len(latencies), self.max_timings, replace=False)
        return np.asarray(latencies)[picked].tolist()

    def _send_arms(self, pipe: Any, arms: dict[str, _ArmWindow]) -> list[tuple[str, list[float]]]:
        """Add the arms' counters and gauges to `pipe`; return their timers (all of each arm's
        latencies), to be sampled and sent in chunks."""
        names = self.names
        timers = []
        for arm, window in arms.items():
            if names.arm_counter:
                pipe.incr(tagged(names.arm_counter, arm), window.count)
            if names.arm_timer:
                timers.append((tagged(names.arm_timer, arm), window.latencies))
            if names.arm_gauge and window.count:
                pipe.gauge(tagged(names.arm_gauge, arm), window.likelihood_sum / window.count)
        return timers

    @staticmethod
    def _send_timers(client: Any, names: Sequence[str], values: list[float]) -> None:
        """The timer lines of `values` under each of `names`, in chunks of `TIMER_CHUNK` values, yielding
        the GIL between them: formatting thousands of lines in one go holds it long enough to stall every
        request thread of the process (a tail).

        Each line is the one statsd's `timing` writes, in the datagrams its pipeline packs; but each value
        is formatted once for all the names, and a datagram is one join of them (its end found by bisection
        on the lines' running length), not one concatenation per line.
        """
        limit = client._maxudpsize
        stats = [f"{client._prefix}.{name}" if client._prefix else name for name in names]
        for start in range(0, len(values), TIMER_CHUNK):
            numbers = [f"{ms:0.6f}" for ms in values[start : start + TIMER_CHUNK]]
            digits = list(accumulate(map(len, numbers), initial=0))  # of the first k numbers
            for stat in stats:
                _send_lines(client, stat, numbers, digits, limit)
            time.sleep(0)

    def flush(self) -> None:
        """Send everything recorded since the last flush (and log the window when it is due)."""
        count, errors, latencies, gauge_sum, gauge_n, arms = self._take()
        polled = {name: read() for name, read in self._polled.items()}
        polled = {name: value for name, value in polled.items() if value is not None}
        self.total_count += count
        self.total_errors += errors
        self._window_count += count
        self._window_errors += errors
        self._window_latencies.extend(latencies)
        if self.client is not None and (count or errors or latencies or gauge_n or polled or arms):
            pipe = self.client.pipeline()
            if self.names.counter and count:
                pipe.incr(self.names.counter, count)
            if self.names.errors and errors:
                pipe.incr(self.names.errors, errors)
            if self.names.gauge and gauge_n:
                pipe.gauge(self.names.gauge, gauge_sum / gauge_n)
            for name, value in polled.items():
                pipe.gauge(name, value)
            timers = [(self.names.timer, latencies), *self._send_arms(pipe, arms)]
            pipe.send()
            # the only arm's timer shares the calls' list: one sample, formatted once, for both names
            shared: dict[int, tuple[list[float], list[str]]] = {}
            for name, values in timers:
                shared.setdefault(id(values), (values, []))[1].append(name)
            for values, names in shared.values():
                self._send_timers(self.client, names, self._sample(values))
        if time.monotonic() - self._window_start >= self.log_interval:
            self.log_window()

    def log_window(self) -> None:
        """Log the count, rate and latency of the requests since the previous log line."""
        now = time.monotonic()
        elapsed = max(now - self._window_start, 1e-9)
        lat = np.asarray(self._window_latencies, dtype=np.float64)
        extra = f"; {self.extra_log()}" if self.extra_log else ""
        if lat.size:
            self._log.info(
                "%s: %d in the last %.0f s (%.0f/s), latency avg %.3f ms p99 %.3f ms, %d errors%s",
                self.label,
                self._window_count,
                elapsed,
                self._window_count / elapsed,
                float(lat.mean()),
                float(np.percentile(lat, 99)),
                self._window_errors,
                extra,
            )
        else:
            self._log.info(
                "%s: none in the last %.0f s, %d errors%s", self.label, elapsed, self._window_errors, extra
            )
        self._window_latencies = []
        self._window_count = 0
        self._window_errors = 0
        self._window_start = now

    def _run(self) -> None:
        while not self._stop.wait(self.flush_interval):
            try:
                self.flush()
            except Exception:  # a metrics failure must never stop the process
                self._log.exception("metrics flush failed")

    def start(self) -> MetricsAggregator:
        """Start the flusher thread."""
        self._thread = threading.Thread(target=self._run, name="metrics-flusher", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop the flusher after a final flush (nothing recorded is lost)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self.flush()
