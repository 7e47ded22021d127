"""EXPERIMENTS.yaml: what a backtest accepts, and the one-line reasons it refuses the rest."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from aik.backtest.runner import apply_window, mask_features
from aik.backtest.spec import Window, load, parse
from aik.errors import AikError
from aik.schema import FEATURE_COLUMNS
from aik.train.data import Split


def test_a_full_file_is_read_with_defaults_filled_in(tmp_path: Path) -> None:
    path = tmp_path / "experiments.yaml"
    path.write_text(
        "name: trial\nseed: 3\ncandidates:\n"
        "  - model: xgboost\n    preset: original\n    params: {eta: 0.1}\n"
        "  - name: fm-small\n    model: fm\n    params: {embedding_dim: 4}\n"
        "    features: [IndexDomain, IndexAdvertiserID]\n    window: {days: [3, 2], train_rows: 500}\n"
    )
    experiments = load(str(path))
    first, second = experiments.candidates
    assert (first.name, first.family, first.preset, first.seed) == ("xgboost", "xgboost", "original", 3)
    assert first.features == FEATURE_COLUMNS
    assert second.features == ("IndexAdvertiserID", "IndexDomain")  # in the model's order
    assert second.window == Window(days=(2, 3), train_rows=500)


@pytest.mark.parametrize(
    ("doc", "message"),
    [
        ({"candidates": []}, "candidates must be a non-empty list"),
        ({"candidates": [{"model": "catboost"}]}, "candidate 1: model must be one of"),
        ({"candidates": [{"model": "fm"}, {"model": "fm"}]}, "names must be unique"),
        ({"candidates": [{"model": "fm", "lr": 0.1}]}, "unknown key(s) lr"),
        ({"candidates": [{"name": "a", "model": "fm", "params": {"depth": 2}}]}, "candidate 'a': fm has no"),
        ({"candidates": [{"model": "fm", "preset": "default"}]}, "preset is xgboost's"),
        ({"candidates": [{"model": "mlp", "features": ["Domain"]}]}, "unknown feature(s) Domain"),
        ({"candidates": [{"model": "mlp", "window": {"days": [0]}}]}, "dayofweek values 1-7"),
        ({"candidates": [{"model": "mlp", "window": {"train_rows": 0}}]}, "positive whole number"),
        ({"candidates": [{"model": "xgboost", "params": {"num_round": 0}}]}, "num_round must be at least 1"),
        ({"candidate": [{"model": "fm"}]}, "unknown key(s) candidate"),
    ],
)
def test_bad_experiments_are_refused_with_the_reason(doc: dict, message: str) -> None:
    with pytest.raises(AikError) as raised:
        parse(doc)
    assert message in str(raised.value) and "\n" not in str(raised.value)


def test_a_file_that_is_not_yaml_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("candidates: [model: fm\n")
    with pytest.raises(AikError, match="not valid YAML"):
        load(str(path))


def _split(rows: int = 40) -> Split:
    rng = np.random.default_rng(0)
    X = np.column_stack([rng.integers(1, 8, rows), *(rng.integers(0, 5, rows) for _ in range(6))])
    return Split("mem://", X.astype(np.float32), np.zeros(rows, np.float32), rows, FEATURE_COLUMNS)


def test_a_feature_subset_sets_the_other_features_to_missing() -> None:
    split = _split()
    masked = mask_features(split, ("hour", "IndexDomain"))
    kept = [FEATURE_COLUMNS.index("hour"), FEATURE_COLUMNS.index("IndexDomain")]
    assert masked.X.shape == split.X.shape
    np.testing.assert_array_equal(masked.X[:, kept], split.X[:, kept])
    assert np.isnan(np.delete(masked.X, kept, axis=1)).all()
    assert not np.isnan(split.X).any()  # the shared split is left as it was


def test_a_window_keeps_its_days_then_a_sample() -> None:
    from aik.backtest.spec import Candidate

    split = _split(400)
    candidate = Candidate("c", "fm", window=Window(days=(2, 3), train_rows=20))
    windowed = apply_window(split, candidate)
    assert windowed.rows == 20 and set(np.unique(windowed.X[:, 0])) <= {2.0, 3.0}
    with pytest.raises(AikError, match="keeps no training rows"):
        apply_window(_only_dow(_split(50), 1), Candidate("c", "fm", window=Window(days=(7,))))


def _only_dow(split: Split, dow: int) -> Split:
    X = split.X.copy()
    X[:, 0] = dow
    return Split(split.uri, X, split.y, split.rows, split.columns)
