"""Train the XGBoost booster locally, and (de)serialise it in the format the server loads (UBJSON).

Unseen values: the server maps a value the pipeline never indexed to the code `len(labels)`
(handleInvalid=keep). A numeric model treats that code like the rarest values; a categorical model
would send it down whichever branch a category missing from the split's set takes, an arbitrary
direction that can add up to a badly biased prediction for new values (docs/training.md).
So before training, `unseen_fraction` of the rows are copied per index column with that column set to
the unseen code, drawing the rows uniformly over categories: the unseen code then learns the average
effect of a category, which is the best guess for a new one.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import xgboost as xgb

from aik.booster import load_booster as load_booster  # the trainer's callers import it from here
from aik.progress import Progress
from aik.schema import FEATURE_COLUMNS
from aik.train.data import Split
from aik.train.presets import TrainConfig

log = logging.getLogger(__name__)


class ProgressCallback(xgb.callback.TrainingCallback):
    """Log boosting progress (rounds done, rate, latest validation metric) through `aik.progress`."""

    def __init__(self, label: str, total: int, every_s: float = 5.0) -> None:
        super().__init__()
        self.base_label = label
        self.progress = Progress(label, total=total, unit="rounds", every_s=every_s)

    def after_iteration(self, model: Any, epoch: int, evals_log: Mapping[str, Any]) -> bool:
        """Count the round and keep the latest metric in the progress label; never stops training."""
        for data_name, metrics in evals_log.items():
            for metric, values in metrics.items():
                last = values[-1]
                value = last[0] if isinstance(last, tuple) else last
                self.progress.label = f"{self.base_label} ({data_name} {metric} {value:.5f})"
        self.progress.update(1)
        return False

    def after_training(self, model: Any) -> Any:
        """Log the final line."""
        self.progress.close()
        return model


@dataclass
class TrainedModel:
    """A trained booster and how it was reached."""

    booster: xgb.Booster
    #: Rounds chosen by early stopping on the validation split (num_round without it).
    best_rounds: int
    #: Trees in the final booster (after a refit on train+valid, scaled from best_rounds).
    rounds: int
    refit: bool
    seconds: float
    unseen_rows: int = 0
    history: dict[str, Any] = field(default_factory=dict)


def dmatrix(X: np.ndarray, y: np.ndarray | None, feature_types: list[str] | None) -> xgb.DMatrix:
    """A DMatrix with the contract's feature names (and categorical types when the model uses them)."""
    categorical = feature_types is not None and "c" in feature_types
    return xgb.DMatrix(
        X,
        label=y,
        feature_names=list(FEATURE_COLUMNS),
        feature_types=feature_types if categorical else None,
        enable_categorical=categorical,
        missing=np.nan,
    )


def add_unseen_rows(
    X: np.ndarray,
    y: np.ndarray,
    unseen_codes: Mapping[str, int],
    fraction: float,
    rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray, int]:
    """Append, per index column, copies of rows drawn uniformly over categories with the unseen code."""
    if fraction <= 0 or not unseen_codes or len(y) == 0:
        return X, y, 0
    n = max(int(fraction * len(y)), min(500, len(y)))
    extra_X, extra_y = [X], [y]
    for column, code in unseen_codes.items():
        j = FEATURE_COLUMNS.index(column)
        values = X[:, j]
        present = np.flatnonzero(~np.isnan(values))
        if len(present) == 0:
            continue
        order = present[np.argsort(values[present], kind="stable")]
        _, starts, counts = np.unique(values[order], return_index=True, return_counts=True)
        pick = rng.integers(0, len(starts), n)
        rows = order[starts[pick] + (rng.random(n) * counts[pick]).astype(np.int64)]
        copied = X[rows].copy()
        copied[:, j] = code
        extra_X.append(copied)
        extra_y.append(y[rows])
    added = sum(len(a) for a in extra_y) - len(y)
    return np.concatenate(extra_X), np.concatenate(extra_y), added


def _params(config: TrainConfig, nthread: int | None) -> dict[str, Any]:
    params = dict(config.params)
    params["seed"] = config.seed
    if nthread:
        params["nthread"] = nthread
    params.setdefault("verbosity", 1)
    return params


def train_booster(
    train: Split,
    valid: Split | None,
    config: TrainConfig,
    *,
    unseen_codes: Mapping[str, int] | None = None,
    nthread: int | None = None,
) -> TrainedModel:
    """Boost on `train` with early stopping on `valid`, keep the best rounds, optionally refit on both."""
    start = time.monotonic()
    rng = np.random.default_rng(config.seed)
    types = config.feature_types()
    codes = dict(unseen_codes or {}) if config.categorical else {}
    X, y, unseen_rows = add_unseen_rows(train.X, train.y, codes, config.unseen_fraction, rng)
    dtrain = dmatrix(X, y, types)
    params = _params(config, nthread)
    history: dict[str, Any] = {}
    use_valid = valid is not None and config.early_stopping_rounds is not None
    evals = [(dmatrix(valid.X, valid.y, types), "valid")] if use_valid and valid is not None else []
    booster = xgb.train(
        params,
        dtrain,
        num_boost_round=config.num_round,
        evals=evals,
        early_stopping_rounds=config.early_stopping_rounds if use_valid else None,
        evals_result=history,
        verbose_eval=False,
        callbacks=[ProgressCallback("xgboost", config.num_round)],
    )
    best_rounds = booster.best_iteration + 1 if use_valid else config.num_round
    rounds = best_rounds
    refit = bool(config.refit and valid is not None and valid.rows > 0)
    if refit and valid is not None:
        rounds = max(1, round(best_rounds * (train.rows + valid.rows) / train.rows))
        Xa, ya, unseen_rows = add_unseen_rows(
            np.concatenate([train.X, valid.X]),
            np.concatenate([train.y, valid.y]),
            codes,
            config.unseen_fraction,
            rng,
        )
        log.info(
            "refit on train+valid (%d rows) for %d rounds (best %d on train)", len(ya), rounds, best_rounds
        )
        booster = xgb.train(
            params,
            dmatrix(Xa, ya, types),
            num_boost_round=rounds,
            verbose_eval=False,
            callbacks=[ProgressCallback("xgboost refit", rounds)],
        )
    else:
        # the saved model must hold exactly the chosen rounds: the server predicts with every tree
        booster = booster[:best_rounds]
    booster.set_attr(aik_preset=config.name, aik_rounds=str(rounds))
    return TrainedModel(
        booster=booster,
        best_rounds=best_rounds,
        rounds=rounds,
        refit=refit,
        seconds=time.monotonic() - start,
        unseen_rows=unseen_rows,
        history=history,
    )


def model_bytes(booster: xgb.Booster) -> bytes:
    """The booster as UBJSON (what current xgboost loads; the legacy binary format is gone since 3.1)."""
    return bytes(booster.save_raw(raw_format="ubj"))


def predict(booster: xgb.Booster, X: np.ndarray) -> np.ndarray:
    """Probabilities for rows in FEATURE_COLUMNS order, the way the booster's own feature types say."""
    types = booster.feature_types
    return booster.predict(dmatrix(X, None, list(types) if types else None), validate_features=True)
