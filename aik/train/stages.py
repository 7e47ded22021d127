"""The making stages of a training run, each a function returning a dataclass (`aik.train.workflow` chains
them with the judging stages of `aik.train.assess`).

Inputs from the parameter store -> the feature job's artifacts and the splits read -> a booster (local,
SageMaker or a given file) -> the candidate bound to its bundle and reloaded from its bytes; then
(`assess`) its evaluation, the baselines, the gates and the reports -> `Metrics` -> a release.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import xgboost as xgb

from aik import aws, storage
from aik import params as P
from aik import releases as R
from aik.bundle import FeatureIndexer, indexer_from_specs, parse_bundle
from aik.context import Context
from aik.errors import AikError
from aik.params import ParameterStore
from aik.schema import FEATURE_COLUMNS, INDEXED_COLUMNS, RAW_SCHEMA
from aik.train.data import Split, check_codes, read_split
from aik.train.families import models as family_models
from aik.train.metrics import (
    ModelInfo,
    SplitData,
)
from aik.train.model import TrainedModel, load_booster, train_booster
from aik.train.options import TrainOptions
from aik.train.presets import CATEGORICAL_COLUMNS, TrainConfig, resolve
from aik.truth import TruthModel, truth_uri

log = logging.getLogger(__name__)


def _unseen_codes(indexer: FeatureIndexer) -> dict[str, int]:
    """Index column -> the code the server sends for a value the pipeline never saw (= label count)."""
    return {out: len(indexer.labels[raw]) for raw, out in INDEXED_COLUMNS.items() if raw in indexer.labels}


def load_truth(raw_data: str | None) -> TruthModel | None:
    if not raw_data:
        return None
    uri = truth_uri(raw_data)
    if not storage.exists(uri):
        return None
    return TruthModel.load(uri)


def resolve_config(options: TrainOptions) -> TrainConfig | None:
    """The booster's configuration (None for a neural family, whose `obtain_neural` resolves its own)."""
    if family_models.is_neural(family_models.check_family(options.family)):
        family_models.require_torch(options.family)
        if options.sagemaker is not None:
            raise AikError(f"--model {options.family} trains locally: SageMaker trains xgboost only")
        return None
    preset = options.preset or ("numeric" if options.sagemaker is not None else "default")
    return resolve(preset, options.overrides, seed=options.seed)


def obtain_booster(
    ctx: Context,
    options: TrainOptions,
    config: TrainConfig,
    train: Split,
    valid: Split,
    indexer: FeatureIndexer,
) -> tuple[xgb.Booster, dict[str, Any]]:
    """Train locally, run the SageMaker job, or load the given model file; returns it and how it was made."""
    if options.model_uri:
        data = storage.read_bytes(options.model_uri)
        if options.model_uri.endswith(".tar.gz"):
            # a SageMaker training job's model.tar.gz (the loop's job, or the built-in algorithm's)
            from aik.train.sagemaker_job import booster_from_model_tar

            booster = booster_from_model_tar(data, options.model_uri)
            return booster, {"source": "sagemaker", "model_artifact": options.model_uri}
        booster = load_booster(data, options.model_uri)
        if not booster.feature_names and booster.num_features() == len(FEATURE_COLUMNS):
            # a model trained on a bare matrix (as SageMaker's container does): name its columns
            booster.feature_names = list(FEATURE_COLUMNS)
        return booster, {"source": "file", "uri": options.model_uri}
    if options.sagemaker is not None:
        from aik.train import sagemaker_job as sm

        trainer = sm.build_trainer(
            options.sagemaker,
            config,
            train_uri=train.uri,
            valid_uri=valid.uri,
            bucket_uri=ctx.params.get(P.DATA_BUCKET),
            region=aws.region(ctx.settings.region),
        )
        artifact = sm.run(trainer)
        booster = sm.booster_from_model_tar(storage.read_bytes(artifact), artifact)
        return booster, {
            "source": "sagemaker",
            "model_artifact": artifact,
            **sm.summary(options.sagemaker, config),
        }
    trained: TrainedModel = train_booster(
        train, valid, config, unseen_codes=_unseen_codes(indexer), nthread=options.nthread
    )
    info = {
        "source": "local",
        "best_rounds": trained.best_rounds,
        "rounds": trained.rounds,
        "refit_on_train_and_valid": trained.refit,
        "unseen_rows_added": trained.unseen_rows,
        "train_seconds": round(trained.seconds, 2),
    }
    history = trained.history.get("valid", {})
    if history:
        metric, values = next(iter(history.items()))
        info["valid_" + metric] = round(float(values[trained.best_rounds - 1]), 6)
    return trained.booster, info


def obtain_neural(
    options: TrainOptions, train: Split, valid: Split, indexer: FeatureIndexer
) -> tuple[Any, dict[str, Any]]:
    """Train a PyTorch family locally (or load the given model file); returns it and how it was made."""
    if options.model_uri:
        model = family_models.load_model(
            options.family, storage.read_bytes(options.model_uri), options.model_uri
        )
        return model, {"source": "file", "uri": options.model_uri}
    from aik.train.families.config import resolve_neural
    from aik.train.families.encoding import cardinalities, unseen_codes
    from aik.train.families.neural import train_neural

    config = resolve_neural(options.family, options.overrides, seed=options.seed)
    trained = train_neural(
        train, valid, config, cardinalities(indexer), unseen=unseen_codes(indexer), nthread=options.nthread
    )
    return trained.model, trained.info()


@dataclass(frozen=True)
class Inputs:
    """The URIs a run reads and writes, as the parameter store names them."""

    train: str
    valid: str
    test: str
    pipeline_model: str
    pipeline_schema: str
    #: The published model (`/aik/xgboost/path`); candidates live beside it.
    model: str
    #: The feature job's output prefix (its report lies beside it).
    transformed: str
    #: Where ingest put the raw logs and, for synthetic data, the truth (None when not configured).
    raw_data: str | None

    @classmethod
    def from_store(cls, store: ParameterStore) -> Inputs:
        """Read every URI from the store; a missing one is a `ParameterNotFound` naming it."""
        try:
            raw_data: str | None = store.get(P.RAW_DATA)
        except AikError:
            raw_data = None
        return cls(
            train=store.get(P.OUTPUT_TRAIN),
            valid=store.get(P.OUTPUT_VALID),
            test=store.get(P.OUTPUT_TEST),
            pipeline_model=store.get(P.PIPELINE_MODEL),
            pipeline_schema=store.get(P.PIPELINE_SCHEMA),
            model=store.get(P.XGBOOST_PATH),
            transformed=store.get(P.OUTPUT_TRANSFORMED),
            raw_data=raw_data,
        )


@dataclass(frozen=True)
class PipelineArtifacts:
    """What the feature job published, read once: a release carries exactly these bytes."""

    bundle: bytes
    indexer: FeatureIndexer
    schema: bytes
    #: The feature job's report with its `_uri` and `_sha256` (empty when the splits came from elsewhere).
    features_report: dict[str, Any]


def read_pipeline(inputs: Inputs) -> PipelineArtifacts:
    """The MLeap bundle (and its indexer), the schema (the kit's own when the job wrote none), the report."""
    bundle = storage.read_bytes(inputs.pipeline_model)
    schema = (
        storage.read_bytes(inputs.pipeline_schema)
        if storage.exists(inputs.pipeline_schema)
        else (json.dumps(RAW_SCHEMA, indent=2) + "\n").encode()
    )
    return PipelineArtifacts(
        bundle=bundle,
        indexer=indexer_from_specs(parse_bundle(bundle, inputs.pipeline_model)),
        schema=schema,
        features_report=_features_report(inputs.transformed),
    )


def _features_report(transformed: str) -> dict[str, Any]:
    """The feature job's report beside its output (empty when the splits came from elsewhere)."""
    uri = storage.join(transformed.rstrip("/").rsplit("/", 1)[0], "features-report.json")
    if not storage.exists(uri):
        return {}
    data = storage.read_bytes(uri)
    try:
        report = json.loads(data)
    except (json.JSONDecodeError, UnicodeDecodeError):
        return {}
    return (
        {**report, "_uri": uri, "_sha256": hashlib.sha256(data).hexdigest()}
        if isinstance(report, dict)
        else {}
    )


def data_window(features_report: Mapping[str, Any], splits: Mapping[str, SplitData]) -> dict[str, Any]:
    """What a release records of its data: the split and window, the rows, the feature job's report."""
    window = dict(features_report.get("split") or {"split": "random"})
    return {
        "split": window.pop("split", "random"),
        "window": window,
        "rows": {name: split.rows for name, split in splits.items()},
        "features_report": {"uri": features_report.get("_uri"), "sha256": features_report.get("_sha256")},
    }


@dataclass(frozen=True)
class Splits:
    """The three splits in memory."""

    train: Split
    valid: Split
    test: Split

    def items(self) -> list[tuple[str, Split]]:
        """(name, split) in the order train, valid, test."""
        return [("train", self.train), ("valid", self.valid), ("test", self.test)]


def read_splits(inputs: Inputs, options: TrainOptions, config: TrainConfig | None) -> Splits:
    """Read the splits (sampled to `max_rows`); codes checked when the model treats them as categories
    (a categorical booster, every neural family: config None)."""
    # a SageMaker job or a given model file trains elsewhere: locally the train split only feeds the
    # baselines, so it is read as the sample they use, never whole
    trains_here = options.model_uri is None and options.sagemaker is None
    train_rows = (
        options.max_rows
        if trains_here
        else min(options.max_rows or options.baseline_max_rows, options.baseline_max_rows)
    )
    splits = Splits(
        train=read_split(inputs.train, max_rows=train_rows, seed=options.seed, label="train"),
        valid=read_split(inputs.valid, max_rows=options.max_rows, seed=options.seed + 1, label="valid"),
        test=read_split(inputs.test, max_rows=options.max_rows, seed=options.seed + 2, label="test"),
    )
    if config is None or config.categorical:
        for _, split in splits.items():
            check_codes(split, CATEGORICAL_COLUMNS)
    log.info(
        "splits: train %d, valid %d, test %d rows", splits.train.rows, splits.valid.rows, splits.test.rows
    )
    return splits


@dataclass(frozen=True)
class Candidate:
    """A run's model (a booster bound to its bundle, or a neural family's), as bytes and reloaded from
    them (what the gates judge)."""

    #: The release id the candidate will be written under (dated, content-addressed).
    run_id: str
    created: datetime
    releases_root: str
    #: Where the release will hold the model file.
    uri: str
    data: bytes
    model: family_models.Model
    family: str = "xgboost"

    @property
    def file_name(self) -> str:
        """The model file's name inside the release."""
        return self.uri.rsplit("/", 1)[-1]


def make_candidate(
    model: family_models.Model, indexer: FeatureIndexer, store: ParameterStore, family: str = "xgboost"
) -> Candidate:
    """Bind a booster to the codes it learnt (a server refuses it beside any other bundle), serialise
    the model and load it back from those bytes."""
    neural = family_models.is_neural(family)
    if family_models.is_booster(model):
        model.set_attr(**{R.BOOSTER_ATTRIBUTE: R.indexer_sha256(indexer)})
    data = family_models.model_bytes(model)
    created = datetime.now(UTC)
    root = R.releases_root(store)
    run_id = R.release_id(data, created, root)
    uri = storage.join(root, run_id, family_models.NEURAL_FILE if neural else R.FILE_NAMES["model"])
    return Candidate(run_id, created, root, uri, data, family_models.load_model(family, data, uri), family)


def model_info(candidate: Candidate, config: TrainConfig | None, training: dict[str, Any]) -> ModelInfo:
    """The candidate file as metrics.json describes it."""
    model = candidate.model
    if config is None or not family_models.is_booster(model):
        described = family_models.describe(model)
        return ModelInfo(
            uri=candidate.uri,
            candidate_uri=candidate.uri,
            sha256=hashlib.sha256(candidate.data).hexdigest(),
            bytes=len(candidate.data),
            format=described["format"],
            features=list(model.feature_names or []),
            feature_types=[],
            trees=0,
            config=described["config"],
            training=training,
            family=candidate.family,
            parameters=described["parameters"],
        )
    return ModelInfo(
        uri=candidate.uri,
        candidate_uri=candidate.uri,
        sha256=hashlib.sha256(candidate.data).hexdigest(),
        bytes=len(candidate.data),
        format="ubjson",
        features=list(model.feature_names or []),
        feature_types=list(model.feature_types or []),
        trees=model.num_boosted_rounds(),
        config=config.as_dict(),
        training=training,
    )


def split_data(splits: Splits) -> dict[str, SplitData]:
    """What was read of each split."""
    return {
        name: SplitData(
            uri=split.uri,
            rows=split.rows,
            total_rows=split.total_rows,
            sampled=split.sampled,
            rows_without_label=split.dropped_rows,
            base_rate=round(float(split.y.mean()), 6),
        )
        for name, split in splits.items()
    }
