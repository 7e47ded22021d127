"""`aik pipeline run [--every DURATION]`: the production loop locally (ingest, features, train, publish)."""

from __future__ import annotations

import argparse
import datetime
import logging
import sys
import time

from aik.context import Context
from aik.errors import AikError
from aik.features.window import Window
from aik.settings import iso_date, positive_int

log = logging.getLogger("aik.pipeline")


def _duration(text: str) -> float:
    from aik.pipeline import parse_duration

    try:
        return parse_duration(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from exc


def _drift(text: str) -> float:
    value = float(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {value}")
    return value


def register(sub: argparse._SubParsersAction) -> None:
    """Add `pipeline run`."""
    from aik.train.families import FAMILIES

    p = sub.add_parser(
        "pipeline",
        help="run the whole loop: ingest new days, features, train, gates, publish",
        description="The production loop as one command.",
    )
    actions = p.add_subparsers(dest="action", metavar="ACTION")
    actions.required = True
    run_p = actions.add_parser(
        "run",
        help="one iteration (or one every DURATION)",
        description="Ingest new log days, run the feature job on the sliding window (train on the last N "
        "days before the M newest, test on those), train, gate and publish a release, skipping what is "
        "unchanged, under a lock so two runs never interleave. A failed step exits 1 naming the step and "
        "leaves the live release as it was. Cron instead of --every: "
        "`0 3 * * * cd /srv/aik && .venv/bin/aik pipeline run --from /data/ipinyou >> pipeline.log 2>&1`.",
    )
    source = run_p.add_mutually_exclusive_group()
    source.add_argument(
        "--synthetic",
        action="store_true",
        help="the next day of a drifting synthetic world (the default source; the first run makes a window)",
    )
    source.add_argument(
        "--from", dest="from_dir", metavar="DIR", help="ingest the new days' log files under DIR"
    )
    run_p.add_argument(
        "--window-days", type=positive_int, default=7, help="training window in days (default 7)"
    )
    run_p.add_argument("--test-days", type=positive_int, default=1, help="newest days tested on (default 1)")
    run_p.add_argument("--use-case", choices=("bid-filtering", "ctr"), default="bid-filtering")
    run_p.add_argument(
        "--every", type=_duration, metavar="DURATION", help="repeat every DURATION (90s, 15m, 6h, 1d)"
    )
    run_p.add_argument(
        "--iterations", type=positive_int, default=None, help="with --every: stop after this many runs"
    )
    world = run_p.add_argument_group("synthetic world (fixed by the first run)")
    world.add_argument(
        "--rows-per-day", type=positive_int, default=200_000, help="bid requests a day (default 200000)"
    )
    world.add_argument("--seed", type=int, default=7, help="seed of the world (default 7)")
    world.add_argument(
        "--drift", type=_drift, default=0.05, help="truth drift, radians per day (default 0.05)"
    )
    world.add_argument(
        "--start", type=iso_date, default=datetime.date(2013, 6, 6), help="first day (default 2013-06-06)"
    )
    world.add_argument(
        "--initial-days",
        type=positive_int,
        default=None,
        help="days the first run makes (default window + test days)",
    )
    train = run_p.add_argument_group("training")
    train.add_argument(
        "--model",
        dest="family",
        choices=FAMILIES,
        default="xgboost",
        help="model family, as aik train --model (default xgboost)",
    )
    train.add_argument("--preset", default=None, help="aik train preset (default: default)")
    train.add_argument("--baselines", action="store_true", help="also fit the baselines (slower)")
    train.add_argument("--threads", type=positive_int, default=None, help="xgboost threads")
    train.add_argument(
        "--keep", type=positive_int, default=10, help="releases kept by retention (default 10)"
    )
    run_p.set_defaults(func=run)


def run(args: argparse.Namespace, ctx: Context) -> int:
    """One iteration, or one every --every until interrupted (or --iterations)."""
    from aik.pipeline import PipelineOptions, StepFailed, run_pipeline

    try:
        window = Window(args.window_days, args.test_days)
    except AikError as exc:
        raise AikError(f"bad window: {exc}") from exc
    options = PipelineOptions(
        source=args.from_dir or "synthetic",
        window=window,
        use_case=args.use_case,
        rows_per_day=args.rows_per_day,
        seed=args.seed,
        drift=args.drift,
        start=args.start,
        initial_days=args.initial_days,
        family=args.family,
        preset=args.preset,
        baselines=args.baselines,
        nthread=args.threads,
        keep=args.keep,
    )
    iteration = 0
    status = 0
    while True:
        iteration += 1
        started = time.monotonic()
        try:
            result = run_pipeline(ctx, options)
        except StepFailed as exc:
            if args.every is None:
                raise
            print(f"aik pipeline run: {exc}")
            status = 1
        else:
            for step in result.steps:
                print(
                    f"pipeline: {step.name:9s} {'done' if step.ran else 'skipped':8s} "
                    f"{step.seconds:7.1f} s  {step.detail}"
                )
            live = result.release.id if result.release else "none"
            print(f"pipeline: release {live}; {time.monotonic() - started:.1f} s in all")
            for warning in result.warnings:
                print(f"aik pipeline run: warning: {warning}", file=sys.stderr)
        if args.every is None or (args.iterations is not None and iteration >= args.iterations):
            return status
        wait = max(0.0, args.every - (time.monotonic() - started))
        log.info("pipeline: next run in %.0f s", wait)
        time.sleep(wait)
