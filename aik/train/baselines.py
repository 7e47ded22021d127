"""Baselines on the same features and split: logistic regression and a small MLP (scikit-learn).

These are the models of the other reference systems for CTR/win-rate prediction, trained on one-hot
encodings of every feature (the index codes, hour, weekday and device type are all categories), so a
model change can be judged side by side with them in the same report. Unknown codes at prediction
time encode as all zeros (`handle_unknown="ignore"`): the intercept, i.e. the average.
"""

from __future__ import annotations

import copy
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import log_loss
from sklearn.neural_network import MLPClassifier
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import OneHotEncoder

from aik.train.data import Split

log = logging.getLogger(__name__)

#: Inverse L2 strengths tried for logistic regression; the one with the best validation log loss wins.
LOGISTIC_C: tuple[float, ...] = (0.03, 0.1, 0.3, 1.0)


@dataclass
class Baseline:
    """A fitted baseline and what it took."""

    name: str
    model: Pipeline
    params: dict[str, Any]
    seconds: float
    train_rows: int

    def predict(self, X: np.ndarray) -> np.ndarray:
        """Probabilities of label 1."""
        return self.model.predict_proba(_prepare(X))[:, 1]


def _prepare(X: np.ndarray) -> np.ndarray:
    # one-hot needs one value per missing cell too: -1 stands for "missing"
    return np.where(np.isnan(X), -1, X).astype(np.int64)


def _encoder() -> OneHotEncoder:
    return OneHotEncoder(handle_unknown="ignore", dtype=np.float32)


def sample(split: Split, max_rows: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """At most `max_rows` rows of a split (a seeded uniform sample when it is larger)."""
    if split.rows <= max_rows:
        return split.X, split.y
    rows = np.sort(np.random.default_rng(seed).choice(split.rows, max_rows, replace=False))
    return split.X[rows], split.y[rows]


def logistic_regression(train: Split, valid: Split | None, *, max_rows: int, seed: int = 0) -> Baseline:
    """One-hot logistic regression; L2 strength chosen on the validation split."""
    start = time.monotonic()
    X, y = sample(train, max_rows, seed)
    best: tuple[float, Pipeline, float] | None = None
    for c in LOGISTIC_C if valid is not None else (0.3,):
        model = make_pipeline(_encoder(), LogisticRegression(C=c, max_iter=2000))
        model.fit(_prepare(X), y)
        score = (
            log_loss(valid.y, model.predict_proba(_prepare(valid.X))[:, 1], labels=[0, 1])
            if valid is not None
            else 0.0
        )
        log.info("logistic regression C=%g: validation log loss %.5f", c, score)
        if best is None or score < best[0]:
            best = (score, model, c)
    assert best is not None
    return Baseline(
        "logistic_regression",
        best[1],
        {"C": best[2], "encoding": "one-hot"},
        time.monotonic() - start,
        len(y),
    )


def mlp(
    train: Split,
    valid: Split | None,
    *,
    max_rows: int,
    seed: int = 0,
    max_epochs: int = 40,
    patience: int = 3,
) -> Baseline:
    """A small MLP (one hidden layer of 32) on the one-hot encoding, early-stopped on validation log loss.

    The epochs are driven here rather than by MLPClassifier's own early stopping, which judges a
    held-out slice by accuracy: on unbalanced labels accuracy stays flat at the majority class for the
    first epochs and stops training before the model has learned anything.
    """
    start = time.monotonic()
    X, y = sample(train, max_rows, seed)
    params: dict[str, Any] = {
        "hidden_layer_sizes": (32,),
        "alpha": 1e-3,
        "batch_size": 512,
        "learning_rate_init": 1e-3,
    }
    encoder = _encoder().fit(_prepare(X))
    Xe = encoder.transform(_prepare(X))
    Xv = encoder.transform(_prepare(valid.X)) if valid is not None else None
    clf = MLPClassifier(random_state=seed, **params)
    best: tuple[float, MLPClassifier, int] | None = None
    for epoch in range(1, max_epochs + 1):
        clf.partial_fit(Xe, y, classes=[0.0, 1.0])
        if Xv is None or valid is None:
            best = (0.0, clf, epoch)
            if epoch >= 10:
                break
            continue
        loss = log_loss(valid.y, clf.predict_proba(Xv)[:, 1], labels=[0, 1])
        if best is None or loss < best[0] - 1e-6:
            best = (loss, copy.deepcopy(clf), epoch)
        elif epoch - best[2] >= patience:
            break
    assert best is not None
    params.update({"epochs": best[2], "encoding": "one-hot", "selected_on": "valid log loss"})
    model = Pipeline([("onehot", encoder), ("mlp", best[1])])
    return Baseline("mlp", model, params, time.monotonic() - start, len(y))


BASELINES: dict[str, Callable[..., Baseline]] = {"logistic_regression": logistic_regression, "mlp": mlp}
