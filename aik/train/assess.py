"""The judging stages of a training run: evaluation on the test split, baselines, gates, reports.

Each returns (or fills) a dataclass that `aik.train.workflow` turns into `Metrics`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from aik.bundle import FeatureIndexer
from aik.schema import FEATURE_COLUMNS, INDEXED_COLUMNS
from aik.train import baselines as B
from aik.train import evaluate as E
from aik.train import plots as plots_mod
from aik.train.families import models as family_models
from aik.train.gates import (
    GateLimits,
    GateResult,
    auc_gate,
    calibration_gate,
    features_gate,
    finite_gate,
    oracle_gate,
)
from aik.train.metrics import (
    BaselineMetrics,
    OracleMetrics,
    SplitMetrics,
    oracle_ratio,
)
from aik.train.options import TrainOptions
from aik.train.stages import Splits
from aik.truth import TruthModel

log = logging.getLogger(__name__)


@dataclass
class Evaluation:
    """The candidate and the references on the test split, with the predictions the plots draw."""

    test: SplitMetrics
    oracle: OracleMetrics | None
    oracle_ratio: float | None
    #: The candidate's test predictions (None when its features are not the pipeline's).
    p_test: np.ndarray | None
    #: The lower threshold chosen on the valid split for the target recall.
    chosen_threshold: float | None
    #: Test predictions per model (the candidate, oracle, baselines) and their calibration deciles.
    curves: dict[str, np.ndarray] = field(default_factory=dict)
    deciles: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    baselines: dict[str, BaselineMetrics] = field(default_factory=dict)


def curve_name(family: str) -> str:
    """The candidate's name in the plots: its family, told apart from a baseline of the same name."""
    return f"{family} (candidate)" if family in B.BASELINES else family


def evaluate_candidate(
    model: family_models.Model,
    splits: Splits,
    indexer: FeatureIndexer,
    truth: TruthModel | None,
    options: TrainOptions,
) -> Evaluation:
    """Score the test split (and valid, to choose the threshold) and the oracle when the truth is known."""
    test, valid = splits.test, splits.valid
    features_ok = features_gate(model, splits.train.columns).passed
    p_test = family_models.predict(model, test.X) if features_ok else None
    p_valid = family_models.predict(model, valid.X) if features_ok else None
    curves: dict[str, np.ndarray] = {}
    deciles: dict[str, list[dict[str, Any]]] = {}
    headline = SplitMetrics(rows=test.rows, base_rate=float(test.y.mean()))
    chosen = None
    if p_test is not None and p_valid is not None:
        if np.all(np.isfinite(p_valid)):
            chosen = E.threshold_for_recall(valid.y, p_valid, options.target_recall)
        headline = E.evaluate(test.y, p_test, chosen_threshold=chosen, target_recall=options.target_recall)
        curves[curve_name(options.family)] = p_test
        if np.all(np.isfinite(p_test)):
            deciles[curve_name(options.family)] = E.calibration_by_decile(test.y, p_test)
    oracle = None
    if truth is not None:
        oracle = E.oracle(test.y, test.X, indexer, truth, options.use_case)
        curves["oracle"] = E.truth_model(truth, options.use_case).probability(E.deindex(test.X, indexer)[0])
    return Evaluation(
        test=headline,
        oracle=oracle,
        oracle_ratio=oracle_ratio(headline.auc, oracle.auc if oracle else None),
        p_test=p_test,
        chosen_threshold=chosen,
        curves=curves,
        deciles=deciles,
    )


def fit_baselines(splits: Splits, evaluation: Evaluation, options: TrainOptions) -> None:
    """Fit each baseline on the train split and add its test metrics and predictions to the evaluation."""
    test = splits.test
    oracle_auc = evaluation.oracle.auc if evaluation.oracle else None
    for name, fit in B.BASELINES.items():
        baseline = fit(splits.train, splits.valid, max_rows=options.baseline_max_rows, seed=options.seed)
        p = baseline.predict(test.X)
        m = E.evaluate(test.y, p)
        evaluation.baselines[name] = BaselineMetrics(
            auc=m.auc,
            logloss=m.logloss,
            brier=m.brier,
            mean_prediction=m.mean_prediction,
            calibration_ratio=m.calibration_ratio,
            oracle_ratio=oracle_ratio(m.auc, oracle_auc),
            train_rows=baseline.train_rows,
            seconds=round(baseline.seconds, 2),
            params=baseline.params,
        )
        evaluation.curves[name] = p
        evaluation.deciles[name] = E.calibration_by_decile(test.y, p)
        log.info("baseline %s: AUC %s (%.1f s)", name, m.auc, baseline.seconds)


def judge(
    model: family_models.Model, pipeline_columns: tuple[str, ...], evaluation: Evaluation, limits: GateLimits
) -> list[GateResult]:
    """Every gate's verdict on the candidate (only the features gate when it could not be scored)."""
    gates = [features_gate(model, pipeline_columns)]
    if evaluation.p_test is None:
        return gates
    headline = evaluation.test
    gates.append(finite_gate(evaluation.p_test))
    gates.append(auc_gate(headline.auc, limits))
    nan = float("nan")
    mean_prediction = headline.mean_prediction if headline.mean_prediction is not None else nan
    base_rate = headline.base_rate if headline.base_rate is not None else nan
    gates.append(calibration_gate(mean_prediction, base_rate, headline.rows, limits))
    oracle_check = oracle_gate(evaluation.oracle_ratio, limits)
    if oracle_check is not None:
        gates.append(oracle_check)
    return gates


@dataclass(frozen=True)
class Reports:
    """The calibration tables and PNG plots of a scored candidate (empty when it could not be scored)."""

    calibration: dict[str, Any]
    plots: dict[str, bytes]


def make_reports(
    splits: Splits, evaluation: Evaluation, indexer: FeatureIndexer, options: TrainOptions
) -> Reports:
    """Calibration overall, per decile and per advertiser, and the ROC, calibration, histogram and
    confusion-matrix plots."""
    test, p_test = splits.test, evaluation.p_test
    if p_test is None or not np.all(np.isfinite(p_test)):
        return Reports({}, {})
    headline, chosen = evaluation.test, evaluation.chosen_threshold
    adv_codes = test.X[:, FEATURE_COLUMNS.index(INDEXED_COLUMNS["AdvertiserID"])]
    calibration = {
        "overall": E.calibration_row(test.y, p_test),
        "deciles": evaluation.deciles[curve_name(options.family)],
        "advertisers": E.calibration_by_group(
            test.y, p_test, adv_codes, indexer.labels.get("AdvertiserID", ()), "advertiser"
        ),
    }
    aucs = {
        curve_name(options.family): headline.auc,
        "oracle": evaluation.oracle.auc if evaluation.oracle else None,
    }
    aucs.update({name: b.auc for name, b in evaluation.baselines.items()})
    thresholds = {f"{t:g}": t for t in E.FIXED_THRESHOLDS}
    matrices = {f"threshold {k}": v["confusion_matrix"] for k, v in (headline.thresholds or {}).items()}
    if chosen is not None and headline.chosen_threshold is not None:
        thresholds[f"chosen {chosen:.3f}"] = chosen
        matrices[f"chosen {chosen:.3f} (recall {options.target_recall:g} on valid)"] = (
            headline.chosen_threshold["confusion_matrix"]
        )
    plots = {
        plots_mod.PLOTS["roc"]: plots_mod.roc_plot(test.y, evaluation.curves, aucs),
        plots_mod.PLOTS["calibration"]: plots_mod.calibration_plot(evaluation.deciles),
        plots_mod.PLOTS["prediction_histogram"]: plots_mod.histogram_plot(test.y, p_test, thresholds),
        plots_mod.PLOTS["confusion_matrix"]: plots_mod.confusion_plot(matrices),
    }
    return Reports(calibration, plots)
