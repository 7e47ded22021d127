"""Replay inference rows as BidRequests against the filtering server and measure what comes back.

`run_emulator(config)` waits until the server answers `health()` as ready, loads up to `max_rows` rows
from `/aik/inference_data` (JSON lines written by the pipeline), turns each into a BidRequest (device
type from the shared `aik.device` function), and sends `requests` of them over `threads` connections
(one per thread, kept open for the whole run), optionally paced to a target rate and batched with
`filterBatch` (or `filterColumns`, with `columns`). It returns a report — throughput, latency
percentiles, errors, the likelihood distribution — and, with an output directory, writes it as JSON and
draws latency over time and the distributions as a PNG. Latency is measured around each call on the
client (in milliseconds); calls during the warm-up are not counted.
"""

from __future__ import annotations

import json
import logging
import math
import threading
import time
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ad_server_emulator.report import build_report, print_report, write_report
from aik import dashboard, params, storage
from aik.device import device_type_id
from aik.errors import AikError
from aik.progress import Progress
from filtering_api.client import bid_columns_of, connect, likelihoods, wait_until_ready
from filtering_api.metrics import MetricNames, MetricsAggregator, statsd_address, statsd_client

log = logging.getLogger(__name__)

CLIENT_METRICS = MetricNames(timer=dashboard.CLIENT_LATENCY, gauge=dashboard.LIKELIHOOD)


@dataclass(frozen=True)
class EmulatorConfig:
    """One load run: where, how much, how fast, and what to write."""

    host: str = "localhost"
    threads: int = 1
    requests: int = 100_000
    port: int = 9090
    rate: float = 0.0  # requests per second over all threads; 0 = as fast as the server answers
    duration: float = 0.0  # seconds; 0 = until `requests` are sent
    warmup: int = 100  # calls per thread sent first and not measured
    batch_size: int = 1  # 1 = `filter`; more = `filterBatch`
    #: send batches as `filterColumns`: a fixed set of column batches built before the run, cycled
    columns: bool = False
    max_rows: int = 100_000
    seed: int = 7
    timeout_ms: int = 10_000
    wait_ready: float = 120.0
    send_user_agent: bool = True  # False: send only deviceTypeId (as clients without the agent do)
    output_dir: Path | None = None
    statsd: bool = True
    statsd_host: str | None = None
    statsd_port: int | None = None
    metrics_interval: float = 1.0


# ------------------------------------------------------------------------------------------------
# Requests from inference rows
# ------------------------------------------------------------------------------------------------


def _text(value: object) -> str | None:
    """A raw field as the string Spark would have indexed (integral numbers without a decimal point)."""
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _integer(value: object) -> int | None:
    if value is None or isinstance(value, bool):
        return None
    try:
        return int(value)  # type: ignore[call-overload]  # whatever int() refuses is caught below
    except (TypeError, ValueError, OverflowError):
        return None


def bid_request(row: Mapping[str, Any], send_user_agent: bool = True) -> Any:
    """The BidRequest of one raw inference row (fields of pipeline-schema.json)."""
    from filtering_api.idl import BidRequest

    agent = row.get("UserAgent")
    agent = agent if isinstance(agent, str) else None
    dow = _integer(row.get("dow"))
    return BidRequest(
        bidId=_text(row.get("BidID")),
        dayOfWeek=dow if dow is not None and -(2**31) <= dow < 2**31 else None,
        hour=_text(row.get("hour")),
        regionId=_text(row.get("RegionID")),
        cityId=_text(row.get("CityID")),
        domainId=_text(row.get("Domain")),
        advertiserId=_text(row.get("AdvertiserID")),
        biddingPrice=_integer(row.get("BiddingPrice")),
        payingPrice=_integer(row.get("PayingPrice")),
        userAgent=agent if send_user_agent else None,
        deviceTypeId=device_type_id(agent),
    )


def _data_files(uri: str) -> list[str]:
    """The JSON-lines files under a prefix, without Spark's markers (_SUCCESS, .crc)."""
    files = [u for u in storage.list_uris(uri) if not u.rsplit("/", 1)[-1].startswith(("_", "."))]
    if not files:
        raise AikError(f"no inference data under {uri} (run the feature pipeline first)")
    return files


def iter_rows(uri: str) -> Iterator[dict[str, Any]]:
    """JSON objects of every line under `uri`; malformed lines are counted, logged and skipped."""
    bad = 0
    for file in _data_files(uri):
        with storage.open_uri(file, "r", encoding="utf-8") as f:
            for number, line in enumerate(f, 1):
                if not line.strip():
                    continue
                try:
                    row = json.loads(line)
                except json.JSONDecodeError:
                    row = None
                if not isinstance(row, dict):
                    bad += 1
                    if bad <= 3:
                        log.warning("skipping malformed line %d of %s", number, file)
                    continue
                yield row
    if bad:
        log.warning("skipped %d malformed inference line(s) under %s", bad, uri)


def load_rows(uri: str, max_rows: int) -> list[dict[str, Any]]:
    """Up to `max_rows` inference rows, read once and replayed at random."""
    rows = []
    for row in iter_rows(uri):
        rows.append(row)
        if len(rows) >= max_rows:
            break
    if not rows:
        raise AikError(f"the inference data under {uri} has no usable rows")
    return rows


# ------------------------------------------------------------------------------------------------
# Client side
# ------------------------------------------------------------------------------------------------


@dataclass
class Worker:
    """One connection's share of the run and what it measured (written only by its own thread)."""

    index: int
    calls: int
    latency_ms: np.ndarray
    end_time: np.ndarray
    likelihoods: list[float] = field(default_factory=list)
    done: int = 0  # requests answered, measured or not
    errors: Counter[str] = field(default_factory=Counter)
    measured: int = 0  # calls recorded in latency_ms


def _run_worker(
    worker: Worker,
    config: EmulatorConfig,
    requests: Sequence[Any],
    stop: threading.Event,
    started: threading.Barrier,
    t0: list[float],
    metrics: MetricsAggregator | None,
    column_batches: Sequence[Any] = (),
) -> None:
    from thriftpy2.thrift import TApplicationException

    rng = np.random.default_rng(config.seed + worker.index)
    per_thread_rate = config.rate / config.threads if config.rate > 0 else 0.0
    batch = config.batch_size
    client = None
    try:
        client = connect(config.host, config.port, config.timeout_ms)
    except Exception as exc:
        worker.errors[f"connect: {type(exc).__name__}: {exc}"] += 1
    started.wait()
    begin = time.perf_counter()
    for call in range(worker.calls + config.warmup):
        if stop.is_set():
            break
        if per_thread_rate > 0:  # open-loop pacing: each call has its slot on the clock
            delay = begin + call * batch / per_thread_rate - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
        picks = rng.integers(0, len(requests), batch)
        try:
            if client is None:
                client = connect(config.host, config.port, config.timeout_ms)
            start = time.perf_counter()
            if column_batches:
                reply = client.filterColumns(column_batches[call % len(column_batches)])
                values = likelihoods(reply).tolist()
            elif batch == 1:
                values = [client.filter(requests[picks[0]]).likelihoodToBid]
            else:
                values = client.filterBatch([requests[i] for i in picks]).likelihoodToBid
            end = time.perf_counter()
        except TApplicationException as exc:  # an error reply: the connection is still usable
            worker.errors[f"error reply: {exc}"] += 1
            continue
        except Exception as exc:  # transport failure: reconnect on the next call
            worker.errors[f"{type(exc).__name__}: {exc}"] += 1
            if client is not None:
                client.close()
            client = None
            time.sleep(0.05)
            continue
        worker.done += len(values)
        if call < config.warmup:
            continue
        ms = (end - start) * 1000.0
        worker.latency_ms[worker.measured] = ms
        worker.end_time[worker.measured] = end - t0[0]
        worker.measured += 1
        worker.likelihoods.extend(values)
        if metrics is not None:
            metrics.record(len(values), ms)
            metrics.record_gauge_values(float(sum(values)), len(values))
    if client is not None:
        client.close()


#: Column batches built before a `columns` run (building one costs more than the call it makes).
COLUMN_BATCHES = 32


def _column_batches(requests: Sequence[Any], config: EmulatorConfig) -> list[Any]:
    rng = np.random.default_rng(config.seed)
    picks = [rng.integers(0, len(requests), config.batch_size) for _ in range(COLUMN_BATCHES)]
    return [bid_columns_of([requests[i] for i in chosen]) for chosen in picks]


def _split(total: int, parts: int) -> list[int]:
    base, extra = divmod(total, parts)
    return [base + (1 if i < extra else 0) for i in range(parts)]


def run_emulator(
    config: EmulatorConfig,
    rows: Sequence[Mapping[str, Any]] | None = None,
    store: params.ParameterStore | None = None,
) -> dict[str, Any]:
    """Run one load test and return its report (also written as JSON + PNG when `output_dir` is set)."""
    if config.threads < 1 or config.requests < 0 or config.batch_size < 1:
        raise AikError("threads and batch size must be at least 1, requests at least 0")
    if config.requests == 0 and config.duration <= 0:
        raise AikError("give a number of requests, a --duration, or both")
    status = wait_until_ready(config.host, config.port, config.wait_ready)
    log.info("server ready: model %s", status.modelVersion)
    if rows is None:
        if store is None:
            raise AikError("run_emulator needs rows or a parameter store")
        uri = store.get(params.INFERENCE_DATA)
        rows = load_rows(uri, config.max_rows)
        log.info("loaded %d inference rows from %s", len(rows), uri)
    requests = [bid_request(r, config.send_user_agent) for r in rows]
    column_batches = _column_batches(requests, config) if config.columns else []

    metrics = None
    if config.statsd:
        host, port = statsd_address(config.statsd_host, config.statsd_port)
        metrics = MetricsAggregator(
            statsd_client(host, port, dashboard.CLIENT_PREFIX),
            CLIENT_METRICS,
            flush_interval=config.metrics_interval,
            log_interval=math.inf,
            label="emulator",
        ).start()

    calls_total = math.ceil(config.requests / config.batch_size) if config.requests else 10**12
    shares = _split(calls_total, config.threads) if config.requests else [calls_total] * config.threads
    capacity = [min(s, 5_000_000) for s in shares]
    workers = [
        Worker(i, shares[i], np.empty(capacity[i], dtype=np.float64), np.empty(capacity[i], dtype=np.float64))
        for i in range(config.threads)
    ]
    for w in workers:  # the arrays bound the run when only a duration is given
        w.calls = min(w.calls, w.latency_ms.shape[0])
    stop = threading.Event()
    started = threading.Barrier(config.threads + 1)
    t0 = [0.0]
    threads = [
        threading.Thread(
            target=_run_worker,
            args=(w, config, requests, stop, started, t0, metrics, column_batches),
            name=f"emulator-{w.index}",
        )
        for w in workers
    ]
    for t in threads:
        t.start()
    t0[0] = time.perf_counter()
    started.wait()
    expected = (
        (config.requests + config.warmup * config.threads * config.batch_size) if config.requests else None
    )
    with Progress("emulator", total=expected, unit="requests") as progress:
        while any(t.is_alive() for t in threads):
            time.sleep(0.25)
            done = sum(w.done for w in workers)
            progress.update(done - progress.count)
            if config.duration > 0 and time.perf_counter() - t0[0] >= config.duration:
                stop.set()
        progress.update(sum(w.done for w in workers) - progress.count)
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0[0]
    if metrics is not None:
        metrics.stop()
    report = build_report(config, workers, wall, status)
    print_report(report)
    if config.output_dir is not None:
        write_report(report, workers, Path(config.output_dir))
    return report
