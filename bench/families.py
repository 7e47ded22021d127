"""Every model family against the truth, on the default world and the interaction world, over seeds.

For each world and seed: `aik ingest --synthetic` (with `--interactions default` for the interaction
world), the Spark feature job in local mode, then `aik backtest` of the five families with their
defaults and the Spark ML baselines (bench/families.yaml) in parallel processes. Prints one table per
world (AUC / oracle AUC per family and seed, the mean, and on the interaction world the share of the
interactions' gain each captured), then each family's mean ratio on both worlds side by side, and the
load average before and after.

    nice -n 10 .venv/bin/python bench/families.py --rows 200000 --seeds 1,2,3
    .venv/bin/python bench/families.py --summarize run1.out run2.out   # tables of runs split in parts
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

from aik import storage  # noqa: E402
from aik.cli import main as aik  # noqa: E402

WORLDS = {"default": "none", "interactions": "default"}


def load() -> str:
    """The load average now."""
    return " ".join(f"{v:.2f}" for v in os.getloadavg())


def run_world(ws: Path, world: str, rows: int, seed: int, experiments: Path, jobs: int) -> dict:
    """One world and seed: ingest, features, backtest; the backtest's report.json."""
    base = ["--workspace", str(ws)]
    for argv in (
        ["configure"],
        ["ingest", "--synthetic", "--rows", str(rows), "--seed", str(seed), "--interactions", WORLDS[world]],
        ["features"],
        ["backtest", str(experiments), "--jobs", str(jobs), "--no-mlflow"],
    ):
        code = aik(base + argv)
        if code != 0:
            raise SystemExit(f"aik {' '.join(argv)} failed ({code})")
    reports = sorted((ws / "bucket").rglob("backtests/*/report.json"))
    return json.loads(storage.read_text(str(reports[-1])))


def main() -> None:
    """Run the grid and print the tables."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--seeds", default="1,2,3")
    parser.add_argument("--worlds", default="default,interactions")
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--experiments", default=str(ROOT / "bench" / "families.yaml"))
    parser.add_argument(
        "--summarize",
        nargs="+",
        metavar="OUTPUT",
        help="print the tables of earlier runs' output; run nothing",
    )
    args = parser.parse_args()
    if args.summarize:
        tables(summarize(args.summarize))
        return
    seeds = [int(s) for s in args.seeds.split(",")]
    results: dict[str, dict[int, dict]] = {}
    started, load_before = time.monotonic(), load()
    for world in args.worlds.split(","):
        for seed in seeds:
            with tempfile.TemporaryDirectory() as tmp:
                report = run_world(Path(tmp), world, args.rows, seed, Path(args.experiments), args.jobs)
            results.setdefault(world, {})[seed] = report
            print(
                f"# {world} seed {seed}: load {report['load_before']} -> {report['load_after']}", flush=True
            )
            # each world and seed as it finishes, so a run cut short still leaves its figures
            print(json.dumps({**report, "world": world, "seed": seed}), flush=True)
    print(
        f"\nrows {args.rows:,} per world; load average before {load_before}, after {load()}; "
        f"{time.monotonic() - started:.0f} s in all\n"
    )
    tables(results)


def summarize(paths: list[str]) -> dict[str, dict[int, dict]]:
    """The results of earlier runs from their output (the JSON line each printed per world and seed)."""
    results: dict[str, dict[int, dict]] = {}
    for path in paths:
        seed = None
        for line in Path(path).read_text().splitlines():
            if line.startswith("# ") and " seed " in line:  # "# <world> seed <n>: load ..." precedes it
                seed = int(line.split(" seed ", 1)[1].split(":", 1)[0])
            elif line.startswith("{"):
                doc = json.loads(line)
                results.setdefault(doc["world"], {})[seed if seed is not None else doc["seed"]] = doc
    return results


def tables(results: dict[str, dict[int, dict]]) -> None:
    """One table per world (ratio per seed, means), then each family on both worlds side by side."""
    names: list[str] = []
    for world, by_seed in results.items():
        seeds = sorted(by_seed)
        names = [c["name"] for c in by_seed[seeds[0]]["candidates"]]
        oracle = " ".join(f"{by_seed[s]['reference']['oracle_auc']:.4f}" for s in seeds)
        loads = "; ".join(f"{by_seed[s]['load_before']} -> {by_seed[s]['load_after']}" for s in seeds)
        print(f"## {world} world (oracle AUC per seed: {oracle}; load average per seed: {loads})\n")
        header = ["family", *(f"seed {s}" for s in seeds), "mean ratio", "mean AUC", "mean train s"]
        if world == "interactions":
            header.append("interaction share")
        print("| " + " | ".join(header) + " |")
        print("|" + "|".join(" --- " for _ in header) + "|")
        for name in names:
            rows = [next(c for c in by_seed[s]["candidates"] if c["name"] == name) for s in seeds]
            ok = [r for r in rows if r.get("ok")]
            cells = [f"{r['oracle_ratio']:.4f}" if r.get("ok") else "failed" for r in rows]
            line = [name, *cells]
            line.append(f"{statistics.mean(r['oracle_ratio'] for r in ok):.4f}" if ok else "–")
            line.append(f"{statistics.mean(r['auc'] for r in ok):.4f}" if ok else "–")
            line.append(f"{statistics.mean(r['train_s'] for r in ok):.1f}" if ok else "–")
            if world == "interactions":
                shares = [r["interaction_share"] for r in ok if r.get("interaction_share") is not None]
                line.append(f"{statistics.mean(shares):.2f}" if shares else "–")
            print("| " + " | ".join(line) + " |")
        print()
    if {"default", "interactions"} <= set(results):
        # which families capture the interactions: the same family's mean ratio on both worlds
        print("## Oracle ratio on the additive (default) world against the interaction world\n")
        print("| family | default world | interaction world | interaction share |")
        print("| --- | --- | --- | --- |")
        for name in names:
            cells = [name]
            for world in ("default", "interactions"):
                ok = [
                    c
                    for report in results[world].values()
                    for c in report["candidates"]
                    if c["name"] == name and c.get("ok")
                ]
                cells.append(f"{statistics.mean(c['oracle_ratio'] for c in ok):.4f}" if ok else "–")
            shares = [
                c["interaction_share"]
                for s in results["interactions"]
                for c in results["interactions"][s]["candidates"]
                if c["name"] == name and c.get("interaction_share") is not None
            ]
            cells.append(f"{statistics.mean(shares):.2f}" if shares else "–")
            print("| " + " | ".join(cells) + " |")


if __name__ == "__main__":
    sys.exit(main())
