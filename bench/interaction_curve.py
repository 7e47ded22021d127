"""The interaction world's learning curve: what a family and an ideal estimator reach as rows grow.

For each size: the kit's generator draws the requests of the default interaction world
(`aik.synthetic.sample`, `--interactions default`) in memory, indexes them as the feature job does
(descending frequency) and splits them 80/10/10 (no Spark, so sizes the feature job would take long
over are cheap). Per size it prints

- the **ideal shrinkage ceiling**: the truth with each interaction term's effect on a test row shrunk
  by n / (n + k), n the row's value pair's count in the train rows and k = 1 / (sd^2 p (1 - p)) (p the
  win rate): what an estimator that knew every main effect and the form of the truth, but not the
  pair's effect, could get from n draws (a Gaussian prior of the term's sd against the information in
  n Bernoulli outcomes). How much of each term sits on rarely seen pairs is printed beside it;
- each family given (`--families`, with `--set name=value;...` overrides) trained on the train split,
  early-stopped on the valid split, as AUC / oracle AUC on the valid split (the one to choose
  hyperparameters by) and on the test split.

    nice -n 10 .venv/bin/python bench/interaction_curve.py --rows 200000,400000,800000 --families wide-deep
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "train"))
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import pandas as pd  # noqa: E402
from train_fixture_data import RAW_COLUMNS, index_raw  # noqa: E402

from aik.schema import FEATURE_COLUMNS  # noqa: E402
from aik.synthetic import DEFAULT_INTERACTIONS, SyntheticConfig, sample  # noqa: E402
from aik.train.data import Split  # noqa: E402
from aik.train.evaluate import auc  # noqa: E402
from aik.truth import TERM_COLUMNS, pair_terms  # noqa: E402

FIXED = {"dow": 8, "hour": 24, "device_type_id": 7}


def load() -> str:
    """The 1-minute load average now."""
    return f"{os.getloadavg()[0]:.1f}"


def ceiling(s, train: np.ndarray, test: np.ndarray, win_rate: float) -> None:
    """Print the ideal shrinkage ceiling and how rarely the test rows' value pairs were seen."""
    cols, win = s.columns, s.truth.win
    y = s.win[test]
    full = win.logit({c: cols[c][test] for c in cols})
    oracle = auc(y, full)
    shrunk = full.copy()
    sds = {(a, b): sd for a, b, sd in DEFAULT_INTERACTIONS}
    for name, table in win.pairs.items():
        a, b = (cols[TERM_COLUMNS[t]] for t in pair_terms(name))
        seen = Counter(f"{u}|{v}" for u, v in zip(a[train], b[train], strict=True))
        keys = [f"{u}|{v}" for u, v in zip(a[test], b[test], strict=True)]
        effect = np.array([table.get(k, 0.0) for k in keys])
        n = np.array([seen.get(k, 0) for k in keys], dtype=float)
        k = 1.0 / (sds[pair_terms(name)] ** 2 * win_rate * (1 - win_rate))
        shrunk = shrunk - effect + effect * n / (n + k)
        print(
            f"  {name}: test rows whose pair the train rows hold < 10 times {np.mean(n < 10):.3f}, "
            f"< 50 times {np.mean(n < 50):.3f}; "
            f"the truth without this term {auc(y, full - effect) / oracle:.4f}"
        )
    print(f"  ideal shrinkage ceiling: {auc(y, shrunk) / oracle:.4f} of the oracle", flush=True)


def main() -> None:
    """Draw each size, print its ceiling, train the families."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", default="200000,400000,800000")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--families", default="wide-deep", help="comma-separated; none: the ceiling only")
    parser.add_argument("--set", action="append", default=[], help="name=value;... overrides per run")
    args = parser.parse_args()
    import torch

    from aik.train.families.config import resolve_neural
    from aik.train.families.neural import train_neural

    torch.set_num_threads(1)
    for rows in (int(r) for r in args.rows.split(",")):
        config = SyntheticConfig(rows=rows, seed=args.seed, interactions=DEFAULT_INTERACTIONS)
        s = sample(config)
        indexed, specs = index_raw(pd.DataFrame({c: s.columns[c] for c in RAW_COLUMNS}))
        X = indexed[list(FEATURE_COLUMNS)].to_numpy(np.float32)
        y = s.win.astype(np.float32)
        order = np.random.default_rng(args.seed + 1).permutation(rows)
        a, b = int(0.8 * rows), int(0.9 * rows)
        train, valid, test = (
            Split("mem", X[p], y[p], len(p), tuple(FEATURE_COLUMNS))
            for p in (order[:a], order[a:b], order[b:])
        )
        oracle = auc(test.y, s.p_win[order[b:]])
        oracle_valid = auc(valid.y, s.p_win[order[a:b]])
        print(
            f"rows {rows:,} seed {args.seed}: oracle AUC {oracle:.4f} (valid {oracle_valid:.4f}); "
            f"load {load()}",
            flush=True,
        )
        ceiling(s, order[:a], order[b:], config.win_rate)
        unseen = {sp.output_col: len(sp.labels) for sp in specs}
        cards = tuple(unseen.get(c, FIXED.get(c, 0)) for c in FEATURE_COLUMNS)
        for family in (f for f in args.families.split(",") if f and f != "none"):
            for overrides in args.set or [""]:
                values = dict(kv.split("=", 1) for kv in overrides.split(";") if kv)
                start = time.monotonic()
                trained = train_neural(
                    train, valid, resolve_neural(family, values, seed=0), cards, unseen=unseen, nthread=1
                )
                ratio = auc(test.y, trained.model.predict(test.X)) / oracle
                ratio_valid = auc(valid.y, trained.model.predict(valid.X)) / oracle_valid
                print(
                    f"  {family} {values or 'defaults'}: valid {ratio_valid:.4f}, test {ratio:.4f} of the "
                    f"oracle (best epoch "
                    f"{trained.best_epoch}/{trained.epochs}, {time.monotonic() - start:.0f} s, "
                    f"load {load()})",
                    flush=True,
                )


if __name__ == "__main__":
    main()
