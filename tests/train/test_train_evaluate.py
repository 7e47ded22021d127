"""Evaluation: threshold metrics, the chosen threshold, calibration tables, and the oracle."""

from __future__ import annotations

import logging

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score
from train_fixture_data import FixtureSpec, draw_raw, index_raw

from aik.bundle import indexer_from_specs
from aik.schema import FEATURE_COLUMNS
from aik.train import evaluate as E
from aik.train.metrics import oracle_ratio


def test_threshold_metrics_match_a_hand_count() -> None:
    y = np.array([1, 1, 1, 0, 0, 0, 0, 0], dtype=np.float32)
    p = np.array([0.9, 0.6, 0.2, 0.7, 0.3, 0.1, 0.05, 0.4])
    m = E.at_threshold(y, p, 0.5)
    assert m["confusion_matrix"] == {"tn": 4, "fp": 1, "fn": 1, "tp": 2}
    assert (m["precision"], m["recall"], m["accuracy"]) == (pytest.approx(2 / 3), pytest.approx(2 / 3), 0.75)
    assert m["filtered_share"] == pytest.approx(5 / 8)
    low = E.at_threshold(y, p, 0.1)
    assert low["confusion_matrix"] == {"tn": 1, "fp": 4, "fn": 0, "tp": 3}
    assert low["recall"] == 1.0


def test_chosen_threshold_keeps_the_target_share_of_positives() -> None:
    rng = np.random.default_rng(1)
    p = rng.random(5000)
    y = (rng.random(5000) < p).astype(np.float32)
    t = E.threshold_for_recall(y, p, 0.95)
    recall = np.mean(p[y == 1] >= t)
    assert 0.95 <= recall < 0.96
    assert t == pytest.approx(0.2, abs=0.05)  # sqrt(0.05) for p uniform and P(y|p) = p


def test_calibration_tables_add_up_and_flag_overprediction() -> None:
    rng = np.random.default_rng(2)
    p = rng.random(1000) * 0.5
    y = (rng.random(1000) < p).astype(np.float32)
    deciles = E.calibration_by_decile(y, np.minimum(p * 1.5, 1.0))
    assert [d["decile"] for d in deciles] == list(range(1, 11))
    assert sum(d["rows"] for d in deciles) == 1000
    assert sum(d["actual_positives"] for d in deciles) == int(y.sum())
    assert all(d["min_prediction"] <= d["max_prediction"] for d in deciles)
    assert deciles[-1]["ratio"] > 1.2  # predictions inflated by 1.5 show as expected > actual

    codes = np.array([0.0, 0.0, 1.0, np.nan] * 250)
    groups = E.calibration_by_group(y, p, codes, ["1458", "3358"], "advertiser")
    assert [g["advertiser"] for g in groups] == ["1458", "3358", "<unseen>"]
    assert [g["rows"] for g in groups] == [500, 250, 250]


def test_evaluate_reports_the_contract_keys_and_undefined_auc_as_none() -> None:
    y = np.array([0, 1, 0, 1], dtype=np.float32)
    m = E.evaluate(y, np.array([0.2, 0.8, 0.3, 0.6]), chosen_threshold=0.5, target_recall=0.9)
    assert {"auc", "logloss", "base_rate", "mean_prediction", "thresholds", "chosen_threshold"} <= set(
        m.to_dict()
    )
    assert m.auc == 1.0 and m.thresholds is not None and set(m.thresholds) == {"0.5", "0.1"}
    assert E.evaluate(np.zeros(4, np.float32), np.full(4, 0.1)).auc is None
    bad = E.evaluate(y, np.array([0.2, np.nan, 0.3, 0.6]))
    assert (bad.auc, bad.non_finite_predictions, bad.thresholds) == (None, 1, None)
    assert "thresholds" not in bad.to_dict()


@pytest.fixture(scope="module")
def indexed():
    raw, truth = draw_raw(FixtureSpec(rows=6000, seed=11, domains=300, cities=60, regions=12))
    frame, specs = index_raw(raw)
    return raw, frame, indexer_from_specs(specs), truth


def test_deindex_recovers_the_raw_values(indexed) -> None:
    raw, frame, indexer, _ = indexed
    X = frame[list(FEATURE_COLUMNS)].to_numpy(np.float32)
    columns, unseen = E.deindex(X, indexer)
    assert unseen == 0
    for name in ("AdvertiserID", "Domain", "RegionID", "CityID"):
        assert list(columns[name]) == list(raw[name])
    assert columns["hour"] == list(raw["hour"])


def test_oracle_auc_is_the_auc_of_the_true_probabilities(indexed) -> None:
    raw, frame, indexer, truth = indexed
    X = frame[list(FEATURE_COLUMNS)].to_numpy(np.float32)
    y = frame["label"].to_numpy(np.float32)
    out = E.oracle(y, X, indexer, truth, "bid-filtering")
    assert out.auc == pytest.approx(roc_auc_score(y, truth.win.probability(raw)), abs=1e-6)
    assert oracle_ratio(0.7, 0.8) == pytest.approx(0.875)


def test_unseen_codes_count_and_contribute_nothing(indexed) -> None:
    _, frame, indexer, truth = indexed
    X = frame[list(FEATURE_COLUMNS)].to_numpy(np.float32)[:10].copy()
    X[:3, FEATURE_COLUMNS.index("IndexDomain")] = len(indexer.labels["Domain"])
    columns, unseen = E.deindex(X, indexer)
    assert unseen == 3 and list(columns["Domain"][:3]) == [None] * 3
    without_domain = truth.win.logit({**columns, "Domain": ["not-a-domain"] * 10})
    np.testing.assert_allclose(truth.win.logit(columns)[:3], without_domain[:3])


def test_labels_of_the_other_use_case_are_flagged(indexed, caplog: pytest.LogCaptureFixture) -> None:
    _, frame, indexer, truth = indexed
    X = frame[list(FEATURE_COLUMNS)].to_numpy(np.float32)
    y = frame["label"].to_numpy(np.float32)  # win labels
    with caplog.at_level(logging.WARNING):
        out = E.oracle(y, X, indexer, truth, "ctr")
    assert "--use-case bid-filtering" in caplog.text
    assert out.auc_other_use_case is not None and out.auc is not None
    assert out.auc_other_use_case > out.auc
