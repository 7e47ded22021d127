"""`aik params [NAME]`: print the current parameters as `name=value` lines."""

from __future__ import annotations

import argparse

from aik.context import Context
from aik.errors import AikError
from aik.params import PREFIX


def register(sub: argparse._SubParsersAction) -> None:
    """Add the subcommand."""
    p = sub.add_parser(
        "params",
        help="print the current parameters",
        description="Print every /aik/... parameter, or the one named, as name=value lines.",
    )
    p.add_argument("name", nargs="?", help="a parameter name, e.g. /aik/raw_data (or raw_data)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace, ctx: Context) -> int:
    """Print one parameter or all of them."""
    if args.name:
        name = args.name if args.name.startswith("/") else PREFIX + args.name
        print(f"{name}={ctx.params.get(name)}")
        return 0
    values = ctx.params.get_all()
    if not values:
        raise AikError(f"no parameters in the {ctx.params.backend} store yet (run `aik configure` first)")
    for name, value in values.items():
        print(f"{name}={value}")
    return 0
