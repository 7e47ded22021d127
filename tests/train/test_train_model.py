"""Local xgboost training: the saved file, the chosen rounds, unseen codes, progress lines."""

from __future__ import annotations

import logging

import numpy as np
import pytest
import xgboost as xgb
from train_fixture_data import FixtureSpec, draw_raw, index_raw

from aik.errors import ArtifactError
from aik.schema import FEATURE_COLUMNS, INDEXED_COLUMNS
from aik.train.data import Split
from aik.train.model import add_unseen_rows, load_booster, model_bytes, predict, train_booster
from aik.train.presets import resolve

SPEC = FixtureSpec(rows=12_000, seed=5, domains=400, cities=80, regions=15)


@pytest.fixture(scope="module")
def splits() -> tuple[Split, Split, Split, dict[str, int]]:
    """Train/valid/test splits in index space, and the unseen code of each index column."""
    raw, _ = draw_raw(SPEC)
    indexed, specs = index_raw(raw)
    X = indexed[list(FEATURE_COLUMNS)].to_numpy(np.float32)
    y = indexed["label"].to_numpy(np.float32)
    a, b = int(0.8 * len(y)), int(0.9 * len(y))

    def split(rows: slice) -> Split:
        return Split("mem://", X[rows], y[rows], len(y[rows]), FEATURE_COLUMNS)

    unseen = {spec.output_col: len(spec.labels) for spec in specs}
    return split(slice(0, a)), split(slice(a, b)), split(slice(b, None)), unseen


def test_saved_model_is_ubjson_that_plain_xgboost_loads_with_the_contract_features(splits) -> None:
    train, valid, test, unseen = splits
    trained = train_booster(train, valid, resolve("default", {"refit": False}), unseen_codes=unseen)
    data = model_bytes(trained.booster)
    assert data[:1] == b"{" and b'"learner"' not in data[:64]  # UBJSON, not text JSON
    plain = xgb.Booster()
    plain.load_model(bytearray(data))
    assert plain.feature_names == list(FEATURE_COLUMNS)
    assert plain.feature_types == ["q", "q", "c", "c", "c", "c", "q"]
    expected = trained.booster.predict(
        xgb.DMatrix(
            test.X,
            feature_names=list(FEATURE_COLUMNS),
            feature_types=plain.feature_types,
            enable_categorical=True,
        )
    )
    np.testing.assert_allclose(plain.inplace_predict(test.X), expected, rtol=1e-6)
    np.testing.assert_allclose(predict(load_booster(data), test.X), expected, rtol=1e-6)


def test_the_model_keeps_exactly_the_rounds_early_stopping_chose(splits) -> None:
    train, valid, _, unseen = splits
    trained = train_booster(train, valid, resolve("original", {"num_round": 400}), unseen_codes=unseen)
    assert trained.best_rounds < 400
    assert trained.booster.num_boosted_rounds() == trained.best_rounds == trained.rounds


def test_refit_trains_on_train_and_valid_for_proportionally_more_rounds(splits) -> None:
    train, valid, _, unseen = splits
    trained = train_booster(train, valid, resolve("default"), unseen_codes=unseen)
    assert trained.refit
    expected = round(trained.best_rounds * (train.rows + valid.rows) / train.rows)
    assert trained.booster.num_boosted_rounds() == trained.rounds == expected


def test_same_seed_same_model(splits) -> None:
    train, valid, _, unseen = splits
    config = resolve("default", {"num_round": 60})
    a = train_booster(train, valid, config, unseen_codes=unseen)
    b = train_booster(train, valid, config, unseen_codes=unseen)
    assert model_bytes(a.booster) == model_bytes(b.booster)


def test_unseen_rows_copy_rows_with_the_unseen_code_drawn_over_categories() -> None:
    rng = np.random.default_rng(0)
    X = np.zeros((1000, len(FEATURE_COLUMNS)), np.float32)
    j = FEATURE_COLUMNS.index("IndexDomain")
    X[:, j] = np.where(np.arange(1000) < 900, 0, np.arange(1000) - 899)  # code 0: 900 rows, 1..100 one each
    y = (np.arange(1000) % 2).astype(np.float32)
    X2, y2, added = add_unseen_rows(X, y, {"IndexDomain": 101}, 0.5, rng)
    assert added == 500 and len(X2) == len(y2) == 1500
    copied = X2[1000:, j]
    assert np.all(copied == 101)
    np.testing.assert_array_equal(X2[:1000], X)
    # drawn uniformly over the 101 categories, not over rows: code 0 is about 1/101 of the copies
    assert np.mean(y2[1000:] == 0) < 0.9


def test_unseen_codes_predict_near_the_average_not_an_arbitrary_branch(splits) -> None:
    train, valid, test, unseen = splits
    trained = train_booster(train, valid, resolve("default"), unseen_codes=unseen)
    base = float(predict(trained.booster, test.X).mean())
    for column, code in unseen.items():
        X = test.X.copy()
        X[:, FEATURE_COLUMNS.index(column)] = code
        assert abs(float(predict(trained.booster, X).mean()) - base) < 0.06, column
    assert set(unseen) == set(INDEXED_COLUMNS.values())


def test_progress_is_logged_while_boosting(splits, caplog: pytest.LogCaptureFixture) -> None:
    train, valid, _, unseen = splits
    with caplog.at_level(logging.INFO, logger="aik.progress"):
        train_booster(train, valid, resolve("original"), unseen_codes=unseen)
    lines = [r.getMessage() for r in caplog.records if r.name == "aik.progress"]
    assert any(line.startswith("xgboost (valid logloss ") and "rounds done in" in line for line in lines)


def test_a_corrupt_model_file_is_reported_with_its_uri() -> None:
    with pytest.raises(ArtifactError, match=r"s3://b/xgboost\.bin: not an xgboost model"):
        load_booster(b"\x00garbage", "s3://b/xgboost.bin")
