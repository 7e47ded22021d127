"""Test scaffolding for training: splits, bundle, truth and parameters, without Spark.

The rows come from the kit's own generator (`aik.synthetic.sample`: the requests `aik ingest
--synthetic` would write as logs, with their truth); this writes directly what the feature job would
make of them (parquet splits in index space, the MLeap bundle, the truth file, the parameters), so the
training code can be tested and tuned in seconds.
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
from aik.synthetic import SyntheticConfig, sample
from aik.truth import TruthModel, truth_uri

#: The fields of a request the truth reads, as the feature job sees them.
RAW_COLUMNS = ("AdvertiserID", "Domain", "RegionID", "CityID", "device_type_id", "hour", "dow")


@dataclass(frozen=True)
class FixtureSpec:
    """How much data and how it is shaped (the synthetic world's settings that tests vary)."""

    rows: int = 20_000
    seed: int = 0
    domains: int = 3000
    zipf: float = 1.05
    advertisers: int = 9
    regions: int = 35
    cities: int = 370
    win_rate: float = 0.2
    parts: int = 3

    def synthetic(self) -> SyntheticConfig:
        """The kit's generator's settings for this shape."""
        return SyntheticConfig(
            rows=self.rows,
            seed=self.seed,
            domains=self.domains,
            domain_zipf=self.zipf,
            advertisers=self.advertisers,
            regions=self.regions,
            cities=self.cities,
            win_rate=self.win_rate,
        )


def draw_raw(spec: FixtureSpec) -> tuple[pd.DataFrame, TruthModel]:
    """Raw rows (the truth's fields + win label) drawn by the kit's generator, and its truth."""
    drawn = sample(spec.synthetic())
    raw = pd.DataFrame({column: drawn.columns[column] for column in RAW_COLUMNS})
    raw[LABEL] = drawn.win.astype(np.int32)
    return raw, drawn.truth


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
