"""Benchmark: `aik monitor`'s two engines on the same logs — the in-process pandas join and the Spark job.

Per size (default 100k and 1M logged predictions), generate an exchange's bid, impression and click
logs (bz2, one file per day) and a prediction log of every request (gzip JSON Lines in Firehose's hour
layout, as the delivery stream writes it), then time in one run, back to back: the pandas engine
(read, join, report) and the Spark engine (the job in local mode writing the joined table, then the
same report read from it), each's join alone, rows/s, and CPU seconds of this process and its children
(the Spark JVM among them), with the load average beside each figure. Both reports are compared: the
figures must be equal. The JVM start and a small warm-up are not counted.

    .venv/bin/python bench/bench_monitor.py generate --sizes 100000,1000000 --workdir bench/out/monitor
    .venv/bin/python bench/bench_monitor.py run --sizes 100000,1000000 --workdir bench/out/monitor

`generate` is CPU-heavy and no measurement: run it under `nice -n 19` on a shared machine.
"""

from __future__ import annotations

import argparse
import datetime
import gzip
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from aik import storage
from aik.monitor import MonitorOptions, join_in_process, judge, read_table
from aik.predictions import Prediction, hour_prefix
from aik.schema import BID_LOG_COLUMNS, EVENT_LOG_COLUMNS
from aik.synthetic import file_name, write_log

AGENTS = (
    "Mozilla/4.0 (compatible; MSIE 8.0; Windows NT 5.1; Trident/4.0)",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 6_1_3 like Mac OS X) AppleWebKit/536.26 (KHTML, like Gecko) "
    "Version/6.0 Mobile/10B329 Safari/8536.25",
    "null",
)
#: Predictions per Firehose object (its buffer flushes at 5 MiB: about this many gzip-compressed records).
RECORDS_PER_FILE = 50_000
#: Predictions of the warm-up run (not counted).
WARMUP = 20_000
START = datetime.datetime(2013, 6, 10, tzinfo=datetime.UTC)


def generate(root: Path, rows: int, seed: int) -> None:
    """The logs of `rows` auctions and the prediction log of all of them under `root`."""
    import pyarrow as pa

    rng = np.random.default_rng(seed)
    ids = rng.bytes(16 * rows).hex()
    bid_ids = [ids[32 * i : 32 * (i + 1)] for i in range(rows)]
    ms = np.sort(rng.integers(0, 7 * 86_400_000, rows))
    when = [START + datetime.timedelta(milliseconds=int(m)) for m in ms]
    stamps = [f"{t:%Y%m%d%H%M%S}{t.microsecond // 1000:03d}" for t in when]
    advertiser = rng.choice(["1458", "3358", "3386", "3427", "3476"], rows)
    agent = rng.choice(AGENTS, rows, p=[0.6, 0.3, 0.1])
    q = rng.uniform(0.02, 0.5, rows)
    win = rng.random(rows) < q
    click = win & (rng.random(rows) < 0.05)
    arm = np.where(rng.random(rows) < 0.1, "challenger", "champion")
    days = np.array([s[:8] for s in stamps])
    for day in sorted(set(days.tolist())):
        date = datetime.date(int(day[:4]), int(day[4:6]), int(day[6:8]))
        for kind, mask in (
            ("bid", days == day),
            ("imp", (days == day) & win),
            ("clk", (days == day) & click),
        ):
            index = np.flatnonzero(mask)
            known = {
                "BidID": [bid_ids[i] for i in index],
                "Timestamp": [stamps[i] for i in index],
                "LogType": [{"imp": "1", "clk": "2"}.get(kind, "")] * len(index),
                "UserAgent": agent[index].tolist(),
                "AdvertiserID": advertiser[index].tolist(),
                "PayingPrice": ["80"] * len(index),
                "BiddingPrice": ["300"] * len(index),
            }
            columns = BID_LOG_COLUMNS if kind == "bid" else EVENT_LOG_COLUMNS
            table = pa.table({c: pa.array(known.get(c, ["null"] * len(index)), pa.string()) for c in columns})
            write_log(str(root / "logs" / kind / file_name(kind, date)), table)
    # served a little after the auction; gzip objects of RECORDS_PER_FILE records per hour prefix
    served = (START.timestamp() * 1000 + ms + 5).astype(np.int64)
    lines = [
        Prediction(bid_ids[i], int(served[i]), "bench", str(arm[i]), f"r-{arm[i]}", float(q[i])).to_line()
        for i in range(rows)
    ]
    for n, first in enumerate(range(0, rows, RECORDS_PER_FILE)):
        chunk = lines[first : first + RECORDS_PER_FILE]
        uri = storage.join(str(root / "predictions"), hour_prefix(int(served[first])), f"bench-{n:05d}.gz")
        storage.write_bytes(uri, gzip.compress("".join(chunk).encode(), compresslevel=6))


def _cpu() -> float:
    from bench_features import _tree_cpu_seconds  # the same /proc walk as the feature job's benchmark

    return _tree_cpu_seconds(os.getpid())


def _timed(work: Callable[[], Any]) -> tuple[Any, float, float, float]:
    """(result, wall s, CPU s, 1-minute load average at the end)."""
    t0, c0 = time.monotonic(), _cpu()
    result = work()
    return result, time.monotonic() - t0, _cpu() - c0, os.getloadavg()[0]


def _comparable(report: dict[str, Any]) -> dict[str, Any]:
    return {**report, "inputs": {k: v for k, v in report["inputs"].items() if k != "joined"}, "plots": {}}


def run(root: Path, rows: int, *, quiet: bool = False) -> None:
    """Both engines on one size; prints one line each and whether their reports are equal."""
    from aik.features.spark import get_session
    from aik.monitor.spark_job import JoinJob, run_join

    options = MonitorOptions(
        predictions=str(root / "predictions"), logs=str(root / "logs"), experiment="bench"
    )
    table = str(root / "joined") + "/"

    joined, pandas_join, pandas_join_cpu, load_a = _timed(lambda: join_in_process(options))
    pandas_report, pandas_judge, _, _ = _timed(lambda: judge(joined, options))
    spark = get_session("aik-monitor")
    job = JoinJob(options.predictions, options.logs, table, "bench")
    _, spark_join, spark_join_cpu, load_b = _timed(lambda: run_join(spark, job))
    spark_report, spark_judge, _, _ = _timed(lambda: judge(read_table(table), options))
    equal = _comparable(spark_report.to_dict()) == _comparable(pandas_report.to_dict())
    if quiet:
        return
    for name, join_s, cpu_s, judge_s, load in (
        ("pandas", pandas_join, pandas_join_cpu, pandas_judge, load_a),
        ("spark", spark_join, spark_join_cpu, spark_judge, load_b),
    ):
        print(
            f"{rows:>9,} predictions  {name:<6}  join {join_s:7.1f} s  {rows / join_s:>9,.0f} rows/s  "
            f"CPU {cpu_s:7.1f} s  report {judge_s:5.1f} s  total {rows / (join_s + judge_s):>9,.0f} rows/s  "
            f"load {load:.1f}",
            flush=True,
        )
    print(
        f"{rows:>9,} predictions  spark/pandas join throughput {pandas_join / spark_join:.2f}  "
        f"reports equal: {equal}",
        flush=True,
    )


def main() -> int:
    """Generate the logs, or measure both engines on them."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("what", choices=("generate", "run"))
    parser.add_argument("--sizes", default="100000,1000000", help="comma-separated numbers of predictions")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument(
        "--workdir", default="bench/out/monitor", help="where the logs are (default %(default)s)"
    )
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    workdir = Path(args.workdir)
    if args.what == "generate":
        generate(workdir / "warmup", WARMUP, args.seed + 1)
        for rows in sizes:
            started = time.monotonic()
            generate(workdir / str(rows), rows, args.seed)
            print(f"{rows:,} predictions and their logs in {time.monotonic() - started:.0f} s", flush=True)
        return 0
    from aik.features.spark import get_session

    print(f"cpus {os.cpu_count()}, load average at start {os.getloadavg()[0]:.1f}", flush=True)
    started = time.monotonic()
    get_session("aik-monitor")
    print(f"local SparkSession started in {time.monotonic() - started:.1f} s (not counted)", flush=True)
    run(workdir / "warmup", WARMUP, quiet=True)
    for rows in sizes:
        root = workdir / str(rows)
        if not (root / "predictions").exists():
            parser.error(f"no logs under {root}: run `generate` first")
        run(root, rows)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
