"""`aik configure` (notebook 0): derive every `/aik/...` parameter from the data bucket and store it."""

from __future__ import annotations

import argparse

from aik.context import Context
from aik.params import configure


def register(sub: argparse._SubParsersAction) -> None:
    """Add the subcommand."""
    p = sub.add_parser(
        "configure",
        help="write the parameters (notebook 0)",
        description="Derive the raw/processed/model parameters from /aik/data-bucket and store them. "
        "Locally the data bucket is a directory in the workspace, created on first use; on AWS the "
        "aik/sagemaker-emr stack creates it.",
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace, ctx: Context) -> int:
    """Write the parameters and print them."""
    for name, value in configure(ctx.params, ctx.settings).items():
        print(f"{name}={value}")
    return 0
