"""The `aik` command line: configure, params, ingest, features, train (notebooks 0-3) and plugins.

Packages above the library add subcommands through the `aik.commands` entry-point group (the top-level
`demo` package adds `aik demo`), so the library never imports what is built on it.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import logging
import sys
from collections.abc import Iterator, Sequence
from types import ModuleType

from aik import __version__
from aik.commands import (
    backtest,
    configure,
    experiment,
    features,
    ingest,
    monitor,
    params,
    pipeline,
    releases,
    train,
)
from aik.context import Context
from aik.errors import AikError
from aik.logsetup import setup_logging
from aik.settings import Settings, add_backend_arguments

COMMANDS = (configure, params, ingest, features, train, backtest, releases, pipeline, monitor, experiment)
#: Entry-point group of subcommand modules from other packages: each has `register(subparsers)`.
PLUGIN_GROUP = "aik.commands"

log = logging.getLogger("aik")


def plugin_commands() -> Iterator[ModuleType]:
    """The installed plugin command modules, by entry-point name; a package not installed is skipped."""
    for entry in sorted(importlib.metadata.entry_points(group=PLUGIN_GROUP), key=lambda e: e.name):
        try:
            yield entry.load()
        except ModuleNotFoundError as exc:
            # e.g. the server image installs the distribution without the demo package
            if exc.name != entry.module.split(".")[0]:
                raise
            log.debug("aik %s: %s is not installed", entry.name, exc.name)


def build_parser() -> argparse.ArgumentParser:
    """The full parser, with every subcommand registered."""
    parser = argparse.ArgumentParser(
        prog="aik",
        description="Advertising Intelligence Kit: the RTB bid-filtering ML system, locally or on AWS.",
    )
    parser.add_argument("--version", action="version", version=f"aik {__version__}")
    add_backend_arguments(parser)
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for command in (*COMMANDS, *plugin_commands()):
        command.register(sub)
    return parser


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
    except OSError as exc:  # a file the command had to read or write: the OS's reason, in one line
        where = f": {exc.filename}" if exc.filename else ""
        print(f"aik {args.command}: {exc.strerror or exc}{where}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"aik {args.command}: interrupted", file=sys.stderr)
        return 130
    return int(result or 0)
