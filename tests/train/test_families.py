"""The PyTorch families: encoding, training with early stopping, seeds, the model file, interactions."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from train_fixture_data import FixtureSpec, draw_raw, index_raw

from aik.errors import AikError, ArtifactError
from aik.schema import FEATURE_COLUMNS
from aik.train import evaluate as E
from aik.train.data import Split
from aik.train.families.config import ALL_PAIRS, parse_crosses, resolve_neural
from aik.train.families.neural import FieldIds, NeuralModel, train_neural

SPEC = FixtureSpec(rows=8_000, seed=11, domains=300, cities=60, regions=12)
#: Small and quick: the tests check behaviour, not quality (bench/ and docs/training.md measure that).
QUICK = {"max_epochs": 8, "patience": 2, "batch_size": 512}


@pytest.fixture(scope="module")
def splits() -> tuple[Split, Split, Split, tuple[int, ...], dict[str, int]]:
    """Train/valid/test in index space, each feature's cardinality, and the unseen codes."""
    raw, _ = draw_raw(SPEC)
    indexed, specs = index_raw(raw)
    X = indexed[list(FEATURE_COLUMNS)].to_numpy(np.float32)
    y = indexed["label"].to_numpy(np.float32)
    a, b = int(0.8 * len(y)), int(0.9 * len(y))

    def split(rows: slice) -> Split:
        return Split("mem://", X[rows], y[rows], len(y[rows]), FEATURE_COLUMNS)

    by_col = {s.output_col: len(s.labels) for s in specs}
    cards = tuple(
        by_col.get(c, {"dow": 8, "hour": 24, "device_type_id": 7}.get(c, 0)) for c in FEATURE_COLUMNS
    )
    return split(slice(0, a)), split(slice(a, b)), split(slice(b, None)), cards, by_col


def test_values_outside_a_fields_range_take_the_fields_last_row() -> None:
    ids = FieldIds([3, 5])
    x = torch.tensor([[0.0, 4.0], [2.0, 5.0], [float("nan"), -1.0], [3.0, 2.0]])
    assert ids(x).tolist() == [[0, 4], [2, 5], [3, 5], [3, 2]]


@pytest.mark.parametrize("family", ["logreg", "fm", "mlp", "wide-deep"])
def test_each_family_learns_better_than_the_base_rate(splits, family: str) -> None:
    train, valid, test, cards, unseen = splits
    trained = train_neural(train, valid, resolve_neural(family, QUICK), cards, unseen=unseen)
    p = trained.model.predict(test.X)
    base = np.full_like(p, float(train.y.mean()))
    assert E.logloss(test.y, p) < E.logloss(test.y, base)


def test_the_same_seed_trains_the_same_model(splits) -> None:
    train, valid, test, cards, unseen = splits
    config = resolve_neural("mlp", {**QUICK, "max_epochs": 2}, seed=4)
    first = train_neural(train, valid, config, cards, unseen=unseen).model.predict(test.X)
    second = train_neural(train, valid, config, cards, unseen=unseen).model.predict(test.X)
    np.testing.assert_array_equal(first, second)


def test_early_stopping_keeps_the_best_epochs_weights(splits) -> None:
    train, valid, _, cards, unseen = splits
    # a large learning rate overfits quickly: validation loss turns up and training stops early
    config = resolve_neural("fm", {"max_epochs": 30, "patience": 2, "lr": 0.1, "l2": 0.0})
    trained = train_neural(train, valid, config, cards, unseen=unseen)
    assert trained.epochs < 30 and trained.epochs == trained.best_epoch + 2
    assert trained.history[trained.best_epoch - 1] == min(trained.history)
    p = trained.model.predict(valid.X)
    assert E.logloss(valid.y, p) == pytest.approx(min(trained.history), rel=1e-4)


def test_the_learning_rate_decays_after_each_epoch_without_a_better_validation_loss(splits) -> None:
    train, valid, _, cards, unseen = splits
    config = resolve_neural("fm", {"max_epochs": 30, "patience": 3, "lr": 0.1, "l2": 0.0, "lr_decay": 0.5})
    trained = train_neural(train, valid, config, cards, unseen=unseen)
    lr, best, expected = 0.1, float("inf"), []
    for score in trained.history:
        expected.append(lr)
        if score < best - 1e-6:
            best = score
        else:
            lr /= 2
    assert trained.lrs == pytest.approx(expected)
    assert min(trained.lrs) < 0.1


def test_after_an_epoch_without_progress_training_resumes_from_the_best_weights(splits) -> None:
    train, valid, _, cards, unseen = splits
    # a vanishing step after the decay: the next epoch scores what the best epoch scored, not the worse one
    config = resolve_neural("fm", {"max_epochs": 30, "patience": 2, "lr": 0.1, "l2": 0.0, "lr_decay": 1e-9})
    trained = train_neural(train, valid, config, cards, unseen=unseen)
    best = trained.best_epoch
    assert trained.history[best] > trained.history[best - 1]
    assert trained.history[best + 1] == pytest.approx(trained.history[best - 1], rel=1e-5)


def test_the_model_file_reloads_with_the_same_predictions(splits) -> None:
    train, valid, test, cards, _ = splits
    trained = train_neural(train, valid, resolve_neural("wide-deep", {**QUICK, "max_epochs": 1}), cards)
    loaded = NeuralModel.from_bytes(trained.model.to_bytes())
    assert loaded.config == trained.model.config and loaded.cards == cards
    np.testing.assert_array_equal(loaded.predict(test.X), trained.model.predict(test.X))


def test_a_file_that_is_not_a_model_is_reported_with_its_uri() -> None:
    with pytest.raises(ArtifactError, match=r"s3://b/model\.pt"):
        NeuralModel.from_bytes(b"not a model", "s3://b/model.pt")


def test_unseen_and_missing_codes_predict_a_finite_probability(splits) -> None:
    train, valid, test, cards, unseen = splits
    model = train_neural(train, valid, resolve_neural("logreg", QUICK), cards, unseen=unseen).model
    X = test.X[:5].copy()
    X[:, FEATURE_COLUMNS.index("IndexDomain")] = cards[FEATURE_COLUMNS.index("IndexDomain")]
    X[:, FEATURE_COLUMNS.index("IndexCityID")] = np.nan
    p = model.predict(X)
    assert np.all(np.isfinite(p)) and np.all((p > 0) & (p < 1))


def _xor_world(rows: int, seed: int) -> tuple[Split, Split, Split, tuple[int, ...]]:
    """Labels from an advertiser x device interaction alone: no additive model can rank them."""
    rng = np.random.default_rng(seed)
    X = np.column_stack(
        [
            rng.integers(1, 8, rows),
            rng.integers(0, 24, rows),
            rng.integers(0, 6, rows),
            rng.integers(0, 50, rows),
            rng.integers(0, 5, rows),
            rng.integers(0, 20, rows),
            rng.integers(0, 7, rows),
        ]
    ).astype(np.float32)
    effect = rng.normal(0, 1.5, (6, 7))
    effect -= effect.mean(axis=0, keepdims=True) + effect.mean(axis=1, keepdims=True) - effect.mean()
    logit = -1.0 + effect[X[:, 2].astype(int), X[:, 6].astype(int)]
    y = (rng.random(rows) < 1 / (1 + np.exp(-logit))).astype(np.float32)
    a, b = int(0.8 * rows), int(0.9 * rows)
    parts = [slice(0, a), slice(a, b), slice(b, None)]
    splits = [Split("mem://", X[s], y[s], len(y[s]), FEATURE_COLUMNS) for s in parts]
    return splits[0], splits[1], splits[2], (8, 24, 6, 50, 5, 20, 7)


def test_interaction_families_rank_a_pure_interaction_that_logistic_regression_cannot() -> None:
    train, valid, test, cards = _xor_world(8_000, seed=2)
    aucs = {}
    for family in ("logreg", "fm", "wide-deep"):
        model = train_neural(train, valid, resolve_neural(family, QUICK), cards).model
        aucs[family] = E.auc(test.y, model.predict(test.X))
    assert aucs["logreg"] < 0.6
    assert aucs["fm"] > aucs["logreg"] + 0.1 and aucs["wide-deep"] > aucs["logreg"] + 0.1


def test_unknown_hyperparameters_and_features_are_refused() -> None:
    with pytest.raises(AikError, match="no hyperparameter 'max_depth'"):
        resolve_neural("fm", {"max_depth": 3})
    with pytest.raises(AikError, match="not a feature"):
        parse_crosses("IndexDomain:Domain")
    assert parse_crosses("all") == ALL_PAIRS
    assert resolve_neural("mlp", {"hidden": "32x16"}).hidden == (32, 16)


@pytest.mark.parametrize("family", ["logreg", "fm", "mlp", "wide-deep"])
def test_the_onnx_export_scores_as_pytorch_does_on_the_same_rows(splits, family: str) -> None:
    from aik.train.families.onnx_export import OnnxScorer, export_onnx

    train, valid, test, cards, _ = splits
    model = train_neural(train, valid, resolve_neural(family, {**QUICK, "max_epochs": 1}), cards).model
    X = test.X.copy()
    X[:5, FEATURE_COLUMNS.index("IndexDomain")] = cards[FEATURE_COLUMNS.index("IndexDomain")]  # unseen
    X[5:10, FEATURE_COLUMNS.index("hour")] = np.nan  # missing
    exported = export_onnx(model, X)
    assert exported.parity_rows == len(X) and exported.within_tolerance
    np.testing.assert_allclose(OnnxScorer(exported.data).predict(X), model.predict(X), atol=1e-5)


def test_the_onnx_parity_gate_fails_beyond_its_tolerance() -> None:
    from aik.train.gates import onnx_parity_gate

    assert onnx_parity_gate(3e-7, 10_000, 1e-5).passed
    failed = onnx_parity_gate(2e-4, 10_000, 1e-5)
    assert not failed.passed and "2.00e-04" in failed.message


def test_the_crosses_take_their_own_l2_penalty() -> None:
    from aik.train.families.neural import CtrModel

    config = resolve_neural("wide-deep", {"crosses": "IndexAdvertiserID:hour", "hidden": "none"})
    module = CtrModel(config, (7, 24, 3, 5, 4, 6, 7))
    assert module.cross_weights is not None
    with torch.no_grad():
        for p in module.parameters():
            p.zero_()
        module.cross_weights.weight.fill_(1.0)
    cells = module.cross_weights.weight.numel()
    assert float(module.penalty(l2=2.0, weight_decay=0.0, cross_l2=5.0)) == pytest.approx(5.0 * cells)
    assert float(module.penalty(l2=2.0, weight_decay=0.0)) == pytest.approx(2.0 * cells)


def _objective_gradient(trained, train: Split, unseen: dict[str, int]) -> float:
    """The largest gradient of the penalised log loss over the wide part's weights at the trained model."""
    from torch import nn

    from aik.train.model import add_unseen_rows

    config, module = trained.model.config, trained.model.module
    rng = np.random.default_rng(config.seed)
    X, y, _ = add_unseen_rows(train.X, train.y, unseen, config.unseen_fraction, rng)
    Xt, yt = torch.from_numpy(np.ascontiguousarray(X)), torch.from_numpy(y.astype(np.float32))
    loss = nn.functional.binary_cross_entropy_with_logits(module(Xt), yt)
    loss = loss + module.penalty(config.l2, config.weight_decay, config.cross_l2) / len(yt)
    grads = torch.autograd.grad(loss, module.wide_parameters())
    return max(float(g.abs().max()) for g in grads)


def test_lbfgs_fits_logistic_regression_to_the_minimum_of_its_penalised_loss(splits) -> None:
    train, valid, _, cards, unseen = splits
    adam_config = resolve_neural("logreg", {**QUICK, "solver": "adam"})
    adam = train_neural(train, valid, adam_config, cards, unseen=unseen)
    one_fit = {"solver": "lbfgs", "evidence_rounds": 1}
    lbfgs = train_neural(train, valid, resolve_neural("logreg", one_fit), cards, unseen=unseen)
    # float32 weights: L-BFGS ends near their precision, far below where early-stopped Adam ends
    assert _objective_gradient(lbfgs, train, unseen) < 1e-4 < _objective_gradient(adam, train, unseen)
    assert lbfgs.info()["wide_fit"]["fits"] == 1 and lbfgs.epochs == 1


def test_evidence_rounds_shrink_a_cross_the_data_does_not_support() -> None:
    train, valid, _, cards = _xor_world(8_000, seed=3)
    config = resolve_neural(
        "logreg",
        {"solver": "lbfgs", "evidence_rounds": 4, "crosses": "IndexAdvertiserID:device_type_id,dow:hour"},
    )
    fit = train_neural(train, valid, config, cards).wide_fit
    assert fit["fits"] == 4
    assert fit["sd"]["IndexAdvertiserID:device_type_id"] > 3 * fit["sd"]["dow:hour"]
    assert fit["l2"]["dow:hour"] > config.l2 > fit["l2"]["IndexAdvertiserID:device_type_id"]


def test_with_lbfgs_the_deep_part_keeps_only_epochs_that_improve_on_the_wide_fit(splits) -> None:
    train, valid, _, cards, unseen = splits
    config = resolve_neural("wide-deep", {**QUICK, "solver": "lbfgs"})
    trained = train_neural(train, valid, config, cards, unseen=unseen)
    assert trained.history[trained.best_epoch - 1] == min(trained.history) <= trained.history[0]
    assert len(trained.lrs) == trained.epochs - 1
    p = trained.model.predict(valid.X)
    assert E.logloss(valid.y, p) == pytest.approx(min(trained.history), rel=1e-4)
    assert all(p.requires_grad for p in trained.model.module.parameters())


def test_lbfgs_is_refused_for_the_families_it_does_not_fit() -> None:
    with pytest.raises(AikError, match="lbfgs fits logreg and wide-deep only"):
        resolve_neural("fm", {"solver": "lbfgs"})
    with pytest.raises(AikError, match="solver must be one of adam, lbfgs"):
        resolve_neural("logreg", {"solver": "sgd"})
