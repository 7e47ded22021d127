"""`aik releases`, `aik promote RELEASE`, `aik rollback`: list releases and switch the live pointer."""

from __future__ import annotations

import argparse
import json
import sys

from aik import releases as R
from aik.context import Context
from aik.settings import positive_int


def register(sub: argparse._SubParsersAction) -> None:
    """Add the three subcommands."""
    p = sub.add_parser(
        "releases",
        help="list the releases with their metrics (the live one starred); prune old ones",
        description="List every release under <data bucket>/releases/, newest first, with its headline "
        "metrics, gates and data window; the live one (/aik/release/live) is starred. With --prune, "
        "delete all but the newest --keep releases first (never the live one).",
    )
    p.add_argument("--json", action="store_true", help="print the manifests as JSON")
    p.add_argument("--prune", action="store_true", help="delete old releases (see --keep)")
    p.add_argument(
        "--keep",
        type=positive_int,
        default=R.DEFAULT_KEEP,
        help=f"releases --prune keeps (default {R.DEFAULT_KEEP})",
    )
    p.set_defaults(func=run_list)

    p = sub.add_parser(
        "promote",
        help="make a release live (after checking it)",
        description="Check a release (every file against its manifest, the booster bound to the bundle, its "
        "gates passed) and switch /aik/release/live to it; the running servers swap it in.",
    )
    p.add_argument("release", help="release id, a unique prefix of one, or its release.json URI")
    p.set_defaults(func=run_promote)

    p = sub.add_parser(
        "rollback",
        help="make the previous release live again",
        description="Promote the newest release older than the live one that passes the checks (or the one "
        "named with --to).",
    )
    p.add_argument("--to", metavar="RELEASE", help="the release to go back to (default: the previous one)")
    p.set_defaults(func=run_rollback)


def run_list(args: argparse.Namespace, ctx: Context) -> int:
    """Print the releases (newest first), pruning first when asked."""
    root = R.releases_root(ctx.params)
    if args.prune:
        for rid in R.prune(ctx.params, root, keep=args.keep):
            print(f"releases: pruned {rid}")
    found = R.list_releases(root)
    live = R.live_uri(ctx.params)
    live_id = next((r.id for r in found if r.manifest_uri == live), None)
    if args.json:
        print(json.dumps({"live": live, "releases": [r.to_dict() for r in found]}, indent=2))
        return 0
    if not found:
        print(f"releases: none under {root} (`aik train` or `aik pipeline run` writes them)")
        return 0
    for release in found:
        print(R.describe_release(release, live_id=live_id))
    if live and live_id is None:
        print(f"releases: the live pointer names {live}, which is not under {root}")
    return 0


def run_promote(args: argparse.Namespace, ctx: Context) -> int:
    """Check and promote one release."""
    root = R.releases_root(ctx.params)
    warnings: list[str] = []
    release = R.promote(ctx.params, R.find(root, args.release), warnings=warnings)
    print(f"promote: {release.id} is live ({release.manifest_uri})")
    _warn("promote", warnings)
    return 0


def _warn(command: str, warnings: list[str]) -> None:
    """What failed after the pointer switch (the switch stands: the command still succeeds)."""
    for warning in warnings:
        print(f"aik {command}: warning: {warning}", file=sys.stderr)


def run_rollback(args: argparse.Namespace, ctx: Context) -> int:
    """Promote the previous release (or --to)."""
    root = R.releases_root(ctx.params)
    warnings: list[str] = []
    previous, release = R.rollback(ctx.params, root, args.to, warnings=warnings)
    was = previous.id if previous else "none"
    print(f"rollback: {was} -> {release.id} is live ({release.manifest_uri})")
    _warn("rollback", warnings)
    return 0
