"""`python -m ad_server_emulator HOST THREADS REQUESTS`: replay inference rows against the filtering server.

Positional arguments HOST THREADS REQUESTS (the ECS task runs `localhost 1 500000`), plus options for
the port, a target rate, a duration, a warm-up, batching and an output directory for the JSON report
and its PNG. Waits for the server to be ready, then reports throughput, latency percentiles, errors and
the likelihood distribution. Exits 1 when any request failed or the run could not start.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from ad_server_emulator.emulator import EmulatorConfig, run_emulator
from aik.context import Context
from aik.errors import AikError
from aik.logsetup import setup_logging
from aik.settings import Settings, add_backend_arguments, positive_int


def _non_negative_int(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must not be negative, got {value}")
    return value


def _non_negative_float(text: str) -> float:
    value = float(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must not be negative, got {value}")
    return value


def build_parser() -> argparse.ArgumentParser:
    """The command line of the emulator."""
    d = EmulatorConfig()
    p = argparse.ArgumentParser(prog="python -m ad_server_emulator", description=__doc__)
    p.add_argument("host", help="filtering server host (the ECS task uses localhost)")
    p.add_argument("threads", type=positive_int, help="concurrent connections, one per thread")
    p.add_argument("requests", type=_non_negative_int, help="requests to send in total (0: until --duration)")
    add_backend_arguments(p)
    p.add_argument("--port", type=int, default=d.port, help="server port (default 9090)")
    p.add_argument(
        "--rate", type=_non_negative_float, default=0.0, help="target requests/s over all threads (0: max)"
    )
    p.add_argument(
        "--duration", type=_non_negative_float, default=0.0, metavar="S", help="stop after S seconds"
    )
    p.add_argument(
        "--warmup", type=_non_negative_int, default=d.warmup, help="unmeasured calls per thread first"
    )
    p.add_argument(
        "--batch-size", type=positive_int, default=1, help="requests per call; >1 uses filterBatch"
    )
    p.add_argument(
        "--columns",
        action="store_true",
        help="send each batch as columns (filterColumns), from a fixed set of batches built first",
    )
    p.add_argument("--max-rows", type=positive_int, default=d.max_rows, help="inference rows to load")
    p.add_argument("--seed", type=int, default=d.seed, help="seed of the row choice")
    p.add_argument("--timeout-ms", type=positive_int, default=d.timeout_ms, help="socket timeout per call")
    p.add_argument(
        "--wait-ready",
        type=_non_negative_float,
        default=d.wait_ready,
        metavar="S",
        help="wait for the server",
    )
    p.add_argument(
        "--device-type-only",
        action="store_true",
        help="send deviceTypeId without the user agent (as aws-rtb-intelligence-kit's client does)",
    )
    p.add_argument(
        "--output", type=Path, default=None, metavar="DIR", help="write the JSON report and PNG here"
    )
    p.add_argument("--statsd-host", default=None, help="StatsD host (env AIK_STATSD_HOST, default localhost)")
    p.add_argument(
        "--statsd-port", type=int, default=None, help="StatsD port (env AIK_STATSD_PORT, default 8125)"
    )
    p.add_argument("--no-metrics", action="store_true", help="send no StatsD metrics")
    p.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    return p


def config_from_args(args: argparse.Namespace) -> EmulatorConfig:
    """The parsed command line as an `EmulatorConfig`."""
    return EmulatorConfig(
        host=args.host,
        threads=args.threads,
        requests=args.requests,
        port=args.port,
        rate=args.rate,
        duration=args.duration,
        warmup=args.warmup,
        batch_size=args.batch_size,
        columns=args.columns,
        max_rows=args.max_rows,
        seed=args.seed,
        timeout_ms=args.timeout_ms,
        wait_ready=args.wait_ready,
        send_user_agent=not args.device_type_only,
        output_dir=args.output,
        statsd=not args.no_metrics,
        statsd_host=args.statsd_host,
        statsd_port=args.statsd_port,
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point: run, print the report, exit non-zero with a one-line reason on failure."""
    args = build_parser().parse_args(argv)
    setup_logging(args.verbose)
    try:
        config = config_from_args(args)
        ctx = Context(Settings.from_env(args.backend, args.workspace, args.region))
        report = run_emulator(config, store=ctx.params)
    except (AikError, ValueError) as exc:
        print(f"ad_server_emulator: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("ad_server_emulator: interrupted", file=sys.stderr)
        return 130
    if report["errors"]:
        print(
            f"ad_server_emulator: {report['errors']} of {report['errors'] + report['requests_answered']} "
            "requests failed",
            file=sys.stderr,
        )
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
