"""Evaluate predictions on the test split: ranking, thresholds, calibration, and the oracle on synthetic data.

The oracle: synthetic data comes with its ground truth (`aik.truth`), so the true probability of every
test row is known and its AUC is the best any model can reach on those rows. The rows are de-indexed
to raw values through the bundle's labels (index == number of labels means unseen: no raw value, so
the truth's effect for it is 0 and such rows are counted in `oracle_unseen_rows`).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from typing import Any

import numpy as np
from sklearn import metrics as skm

from aik.bundle import FeatureIndexer
from aik.schema import FEATURE_COLUMNS, INDEXED_COLUMNS
from aik.train.metrics import OracleMetrics, SplitMetrics, rounded
from aik.truth import LogitModel, TruthModel

log = logging.getLogger(__name__)

USE_CASES: tuple[str, ...] = ("bid-filtering", "ctr")

#: Thresholds reported besides the chosen one: 0.5, and 0.1 (notebook 3's lower cut-off).
FIXED_THRESHOLDS: tuple[float, ...] = (0.5, 0.1)

_EPS = 1e-15


def auc(y: np.ndarray, p: np.ndarray) -> float | None:
    """ROC AUC, or None when it is undefined (one class only, or non-finite predictions)."""
    if len(np.unique(y)) < 2 or not np.all(np.isfinite(p)):
        return None
    return float(skm.roc_auc_score(y, p))


def logloss(y: np.ndarray, p: np.ndarray) -> float | None:
    """Mean log loss (None with non-finite predictions)."""
    if not np.all(np.isfinite(p)):
        return None
    return float(skm.log_loss(y, np.clip(p, _EPS, 1 - _EPS), labels=[0, 1]))


def at_threshold(y: np.ndarray, p: np.ndarray, threshold: float) -> dict[str, Any]:
    """Classification metrics when requests with p >= threshold are kept (predicted 1)."""
    pred = (p >= threshold).astype(np.int8)
    tn, fp, fn, tp = (int(v) for v in skm.confusion_matrix(y.astype(np.int8), pred, labels=[0, 1]).ravel())
    n = max(tn + fp + fn + tp, 1)
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {
        "threshold": rounded(threshold),
        "accuracy": rounded((tp + tn) / n),
        "precision": rounded(precision),
        "recall": rounded(recall),
        "f1": rounded(f1),
        "mcc": rounded(float(skm.matthews_corrcoef(y, pred)) if 0 < pred.sum() < len(pred) else 0.0),
        # bid filtering: the share of requests an ad server would drop at this threshold
        "filtered_share": rounded((tn + fn) / n),
        "confusion_matrix": {"tn": tn, "fp": fp, "fn": fn, "tp": tp},
    }


def threshold_for_recall(y: np.ndarray, p: np.ndarray, target_recall: float) -> float:
    """The highest threshold that keeps at least `target_recall` of the positives (chosen on validation)."""
    positives = np.sort(p[y == 1])
    if len(positives) == 0:
        return 0.5
    k = math.floor((1.0 - target_recall) * len(positives))
    return float(positives[min(k, len(positives) - 1)])


def calibration_row(y: np.ndarray, p: np.ndarray) -> dict[str, Any]:
    """Expected (sum of predictions) against actual positives for a set of rows."""
    expected, actual = float(p.sum()), float(y.sum())
    return {
        "rows": len(y),
        "mean_prediction": rounded(float(p.mean())) if len(p) else None,
        "actual_rate": rounded(float(y.mean())) if len(y) else None,
        "expected_positives": rounded(expected, 3),
        "actual_positives": int(actual),
        # expected / actual positives: 1 is calibrated, above 1 over-predicts
        "ratio": rounded(expected / actual) if actual else None,
    }


def calibration_by_decile(y: np.ndarray, p: np.ndarray, bins: int = 10) -> list[dict[str, Any]]:
    """Calibration per decile of the prediction (equal-count bins, lowest predictions first)."""
    order = np.argsort(p, kind="stable")
    out = []
    for i, rows in enumerate(np.array_split(order, bins)):
        if len(rows) == 0:
            continue
        row = calibration_row(y[rows], p[rows])
        row = {"decile": i + 1, "min_prediction": rounded(float(p[rows].min())), **row}
        row["max_prediction"] = rounded(float(p[rows].max()))
        out.append(row)
    return out


def calibration_by_group(
    y: np.ndarray, p: np.ndarray, codes: np.ndarray, labels: Sequence[str], key: str
) -> list[dict[str, Any]]:
    """Calibration per value of an index column (de-indexed through the bundle), most rows first."""
    values = np.where(np.isnan(codes), -1, codes).astype(np.int64)
    out = []
    for code in np.unique(values):
        rows = values == code
        name = labels[code] if 0 <= code < len(labels) else "<unseen>"
        out.append({key: name, **calibration_row(y[rows], p[rows])})
    return sorted(out, key=lambda r: (-r["rows"], str(r[key])))


def evaluate(
    y: np.ndarray,
    p: np.ndarray,
    *,
    chosen_threshold: float | None = None,
    target_recall: float | None = None,
) -> SplitMetrics:
    """The headline metrics of one model on one split."""
    finite = bool(np.all(np.isfinite(p)))
    base_rate = float(y.mean()) if len(y) else float("nan")
    mean_prediction = float(np.mean(p)) if finite and len(p) else float("nan")
    thresholds = None
    chosen = None
    if finite:
        thresholds = {f"{t:g}": at_threshold(y, p, t) for t in FIXED_THRESHOLDS}
        if chosen_threshold is not None:
            chosen = {
                "target_recall": target_recall,
                "chosen_on": "valid",
                **at_threshold(y, p, chosen_threshold),
            }
    return SplitMetrics(
        rows=len(y),
        auc=rounded(auc(y, p)),
        logloss=rounded(logloss(y, p)),
        brier=rounded(float(skm.brier_score_loss(y, p)) if finite else None),
        base_rate=rounded(base_rate),
        mean_prediction=rounded(mean_prediction),
        calibration_ratio=rounded(mean_prediction / base_rate if base_rate > 0 else None),
        non_finite_predictions=int(np.sum(~np.isfinite(p))),
        thresholds=thresholds,
        chosen_threshold=chosen,
    )


def deindex(X: np.ndarray, indexer: FeatureIndexer) -> tuple[dict[str, Any], int]:
    """Raw columns for the truth (AdvertiserID, Domain, RegionID, CityID, device_type_id, hour, dow).

    Returns the columns and the number of rows with at least one unseen (or missing) index value.
    """
    columns: dict[str, Any] = {}
    unseen = np.zeros(len(X), dtype=bool)
    for raw, index_col in INDEXED_COLUMNS.items():
        codes = X[:, FEATURE_COLUMNS.index(index_col)]
        labels = indexer.labels.get(raw, ())
        lookup = np.array([*labels, None], dtype=object)
        ints = np.where(np.isnan(codes) | (codes < 0) | (codes >= len(labels)), len(labels), codes).astype(
            np.int64
        )
        unseen |= ints == len(labels)
        columns[raw] = lookup[ints]
    for name in ("device_type_id", "hour", "dow"):
        values = X[:, FEATURE_COLUMNS.index(name)]
        columns[name] = [None if math.isnan(v) else int(v) for v in values]
    return columns, int(unseen.sum())


def truth_model(truth: TruthModel, use_case: str) -> LogitModel:
    """The part of the truth the use case's labels come from: win for bid filtering, click for CTR."""
    return truth.click if use_case == "ctr" else truth.win


def oracle(
    y: np.ndarray, X: np.ndarray, indexer: FeatureIndexer, truth: TruthModel, use_case: str
) -> OracleMetrics:
    """The oracle's metrics on these rows; warns when the labels fit the other use case's truth better."""
    columns, unseen_rows = deindex(X, indexer)
    p = truth_model(truth, use_case).probability(columns)
    oracle_auc = rounded(auc(y, p))
    other = "ctr" if use_case != "ctr" else "bid-filtering"
    other_auc = auc(y, truth_model(truth, other).probability(columns))
    fits_other = oracle_auc is not None and other_auc is not None and other_auc > oracle_auc + 0.05
    if fits_other:
        log.warning(
            "the test labels fit the %s truth better (oracle AUC %.3f vs %.3f for %s): "
            "were the splits made with `aik features --use-case %s`? then pass --use-case %s",
            other,
            other_auc,
            oracle_auc,
            use_case,
            other,
            other,
        )
    return OracleMetrics(
        auc=oracle_auc,
        logloss=rounded(logloss(y, p)),
        mean_prediction=rounded(float(p.mean())),
        unseen_rows=unseen_rows,
        auc_other_use_case=rounded(other_auc) if fits_other else None,
    )
