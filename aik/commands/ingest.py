"""`aik ingest`: generate or load iPinYou logs (notebook 1)."""

from __future__ import annotations

import argparse

from aik.context import Context
from aik.errors import NotBuiltYet


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Add the subcommand."""
    p = sub.add_parser(
        "ingest",
        help="generate or load iPinYou logs (notebook 1) [not built yet]",
        description="Generate or load iPinYou logs (notebook 1).",
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace, ctx: Context) -> int:
    """Not built yet: say so rather than pretend."""
    raise NotBuiltYet("not built yet (issue 4)")
