"""`aik experiment start|status|stop`: run an A/B test of challenger releases against the live one."""

from __future__ import annotations

import argparse
import json

from aik import experiments as X
from aik import releases as R
from aik.context import Context
from aik.errors import AikError


def share(text: str) -> float:
    """argparse type of a traffic share: a number in (0, 1)."""
    try:
        value = float(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"not a number: {text}") from exc
    if not 0.0 < value < 1.0:
        raise argparse.ArgumentTypeError(f"must be between 0 and 1 (exclusive), got {value}")
    return value


def register(sub: argparse._SubParsersAction) -> None:
    """Add `experiment` and its three actions."""
    p = sub.add_parser(
        "experiment",
        help="A/B test challenger releases against the live one in the running servers",
        description="Start, inspect or stop the experiment in /aik/experiment: the filtering servers "
        "answer each request with the release of its arm (a salted hash of its BidID), the champion "
        "(the live release) the rest.",
    )
    actions = p.add_subparsers(dest="action", metavar="ACTION")
    actions.required = True

    start = actions.add_parser(
        "start",
        help="start (or change) an experiment",
        description="Check the releases, then write /aik/experiment; the servers pick it up at their next "
        "check. Starting an experiment of the running one's name changes its shares and keeps its salt "
        "(requests keep their arm where the shares allow).",
    )
    start.add_argument(
        "--challenger",
        action="append",
        required=True,
        metavar="RELEASE",
        help="a challenger release (id or unique prefix); repeat for several",
    )
    start.add_argument(
        "--share",
        action="append",
        type=share,
        metavar="S",
        help="traffic share of each challenger, in order (one value applies to all; default 0.1)",
    )
    start.add_argument("--champion", metavar="RELEASE", help="the champion (default: the live release)")
    start.add_argument("--name", help="the experiment's name (default: exp-<random>)")
    start.add_argument(
        "--salt", help="the hash salt (default: the running experiment's of this name, or new)"
    )
    start.set_defaults(func=run_start)

    status = actions.add_parser("status", help="show the experiment", description="Show /aik/experiment.")
    status.add_argument("--json", action="store_true", help="print the parameter's JSON")
    status.set_defaults(func=run_status)

    stop = actions.add_parser(
        "stop",
        help="stop the experiment (the live release answers everything)",
        description="Mark the experiment stopped (its record stays in /aik/experiment).",
    )
    stop.set_defaults(func=run_stop)


def run_start(args: argparse.Namespace, ctx: Context) -> int:
    """Check the releases and write the experiment."""
    root = R.releases_root(ctx.params)
    shares = args.share or [0.1]
    if len(shares) == 1:
        shares = shares * len(args.challenger)
    if len(shares) != len(args.challenger):
        raise AikError(f"{len(args.challenger)} challenger(s) but {len(shares)} --share values")
    champion = R.find(root, args.champion) if args.champion else R.require_live(ctx.params)
    challengers = [R.find(root, ref) for ref in args.challenger]
    for release in (champion, *challengers):
        R.verify(release)  # every file as its manifest says, the booster bound to its bundle
    running = X.active(ctx.params)
    salt = args.salt or (running.salt if running and args.name and running.name == args.name else None)
    experiment = X.new_experiment(
        champion=champion.id,
        challengers=[(r.id, s) for r, s in zip(challengers, shares, strict=True)],
        name=args.name,
        salt=salt,
    )
    if running is not None and running.name != experiment.name:
        print(f"experiment: replacing the running experiment {running.name}")
    X.start(ctx.params, experiment)
    print(f"experiment: started {_describe(experiment)}")
    return 0


def run_status(args: argparse.Namespace, ctx: Context) -> int:
    """Print the experiment and whether its champion is the live release."""
    experiment = X.load(ctx.params)
    if args.json:
        print(json.dumps(experiment.to_dict() if experiment else None, indent=2))
        return 0
    if experiment is None:
        print("experiment: none (the live release answers every request)")
        return 0
    state = "stopped" if experiment.stopped else "running"
    print(f"experiment: {state} {_describe(experiment)}")
    live = R.live_uri(ctx.params)
    champion_uri = X.manifest_uri(R.releases_root(ctx.params), experiment.champion.release)
    if not experiment.stopped and live != champion_uri:
        print(f"experiment: the live release is now {live}; the champion arm keeps its release until stopped")
    return 0


def run_stop(args: argparse.Namespace, ctx: Context) -> int:
    """Stop the running experiment."""
    experiment = X.stop(ctx.params)
    print(f"experiment: stopped {experiment.name}; the live release answers every request")
    return 0


def _describe(experiment: X.Experiment) -> str:
    arms = ", ".join(f"{a.arm} {a.release} share {a.share:g}" for a in experiment.arms)
    return f"{experiment.name} (salt {experiment.salt}): {arms}"
