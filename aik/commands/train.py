"""`aik train`: train, evaluate, gate and publish the model (notebook 3)."""

from __future__ import annotations

import argparse

from aik.context import Context
from aik.errors import NotBuiltYet


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Add the subcommand."""
    p = sub.add_parser(
        "train",
        help="train, evaluate, gate and publish the model (notebook 3) [not built yet]",
        description="Train, evaluate, gate and publish the model (notebook 3).",
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace, ctx: Context) -> int:
    """Not built yet: say so rather than pretend."""
    raise NotBuiltYet("not built yet (issue 5)")
