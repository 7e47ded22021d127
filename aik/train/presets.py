"""Training presets: `original` (aws-rtb-intelligence-kit's notebook 3), the tuned `default`, and `numeric`.

The default treats the index columns as categorical (xgboost's partition splits), grows depth-1 trees
(one feature per tree: an additive model, as the truth behind the data is) for as many rounds as
validation early stopping allows, regularises rare categories (lambda, min_child_weight) and refits on
train+valid with the chosen number of rounds. Why, and the quality each preset reaches:
docs/training.md and bench/train_quality.py.

The SageMaker built-in algorithm reads parquet into a plain numeric matrix (no categorical types), so
the cloud path uses a numeric preset.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from aik.errors import AikError
from aik.schema import FEATURE_COLUMNS, INDEXED_COLUMNS

#: Feature columns xgboost may treat as categorical: the StringIndexer outputs (codes, not quantities).
CATEGORICAL_COLUMNS: tuple[str, ...] = tuple(INDEXED_COLUMNS.values())


@dataclass(frozen=True)
class TrainConfig:
    """Everything that decides a training run: xgboost parameters plus how rounds and data are handled."""

    name: str
    #: xgboost booster parameters (`xgboost.train(params, ...)`), objective included.
    params: Mapping[str, Any]
    num_round: int
    early_stopping_rounds: int | None
    #: Index columns as xgboost categorical features (False: numeric codes, as the original).
    categorical: bool = False
    #: After early stopping, train again on train+valid with the chosen rounds scaled by the row ratio.
    refit: bool = False
    #: Share of training rows copied per index column with the code set to "unseen" (see model.py).
    unseen_fraction: float = 0.0
    seed: int = 0
    description: str = ""

    def feature_types(self) -> list[str]:
        """xgboost feature types in FEATURE_COLUMNS order: 'c' for categorical index columns, else 'q'."""
        return ["c" if self.categorical and c in CATEGORICAL_COLUMNS else "q" for c in FEATURE_COLUMNS]

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready description (written into metrics.json)."""
        return {
            "preset": self.name,
            "params": dict(self.params),
            "num_round": self.num_round,
            "early_stopping_rounds": self.early_stopping_rounds,
            "categorical": self.categorical,
            "refit": self.refit,
            "unseen_fraction": self.unseen_fraction,
            "seed": self.seed,
        }


ORIGINAL = TrainConfig(
    name="original",
    params={
        "objective": "binary:logistic",
        "max_depth": 5,
        "eta": 0.2,
        "gamma": 4,
        "min_child_weight": 6,
        "subsample": 0.8,
        "eval_metric": "logloss",
        "tree_method": "hist",
    },
    num_round=50,
    early_stopping_rounds=20,
    description="the original kit's notebook 3: numeric codes, 50 depth-5 trees",
)

DEFAULT = TrainConfig(
    name="default",
    params={
        "objective": "binary:logistic",
        "max_depth": 1,
        "eta": 0.3,
        "reg_lambda": 50.0,
        "min_child_weight": 10.0,
        "max_cat_to_onehot": 1,
        "max_cat_threshold": 64,
        "eval_metric": "logloss",
        "tree_method": "hist",
    },
    num_round=5000,
    early_stopping_rounds=100,
    categorical=True,
    refit=True,
    unseen_fraction=0.01,
    description="categorical index columns, additive depth-1 boosting with early stopping, refit",
)

NUMERIC = TrainConfig(
    name="numeric",
    params={
        "objective": "binary:logistic",
        "max_depth": 2,
        "eta": 0.3,
        "min_child_weight": 5.0,
        "reg_lambda": 10.0,
        # enough histogram bins that frequent codes get a bin of their own
        "max_bin": 4096,
        "eval_metric": "logloss",
        "tree_method": "hist",
    },
    num_round=3000,
    early_stopping_rounds=50,
    description="numeric codes (what the SageMaker built-in algorithm reads), shallow trees, early stopping",
)

PRESETS: dict[str, TrainConfig] = {p.name: p for p in (DEFAULT, ORIGINAL, NUMERIC)}

#: Settings that are not xgboost parameters but may be overridden like them (`--set name=value`).
_CONFIG_FIELDS = ("num_round", "early_stopping_rounds", "refit", "unseen_fraction", "seed", "categorical")


def _parse_value(text: str) -> Any:
    lowered = text.strip().lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    if lowered in ("none", "null"):
        return None
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    return text


def parse_overrides(items: list[str] | None) -> dict[str, Any]:
    """`name=value` strings (numbers, true/false, none or text) as a dict; bad items raise AikError."""
    out: dict[str, Any] = {}
    for item in items or []:
        name, sep, value = item.partition("=")
        if not sep or not name.strip():
            raise AikError(f"hyperparameter override {item!r} is not name=value")
        out[name.strip()] = _parse_value(value)
    return out


def resolve(
    preset: str = "default", overrides: Mapping[str, Any] | None = None, seed: int | None = None
) -> TrainConfig:
    """The preset with overrides: run-level settings by name, anything else as an xgboost parameter."""
    if preset not in PRESETS:
        raise AikError(f"unknown preset {preset!r} (choose from {', '.join(PRESETS)})")
    config = PRESETS[preset]
    params = dict(config.params)
    fields: dict[str, Any] = {}
    for name, value in (overrides or {}).items():
        if name in _CONFIG_FIELDS:
            fields[name] = value
        elif value is None:
            params.pop(name, None)
        else:
            params[name] = value
    if seed is not None:
        fields["seed"] = seed
    config = replace(config, params=params, **fields)
    if config.num_round is None or int(config.num_round) < 1:
        raise AikError("num_round must be at least 1")
    if config.early_stopping_rounds is not None and int(config.early_stopping_rounds) < 1:
        raise AikError("early_stopping_rounds must be at least 1 (or none)")
    if not 0.0 <= float(config.unseen_fraction) < 0.5:
        raise AikError("unseen_fraction must be in [0, 0.5)")
    return replace(
        config,
        num_round=int(config.num_round),
        early_stopping_rounds=None
        if config.early_stopping_rounds is None
        else int(config.early_stopping_rounds),
        seed=int(config.seed),
        refit=bool(config.refit),
        categorical=bool(config.categorical),
    )
