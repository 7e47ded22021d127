"""The PyTorch families on the CPU: logistic regression, factorization machine, embedding-MLP, wide&deep.

Every model takes the pipeline's float rows (FEATURE_COLUMNS order, as the booster does) and encodes
them itself: each field's value becomes an id into that field's embedding table, and a value outside
the field's range (the pipeline's unseen code, a missing or a negative value) takes the table's last
row. Training copies a share of rows with an index column set to unseen (as the booster does, see
`aik.train.model`) so that row learns the average effect of a value, the best guess for a new one.

- logreg: a bias plus one weight per value of each field (the one-hot logistic regression).
- fm: logreg plus factorised pairwise interactions, 0.5 * ((sum v)^2 - sum v^2) (Rendle 2010).
- mlp: one embedding per field, concatenated into an MLP. Each field holds one value per request, so
  the sum pooling of a field's values is that value's embedding.
- wide-deep: the linear terms and crossed pairs of fields (the wide part: one weight per value pair,
  hashed into `cross_buckets` when a pair has more) beside the embedding-MLP (the deep part), summed
  into one logit (Cheng et al. 2016).

Training: Adam on minibatches of the train split, the log loss plus an L2 penalty per training row,
early stopping on the validation split's log loss (the best epoch's weights are kept), seeded
shuffling and initialisation. The model file is `torch.save` of the config, the tables' sizes and the
state dict, read back with `weights_only=True` (tensors and plain values only, never code).
"""

from __future__ import annotations

import copy
import io
import logging
import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from aik.errors import ArtifactError
from aik.progress import Progress
from aik.schema import FEATURE_COLUMNS
from aik.train.data import Split
from aik.train.families.config import NeuralConfig
from aik.train.model import add_unseen_rows

log = logging.getLogger(__name__)

FORMAT = "aik-neural-1"
_PREDICT_BATCH = 65_536
#: Knuth's multiplicative hash constant: spreads a cross's pair index over its buckets.
_HASH = 2_654_435_761


class FieldIds(nn.Module):
    """Float rows -> per-field ids: values in [0, cardinality) floored, anything else -> cardinality."""

    cards: torch.Tensor  # a registered buffer (declared so its type is known)

    def __init__(self, cards: Sequence[int]) -> None:
        super().__init__()
        self.register_buffer("cards", torch.tensor(list(cards), dtype=torch.float32))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        outside = torch.isnan(x) | (x < 0) | (x >= self.cards)
        return torch.where(outside, self.cards, torch.floor(x)).to(torch.int64)


class Crosses(nn.Module):
    """Pairs of per-field ids -> ids into one table of all crosses (exact, or hashed into buckets)."""

    offsets: torch.Tensor  # a registered buffer (declared so its type is known)

    def __init__(self, sizes: Sequence[int], pairs: Sequence[tuple[int, int]], buckets: int) -> None:
        super().__init__()
        self.pairs = [tuple(p) for p in pairs]
        widths, hashed = [], []
        for i, j in self.pairs:
            exact = sizes[i] * sizes[j]
            widths.append(min(exact, buckets))
            hashed.append(exact > buckets)
        self.hashed = hashed
        self.sizes = list(sizes)
        self.widths = widths
        self.register_buffer(
            "offsets", torch.tensor([0, *np.cumsum(widths)[:-1].tolist()], dtype=torch.int64)
        )
        self.total = int(sum(widths))

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        columns = []
        for k, (i, j) in enumerate(self.pairs):
            pair = ids[:, i] * self.sizes[j] + ids[:, j]
            if self.hashed[k]:
                pair = (pair * _HASH) % self.widths[k]
            columns.append(pair)
        return torch.stack(columns, dim=1) + self.offsets


class Tables(nn.Module):
    """One embedding table per field, stored as one table with per-field offsets."""

    offsets: torch.Tensor  # a registered buffer (declared so its type is known)

    def __init__(self, sizes: Sequence[int], dim: int, init_std: float) -> None:
        super().__init__()
        self.register_buffer("offsets", torch.tensor([0, *np.cumsum(sizes)[:-1].tolist()], dtype=torch.int64))
        self.weight = nn.Embedding(int(sum(sizes)), dim)
        if init_std > 0:
            nn.init.normal_(self.weight.weight, 0.0, init_std)
        else:
            nn.init.zeros_(self.weight.weight)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return self.weight(ids + self.offsets)  # (rows, fields, dim)


def _mlp(inputs: int, hidden: Sequence[int], dropout: float) -> nn.Sequential:
    layers: list[nn.Module] = []
    width = inputs
    for h in hidden:
        layers += [nn.Linear(width, h), nn.ReLU()]
        if dropout > 0:
            layers.append(nn.Dropout(dropout))
        width = h
    layers.append(nn.Linear(width, 1))
    return nn.Sequential(*layers)


class CtrModel(nn.Module):
    """One module for the four families: which parts exist depends on the family."""

    def __init__(self, config: NeuralConfig, cards: Sequence[int]) -> None:
        super().__init__()
        self.family = config.family
        sizes = [c + 1 for c in cards]
        self.ids = FieldIds(cards)
        self.bias = nn.Parameter(torch.zeros(1))
        self.linear: Tables | None = None
        self.factors: Tables | None = None
        self.deep_tables: Tables | None = None
        self.deep: nn.Sequential | None = None
        self.crosses: Crosses | None = None
        self.cross_weights: nn.Embedding | None = None
        if config.family in ("logreg", "fm", "wide-deep"):
            self.linear = Tables(sizes, 1, init_std=0.0)
        if config.family == "fm":
            self.factors = Tables(sizes, config.embedding_dim, init_std=0.01)
        if config.family in ("mlp", "wide-deep"):
            self.deep_tables = Tables(sizes, config.embedding_dim, init_std=0.05)
            self.deep = _mlp(len(sizes) * config.embedding_dim, config.hidden, config.dropout)
        if config.family == "wide-deep" and config.crosses:
            index = {name: k for k, name in enumerate(FEATURE_COLUMNS)}
            pairs = [(index[a], index[b]) for a, b in config.crosses]
            self.crosses = Crosses(sizes, pairs, config.cross_buckets)
            self.cross_weights = nn.Embedding(self.crosses.total, 1)
            nn.init.zeros_(self.cross_weights.weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits of rows of float features (FEATURE_COLUMNS order)."""
        ids = self.ids(x)
        logit = self.bias.expand(x.shape[0])
        if self.linear is not None:
            logit = logit + self.linear(ids).sum(dim=(1, 2))
        if self.factors is not None:
            v = self.factors(ids)
            logit = logit + 0.5 * (v.sum(dim=1).pow(2) - v.pow(2).sum(dim=1)).sum(dim=1)
        if self.deep_tables is not None and self.deep is not None:
            e = self.deep_tables(ids)
            logit = logit + self.deep(e.flatten(start_dim=1)).squeeze(1)
        if self.crosses is not None and self.cross_weights is not None:
            logit = logit + self.cross_weights(self.crosses(ids)).sum(dim=(1, 2))
        return logit

    def penalty(self, l2: float, weight_decay: float, cross_l2: float | None = None) -> torch.Tensor:
        """L2 of the embedding tables (times l2), the crosses' weights (times cross_l2, default l2) and
        of the dense weights (times weight_decay)."""
        total = torch.zeros(())
        for module in self.modules():
            if module is self.cross_weights:
                total = total + (l2 if cross_l2 is None else cross_l2) * module.weight.pow(2).sum()
            elif isinstance(module, nn.Embedding):
                total = total + l2 * module.weight.pow(2).sum()
            elif isinstance(module, nn.Linear):
                total = total + weight_decay * module.weight.pow(2).sum()
        return total


@dataclass
class NeuralModel:
    """A trained PyTorch family behind the booster's interface the workflow uses (predict, features)."""

    config: NeuralConfig
    cards: tuple[int, ...]
    module: CtrModel
    feature_names: list[str] = field(default_factory=lambda: list(FEATURE_COLUMNS))

    @property
    def family(self) -> str:
        """The family's name."""
        return self.config.family

    def num_features(self) -> int:
        """Features the model reads (as `xgboost.Booster.num_features`)."""
        return len(self.feature_names)

    def parameters(self) -> int:
        """Trainable values."""
        return sum(p.numel() for p in self.module.parameters())

    def predict(self, X: np.ndarray) -> np.ndarray:
        """Probabilities of label 1 for rows in FEATURE_COLUMNS order."""
        self.module.eval()
        out = []
        with torch.no_grad():
            for start in range(0, len(X), _PREDICT_BATCH):
                batch = torch.from_numpy(np.ascontiguousarray(X[start : start + _PREDICT_BATCH], np.float32))
                out.append(torch.sigmoid(self.module(batch)).numpy())
        return np.concatenate(out) if out else np.empty(0, np.float32)

    def to_bytes(self) -> bytes:
        """The model file: config, table sizes and weights (`torch.save`, read with weights_only)."""
        buffer = io.BytesIO()
        torch.save(
            {
                "format": FORMAT,
                "config": self.config.as_dict(),
                "cardinalities": list(self.cards),
                "features": list(self.feature_names),
                "state_dict": self.module.state_dict(),
            },
            buffer,
        )
        return buffer.getvalue()

    @classmethod
    def from_bytes(cls, data: bytes, uri: str = "<bytes>") -> NeuralModel:
        """Read a model file; anything else is reported with its URI."""
        try:
            doc = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
        except Exception as exc:  # torch raises pickle, zip and runtime errors alike
            raise ArtifactError(uri, f"not a model file of the neural families ({exc})") from exc
        if not isinstance(doc, dict) or doc.get("format") != FORMAT:
            raise ArtifactError(uri, f"not a {FORMAT} model file")
        config = NeuralConfig.from_dict(doc["config"])
        cards = tuple(int(c) for c in doc["cardinalities"])
        module = CtrModel(config, cards)
        try:
            module.load_state_dict(doc["state_dict"])
        except RuntimeError as exc:
            raise ArtifactError(uri, f"weights do not fit the model ({str(exc).splitlines()[0]})") from exc
        module.eval()
        return cls(config, cards, module, list(doc.get("features", FEATURE_COLUMNS)))

    def describe(self) -> dict[str, Any]:
        """What metrics.json says about the model."""
        return {
            "family": self.family,
            "parameters": self.parameters(),
            "cardinalities": dict(zip(self.feature_names, self.cards, strict=True)),
            "config": self.config.as_dict(),
        }


@dataclass
class TrainedNeural:
    """A trained model and how it was reached."""

    model: NeuralModel
    best_epoch: int
    epochs: int
    seconds: float
    unseen_rows: int
    history: list[float]
    #: The learning rate of each epoch.
    lrs: list[float] = field(default_factory=list)

    def info(self) -> dict[str, Any]:
        """How the model was made (metrics.json `model.training`)."""
        return {
            "source": "local",
            "family": self.model.family,
            "best_epoch": self.best_epoch,
            "epochs": self.epochs,
            "valid_logloss": round(self.history[self.best_epoch - 1], 6) if self.history else None,
            "last_lr": self.lrs[-1] if self.lrs else None,
            "unseen_rows_added": self.unseen_rows,
            "train_seconds": round(self.seconds, 2),
            "threads": torch.get_num_threads(),
        }


def _log_loss(module: CtrModel, X: torch.Tensor, y: torch.Tensor) -> float:
    module.eval()
    with torch.no_grad():
        total = 0.0
        for start in range(0, len(y), _PREDICT_BATCH):
            logits = module(X[start : start + _PREDICT_BATCH])
            total += float(
                nn.functional.binary_cross_entropy_with_logits(
                    logits, y[start : start + _PREDICT_BATCH], reduction="sum"
                )
            )
    return total / max(len(y), 1)


def _base_logit(y: np.ndarray) -> float:
    rate = float(np.clip(y.mean(), 1e-4, 1 - 1e-4)) if len(y) else 0.5
    return math.log(rate / (1 - rate))


def train_neural(
    train: Split,
    valid: Split,
    config: NeuralConfig,
    cards: Sequence[int],
    *,
    unseen: Mapping[str, int] | None = None,
    nthread: int | None = None,
) -> TrainedNeural:
    """Train one family on `train`, early-stopped on `valid`'s log loss; the best epoch's weights win."""
    start = time.monotonic()
    if nthread:
        torch.set_num_threads(nthread)
    torch.manual_seed(config.seed)
    rng = np.random.default_rng(config.seed)
    X, y, unseen_rows = add_unseen_rows(train.X, train.y, dict(unseen or {}), config.unseen_fraction, rng)
    Xt, yt = torch.from_numpy(np.ascontiguousarray(X, np.float32)), torch.from_numpy(y.astype(np.float32))
    Xv = torch.from_numpy(np.ascontiguousarray(valid.X, np.float32))
    yv = torch.from_numpy(valid.y.astype(np.float32))
    module = CtrModel(config, cards)
    with torch.no_grad():
        module.bias.fill_(_base_logit(y))
    optimiser = torch.optim.Adam(module.parameters(), lr=config.lr)
    generator = torch.Generator().manual_seed(config.seed)
    n = len(yt)
    per_row = 1.0 / max(n, 1)
    best = (math.inf, 0, copy.deepcopy(module.state_dict()))
    history: list[float] = []
    lrs: list[float] = []
    progress = Progress(config.family, total=config.max_epochs, unit="epochs")
    for epoch in range(1, config.max_epochs + 1):
        module.train()
        order = torch.randperm(n, generator=generator)
        for s in range(0, n, config.batch_size):
            rows = order[s : s + config.batch_size]
            logits = module(Xt[rows])
            loss = nn.functional.binary_cross_entropy_with_logits(logits, yt[rows])
            # the penalty per training row: over an epoch it adds up to the full-data objective's
            loss = loss + per_row * module.penalty(config.l2, config.weight_decay, config.cross_l2)
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
            optimiser.step()
        score = _log_loss(module, Xv, yv)
        history.append(score)
        lrs.append(optimiser.param_groups[0]["lr"])
        progress.label = f"{config.family} (valid logloss {score:.5f}, best epoch {best[1] or epoch})"
        progress.update(1)
        if score < best[0] - 1e-6:
            best = (score, epoch, copy.deepcopy(module.state_dict()))
        elif epoch - best[1] >= config.patience:
            break
        elif config.lr_decay < 1:
            # back to the best epoch's weights with a smaller step (and fresh moments): the epochs since
            # only moved away from the optimum, and a smaller step lets Adam settle closer to it
            module.load_state_dict(best[2])
            optimiser = torch.optim.Adam(module.parameters(), lr=lrs[-1] * config.lr_decay)
    progress.close()
    module.load_state_dict(best[2])
    module.eval()
    log.info("%s: best epoch %d of %d, valid logloss %.5f", config.family, best[1], len(history), best[0])
    return TrainedNeural(
        model=NeuralModel(config, tuple(cards), module),
        best_epoch=best[1],
        epochs=len(history),
        seconds=time.monotonic() - start,
        unseen_rows=unseen_rows,
        history=history,
        lrs=lrs,
    )
