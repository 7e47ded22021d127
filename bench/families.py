"""Every model family against the truth, on the default world and the interaction world, over seeds.

For each world and seed: `aik ingest --synthetic` (with `--interactions default` for the interaction
world), the Spark feature job in local mode, then `aik backtest` of the five families with their
defaults and the Spark ML baselines (bench/families.yaml) in parallel processes. Prints one table per
world (AUC / oracle AUC per family and seed, the mean, and on the interaction world the share of the
interactions' gain each captured), then each family's mean ratio on both worlds side by side, and the
load average before and after. Each world and seed prints its step times and load as it finishes,
then its report as one JSON line, so a run cut short keeps what finished and `--done` resumes it.

    nice -n 19 .venv/bin/python bench/families.py --rows 200000 --seeds 1,2,3
    nice -n 19 .venv/bin/python bench/families.py --rows interactions=400000 --worlds interactions \
        --candidates wide-deep,fm,mlp,xgboost,logreg --done run1.out   # skips what run1.out finished
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
from collections.abc import Callable
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]

from aik import storage  # noqa: E402
from aik.cli import main as aik  # noqa: E402

WORLDS = {"default": "none", "interactions": "default"}


def load() -> str:
    """The load average now."""
    return " ".join(f"{v:.2f}" for v in os.getloadavg())


def parse_rows(text: str, worlds: list[str]) -> dict[str, int]:
    """Requests per world from `N` (every world) or `world=N,...` (the worlds not named: 200,000)."""
    if "=" not in text:
        return dict.fromkeys(worlds, int(text))
    rows = dict.fromkeys(worlds, 200_000)
    for item in text.split(","):
        world, _, value = item.partition("=")
        if world.strip() not in WORLDS:
            raise SystemExit(f"--rows: unknown world {world.strip()!r} (choose from {', '.join(WORLDS)})")
        rows[world.strip()] = int(value)
    return rows


def select_candidates(experiments: Path, names: str | None, out: Path) -> Path:
    """The experiments file with only the named candidates (comma-separated; None: all of them)."""
    if not names:
        return experiments
    doc = yaml.safe_load(experiments.read_text())
    by_name = {c.get("name", c["model"]): c for c in doc["candidates"]}
    wanted = [n.strip() for n in names.split(",") if n.strip()]
    unknown = [n for n in wanted if n not in by_name]
    if unknown:
        raise SystemExit(f"--candidates: {', '.join(unknown)} not in {experiments} ({', '.join(by_name)})")
    out.write_text(yaml.safe_dump({**doc, "candidates": [by_name[n] for n in wanted]}, sort_keys=False))
    return out


def run_world(ws: Path, world: str, rows: int, seed: int, experiments: Callable[[], Path], jobs: int) -> dict:
    """One world and seed: ingest, features, backtest; the backtest's report.json with each step's time.

    A workspace whose features were made before (its `features.done`) goes straight to the backtest.
    The experiments file is read when the backtest starts.
    """
    base = ["--workspace", str(ws)]
    steps: dict[str, float] = {}
    prepared = ws / "features.done"
    ingest = [
        "ingest",
        "--synthetic",
        "--rows",
        str(rows),
        "--seed",
        str(seed),
        "--interactions",
        WORLDS[world],
    ]
    todo = (
        []
        if prepared.exists()
        else [("configure", ["configure"]), ("ingest", ingest), ("features", ["features"])]
    )
    earlier = set((ws / "bucket").rglob("backtests/*/report.json"))
    for step, argv in [*todo, ("backtest", None)]:
        started = time.monotonic()
        if argv is None:
            argv = ["backtest", str(experiments()), "--jobs", str(jobs), "--no-mlflow"]
        code = aik(base + argv)
        # a backtest whose candidate failed exits 1 and still writes its report (the failure in it)
        wrote = step == "backtest" and set((ws / "bucket").rglob("backtests/*/report.json")) - earlier
        if code != 0 and not (code == 1 and wrote):
            raise SystemExit(f"aik {' '.join(argv)} failed ({code})")
        steps[step] = round(time.monotonic() - started, 1)
        print(f"# {world} seed {seed}: {step} {steps[step]:.0f} s, load {load()}", flush=True)
        if step == "features":
            prepared.write_text(json.dumps(steps))
    # this backtest's report: another run may share a kept workspace
    reports = sorted(set((ws / "bucket").rglob("backtests/*/report.json")) - earlier)
    return {**json.loads(storage.read_text(str(reports[-1]))), "rows": rows, "steps_s": steps}


def main() -> None:
    """Run the grid and print the tables."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--rows", default="200000", help="requests per world: N, or world=N,... (default 200000)"
    )
    parser.add_argument("--seeds", default="1,2,3")
    parser.add_argument("--worlds", default="default,interactions")
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--experiments", default=str(ROOT / "bench" / "families.yaml"))
    parser.add_argument(
        "--candidates", default=None, help="comma-separated names of the experiments file's candidates to run"
    )
    parser.add_argument(
        "--done",
        nargs="+",
        default=[],
        metavar="OUTPUT",
        help="earlier runs' output: the worlds and seeds they finished are not run again",
    )
    parser.add_argument(
        "--keep",
        default=None,
        metavar="DIR",
        help="keep each world and seed's workspace under DIR; one whose features were made is reused",
    )
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
    worlds = args.worlds.split(",")
    rows = parse_rows(args.rows, worlds)
    finished = summarize(args.done)
    results: dict[str, dict[int, dict]] = {}
    started, load_before = time.monotonic(), load()
    for world in worlds:
        for seed in seeds:
            if seed in finished.get(world, {}):
                print(f"# {world} seed {seed}: finished in {', '.join(args.done)}, not run again", flush=True)
                results.setdefault(world, {})[seed] = finished[world][seed]
                continue
            with tempfile.TemporaryDirectory() as tmp:
                ws = Path(args.keep) / f"{world}-{rows[world]}-seed{seed}" if args.keep else Path(tmp) / "ws"

                def experiments(tmp: str = tmp) -> Path:
                    return select_candidates(
                        Path(args.experiments), args.candidates, Path(tmp) / "experiments.yaml"
                    )

                report = run_world(ws, world, rows[world], seed, experiments, args.jobs)
            results.setdefault(world, {})[seed] = report
            print(
                f"# {world} seed {seed}: load {report['load_before']} -> {report['load_after']}", flush=True
            )
            # each world and seed as it finishes, so a run cut short still leaves its figures
            print(json.dumps({**report, "world": world, "seed": seed}), flush=True)
    print(
        f"\nrequests per world {rows}; load average before {load_before}, after {load()}; "
        f"{time.monotonic() - started:.0f} s in all\n"
    )
    tables(results)


def summarize(paths: list[str]) -> dict[str, dict[int, dict]]:
    """The results of earlier runs from their output (the JSON line each printed per world and seed)."""
    results: dict[str, dict[int, dict]] = {}
    for path in paths:
        seed = None
        for line in Path(path).read_text().splitlines():
            if line.startswith("# ") and " seed " in line:  # "# <world> seed <n>: ..." lines precede it
                seed = int(line.split(" seed ", 1)[1].split(":", 1)[0])
            elif line.startswith("{"):
                doc = json.loads(line)
                key = seed if seed is not None else doc["seed"]
                earlier = results.setdefault(doc["world"], {}).get(key)
                results[doc["world"]][key] = merge(earlier, doc) if earlier else doc
    return results


def merge(earlier: dict, later: dict) -> dict:
    """Two backtests of one world and seed on the same rows (a kept workspace) as one: the candidates of
    both, the later's where both have one of a name."""
    same = earlier.get("rows") == later.get("rows") and earlier["reference"] == later["reference"]
    if not same:
        raise SystemExit(
            f"{later['world']} world: two runs of one seed on different rows; summarize them apart"
        )
    names = {c["name"] for c in later["candidates"]}
    kept = [c for c in earlier["candidates"] if c["name"] not in names]
    return {**later, "candidates": kept + later["candidates"]}


def tables(results: dict[str, dict[int, dict]]) -> None:
    """One table per world (ratio per seed, means), then each family on both worlds side by side."""
    names: list[str] = []
    for world, by_seed in results.items():
        seeds = sorted(by_seed)
        # every candidate of any seed, in the order they first appear (a part run on some seeds only)
        names = list(dict.fromkeys(c["name"] for s in seeds for c in by_seed[s]["candidates"]))
        oracle = " ".join(f"{by_seed[s]['reference']['oracle_auc']:.4f}" for s in seeds)
        loads = "; ".join(f"{by_seed[s]['load_before']} -> {by_seed[s]['load_after']}" for s in seeds)
        print(f"## {world} world (oracle AUC per seed: {oracle}; load average per seed: {loads})\n")
        header = ["family", *(f"seed {s}" for s in seeds), "mean ratio", "mean AUC", "mean train s"]
        if world == "interactions":
            header.append("interaction share")
        print("| " + " | ".join(header) + " |")
        print("|" + "|".join(" --- " for _ in header) + "|")
        for name in names:
            found = [next((c for c in by_seed[s]["candidates"] if c["name"] == name), None) for s in seeds]
            ok = [r for r in found if r is not None and r.get("ok")]
            cells = [
                "not run" if r is None else f"{r['oracle_ratio']:.4f}" if r.get("ok") else "failed"
                for r in found
            ]
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
