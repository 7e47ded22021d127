"""Notebook 3 as one call: read the splits, train (locally or on SageMaker), evaluate, gate, release.

`train_and_publish(ctx, TrainOptions(...))` is what `aik train`, the notebook and the demo call. Every
run writes a release (`aik.releases`: the bundle and schema it was trained on, the booster bound to
that bundle, `metrics.json` and plots, the manifest last) whether or not it passed the gates, so a
rejected model can be inspected; only a release that passes every gate is then made live by switching
the one pointer parameter, so a failed gate (or a crash anywhere before that write) leaves the live
release exactly as it was.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import numpy as np
import xgboost as xgb

from aik import aws, storage
from aik import params as P
from aik import releases as R
from aik.bundle import FeatureIndexer, indexer_from_specs, parse_bundle
from aik.context import Context
from aik.errors import AikError
from aik.schema import FEATURE_COLUMNS, INDEXED_COLUMNS, RAW_SCHEMA
from aik.train import baselines as B
from aik.train import evaluate as E
from aik.train import plots as plots_mod
from aik.train.data import Split, check_codes, read_split
from aik.train.gates import (
    GateFailed,
    GateLimits,
    GateResult,
    auc_gate,
    calibration_gate,
    features_gate,
    finite_gate,
    oracle_gate,
)
from aik.train.model import TrainedModel, load_booster, model_bytes, predict, train_booster
from aik.train.presets import CATEGORICAL_COLUMNS, TrainConfig, resolve
from aik.truth import TruthModel, truth_uri

if TYPE_CHECKING:
    from aik.train.sagemaker_job import SageMakerJob

log = logging.getLogger(__name__)

METRICS_SCHEMA_VERSION = 1


@dataclass(frozen=True)
class TrainOptions:
    """What `aik train` was asked to do (every field has the CLI's default)."""

    preset: str | None = None  # None: "default" locally, "numeric" on SageMaker
    overrides: Mapping[str, Any] = field(default_factory=dict)
    use_case: str = "bid-filtering"
    seed: int = 0
    #: Cap on the rows read from each split (a seeded uniform sample above it); None reads everything.
    max_rows: int | None = None
    publish: bool = True
    baselines: bool = True
    baseline_max_rows: int = 200_000
    #: The chosen lower threshold keeps this share of the positives on the validation split.
    target_recall: float = 0.95
    limits: GateLimits = field(default_factory=GateLimits)
    #: Evaluate, gate and publish this booster file instead of training one.
    model_uri: str | None = None
    #: Train as a SageMaker job instead of locally.
    sagemaker: SageMakerJob | None = None
    nthread: int | None = None
    keep_candidates: int = 10


@dataclass
class TrainResult:
    """What a run produced."""

    release: R.Release
    metrics: dict[str, Any]
    published: bool
    gates: list[GateResult]
    #: The published model URI (`/aik/xgboost/path`), whether or not this run replaced it.
    model_uri: str
    candidate_uri: str
    #: Report name -> URI (metrics.json and the PNG plots) of this run's candidate directory.
    candidate_reports: dict[str, str]
    #: Report name -> URI beside the published model (empty when not published).
    published_reports: dict[str, str]
    booster: xgb.Booster

    @property
    def failures(self) -> list[GateResult]:
        """Gates that failed."""
        return [g for g in self.gates if not g.passed]


def _unseen_codes(indexer: FeatureIndexer) -> dict[str, int]:
    """Index column -> the code the server sends for a value the pipeline never saw (= label count)."""
    return {out: len(indexer.labels[raw]) for raw, out in INDEXED_COLUMNS.items() if raw in indexer.labels}


def _load_truth(raw_data: str | None) -> TruthModel | None:
    if not raw_data:
        return None
    uri = truth_uri(raw_data)
    if not storage.exists(uri):
        return None
    return TruthModel.load(uri)


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


def _data_window(features_report: Mapping[str, Any], splits: Mapping[str, Any]) -> dict[str, Any]:
    """What a release records of its data: the split and window, the rows, the feature job's report."""
    window = dict(features_report.get("split") or {"split": "random"})
    return {
        "split": window.pop("split", "random"),
        "window": window,
        "rows": {name: split["rows"] for name, split in splits.items()},
        "features_report": {"uri": features_report.get("_uri"), "sha256": features_report.get("_sha256")},
    }


def _resolve_config(options: TrainOptions) -> TrainConfig:
    preset = options.preset or ("numeric" if options.sagemaker is not None else "default")
    return resolve(preset, options.overrides, seed=options.seed)


def _obtain_booster(
    ctx: Context,
    options: TrainOptions,
    config: TrainConfig,
    train: Split,
    valid: Split,
    indexer: FeatureIndexer,
) -> tuple[xgb.Booster, dict[str, Any]]:
    """Train locally, run the SageMaker job, or load the given model file; returns it and how it was made."""
    if options.model_uri:
        booster = load_booster(storage.read_bytes(options.model_uri), options.model_uri)
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


def _gates(
    booster: xgb.Booster,
    pipeline_columns: tuple[str, ...],
    p_test: np.ndarray | None,
    headline: Mapping[str, Any],
    limits: GateLimits,
) -> list[GateResult]:
    gates = [features_gate(booster, pipeline_columns)]
    if p_test is None:
        return gates
    gates.append(finite_gate(p_test))
    gates.append(auc_gate(headline.get("auc"), limits))
    gates.append(
        calibration_gate(
            headline["mean_prediction"] if headline.get("mean_prediction") is not None else float("nan"),
            headline["base_rate"],
            headline["rows"],
            limits,
        )
    )
    oracle_check = oracle_gate(headline.get("oracle_ratio"), limits)
    if oracle_check is not None:
        gates.append(oracle_check)
    return gates


def train_and_publish(ctx: Context, options: TrainOptions | None = None) -> TrainResult:
    """Train, evaluate on the test split, gate, and publish; raises GateFailed (with .result) on a gate."""
    options = options or TrainOptions()
    if options.use_case not in E.USE_CASES:
        raise AikError(f"unknown use case {options.use_case!r} (choose from {', '.join(E.USE_CASES)})")
    config = _resolve_config(options)
    timings: dict[str, float] = {}
    started = time.monotonic()
    store = ctx.params
    uris = {
        "train": store.get(P.OUTPUT_TRAIN),
        "valid": store.get(P.OUTPUT_VERIFY),
        "test": store.get(P.OUTPUT_TEST),
        "pipeline_model": store.get(P.PIPELINE_MODEL),
        "pipeline_schema": store.get(P.PIPELINE_SCHEMA),
        "model": store.get(P.XGBOOST_PATH),
        "transformed": store.get(P.OUTPUT_TRANSFORMED),
    }
    try:
        raw_data: str | None = store.get(P.RAW_DATA)
    except AikError:
        raw_data = None
    # the bundle is read once: the release carries exactly the bytes whose codes the model learns
    bundle_data = storage.read_bytes(uris["pipeline_model"])
    indexer = indexer_from_specs(parse_bundle(bundle_data, uris["pipeline_model"]))
    schema_data = (
        storage.read_bytes(uris["pipeline_schema"])
        if storage.exists(uris["pipeline_schema"])
        else (json.dumps(RAW_SCHEMA, indent=2) + "\n").encode()
    )
    features_report = _features_report(uris["transformed"])

    t = time.monotonic()
    # a SageMaker job or a given model file trains elsewhere: locally the train split only feeds the
    # baselines, so it is read as the sample they use, never whole
    trains_here = options.model_uri is None and options.sagemaker is None
    train_rows = (
        options.max_rows
        if trains_here
        else min(options.max_rows or options.baseline_max_rows, options.baseline_max_rows)
    )
    train = read_split(uris["train"], max_rows=train_rows, seed=options.seed, label="train")
    valid = read_split(uris["valid"], max_rows=options.max_rows, seed=options.seed + 1, label="valid")
    test = read_split(uris["test"], max_rows=options.max_rows, seed=options.seed + 2, label="test")
    if config.categorical:
        for split in (train, valid, test):
            check_codes(split, CATEGORICAL_COLUMNS)
    timings["read_s"] = time.monotonic() - t
    log.info("splits: train %d, valid %d, test %d rows", train.rows, valid.rows, test.rows)

    t = time.monotonic()
    booster, training = _obtain_booster(ctx, options, config, train, valid, indexer)
    timings["train_s"] = time.monotonic() - t
    # bind the booster to the codes it learnt: a server refuses it beside any other bundle
    booster.set_attr(**{R.BOOSTER_ATTRIBUTE: R.indexer_sha256(indexer)})

    # the gates judge the model as it will be written, reloaded from its bytes
    data = model_bytes(booster)
    created = datetime.now(UTC)
    run_id = R.release_id(data, created)
    releases_root = R.releases_root(store)
    candidate_uri = storage.join(releases_root, run_id, R.FILE_NAMES["model"])
    model = load_booster(data, candidate_uri)

    t = time.monotonic()
    features_ok = features_gate(model, train.columns).passed
    p_test = predict(model, test.X) if features_ok else None
    p_valid = predict(model, valid.X) if features_ok else None
    curves: dict[str, np.ndarray] = {}
    deciles: dict[str, list[dict[str, Any]]] = {}
    headline: dict[str, Any] = {"rows": test.rows, "base_rate": float(test.y.mean())}
    chosen = None
    if p_test is not None and p_valid is not None:
        if np.all(np.isfinite(p_valid)):
            chosen = E.threshold_for_recall(valid.y, p_valid, options.target_recall)
        headline = E.evaluate(test.y, p_test, chosen_threshold=chosen, target_recall=options.target_recall)
        curves["xgboost"] = p_test
        if np.all(np.isfinite(p_test)):
            deciles["xgboost"] = E.calibration_by_decile(test.y, p_test)

    truth = _load_truth(raw_data)
    oracle: dict[str, Any] = {}
    if truth is not None:
        oracle = E.oracle(test.y, test.X, indexer, truth, options.use_case)
        p_oracle = E.truth_model(truth, options.use_case).probability(E.deindex(test.X, indexer)[0])
        curves["oracle"] = p_oracle
    headline = E.with_oracle_ratio(headline, oracle.get("oracle_auc"))
    headline.update({k: v for k, v in oracle.items()})
    timings["evaluate_s"] = time.monotonic() - t

    t = time.monotonic()
    baselines: dict[str, Any] = {}
    if options.baselines:
        for name, fit in B.BASELINES.items():
            baseline = fit(train, valid, max_rows=options.baseline_max_rows, seed=options.seed)
            p = baseline.predict(test.X)
            summary = {
                k: v
                for k, v in E.evaluate(test.y, p).items()
                if k in ("auc", "logloss", "brier", "mean_prediction", "calibration_ratio")
            }
            summary = E.with_oracle_ratio(summary, oracle.get("oracle_auc"))
            baselines[name] = {
                **summary,
                "train_rows": baseline.train_rows,
                "seconds": round(baseline.seconds, 2),
                "params": baseline.params,
            }
            curves[name] = p
            deciles[name] = E.calibration_by_decile(test.y, p)
            log.info("baseline %s: AUC %s (%.1f s)", name, summary["auc"], baseline.seconds)
    timings["baselines_s"] = time.monotonic() - t

    gates = _gates(model, train.columns, p_test, headline, options.limits)
    passed = all(g.passed for g in gates)

    calibration: dict[str, Any] = {}
    plots: dict[str, bytes] = {}
    if p_test is not None and np.all(np.isfinite(p_test)):
        adv_codes = test.X[:, FEATURE_COLUMNS.index(INDEXED_COLUMNS["AdvertiserID"])]
        calibration = {
            "overall": E.calibration_row(test.y, p_test),
            "deciles": deciles["xgboost"],
            "advertisers": E.calibration_by_group(
                test.y, p_test, adv_codes, indexer.labels.get("AdvertiserID", ()), "advertiser"
            ),
        }
        aucs = {"xgboost": headline.get("auc"), "oracle": oracle.get("oracle_auc")}
        aucs.update({name: b["auc"] for name, b in baselines.items()})
        thresholds = {f"{t:g}": t for t in E.FIXED_THRESHOLDS}
        matrices = {f"threshold {k}": v["confusion_matrix"] for k, v in headline["thresholds"].items()}
        if chosen is not None:
            thresholds[f"chosen {chosen:.3f}"] = chosen
            matrices[f"chosen {chosen:.3f} (recall {options.target_recall:g} on valid)"] = headline[
                "chosen_threshold"
            ]["confusion_matrix"]
        plots = {
            plots_mod.PLOTS["roc"]: plots_mod.roc_plot(test.y, curves, aucs),
            plots_mod.PLOTS["calibration"]: plots_mod.calibration_plot(deciles),
            plots_mod.PLOTS["prediction_histogram"]: plots_mod.histogram_plot(test.y, p_test, thresholds),
            plots_mod.PLOTS["confusion_matrix"]: plots_mod.confusion_plot(matrices),
        }

    will_publish = passed and options.publish
    metrics: dict[str, Any] = {
        "schema_version": METRICS_SCHEMA_VERSION,
        "run_id": run_id,
        "release": run_id,
        "created_at": created.isoformat(timespec="seconds"),
        "use_case": options.use_case,
        **headline,
        "model": {
            "uri": candidate_uri,
            "candidate_uri": candidate_uri,
            "sha256": hashlib.sha256(data).hexdigest(),
            "bytes": len(data),
            "format": "ubjson",
            "features": list(model.feature_names or []),
            "feature_types": list(model.feature_types or []),
            "trees": model.num_boosted_rounds(),
            "config": config.as_dict(),
            "training": training,
        },
        "data": {
            name: {
                "uri": split.uri,
                "rows": split.rows,
                "total_rows": split.total_rows,
                "sampled": split.sampled,
                "rows_without_label": split.dropped_rows,
                "base_rate": round(float(split.y.mean()), 6),
            }
            for name, split in (("train", train), ("valid", valid), ("test", test))
        },
        "calibration": calibration,
        "baselines": baselines,
        "gates": {"passed": passed, "limits": asdict(options.limits), "checks": [g.as_dict() for g in gates]},
        "published": will_publish,
        "timings": {k: round(v, 2) for k, v in timings.items()},
    }
    metrics["plots"] = {name: f"{R.REPORTS_DIR}/{name}" for name in plots}
    metrics["timings"]["total_s"] = round(time.monotonic() - started, 2)

    release = R.write_release(
        releases_root,
        bundle=bundle_data,
        schema=schema_data,
        model=data,
        metrics=metrics,
        plots=plots,
        data=_data_window(features_report, metrics["data"]),
        gates=metrics["gates"],
        now=created,
    )
    candidate_reports = {name: storage.join(release.uri, R.REPORTS_DIR, name) for name in plots}
    candidate_reports[R.FILE_NAMES["metrics"]] = release.file_uri("metrics")
    published_reports: dict[str, str] = {}
    if will_publish:
        R.promote(store, release)  # the pointer switch: the last write of a publish
        published_reports = dict(candidate_reports)
    R.prune(store, releases_root, keep=options.keep_candidates)
    result = TrainResult(
        release=release,
        metrics=metrics,
        published=will_publish,
        gates=gates,
        model_uri=uris["model"],
        candidate_uri=candidate_uri,
        candidate_reports=candidate_reports,
        published_reports=published_reports,
        booster=model,
    )
    if not passed:
        raise GateFailed(result.failures, result)
    return result
