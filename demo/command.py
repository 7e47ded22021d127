"""`aik demo`: the whole kit end to end on one machine (data, training, serving, dashboard, synth)."""

from __future__ import annotations

import argparse
import shutil

from aik.context import Context
from aik.settings import positive_int
from demo.run import DemoConfig, run_demo


def register(sub: argparse._SubParsersAction) -> None:
    """Add the subcommand."""
    p = sub.add_parser(
        "demo",
        help="run the whole kit end to end locally",
        description="configure, ingest synthetic logs, run the Spark feature job, train (gates, plots), "
        "serve with the filtering server under the emulator's load with a hot model swap, render the "
        "dashboard from the StatsD metrics, run an A/B experiment closed by the synthetic world and judge it "
        "with `aik monitor`, synthesize the CDK app, and print a summary. Steps whose "
        "inputs have not changed are reused; --fresh (or `make demo-clean`) starts over.",
    )
    p.add_argument(
        "--rows", type=positive_int, default=200_000, help="synthetic bid requests (default 200000)"
    )
    p.add_argument(
        "--requests", type=positive_int, default=100_000, help="emulator requests (default 100000)"
    )
    p.add_argument("--seed", type=int, default=7, help="seed of the synthetic data (default 7)")
    p.add_argument("--connections", type=positive_int, default=2, help="emulator connections (default 2)")
    p.add_argument(
        "--swap-seed", type=int, default=1, help="xgboost seed of the model swapped in during the load"
    )
    p.add_argument(
        "--ab-requests",
        type=int,
        default=50_000,
        help="fresh requests of each A/B experiment in the closed loop (default 50000; 0 skips it)",
    )
    p.add_argument("--no-synth", action="store_true", help="skip synthesizing the CDK app")
    p.add_argument("--fresh", action="store_true", help="delete the workspace first and run every step")
    p.set_defaults(func=run)


def run(args: argparse.Namespace, ctx: Context) -> int:
    """Run the demo and print its summary."""
    if args.fresh and ctx.settings.workspace.exists():
        shutil.rmtree(ctx.settings.workspace)
    summary = run_demo(
        ctx,
        DemoConfig(
            rows=args.rows,
            requests=args.requests,
            seed=args.seed,
            connections=args.connections,
            swap_seed=args.swap_seed,
            ab_requests=args.ab_requests,
            synth=not args.no_synth,
            fresh=args.fresh,
        ),
    )
    print("\n".join(summary.lines))
    return 0
