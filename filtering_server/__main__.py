"""`python -m filtering_server`: serve bid-filtering likelihoods over Thrift (port 9090 by default).

Reads /aik/xgboost/path, /aik/pipelineModelArtifactPath and /aik/pipelineModelArtifactSchemaPath from
the parameter store (local or SSM), loads and validates the model, then listens; it watches those
parameters and artifacts and swaps in new models without downtime. SIGTERM or SIGINT drains and exits.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from types import FrameType

from aik import dashboard, predictions, storage
from aik.context import Context
from aik.errors import AikError
from aik.logsetup import setup_logging
from aik.settings import Settings, add_backend_arguments
from filtering_api.metrics import MetricNames, MetricsAggregator, statsd_address, statsd_client
from filtering_server.model import DEFAULT_MAX_STRING
from filtering_server.prediction_log import FileSink, FirehoseSink, PredictionLog
from filtering_server.server import TRANSPORTS, FilteringServer, ServerConfig
from filtering_server.watcher import ModelHolder, ModelWatcher

log = logging.getLogger("filtering_server")

SERVER_METRICS = MetricNames(
    timer=dashboard.FILTERING_LATENCY,
    counter=dashboard.FILTERING_COUNT,
    errors=dashboard.FILTERING_ERRORS,
    arm_counter=dashboard.ARM_COUNT,
    arm_timer=dashboard.ARM_LATENCY,
    arm_gauge=dashboard.ARM_LIKELIHOOD,
)
ENV_PREDICTION_SAMPLE = "AIK_PREDICTION_SAMPLE"
ENV_PREDICTION_LOG = "AIK_PREDICTION_LOG"
FIREHOSE_SCHEME = "firehose:"


@dataclass(frozen=True)
class Options:
    """Everything `main` needs besides the network settings (`ServerConfig`)."""

    settings: Settings
    server: ServerConfig
    watch_interval: float = 30.0
    wait_for_model: float = 0.0
    statsd_host: str | None = None
    statsd_port: int | None = None
    metrics: bool = True
    metrics_interval: float = 1.0
    log_interval: float = 20.0
    max_string: int = DEFAULT_MAX_STRING
    ready_file: Path | None = None
    echo: bool = False
    #: Share of answers written to the prediction log (0: off).
    prediction_sample: float = 0.0
    #: Where: a local directory, or `firehose:<delivery stream>` (None: <workspace>/predictions/).
    prediction_log: str | None = None


def port_number(text: str) -> int:
    """argparse type of a TCP port: 0 (pick a free one) to 65535; anything else is a usage error."""
    value = int(text)
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"must be between 0 and 65535, got {value}")
    return value


def sample_rate(text: str) -> float:
    """argparse type of a sampling rate: a number from 0 to 1."""
    try:
        value = float(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"not a number: {text}") from exc
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"must be between 0 and 1, got {value}")
    return value


def build_parser() -> argparse.ArgumentParser:
    """The command line of the server."""
    defaults = ServerConfig()
    p = argparse.ArgumentParser(prog="python -m filtering_server", description=__doc__)
    add_backend_arguments(p)
    p.add_argument("--host", default=defaults.host, help=f"interface to listen on (default {defaults.host})")
    p.add_argument(
        "--port",
        type=port_number,
        default=defaults.port,
        help="Thrift port; 0 picks a free one (default 9090)",
    )
    p.add_argument(
        "--watch-interval",
        type=float,
        default=30.0,
        metavar="S",
        help="seconds between checks for a new model; 0 disables the watcher (default 30)",
    )
    p.add_argument(
        "--wait-for-model",
        type=float,
        default=0.0,
        metavar="S",
        help="keep retrying the first model load for this long instead of failing at once (default 0)",
    )
    p.add_argument("--statsd-host", default=None, help="StatsD host (env AIK_STATSD_HOST, default localhost)")
    p.add_argument(
        "--statsd-port",
        type=port_number,
        default=None,
        help="StatsD UDP port (env AIK_STATSD_PORT, default 8125)",
    )
    p.add_argument("--no-metrics", action="store_true", help="send no StatsD metrics")
    p.add_argument(
        "--metrics-interval", type=float, default=1.0, metavar="S", help="StatsD flush period (default 1)"
    )
    p.add_argument(
        "--log-interval",
        type=float,
        default=20.0,
        metavar="S",
        help="period of the latency log line (default 20)",
    )
    p.add_argument(
        "--drain-timeout",
        type=float,
        default=defaults.drain_timeout,
        metavar="S",
        help="on SIGTERM, seconds to let requests in progress finish (default 10)",
    )
    p.add_argument("--max-connections", type=int, default=defaults.max_connections)
    p.add_argument(
        "--reserve-connections",
        type=int,
        default=defaults.reserve_connections,
        help="slots kept for new clients: with fewer left, the longest-idle connections are closed "
        f"(default {defaults.reserve_connections})",
    )
    p.add_argument(
        "--idle-timeout",
        type=float,
        default=defaults.idle_timeout,
        metavar="S",
        help=f"close a connection idle this long between messages (default {defaults.idle_timeout:g})",
    )
    p.add_argument(
        "--read-timeout",
        type=float,
        default=defaults.read_timeout,
        metavar="S",
        help=f"a started message must arrive in full within this (default {defaults.read_timeout:g})",
    )
    p.add_argument("--max-message-bytes", type=int, default=defaults.max_message_bytes)
    p.add_argument(
        "--max-batch", type=int, default=defaults.max_batch, help="most requests in one filterBatch"
    )
    p.add_argument(
        "--max-user-agent",
        type=int,
        default=DEFAULT_MAX_STRING,
        help="longest user agent accepted (characters)",
    )
    p.add_argument(
        "--ready-file", type=Path, default=None, help="write {port, pid, version} as JSON here once ready"
    )
    p.add_argument(
        "--prediction-sample",
        type=sample_rate,
        default=None,
        metavar="RATE",
        help=f"share of answers written to the prediction log, 0 to 1 (env {ENV_PREDICTION_SAMPLE}, "
        "default 0: off)",
    )
    p.add_argument(
        "--prediction-log",
        default=None,
        metavar="DIR|firehose:STREAM",
        help=f"where the prediction log goes: a directory, or a Kinesis Data Firehose delivery stream "
        f"(env {ENV_PREDICTION_LOG}, default <workspace>/predictions/)",
    )
    p.add_argument(
        "--transport",
        choices=TRANSPORTS,
        default=defaults.transport,
        help="threads: a thread per connection; loop: one thread multiplexes all connections "
        f"(default {defaults.transport}; docs/serving.md compares them)",
    )
    p.add_argument(
        "--echo",
        action="store_true",
        help="answer 0.5 without scoring: the transport baseline of the benchmark (not for production)",
    )
    p.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    return p


def options_from_args(args: argparse.Namespace) -> Options:
    """The parsed command line as `Options` (environment variables fill what the flags leave out)."""
    for name in (
        "max_connections",
        "reserve_connections",
        "max_message_bytes",
        "max_batch",
        "max_user_agent",
    ):
        if getattr(args, name) < 0:
            raise AikError(f"--{name.replace('_', '-')} must not be negative")
    for name in ("idle_timeout", "read_timeout"):
        if getattr(args, name) <= 0:
            raise AikError(f"--{name.replace('_', '-')} must be positive")
    try:
        settings = Settings.from_env(args.backend, args.workspace, args.region)
    except ValueError as exc:
        raise AikError(str(exc)) from exc
    return Options(
        settings=settings,
        server=ServerConfig(
            host=args.host,
            port=args.port,
            drain_timeout=args.drain_timeout,
            max_connections=args.max_connections,
            reserve_connections=args.reserve_connections,
            idle_timeout=args.idle_timeout,
            read_timeout=args.read_timeout,
            max_message_bytes=args.max_message_bytes,
            max_batch=args.max_batch,
            transport=args.transport,
        ),
        watch_interval=args.watch_interval,
        wait_for_model=args.wait_for_model,
        statsd_host=args.statsd_host,
        statsd_port=args.statsd_port,
        metrics=not args.no_metrics,
        metrics_interval=args.metrics_interval,
        log_interval=args.log_interval,
        max_string=args.max_user_agent,
        ready_file=args.ready_file,
        echo=args.echo,
        prediction_sample=(
            args.prediction_sample
            if args.prediction_sample is not None
            else _env_rate(os.environ.get(ENV_PREDICTION_SAMPLE))
        ),
        prediction_log=args.prediction_log or os.environ.get(ENV_PREDICTION_LOG) or None,
    )


def _env_rate(text: str | None) -> float:
    if not text:
        return 0.0
    try:
        return sample_rate(text)
    except argparse.ArgumentTypeError as exc:
        raise AikError(f"{ENV_PREDICTION_SAMPLE}: {exc}") from exc


def prediction_log(options: Options) -> PredictionLog | None:
    """The prediction log the options ask for (None when the sample rate is 0)."""
    if options.prediction_sample <= 0:
        return None
    dest = options.prediction_log or predictions.local_root(options.settings)
    sink: FileSink | FirehoseSink
    if dest.startswith(FIREHOSE_SCHEME):
        stream = dest[len(FIREHOSE_SCHEME) :]
        if not stream:
            raise AikError(f"--prediction-log {dest}: name the delivery stream (firehose:NAME)")
        sink = FirehoseSink(stream)
    else:
        sink = FileSink(dest)
    return PredictionLog(sink, rate=options.prediction_sample)


def _load_first_model(watcher: ModelWatcher, wait: float) -> None:
    deadline = time.monotonic() + wait
    while True:
        try:
            watcher.load_initial()
            return
        except AikError as exc:
            if time.monotonic() >= deadline:
                raise
            log.warning("no model yet (%s); retrying", exc)
            time.sleep(min(5.0, max(0.5, watcher.interval)))


def serve(options: Options, stop: threading.Event) -> int:
    """Load, listen, watch and serve until `stop` is set; then drain. Returns the exit status."""
    from filtering_server import forest, wire

    started = time.monotonic()
    forest.warm_up()  # compile or load the kernels before the first request, not during it
    wire.warm_up()
    log.info("scoring kernels ready in %.1f s", time.monotonic() - started)
    ctx = Context(options.settings)
    holder = ModelHolder()
    watcher = ModelWatcher(ctx.params, holder, interval=options.watch_interval, max_string=options.max_string)
    _load_first_model(watcher, options.wait_for_model)

    predictions_log = prediction_log(options)
    if predictions_log is not None:
        predictions_log.start()
    metrics = None
    if options.metrics:
        host, port = statsd_address(options.statsd_host, options.statsd_port)
        client = statsd_client(host, port, dashboard.SERVER_PREFIX)
        metrics = MetricsAggregator(
            client,
            SERVER_METRICS,
            flush_interval=options.metrics_interval,
            log_interval=options.log_interval,
            label="filtering",
            logger=logging.getLogger("filtering_server.stats"),
        )
        metrics.extra_log = lambda: holder.serving.describe() if holder.serving else "model none"
        metrics.add_gauge(dashboard.MODEL_CHECK_AGE, watcher.check_age)
        if predictions_log is not None:
            log_ = predictions_log
            metrics.add_gauge(dashboard.PREDICTION_LOG_DROPPED, lambda: float(log_.dropped))
            metrics.add_gauge(dashboard.PREDICTION_LOG_FAILED, lambda: float(log_.failed))
        metrics.start()
        log.info("sending StatsD metrics to %s:%d (prefix %s)", host, port, dashboard.SERVER_PREFIX)

    server = FilteringServer(
        holder,
        options.server,
        metrics,
        echo=options.echo,
        model_check_age=watcher.check_age,
        predictions=predictions_log,
    )
    try:
        port = server.bind()
    except OSError as exc:
        raise AikError(
            f"cannot listen on {options.server.host}:{options.server.port} ({exc.strerror or exc})"
        ) from exc
    server.start()
    watcher.start()
    if options.echo:
        log.warning("echo mode: every request is answered 0.5 without scoring (benchmark baseline)")
    model = holder.current
    assert model is not None
    log.info(
        "listening on %s:%d (transport %s), model %s",
        options.server.host,
        port,
        options.server.transport,
        model.version,
    )
    if options.ready_file is not None:
        storage.write_text(
            str(options.ready_file), json.dumps({"port": port, "pid": os.getpid(), "version": model.version})
        )
    while not stop.wait(1.0):  # a timed wait keeps the main thread responsive to signals
        pass
    log.info("stopping: draining connections")
    watcher.stop()
    clean = server.shutdown()
    if metrics is not None:
        metrics.stop()
    if predictions_log is not None:
        predictions_log.stop()
    log.info("stopped (%d requests served)", server.requests_served)
    return 0 if clean else 1


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point: parse, serve until SIGTERM/SIGINT, print one-line errors and exit non-zero."""
    args = build_parser().parse_args(argv)
    setup_logging(args.verbose)
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        log.info("received %s", signal.Signals(signum).name)
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    try:
        return serve(options_from_args(args), stop)
    except AikError as exc:
        print(f"filtering_server: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    raise SystemExit(main())
