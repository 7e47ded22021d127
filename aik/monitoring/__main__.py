"""`python -m aik.monitoring`: run the StatsD receiver as its own process, render or summarise its output.

python -m aik.monitoring receive --port 8125 --out metrics.jsonl   # until SIGINT/SIGTERM
python -m aik.monitoring render metrics.jsonl --out dashboard/    # dashboard.png + dashboard.html
python -m aik.monitoring summary metrics.jsonl [--json]
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
from collections.abc import Sequence
from types import FrameType

from aik.dashboard import PERIOD_S
from aik.errors import AikError
from aik.logsetup import setup_logging
from aik.monitoring.receiver import DEFAULT_HOST, DEFAULT_PORT, StatsdReceiver

PROG = "python -m aik.monitoring"


def build_parser() -> argparse.ArgumentParser:
    """The parser of the three subcommands (argparse prints usage and exits 2 on bad arguments)."""
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Local stand-in for the CloudWatch agent (StatsD) and the locally rendered dashboard.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    receive = sub.add_parser(
        "receive",
        help="receive StatsD over UDP and write 10-s windows as JSON lines (until SIGINT/SIGTERM)",
        description="Receive StatsD over UDP as the CloudWatch agent does and write one JSON record per "
        f"metric per {PERIOD_S}-s window. Prints `listening on udp HOST:PORT` once bound (port 0 picks a "
        "free one); SIGINT or SIGTERM stops it after flushing the open window.",
    )
    receive.add_argument("--host", default=DEFAULT_HOST, help=f"address to bind (default {DEFAULT_HOST})")
    receive.add_argument(
        "--port", type=int, default=DEFAULT_PORT, help=f"UDP port, 0 = ephemeral (default {DEFAULT_PORT})"
    )
    receive.add_argument("--out", required=True, metavar="FILE", help="JSON-lines metrics file to write")
    receive.add_argument(
        "--duration",
        type=float,
        default=None,
        metavar="SECONDS",
        help="stop after this long (default: never)",
    )
    receive.set_defaults(func=_receive)

    render = sub.add_parser(
        "render",
        help="draw the dashboard from a metrics file as PNG and self-contained HTML",
        description="Draw the widgets of Monitoring-Dashboard (four, then the per-arm row) from a "
        "metrics file into DIR/dashboard.png and DIR/dashboard.html, and print the headline and "
        "per-arm figures.",
    )
    render.add_argument("metrics", metavar="METRICS_FILE", help="JSON-lines file written by `receive`")
    render.add_argument("--out", required=True, metavar="DIR", help="directory for dashboard.png and .html")
    render.set_defaults(func=_render)

    summary = sub.add_parser("summary", help="print the dashboard's headline figures of a metrics file")
    summary.add_argument("metrics", metavar="METRICS_FILE", help="JSON-lines file written by `receive`")
    summary.add_argument("--json", action="store_true", help="every widget's figures as JSON")
    summary.set_defaults(func=_summary)
    return parser


def _receive(args: argparse.Namespace) -> int:
    if not 0 <= args.port <= 65535:
        raise AikError(f"port {args.port} is outside 0-65535")
    done = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        done.set()

    receiver = StatsdReceiver(args.out, host=args.host, port=args.port).start()
    previous = {signum: signal.signal(signum, on_signal) for signum in (signal.SIGINT, signal.SIGTERM)}
    try:
        # A parent that asked for port 0 reads the bound port from this line.
        print(f"listening on udp {receiver.host}:{receiver.port}", flush=True)
        done.wait(args.duration)
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    stats = receiver.stop()
    drops = "n/a" if stats.kernel_drops is None else f"{stats.kernel_drops:,}"
    print(
        f"received {stats.datagrams:,} datagrams, {stats.lines:,} lines ({stats.malformed:,} malformed), "
        f"wrote {stats.records:,} records to {args.out}; kernel drops {drops}",
        flush=True,
    )
    return 0


def _render(args: argparse.Namespace) -> int:
    from aik.monitoring.render import render_dashboard

    result = render_dashboard(args.metrics, args.out)
    print("\n".join([*result.summary.lines(), *result.summary.arm_lines()]))
    print(f"wrote {result.png} and {result.html}")
    return 0


def _summary(args: argparse.Namespace) -> int:
    from aik.monitoring.summary import summarize_file

    summary = summarize_file(args.metrics)
    if args.json:
        print(json.dumps(summary.to_dict(), indent=2))
    else:
        print("\n".join([*summary.lines(), *summary.arm_lines()]))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the exit status (1 with a one-line reason on failure)."""
    args = build_parser().parse_args(argv)
    setup_logging(args.verbose)
    try:
        return int(args.func(args))
    except AikError as exc:
        print(f"{PROG} {args.command}: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:  # e.g. an output directory that cannot be written
        print(f"{PROG} {args.command}: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    raise SystemExit(main())
