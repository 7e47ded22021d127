"""Benchmark: the Spark feature job against a plain read-join-write of the same bz2 logs (local mode).

Per size (default 200k, 1M and 5M bid requests), in one SparkSession and one run: generate the logs,
then run the *copy* — read the bid and impression logs (bz2, tab-separated), left-join them on BidID,
write parquet: the least any job over this input costs — and the feature job on the same files, and
print each one's seconds, rows/s and CPU seconds per million rows, and job/copy (the job's throughput
as a share of the copy's, the figure that counts on a shared machine: both ran back to back).
The JVM start and a small warm-up of both are not counted; `--again` runs each size's copy and job a
second time in the same session (the JVM's code then compiled, as in a long cluster step) and prints
both runs. CPU seconds are the Spark JVM's and its
Python workers' (from /proc), which depend far less on the neighbours' load than wall time does.

    .venv/bin/python bench/bench_features.py                          # 200k, 1M, 5M
    .venv/bin/python bench/bench_features.py --sizes 200000,1000000 --event-log /tmp/aik-events
    .venv/bin/python bench/bench_features.py --sizes 1000000 --workdir W --reuse --again
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import tempfile
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

from aik.context import Context
from aik.features import run_features
from aik.features.job import log_files, sources_from_params
from aik.features.report import FeaturesReport
from aik.features.spark import local_session
from aik.ingest import ingest_synthetic
from aik.params import configure
from aik.schema import BID_LOG_COLUMNS, EVENT_LOG_COLUMNS
from aik.settings import Settings

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession


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


def read_join_write(spark: SparkSession, ctx: Context, out: Path) -> None:
    """The copy: the bid and impression logs read as tab-separated text, left-joined on BidID, parquet."""
    sources = sources_from_params(ctx.params)

    def read(uri: str, kind: str, columns: tuple[str, ...]) -> DataFrame:
        schema = ", ".join(f"`{c}` string" for c in columns)
        return spark.read.csv(log_files(uri, kind), sep="\t", schema=schema)

    bids = read(sources.bid, "bid", BID_LOG_COLUMNS)
    imps = read(sources.imp, "imp", EVENT_LOG_COLUMNS).select("BidID", "PayingPrice")
    bids.join(imps, "BidID", "left").write.mode("overwrite").parquet(str(out))


def _measure(jvm: int, work: Callable[[], object]) -> tuple[float, float]:
    t0, c0 = time.monotonic(), _tree_cpu_seconds(jvm)
    work()
    return time.monotonic() - t0, _tree_cpu_seconds(jvm) - c0


def main() -> int:
    """Run the benchmark and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("--sizes", default="200000,1000000,5000000", help="comma-separated row counts")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--days", type=int, default=7, help="days of logs (one bz2 file per day and kind)")
    parser.add_argument("--workdir", default=None, help="keep the data here (default: a temporary directory)")
    parser.add_argument("--event-log", default=None, help="write Spark's event log to this directory")
    parser.add_argument(
        "--reuse",
        action="store_true",
        help="with --workdir: keep the logs a previous run generated there for the same size (no generation)",
    )
    parser.add_argument(
        "--again",
        action="store_true",
        help="run each size's copy and job a second time in the same session and print both runs",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="show the job's progress lines")
    args = parser.parse_args()
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING, format="%(name)s: %(message)s"
    )
    sizes = [int(s) for s in args.sizes.split(",")]
    root = Path(args.workdir) if args.workdir else Path(tempfile.mkdtemp(prefix="aik-bench-"))
    print(f"cpus {os.cpu_count()}, load average at start {os.getloadavg()[0]:.1f}", flush=True)

    if args.event_log:
        Path(args.event_log).mkdir(parents=True, exist_ok=True)
        # one plain JSON-lines file per application, which bench/spark_stages.py reads
        events = " ".join(
            f"--conf spark.eventLog.{key}"
            for key in (
                "enabled=true",
                f"dir=file://{args.event_log}",
                "compress=false",
                "rolling.enabled=false",
            )
        )
        os.environ["PYSPARK_SUBMIT_ARGS"] = f"{events} pyspark-shell"
    start = time.monotonic()
    spark = local_session("aik-bench")
    print(f"local SparkSession started in {time.monotonic() - start:.1f} s (not counted below)", flush=True)
    warm = _context(root / "warmup")
    ingest_synthetic(warm, rows=20_000, seed=args.seed, days=2, replace=True)
    read_join_write(spark, warm, root / "warmup" / "copy")
    run_features(warm, spark=spark)

    gateway: Any = spark.sparkContext._gateway  # the launched gateway holds the JVM's process
    jvm = gateway.proc.pid
    results = []
    for rows in sizes:
        # what generated this size's logs: --reuse keeps them only if it matches
        generated, world = root / f"rows-{rows}" / "generated", f"seed {args.seed}, days {args.days}\n"
        reuse = args.reuse and generated.exists() and generated.read_text() == world
        ctx = (
            Context(Settings(backend="local", workspace=root / f"rows-{rows}"))
            if reuse
            else _context(root / f"rows-{rows}")
        )
        t0, c0 = time.monotonic(), time.process_time()
        if not reuse:
            ingest_synthetic(ctx, rows=rows, seed=args.seed, days=args.days, replace=True)
            generated.write_text(world)
        gen, gen_cpu = time.monotonic() - t0, time.process_time() - c0
        for run in ("first", "again")[: 2 if args.again else 1]:
            load0 = os.getloadavg()[0]
            spark.sparkContext.setJobGroup("copy", f"copy {rows} {run}")
            copy_out = root / f"rows-{rows}" / "copy"
            copy, copy_cpu = _measure(jvm, partial(read_join_write, spark, ctx, copy_out))
            spark.sparkContext.setJobGroup("job", f"job {rows} {run}")
            reports: list[FeaturesReport] = []
            job, job_cpu = _measure(jvm, lambda: reports.append(run_features(ctx, spark=spark)))  # noqa: B023
            assert reports[0].rows == rows, reports[0].rows
            load = (load0 + os.getloadavg()[0]) / 2
            results.append((run, rows, gen, gen_cpu, copy, copy_cpu, job, job_cpu, load))
            print(
                f"{rows:>9,} rows ({run}): generate {gen:6.1f} s ({gen_cpu:.1f} CPU s), copy {copy:6.1f} s "
                f"({copy_cpu:.1f} CPU s), feature job {job:6.1f} s ({job_cpu:.1f} CPU s), "
                f"job/copy {copy / job:.2f}, load {load:.1f}",
                flush=True,
            )
        if not args.workdir:
            shutil.rmtree(root / f"rows-{rows}", ignore_errors=True)
    spark.stop()

    _, base_rows, *_, base_job_cpu, _ = results[0]
    print()
    print(
        f"{'run':<5} | {'rows':>9} | {'copy s':>6} | {'copy rows/s':>11} | {'copy CPU s/M':>12} | "
        f"{'job s':>6} | {'job rows/s':>10} | {'job CPU s/M':>11} | {'job/copy':>8} | {'CPU ratio':>9} | "
        f"{'job CPU x':>9} | {'cores':>10} | {'load':>4}"
    )
    for run, rows, _, _, copy, copy_cpu, job, job_cpu, load in results:
        print(
            f"{run:<5} | {rows:>9,} | {copy:>6.1f} | {rows / copy:>11,.0f} | "
            f"{copy_cpu / rows * 1e6:>12.1f} | {job:>6.1f} | {rows / job:>10,.0f} | "
            f"{job_cpu / rows * 1e6:>11.1f} | {copy / job:>8.2f} | {job_cpu / copy_cpu:>9.2f} | "
            f"{job_cpu / base_job_cpu:>9.2f} | {copy_cpu / copy:>4.1f}; {job_cpu / job:>4.1f} | {load:>4.1f}"
        )
    print(
        f"(first: each size's first copy and job after the 20k warm-up; again: both run a second time in "
        f"the same session, the JVM's code compiled; job/copy: the job's rows/s over the copy's; CPU ratio: "
        f"the job's CPU seconds over the copy's; job CPU x: the job's CPU seconds against the first "
        f"{base_rows:,} rows; cores: CPU seconds per second, copy; job: a copy that kept fewer cores busy "
        f"than the job makes job/copy look better than the CPU ratio)"
    )
    print(f"load average at end {os.getloadavg()[0]:.1f}")
    if not args.workdir:
        shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
