"""Benchmark: the synthetic generator and the Spark feature job (local mode) from 100k to 1M bid requests.

Prints, per size: seconds and rows/s of `ingest --synthetic` and of the feature job, and how the job's
time grows against the smallest size (the baseline, measured in the same run). One SparkSession serves
every size, after a small warm-up run, so the JVM start is not counted; it is printed apart.

    .venv/bin/python bench/bench_features.py                       # 100k, 200k, 500k, 1M
    .venv/bin/python bench/bench_features.py --sizes 100000,200000 --workdir bench/out
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import tempfile
import time
from pathlib import Path

from aik.commands.ingest import ingest_synthetic
from aik.context import Context
from aik.features import run_features
from aik.features.spark import local_session
from aik.params import configure
from aik.settings import Settings


def _context(workspace: Path) -> Context:
    ctx = Context(Settings(backend="local", workspace=workspace))
    configure(ctx.params, ctx.settings)
    return ctx


def main() -> int:
    """Run the benchmark and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("--sizes", default="100000,200000,500000,1000000", help="comma-separated row counts")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--workdir", default=None, help="keep the data here (default: a temporary directory)")
    parser.add_argument("-v", "--verbose", action="store_true", help="show the job's progress lines")
    args = parser.parse_args()
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING, format="%(name)s: %(message)s"
    )
    sizes = [int(s) for s in args.sizes.split(",")]
    root = Path(args.workdir) if args.workdir else Path(tempfile.mkdtemp(prefix="aik-bench-"))
    print(f"cpus {os.cpu_count()}, load average at start {os.getloadavg()[0]:.1f}")

    start = time.monotonic()
    spark = local_session("aik-bench")
    print(f"local SparkSession started in {time.monotonic() - start:.1f} s (not counted below)")
    warm = _context(root / "warmup")
    ingest_synthetic(warm, rows=20_000, seed=args.seed, days=2)
    run_features(warm, spark=spark)

    results = []
    for rows in sizes:
        ctx = _context(root / f"rows-{rows}")
        t0 = time.monotonic()
        ingest_synthetic(ctx, rows=rows, seed=args.seed)
        t1 = time.monotonic()
        report = run_features(ctx, spark=spark)
        t2 = time.monotonic()
        assert report["rows"] == rows, report["rows"]
        results.append((rows, t1 - t0, t2 - t1))
        print(f"{rows:>9,} rows: generate {t1 - t0:6.1f} s, feature job {t2 - t1:6.1f} s", flush=True)
    spark.stop()

    base_rows, _, base_job = results[0]
    print()
    print(
        f"{'rows':>9} | {'generate s':>10} | {'gen rows/s':>10} | {'job s':>7} | {'job rows/s':>10} | "
        f"{'rows x':>6} | {'time x':>6}"
    )
    for rows, gen, job in results:
        print(
            f"{rows:>9,} | {gen:>10.1f} | {rows / gen:>10,.0f} | {job:>7.1f} | {rows / job:>10,.0f} | "
            f"{rows / base_rows:>6.1f} | {job / base_job:>6.2f}"
        )
    print(f"load average at end {os.getloadavg()[0]:.1f}")
    if not args.workdir:
        shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
