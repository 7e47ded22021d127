"""Model quality against the truth: AUC / oracle AUC per preset, data size and seed (and time to train).

Runs the product's `train_and_publish` (no publishing) on workspaces drawn by the training tests'
fixture generator (tests/train/train_fixture_data.py: a known logit truth, Zipf domains, cities in
regions), so the oracle AUC of every test split is known. The original preset is the baseline of the
same run; the logistic-regression and MLP baselines are reported for the default preset.

    .venv/bin/python bench/train_quality.py --rows 100000,200000,300000 --seeds 0,1,2
"""

from __future__ import annotations

import argparse
import logging
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "train"))

from train_fixture_data import FixtureSpec, make_workspace  # noqa: E402

from aik.context import Context  # noqa: E402
from aik.train import GateFailed, TrainOptions, train_and_publish  # noqa: E402


def run(rows: int, seed: int, presets: list[str], baselines: bool, domains: int, zipf: float) -> list[dict]:
    """Train every preset on one drawn workspace; one result row per preset."""
    out = []
    with tempfile.TemporaryDirectory() as tmp:
        settings = make_workspace(Path(tmp), FixtureSpec(rows=rows, seed=seed, domains=domains, zipf=zipf))
        ctx = Context(settings)
        for preset in presets:
            start = time.monotonic()
            options = TrainOptions(
                preset=preset, seed=seed, publish=False, baselines=baselines and preset == "default"
            )
            try:
                metrics = train_and_publish(ctx, options).metrics
            except GateFailed as failed:
                metrics = failed.result.metrics
            out.append(
                {
                    "rows": rows,
                    "seed": seed,
                    "preset": preset,
                    "auc": metrics.auc,
                    "oracle_auc": metrics.oracle_auc,
                    "ratio": metrics.oracle_ratio,
                    "train_s": metrics.timings["train_s"],
                    "total_s": round(time.monotonic() - start, 1),
                    "trees": metrics.model.trees,
                    "baselines": {k: v.oracle_ratio for k, v in metrics.baselines.items()},
                }
            )
            r = out[-1]
            extra = " ".join(f"{k}={v:.4f}" for k, v in r["baselines"].items())
            print(
                f"rows={rows:>7} seed={seed} preset={preset:<8} auc={r['auc']:.4f} "
                f"oracle={r['oracle_auc']:.4f} ratio={r['ratio']:.4f} trees={r['trees']:>5} "
                f"train={r['train_s']:6.1f}s {extra}",
                flush=True,
            )
    return out


def main() -> None:
    """Parse the options, run the grid, print the summary."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", default="100000,200000,300000", help="bid requests drawn per workspace")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--presets", default="default,original,numeric")
    parser.add_argument("--domains", type=int, default=3000)
    parser.add_argument("--zipf", type=float, default=1.05)
    parser.add_argument("--no-baselines", dest="baselines", action="store_false")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    presets = args.presets.split(",")
    results = []
    for rows in (int(r) for r in args.rows.split(",")):
        for seed in (int(s) for s in args.seeds.split(",")):
            results.extend(run(rows, seed, presets, args.baselines, args.domains, args.zipf))

    print(
        "\nAUC / oracle AUC (min / mean over seeds), and the gain over the original preset of the same runs"
    )
    for rows in sorted({r["rows"] for r in results}):
        for preset in presets:
            ratios = [r["ratio"] for r in results if r["rows"] == rows and r["preset"] == preset]
            gains = [
                r["ratio"] - o["ratio"]
                for r in results
                for o in results
                if r["rows"] == o["rows"] == rows
                and r["seed"] == o["seed"]
                and r["preset"] == preset
                and o["preset"] == "original"
            ]
            seconds = statistics.mean(
                r["train_s"] for r in results if r["rows"] == rows and r["preset"] == preset
            )
            gain = (
                f" gain vs original {statistics.mean(gains):+.4f}" if gains and preset != "original" else ""
            )
            print(
                f"rows={rows:>7} {preset:<8} min {min(ratios):.4f} mean {statistics.mean(ratios):.4f}"
                f"{gain}  train {seconds:.1f}s"
            )
        for name in sorted({k for r in results if r["rows"] == rows for k in r["baselines"]}):
            ratios = [r["baselines"][name] for r in results if r["rows"] == rows and name in r["baselines"]]
            print(
                f"rows={rows:>7} {name} (baseline) min {min(ratios):.4f} mean {statistics.mean(ratios):.4f}"
            )


if __name__ == "__main__":
    main()
