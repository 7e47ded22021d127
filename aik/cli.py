"""The `aik` command line: configure, params, ingest, features, train, demo (notebooks 0-3 and more)."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

from aik import __version__
from aik.commands import configure, demo, features, ingest, params, train
from aik.context import Context
from aik.errors import AikError
from aik.settings import Settings, add_backend_arguments

COMMANDS = (configure, params, ingest, features, train, demo)

log = logging.getLogger("aik")


class _Parser(argparse.ArgumentParser):
    """argparse that prints usage plus a one-line reason and exits 2 on bad arguments."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.print_usage(sys.stderr)
        self.exit(2, f"{self.prog}: error: {message}\n")


def build_parser() -> argparse.ArgumentParser:
    """The full parser, with every subcommand registered."""
    parser = _Parser(
        prog="aik",
        description="Advertising Intelligence Kit: the RTB bid-filtering ML system, locally or on AWS.",
    )
    parser.add_argument("--version", action="version", version=f"aik {__version__}")
    add_backend_arguments(parser)
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True
    for command in COMMANDS:
        command.register(sub)
    return parser


def setup_logging(verbose: bool = False) -> None:
    """Log lines with time and level to stderr (progress lines included)."""
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
    )
    for noisy in ("botocore", "boto3", "urllib3", "s3transfer", "py4j", "smart_open", "matplotlib"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of `aik` and `python -m aik`; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    setup_logging(args.verbose)
    try:
        ctx = Context(Settings.from_env(args.backend, args.workspace, args.region))
        result = args.func(args, ctx)
    except AikError as exc:
        print(f"aik {args.command}: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"aik {args.command}: interrupted", file=sys.stderr)
        return 130
    return int(result or 0)
