"""A synthetic world with two releases of known different quality, for the closed-loop tests.

The world's requests come from the kit's generator (`aik.synthetic.sample`) with their truth; the
releases are a bundle of the world's labels and two xgboost boosters written as `aik train` writes
them: `good` sees all seven features, `blind` was trained with the domain and advertiser unknown (the
two strongest terms of the truth), so the truth says it is worse on every request.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pytest

from aik import params, releases
from aik.bundle import StringIndexerSpec, bundle_bytes, indexer_from_specs
from aik.schema import FEATURE_COLUMNS, INDEXED_COLUMNS, RAW_SCHEMA
from aik.settings import Settings
from aik.synthetic import SyntheticConfig, sample
from aik.truth import TruthModel

if TYPE_CHECKING:
    from pyspark.sql import SparkSession


@pytest.fixture(scope="session")
def spark() -> Iterator[SparkSession]:
    """A local SparkSession for the monitor's Spark job (the pipeline tests' settings; one per run)."""
    from aik.features.spark import local_session

    session = local_session("aik-tests", cores=2, shuffle_partitions=2, driver_memory="2g")
    yield session
    session.stop()


@dataclass(frozen=True)
class AbWorld:
    """A workspace with two releases and the world's traffic and truth."""

    settings: Settings
    store: params.LocalParameterStore
    traffic: list[dict[str, Any]]
    truth: TruthModel
    good: releases.Release
    blind: releases.Release

    @property
    def releases_root(self) -> str:
        """Where the releases are."""
        return releases.releases_root(self.store)


def _specs(rows: Sequence[Mapping[str, Any]]) -> list[StringIndexerSpec]:
    specs = []
    for column, output in INDEXED_COLUMNS.items():
        counts = Counter(r[column] for r in rows if r[column] is not None)
        specs.append(StringIndexerSpec(column, output, tuple(sorted(counts, key=lambda v: (-counts[v], v)))))
    return specs


def _features(columns: Mapping[str, np.ndarray], specs: Sequence[StringIndexerSpec]) -> np.ndarray:
    values: dict[str, np.ndarray] = {
        "dow": columns["dow"].astype(float),
        "hour": columns["hour"].astype(float),
        "device_type_id": columns["device_type_id"].astype(float),
    }
    for spec in specs:
        table = {label: i for i, label in enumerate(spec.labels)}
        values[spec.output_col] = np.array([table.get(v, len(table)) for v in columns[spec.input_col]], float)
    return np.column_stack([values[c] for c in FEATURE_COLUMNS])


def _release(
    store: params.LocalParameterStore, specs: list[StringIndexerSpec], booster: Any
) -> releases.Release:
    booster.set_attr(**{releases.BOOSTER_ATTRIBUTE: releases.indexer_sha256(indexer_from_specs(specs))})
    return releases.write_release(
        releases.releases_root(store),
        bundle=bundle_bytes(specs),
        schema=json.dumps(RAW_SCHEMA).encode(),
        model=bytes(booster.save_raw("ubj")),
        metrics={},
        gates={"passed": True, "checks": []},
    )


@pytest.fixture(scope="session")
def ab_world(tmp_path_factory: pytest.TempPathFactory) -> AbWorld:
    """The world, its traffic as inference rows, and the releases `good` and `blind`."""
    import xgboost

    workspace: Path = tmp_path_factory.mktemp("ab") / "ws"
    settings = Settings(backend="local", workspace=workspace)
    store = params.LocalParameterStore(workspace / "parameters.json")
    params.configure(store, settings)
    drawn = sample(SyntheticConfig(rows=40_000, seed=5, domains=400))
    c = drawn.columns
    traffic = [
        {
            "BidID": c["BidID"][i],
            "dow": int(c["dow"][i]),
            "hour": f"{int(c['hour'][i]):02d}",
            "RegionID": c["RegionID"][i],
            "CityID": c["CityID"][i],
            "Domain": c["Domain"][i],
            "AdvertiserID": c["AdvertiserID"][i],
            "BiddingPrice": int(c["BiddingPrice"][i]),
            "PayingPrice": int(c["PayingPrice"][i]),
            "UserAgent": c["UserAgent"][i],
        }
        for i in range(len(c["BidID"]))
    ]
    specs = _specs(traffic)
    features = _features(c, specs)
    labels = drawn.win.astype(np.int32)
    param = {"objective": "binary:logistic", "eta": 0.1, "max_depth": 3, "seed": 0, "nthread": 2}
    names = list(FEATURE_COLUMNS)
    good = xgboost.train(param, xgboost.DMatrix(features, labels, feature_names=names), 150)
    blinded = features.copy()
    for column in ("IndexDomain", "IndexAdvertiserID"):
        blinded[:, names.index(column)] = np.nan
    blind = xgboost.train(param, xgboost.DMatrix(blinded, labels, feature_names=names), 150)
    return AbWorld(
        settings, store, traffic, drawn.truth, _release(store, specs, good), _release(store, specs, blind)
    )
