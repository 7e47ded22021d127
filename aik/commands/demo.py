"""`aik demo`: the whole kit end to end on one machine (configure, ingest, features, train, serve, synth)."""

from __future__ import annotations

import argparse
import logging
import time
from collections.abc import Callable

from aik.context import Context
from aik.errors import AikError, NotBuiltYet

log = logging.getLogger("aik.demo")


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Add the subcommand."""
    p = sub.add_parser(
        "demo",
        help="run the whole kit end to end locally",
        description="Run every step of the kit locally on the embedded defaults; steps that are not "
        "built yet are reported as such, never faked.",
    )
    p.add_argument("--rows", type=int, default=200_000, help="synthetic bid requests (default 200000)")
    p.add_argument("--requests", type=int, default=100_000, help="emulator requests (default 100000)")
    p.add_argument("--seed", type=int, default=7, help="seed of the synthetic data (default 7)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace, ctx: Context) -> int:
    """Run the steps in order; stop at the first failure, report the ones not built yet."""
    from aik.commands import configure, features, ingest, train

    steps: list[tuple[str, Callable[[], object]]] = [
        ("configure", lambda: configure.run(argparse.Namespace(), ctx)),
        (
            "ingest",
            lambda: ingest.run(argparse.Namespace(synthetic=True, rows=args.rows, seed=args.seed), ctx),
        ),
        ("features", lambda: features.run(argparse.Namespace(use_case="bid-filtering"), ctx)),
        ("train", lambda: train.run(argparse.Namespace(), ctx)),
    ]
    missing = []
    for name, step in steps:
        start = time.monotonic()
        log.info("demo step %s: starting", name)
        try:
            step()
        except NotBuiltYet as exc:
            log.warning("demo step %s: %s; the steps after it need its output", name, exc)
            missing.append(name)
            break
        except AikError as exc:
            raise AikError(f"step {name} failed: {exc}") from exc
        log.info("demo step %s: done in %.1f s", name, time.monotonic() - start)
    if missing:
        print(f"demo stopped: step '{missing[0]}' is not built yet; nothing after it was run")
        return 3
    print("demo: all built steps ran")
    return 0
