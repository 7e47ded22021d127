"""Test scaffolding for training: splits, bundle, truth and parameters drawn from a known logit model.

Not the product's generator (that is `aik ingest --synthetic`): this writes directly what the feature
job would (parquet splits in index space, the MLeap bundle, the truth file, the parameters) so the
training code can be tested and tuned without Spark. Shapes follow DESIGN.md: per-value random effects,
Zipf-distributed domains in the thousands, cities nested in regions, a win rate near 20 %.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from aik import params as P
from aik.bundle import StringIndexerSpec, write_bundle
from aik.params import LocalParameterStore, configure
from aik.schema import INDEXED_COLUMNS, LABEL, SPLIT_COLUMNS
from aik.settings import Settings
from aik.truth import LogitModel, TruthModel, truth_uri

#: device_type_id frequencies (smartphone, mobilephone, appliance, pc, crawler, misc, unknown).
DEVICE_FREQ = np.array([0.14, 0.02, 0.01, 0.72, 0.01, 0.02, 0.08])


@dataclass(frozen=True)
class FixtureSpec:
    """How much data and how it is shaped."""

    rows: int = 20_000
    seed: int = 0
    domains: int = 3000
    zipf: float = 1.05
    advertisers: int = 9
    regions: int = 35
    cities: int = 370
    win_rate: float = 0.2
    parts: int = 3


def _effects(rng: np.random.Generator, keys: list[str], sd: float) -> dict[str, float]:
    return {k: float(v) for k, v in zip(keys, rng.normal(0.0, sd, len(keys)), strict=True)}


def _values(spec: FixtureSpec) -> dict[str, list[str]]:
    return {
        "AdvertiserID": [str(1458 + 17 * i) for i in range(spec.advertisers)],
        "Domain": [f"dom{i:05d}x" for i in range(spec.domains)],
        "RegionID": [str(i + 1) for i in range(spec.regions)],
        "CityID": [str(100 + i) for i in range(spec.cities)],
    }


def draw_logit(rng: np.random.Generator, spec: FixtureSpec, intercept: float) -> LogitModel:
    """A logit model with DESIGN.md's effect sizes (sd: domain .5, advertiser .7, region/city .3)."""
    values = _values(spec)
    phase = rng.uniform(0, 24)
    return LogitModel(
        intercept=intercept,
        advertiser=_effects(rng, values["AdvertiserID"], 0.7),
        domain=_effects(rng, values["Domain"], 0.5),
        region=_effects(rng, values["RegionID"], 0.3),
        city=_effects(rng, values["CityID"], 0.3),
        device_type=_effects(rng, [str(i) for i in range(7)], 0.8),
        hour={str(h): float(0.35 * np.sin(2 * np.pi * (h - phase) / 24)) for h in range(24)},
        dow=_effects(rng, [str(d) for d in range(1, 8)], 0.15),
    )


def draw_raw(spec: FixtureSpec) -> tuple[pd.DataFrame, TruthModel]:
    """Raw rows (raw values + win label) and the truth that labelled them."""
    rng = np.random.default_rng(spec.seed)
    values = _values(spec)
    n = spec.rows
    ranks = np.arange(1, spec.domains + 1, dtype=np.float64)
    domain_p = ranks**-spec.zipf / np.sum(ranks**-spec.zipf)
    # frequency rank is independent of the effect: shuffle which domain is frequent
    domain_order = rng.permutation(spec.domains)
    adv_p = rng.dirichlet(np.full(spec.advertisers, 2.0))
    region_p = rng.dirichlet(np.full(spec.regions, 0.7))
    city_region = np.sort(
        np.concatenate([np.arange(spec.regions), rng.integers(0, spec.regions, spec.cities - spec.regions)])
    )
    city_w = rng.gamma(0.8, 1.0, spec.cities)
    hour_p = 1.0 + 0.6 * np.sin(2 * np.pi * (np.arange(24) - 9) / 24)
    hour_p /= hour_p.sum()

    region = rng.choice(spec.regions, n, p=region_p)
    city = np.empty(n, dtype=np.int64)
    for r in range(spec.regions):
        idx = np.flatnonzero(region == r)
        cands = np.flatnonzero(city_region == r)
        w = city_w[cands] / city_w[cands].sum()
        city[idx] = rng.choice(cands, len(idx), p=w)
    raw = pd.DataFrame(
        {
            "AdvertiserID": np.array(values["AdvertiserID"])[rng.choice(spec.advertisers, n, p=adv_p)],
            "Domain": np.array(values["Domain"])[domain_order[rng.choice(spec.domains, n, p=domain_p)]],
            "RegionID": np.array(values["RegionID"])[region],
            "CityID": np.array(values["CityID"])[city],
            "device_type_id": rng.choice(7, n, p=DEVICE_FREQ),
            "hour": rng.choice(24, n, p=hour_p),
            "dow": rng.integers(1, 8, n),
        }
    )
    # choose the intercept that gives the target win rate (bisection on the mean probability)
    win = draw_logit(rng, spec, 0.0)
    logit0 = win.logit(raw)
    lo, hi = -8.0, 4.0
    for _ in range(50):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if np.mean(1 / (1 + np.exp(-(logit0 + mid)))) < spec.win_rate else (lo, mid)
    win = LogitModel(**{**win.__dict__, "intercept": (lo + hi) / 2})
    click = draw_logit(rng, spec, -6.0)
    raw[LABEL] = (rng.random(n) < win.probability(raw)).astype(np.int32)
    return raw, TruthModel(win=win, click=click, seed=spec.seed)


def index_raw(raw: pd.DataFrame) -> tuple[pd.DataFrame, list[StringIndexerSpec]]:
    """Index the raw columns as Spark's StringIndexer does (descending frequency, ties by value)."""
    out = raw.copy()
    specs = []
    for col, index_col in INDEXED_COLUMNS.items():
        counts = raw[col].value_counts()
        labels = sorted(counts.index, key=lambda v: (-counts[v], v))
        lookup = {v: i for i, v in enumerate(labels)}
        out[index_col] = raw[col].map(lookup).astype(np.float64)
        specs.append(StringIndexerSpec(col, index_col, tuple(labels)))
    return out, specs


def write_split(df: pd.DataFrame, directory: Path, parts: int) -> None:
    """A Spark-style parquet directory: part files plus _SUCCESS."""
    directory.mkdir(parents=True, exist_ok=True)
    table = pa.Table.from_pandas(df[list(SPLIT_COLUMNS)], preserve_index=False)
    step = -(-len(df) // parts)
    for i in range(parts):
        pq.write_table(table.slice(i * step, step), directory / f"part-{i:05d}-fixture.snappy.parquet")
    (directory / "_SUCCESS").write_bytes(b"")


def make_workspace(workspace: Path, spec: FixtureSpec = FixtureSpec(), *, truth: bool = True) -> Settings:
    """Configure a local workspace and write splits, bundle, truth (optional) and parameters."""
    settings = Settings(backend="local", workspace=workspace)
    store = LocalParameterStore(workspace / "parameters.json")
    values = configure(store, settings)
    raw, truth_model = draw_raw(spec)
    indexed, specs = index_raw(raw)
    indexed["dow"] = indexed["dow"].astype(np.int32)
    indexed["hour"] = indexed["hour"].astype(np.int32)
    indexed["device_type_id"] = indexed["device_type_id"].astype(np.int32)
    order = np.random.default_rng(spec.seed + 1).permutation(len(indexed))
    n_train, n_valid = int(0.8 * len(order)), int(0.1 * len(order))
    splits = {
        P.OUTPUT_TRAIN: order[:n_train],
        P.OUTPUT_VALID: order[n_train : n_train + n_valid],
        P.OUTPUT_TEST: order[n_train + n_valid :],
    }
    for name, rows in splits.items():
        write_split(indexed.iloc[rows], Path(values[name]), spec.parts)
    write_bundle(values[P.PIPELINE_MODEL], specs)
    if truth:
        truth_model.save(truth_uri(values[P.RAW_DATA]))
    return settings


def model_path(ws: Path) -> Path:
    """The published model file of a workspace made by make_workspace."""
    return ws / "bucket" / "binary-model" / "xgboost.bin"
