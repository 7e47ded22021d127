"""Hyperparameters of the PyTorch families: one frozen dataclass, per-family defaults, `--set` overrides.

No PyTorch here: the CLI's help and a backtest's validation read these without loading it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields, replace
from itertools import combinations
from typing import Any

from aik.errors import AikError
from aik.schema import FEATURE_COLUMNS


@dataclass(frozen=True)
class NeuralConfig:
    """Everything that decides a PyTorch training run (architecture, optimiser, stopping, data)."""

    family: str
    #: Width of each field's embedding (fm: the factor dimension; logreg ignores it).
    embedding_dim: int = 8
    #: Hidden layer widths of the MLP (mlp and the deep part of wide-deep).
    hidden: tuple[int, ...] = (64, 32)
    dropout: float = 0.0
    #: Feature pairs crossed in the wide part of wide-deep (FEATURE_COLUMNS names).
    crosses: tuple[tuple[str, str], ...] = ()
    #: A cross with more value pairs than this is hashed into this many buckets.
    cross_buckets: int = 1 << 16
    lr: float = 0.01
    #: After an epoch without a better validation log loss, go back to the best epoch's weights and multiply
    #: the learning rate by this (1: off).
    lr_decay: float = 1.0
    batch_size: int = 1024
    max_epochs: int = 60
    #: Stop after this many epochs without a better validation log loss; the best epoch's weights win.
    patience: int = 4
    #: L2 penalty on the embedding tables, per training row (as 1/C of a logistic regression).
    l2: float = 1.0
    #: L2 penalty on the crosses' weights (wide-deep), per training row; none: `l2`.
    cross_l2: float | None = None
    #: L2 penalty on the dense layers' weights, per training row.
    weight_decay: float = 1.0
    #: `adam`: every part on minibatches, early-stopped. `lbfgs` (logreg, wide-deep): the linear terms and
    #: crosses first, full-batch to convergence of the penalised log loss; then the deep part (wide-deep)
    #: by Adam on what they leave, early-stopped, with them fixed.
    solver: str = "adam"
    #: With `lbfgs`: fits of the linear terms and crosses, each after the first with every field's and
    #: every cross's L2 re-estimated from the last fit's weights (the evidence approximation); 1: `l2`
    #: and `cross_l2` as given.
    evidence_rounds: int = 1
    #: Share of training rows copied per index column with the code set to unseen (as the booster).
    unseen_fraction: float = 0.01
    seed: int = 0

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready (metrics.json, the model file, MLflow params)."""
        out: dict[str, Any] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name == "hidden":
                value = list(value)
            elif f.name == "crosses":
                value = [f"{a}:{b}" for a, b in value]
            out[f.name] = value
        return out

    @classmethod
    def from_dict(cls, doc: Mapping[str, Any]) -> NeuralConfig:
        """Inverse of `as_dict` (reading a model file)."""
        values = dict(doc)
        values["hidden"] = tuple(int(h) for h in values.get("hidden", ()))
        values["crosses"] = parse_crosses(values.get("crosses", ()))
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in values.items() if k in known})


SOLVERS = ("adam", "lbfgs")

ALL_PAIRS: tuple[tuple[str, str], ...] = tuple(combinations(FEATURE_COLUMNS, 2))

#: wide-deep's crosses, chosen as the wide part is meant to be (Cheng et al. 2016): from what is known
#: of the traffic, not every pair. The advertiser with every context field (campaign targeting), the
#: device with the hour (the time-of-day device mix) and with the site (mobile and desktop sites).
#: Crossing every pair brings in pairs of thousands of domains with hundreds of cities, which no
#: training set fills and whose weights only add variance (docs/training.md, "the interaction world").
DEFAULT_CROSSES: tuple[tuple[str, str], ...] = (
    *(("IndexAdvertiserID", c) for c in FEATURE_COLUMNS if c != "IndexAdvertiserID"),
    ("hour", "device_type_id"),
    ("IndexDomain", "device_type_id"),
)

DEFAULTS: dict[str, NeuralConfig] = {
    # one weight per value of each field: the one-hot logistic regression, fitted to convergence with
    # each field's L2 from the evidence (docs/training.md, "solver: lbfgs")
    "logreg": NeuralConfig(
        family="logreg", embedding_dim=1, hidden=(), lr=0.02, l2=1.0, solver="lbfgs", evidence_rounds=10
    ),
    # the linear terms plus factorised pairwise interactions of every pair of fields
    "fm": NeuralConfig(family="fm", embedding_dim=8, hidden=(), lr=0.01, l2=2.0),
    "mlp": NeuralConfig(family="mlp", embedding_dim=8, hidden=(64, 32), lr=0.005, l2=2.0),
    # the linear terms and chosen crosses (wide), fitted first with each one's L2 from the evidence, then
    # the embedding MLP (deep) on what they leave
    "wide-deep": NeuralConfig(
        family="wide-deep",
        embedding_dim=8,
        hidden=(64, 32),
        crosses=DEFAULT_CROSSES,
        lr=0.005,
        l2=2.0,
        cross_l2=4.0,
        solver="lbfgs",
        evidence_rounds=10,
    ),
}


def parse_crosses(value: Any) -> tuple[tuple[str, str], ...]:
    """Crosses from `all`, `default`, `none`, `a:b,c:d` or a sequence of `a:b` / pairs (feature names)."""
    if value is None:
        return ()
    if isinstance(value, str):
        text = value.strip()
        if text.lower() == "all":
            return ALL_PAIRS
        if text.lower() == "default":
            return DEFAULT_CROSSES
        if text.lower() in ("", "none"):
            return ()
        value = [item for item in text.split(",") if item.strip()]
    pairs: list[tuple[str, str]] = []
    for item in value:
        a, b = (*item.split(":", 1), "")[:2] if isinstance(item, str) else item
        a, b = a.strip(), b.strip()
        for name in (a, b):
            if name not in FEATURE_COLUMNS:
                raise AikError(f"cross {a}:{b}: {name!r} is not a feature ({', '.join(FEATURE_COLUMNS)})")
        if a == b:
            raise AikError(f"cross {a}:{b} crosses a feature with itself")
        pairs.append((a, b))
    return tuple(pairs)


def parse_hidden(value: Any) -> tuple[int, ...]:
    """Hidden widths from an int, a list or text such as "256x128" / "256,128" ("none": no hidden layer)."""
    if isinstance(value, int):
        return (value,)
    if isinstance(value, str):
        value = (
            [v for v in value.replace("x", ",").split(",") if v.strip()] if value.strip() != "none" else []
        )
    return tuple(int(v) for v in value)


def parse_overrides(
    family: str, config_type: type, overrides: Mapping[str, Any] | None, parse: Callable[[str, Any], Any]
) -> dict[str, Any]:
    """Overrides of a config dataclass by field name, each value through `parse(name, value)`; unknown
    names and bad values raise AikError."""
    known = {f.name for f in fields(config_type)} - {"family"}
    changes: dict[str, Any] = {}
    for name, value in (overrides or {}).items():
        if name not in known:
            raise AikError(
                f"{family} has no hyperparameter {name!r} (choose from {', '.join(sorted(known))})"
            )
        try:
            changes[name] = parse(name, value)
        except (TypeError, ValueError) as exc:
            raise AikError(f"{family}: bad value {value!r} for {name}") from exc
    return changes


def _neural_value(name: str, value: Any) -> Any:
    if name == "hidden":
        return parse_hidden(value)
    if name == "crosses":
        return parse_crosses(value)
    if name == "cross_l2":
        return None if value is None or str(value).lower() == "none" else float(value)
    if name in ("lr", "lr_decay", "dropout", "l2", "weight_decay", "unseen_fraction"):
        return float(value)
    if name == "solver":
        return str(value).strip().lower()
    return int(value)


def resolve_neural(
    family: str, overrides: Mapping[str, Any] | None = None, seed: int | None = None
) -> NeuralConfig:
    """The family's defaults with overrides by field name; unknown names and bad values raise AikError."""
    if family not in DEFAULTS:
        raise AikError(f"unknown neural family {family!r} (choose from {', '.join(DEFAULTS)})")
    config = DEFAULTS[family]
    changes = parse_overrides(family, NeuralConfig, overrides, _neural_value)
    if seed is not None:
        changes["seed"] = seed
    config = replace(config, **changes)
    if config.embedding_dim < 1 or config.batch_size < 1 or config.max_epochs < 1 or config.patience < 1:
        raise AikError(f"{family}: embedding_dim, batch_size, max_epochs and patience must be at least 1")
    if config.cross_l2 is not None and config.cross_l2 < 0:
        raise AikError(f"{family}: cross_l2 must be >= 0")
    if config.lr <= 0 or config.l2 < 0 or config.weight_decay < 0 or not 0 <= config.dropout < 1:
        raise AikError(f"{family}: lr must be positive, l2 and weight_decay >= 0, dropout in [0, 1)")
    if not 0 < config.lr_decay <= 1:
        raise AikError(f"{family}: lr_decay must be in (0, 1]")
    if not 0.0 <= config.unseen_fraction < 0.5:
        raise AikError(f"{family}: unseen_fraction must be in [0, 0.5)")
    if config.solver not in SOLVERS:
        raise AikError(f"{family}: solver must be one of {', '.join(SOLVERS)}, got {config.solver!r}")
    if config.solver == "lbfgs" and family not in ("logreg", "wide-deep"):
        raise AikError(f"{family}: solver lbfgs fits logreg and wide-deep only")
    if config.evidence_rounds < 1:
        raise AikError(f"{family}: evidence_rounds must be at least 1")
    if config.cross_buckets < 2:
        raise AikError(f"{family}: cross_buckets must be at least 2")
    return config
