"""`aik features`: run the Spark feature job (notebook 2)."""

from __future__ import annotations

import argparse

from aik.context import Context
from aik.errors import NotBuiltYet


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Add the subcommand."""
    p = sub.add_parser(
        "features",
        help="run the Spark feature job (notebook 2) [not built yet]",
        description="Run the Spark feature job (notebook 2).",
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace, ctx: Context) -> int:
    """Not built yet: say so rather than pretend."""
    raise NotBuiltYet("not built yet (issue 4)")
