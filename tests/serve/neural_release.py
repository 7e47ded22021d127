"""A neural release built from the serving fixtures: a small PyTorch model trained on their rows, its
ONNX export bound to their bundle, written as `aik train` writes a release (the serving tests)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import numpy as np
from serving_fixtures import Artifacts

from aik import params, releases, storage
from aik.bundle import indexer_from_specs
from aik.schema import FEATURE_COLUMNS

#: `write_neural_release(binding=BUNDLE)`: bind the export to the artifacts' own bundle.
BUNDLE = "bundle"


@dataclass
class NeuralRelease:
    """The release and the PyTorch model behind it (the reference the server must equal)."""

    release: releases.Release
    model: Any  # aik.train.families.neural.NeuralModel

    def predict(self, features: np.ndarray) -> np.ndarray:
        """PyTorch's probabilities for feature rows."""
        return np.asarray(self.model.predict(np.asarray(features, dtype=np.float32)), dtype=np.float64)


def train_small(artifacts: Artifacts, family: str, *, epochs: int = 2, seed: int = 0) -> Any:
    """A `family` model trained for a few epochs on the artifacts' rows (80 % train, 20 % valid)."""
    from aik.train.data import Split
    from aik.train.families.config import resolve_neural
    from aik.train.families.encoding import cardinalities, unseen_codes
    from aik.train.families.neural import train_neural

    indexer = indexer_from_specs(artifacts.specs)
    X = artifacts.features.astype(np.float32)
    y = artifacts.labels.astype(np.float32)
    cut = int(0.8 * len(y))

    def split(rows: slice) -> Split:
        return Split("mem://", X[rows], y[rows], len(y[rows]), FEATURE_COLUMNS)

    config = resolve_neural(family, {"max_epochs": epochs, "patience": 1, "batch_size": 512}, seed=seed)
    trained = train_neural(
        split(slice(0, cut)),
        split(slice(cut, None)),
        config,
        cardinalities(indexer),
        unseen=unseen_codes(indexer),
    )
    return trained.model


def write_neural_release(
    artifacts: Artifacts,
    model: Any,
    *,
    binding: str | None = BUNDLE,
    passed: bool = True,
) -> NeuralRelease:
    """Export `model` to ONNX bound to the artifacts' bundle (`binding` BUNDLE), to another indexer
    digest, or to none (None), and write its release beside the bundle and schema the server reads."""
    from aik.train.families.onnx_export import export_onnx

    store = artifacts.store
    bundle = storage.read_bytes(store.get(params.PIPELINE_MODEL))
    schema = storage.read_bytes(store.get(params.PIPELINE_SCHEMA))
    digest = releases.bundle_indexer_sha256(bundle) if binding == BUNDLE else binding
    exported = export_onnx(model, artifacts.features[:2000], digest)
    release = releases.write_release(
        releases.releases_root(store),
        bundle=bundle,
        schema=schema,
        model=model.to_bytes(),
        family=model.family,
        model_name="model.pt",
        extras={"onnx": ("model.onnx", exported.data)},
        metrics=json.loads(json.dumps({"auc": 0.7, "onnx": exported.describe()})),
        gates={"passed": passed, "checks": []},
    )
    return NeuralRelease(release, model)


def write_booster_release(artifacts: Artifacts, booster: Any = None) -> releases.Release:
    """The artifacts' booster (or `booster`) as a release, bound to their bundle as `aik train` binds it."""
    store = artifacts.store
    bundle = storage.read_bytes(store.get(params.PIPELINE_MODEL))
    booster = (booster if booster is not None else artifacts.booster).copy()
    booster.set_attr(**{releases.BOOSTER_ATTRIBUTE: releases.bundle_indexer_sha256(bundle)})
    return releases.write_release(
        releases.releases_root(store),
        bundle=bundle,
        schema=storage.read_bytes(store.get(params.PIPELINE_SCHEMA)),
        model=bytes(booster.save_raw("ubj")),
        metrics={"auc": 0.7},
        gates={"passed": True, "checks": []},
    )
