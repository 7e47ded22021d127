"""Where a Spark application's time went, stage by stage, from its event log (`spark.eventLog.enabled`,
uncompressed: `spark.eventLog.compress=false`, as bench/bench_features.py --event-log writes it).

Prints one line per completed stage in order: job group, stage id, what started it (the Python call
site), tasks, wall seconds, executor run seconds, executor CPU seconds, bytes read from files, shuffle
bytes written and read, and bytes written; then the totals per job group. Executor CPU is the JVM's
only: time in Python workers shows as run time without CPU.

    .venv/bin/python bench/spark_stages.py /tmp/aik-events/local-1234 [--group job]
"""

from __future__ import annotations

import argparse
import json
from collections import defaultdict
from pathlib import Path
from typing import Any


def _metric(info: dict[str, Any], name: str) -> float:
    for acc in info.get("Accumulables", []):
        if acc.get("Name") == f"internal.metrics.{name}":
            return float(acc.get("Value", 0))
    return 0.0


def stages(path: Path) -> list[dict[str, Any]]:
    """The completed stages of one event log, with their job's group and call site."""
    stage_job: dict[int, dict[str, str]] = {}
    rows = []
    files = sorted(path.glob("events_*")) if path.is_dir() else [path]  # a rolling log is a directory
    for file in files:
        for line in file.open():
            try:
                event = json.loads(line)
            except json.JSONDecodeError:  # the last line of a log still being written
                break
            kind = event.get("Event")
            if kind == "SparkListenerJobStart":
                props = event.get("Properties") or {}
                site = props.get("spark.job.description") or props.get("callSite.short", "")
                for sid in event.get("Stage IDs", []):
                    stage_job[sid] = {"group": props.get("spark.jobGroup.id", ""), "site": site}
            elif kind == "SparkListenerStageCompleted":
                info = event["Stage Info"]
                job = stage_job.get(info["Stage ID"], {"group": "", "site": ""})
                rows.append(
                    {
                        "group": job["group"],
                        "stage": info["Stage ID"],
                        "site": job["site"] or info.get("Stage Name", ""),
                        "tasks": info.get("Number of Tasks", 0),
                        "wall": (info.get("Completion Time", 0) - info.get("Submission Time", 0)) / 1e3,
                        "run": _metric(info, "executorRunTime") / 1e3,
                        "cpu": _metric(info, "executorCpuTime") / 1e9,
                        "read": _metric(info, "input.bytesRead"),
                        "shuffle_w": _metric(info, "shuffle.write.bytesWritten"),
                        "shuffle_r": _metric(info, "shuffle.read.remoteBytesRead")
                        + _metric(info, "shuffle.read.localBytesRead"),
                        "written": _metric(info, "output.bytesWritten"),
                    }
                )
    return rows


def main() -> int:
    """Print the table."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("event_log", type=Path)
    parser.add_argument("--group", default=None, help="only this job group (the benchmark sets copy, job)")
    args = parser.parse_args()
    rows = [r for r in stages(args.event_log) if args.group is None or r["group"] == args.group]
    mb = 1e6
    print(
        f"{'group':<10} {'stage':>5} {'tasks':>5} {'wall s':>7} {'run s':>7} {'cpu s':>7} "
        f"{'read MB':>8} {'shufW MB':>8} {'shufR MB':>8} {'out MB':>7}  call site"
    )
    totals: dict[str, list[float]] = defaultdict(lambda: [0.0, 0.0, 0.0])
    for r in rows:
        print(
            f"{r['group'][:10]:<10} {r['stage']:>5} {r['tasks']:>5} {r['wall']:>7.1f} {r['run']:>7.1f} "
            f"{r['cpu']:>7.1f} {r['read'] / mb:>8.1f} {r['shuffle_w'] / mb:>8.1f} "
            f"{r['shuffle_r'] / mb:>8.1f} {r['written'] / mb:>7.1f}  {r['site']}"
        )
        t = totals[r["group"]]
        t[0] += r["wall"]
        t[1] += r["run"]
        t[2] += r["cpu"]
    for group, (wall, run, cpu) in totals.items():
        print(f"total {group or '-'}: wall {wall:.1f} s, executor run {run:.1f} s, executor CPU {cpu:.1f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
