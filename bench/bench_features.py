"""Benchmark: the synthetic generator and the Spark feature job (local mode) from 100k to 1M bid requests.

Prints, per size: seconds and rows/s of `ingest --synthetic` and of the feature job, and how the job's
time grows against the smallest size (the baseline, measured in the same run). One SparkSession serves
every size, after a small warm-up run, so the JVM start is not counted; it is printed apart. Because
wall time on a shared machine mostly measures the neighbours, the CPU seconds the job used (the Spark
JVM and its Python workers, from /proc) are printed too: rows per CPU second hardly depend on load.

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

from aik.context import Context
from aik.features import run_features
from aik.features.spark import local_session
from aik.ingest import ingest_synthetic
from aik.params import configure
from aik.settings import Settings


def _tree_cpu_seconds(root: int) -> float:
    """CPU seconds (user + system, including exited children) of a process and all its descendants."""
    tick = os.sysconf("SC_CLK_TCK")
    parents: dict[int, int] = {}
    times: dict[int, float] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue  # the process ended meanwhile
        pid = int(stat.parent.name)
        parents[pid] = int(fields[1])
        times[pid] = sum(int(v) for v in fields[11:15]) / tick  # utime, stime, cutime, cstime
    tree, frontier = {root}, [root]
    while frontier:
        parent = frontier.pop()
        children = [pid for pid, ppid in parents.items() if ppid == parent and pid not in tree]
        tree.update(children)
        frontier.extend(children)
    return sum(times.get(pid, 0.0) for pid in tree)


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
    ingest_synthetic(warm, rows=20_000, seed=args.seed, days=2, replace=True)
    run_features(warm, spark=spark)

    jvm = spark.sparkContext._gateway.proc.pid  # type: ignore[attr-defined]
    results = []
    for rows in sizes:
        ctx = _context(root / f"rows-{rows}")
        t0, c0 = time.monotonic(), time.process_time()
        ingest_synthetic(ctx, rows=rows, seed=args.seed, replace=True)
        t1, c1 = time.monotonic(), time.process_time()
        j0 = _tree_cpu_seconds(jvm)
        report = run_features(ctx, spark=spark)
        t2, j1 = time.monotonic(), _tree_cpu_seconds(jvm)
        assert report.rows == rows, report.rows
        results.append((rows, t1 - t0, c1 - c0, t2 - t1, j1 - j0))
        print(
            f"{rows:>9,} rows: generate {t1 - t0:6.1f} s ({c1 - c0:.1f} CPU s), "
            f"feature job {t2 - t1:6.1f} s ({j1 - j0:.1f} CPU s), load {os.getloadavg()[0]:.1f}",
            flush=True,
        )
    spark.stop()

    base_rows, _, _, base_job, base_cpu = results[0]
    print()
    print(
        f"{'rows':>9} | {'gen s':>6} | {'gen CPU s':>9} | {'job s':>6} | {'job rows/s':>10} | "
        f"{'job CPU s':>9} | {'rows/CPU s':>10} | {'rows x':>6} | {'time x':>6} | {'CPU x':>6}"
    )
    for rows, gen, gen_cpu, job, cpu in results:
        print(
            f"{rows:>9,} | {gen:>6.1f} | {gen_cpu:>9.1f} | {job:>6.1f} | {rows / job:>10,.0f} | "
            f"{cpu:>9.1f} | {rows / cpu:>10,.0f} | {rows / base_rows:>6.1f} | {job / base_job:>6.2f} | "
            f"{cpu / base_cpu:>6.2f}"
        )
    print(f"load average at end {os.getloadavg()[0]:.1f}")
    if not args.workdir:
        shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
