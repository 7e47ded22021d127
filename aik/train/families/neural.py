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
shuffling and initialisation. With `solver: lbfgs` (logreg's and wide-deep's default) the linear terms
and crosses are first fitted to convergence with each one's L2 from the evidence (`_fit_wide`), and
Adam trains only the deep part. The model file is `torch.save` of the config, the tables' sizes and the
state dict, read back with `weights_only=True` (tensors and plain values only, never code).
"""

from __future__ import annotations

import copy
import io
import logging
import math
import time
from collections.abc import Callable, Mapping, Sequence
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
        if config.family in ("logreg", "wide-deep") and config.crosses:
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

    def deep_penalty(self, l2: float, weight_decay: float, cross_l2: float | None = None) -> torch.Tensor:
        """The deep part's share of `penalty` (cross_l2 is unused: the signature is `penalty`'s)."""
        total = torch.zeros(())
        if self.deep_tables is not None:
            total = total + l2 * self.deep_tables.weight.weight.pow(2).sum()
        for module in self.deep.modules() if self.deep is not None else ():
            if isinstance(module, nn.Linear):
                total = total + weight_decay * module.weight.pow(2).sum()
        return total

    def wide_groups(self) -> list[tuple[str, torch.Tensor, slice]]:
        """The linear terms' rows per field and the crosses' weights per cross: (name, table, rows)."""
        groups: list[tuple[str, torch.Tensor, slice]] = []
        if self.linear is not None:
            starts = [*self.linear.offsets.tolist(), self.linear.weight.weight.shape[0]]
            for k, name in enumerate(FEATURE_COLUMNS):
                groups.append((name, self.linear.weight.weight, slice(starts[k], starts[k + 1])))
        if self.crosses is not None and self.cross_weights is not None:
            starts = [*self.crosses.offsets.tolist(), self.crosses.total]
            for k, (i, j) in enumerate(self.crosses.pairs):
                name = f"{FEATURE_COLUMNS[i]}:{FEATURE_COLUMNS[j]}"
                groups.append((name, self.cross_weights.weight, slice(starts[k], starts[k + 1])))
        return groups

    def wide_parameters(self) -> list[nn.Parameter]:
        """The bias, the linear terms and the crosses' weights."""
        return [self.bias, *_weights(self.linear), *_weights(self.cross_weights)]

    def deep_parameters(self) -> list[nn.Parameter]:
        """The deep part's embeddings and layers (none for logreg)."""
        return [*_weights(self.deep_tables), *_weights(self.deep)]

    def wide_rows(self, ids: torch.Tensor) -> torch.Tensor:
        """Per row, the rows of the linear table and of the crosses' table it reads, as one index into
        the two tables laid end to end (the linear table first)."""
        parts = []
        if self.linear is not None:
            parts.append(ids + self.linear.offsets)
        if self.crosses is not None:
            base = self.linear.weight.weight.shape[0] if self.linear is not None else 0
            parts.append(self.crosses(ids) + base)
        return torch.cat(parts, dim=1)


def _weights(module: nn.Module | None) -> list[nn.Parameter]:
    return list(module.parameters()) if module is not None else []


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
    #: The learning rate of each Adam epoch.
    lrs: list[float] = field(default_factory=list)
    #: How `solver: lbfgs` fitted the linear terms and crosses (empty with Adam).
    wide_fit: dict[str, Any] = field(default_factory=dict)

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
            **({"wide_fit": self.wide_fit} if self.wide_fit else {}),
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
    """Train one family on `train`, early-stopped on `valid`'s log loss; the best epoch's weights win.

    With `solver: lbfgs` the linear terms and crosses are fitted first (`_fit_wide`) and count as the
    first epoch; the deep part's Adam epochs follow with them fixed, and keep only what improves on it.
    """
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
    history: list[float] = []
    lrs: list[float] = []
    wide_fit: dict[str, Any] = {}
    if config.solver == "lbfgs":
        wide_fit = _fit_wide(module, Xt, yt, config)
        history.append(_log_loss(module, Xv, yv))
        best = (history[0], 1, copy.deepcopy(module.state_dict()))
        params = module.deep_parameters()
        wide = module.wide_parameters()
        for p in wide:
            p.requires_grad_(False)
        try:
            if params:
                best = _adam(module, params, module.deep_penalty, Xt, yt, Xv, yv, config, best, history, lrs)
        finally:
            for p in wide:
                p.requires_grad_(True)
    else:
        best = (math.inf, 0, copy.deepcopy(module.state_dict()))
        params = list(module.parameters())
        best = _adam(module, params, module.penalty, Xt, yt, Xv, yv, config, best, history, lrs)
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
        wide_fit=wide_fit,
    )


_Best = tuple[float, int, dict[str, Any]]


def _adam(
    module: CtrModel,
    params: list[nn.Parameter],
    penalty: Callable[[float, float, float | None], torch.Tensor],
    Xt: torch.Tensor,
    yt: torch.Tensor,
    Xv: torch.Tensor,
    yv: torch.Tensor,
    config: NeuralConfig,
    best: _Best,
    history: list[float],
    lrs: list[float],
) -> _Best:
    """Adam epochs over `params` after the `history` so far, early-stopped on the validation log loss;
    appends each epoch's score and learning rate and returns the best (score, epoch, weights)."""
    optimiser = torch.optim.Adam(params, lr=config.lr)
    generator = torch.Generator().manual_seed(config.seed)
    n = len(yt)
    per_row = 1.0 / max(n, 1)
    first = len(history) + 1
    progress = Progress(config.family, total=config.max_epochs, unit="epochs")
    for epoch in range(first, first + config.max_epochs):
        module.train()
        order = torch.randperm(n, generator=generator)
        for s in range(0, n, config.batch_size):
            rows = order[s : s + config.batch_size]
            logits = module(Xt[rows])
            loss = nn.functional.binary_cross_entropy_with_logits(logits, yt[rows])
            # the penalty per training row: over an epoch it adds up to the full-data objective's
            loss = loss + per_row * penalty(config.l2, config.weight_decay, config.cross_l2)
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
            optimiser = torch.optim.Adam(params, lr=lrs[-1] * config.lr_decay)
    progress.close()
    return best


#: L-BFGS iterations per fit of the linear terms and crosses (each evaluates the full training set).
_LBFGS_ITERATIONS = 500
#: Bounds of an estimated standard deviation of a field's or a cross's weights.
_SD_RANGE = (1e-3, 10.0)


def _fit_wide(module: CtrModel, Xt: torch.Tensor, yt: torch.Tensor, config: NeuralConfig) -> dict[str, Any]:
    """Fit the bias, linear terms and crosses by full-batch L-BFGS to convergence of the log loss plus
    each field's and cross's L2, the deep part's output held at zero.

    Each round after the first sets every group's L2 from the last fit by MacKay's evidence
    approximation (a logistic model with a Gaussian random effect per field and per cross, its
    variance chosen to maximise the marginal likelihood): sd^2 = sum w^2 / sum h / (h + 2 L2) over the
    group's values seen in training, h a value's share of the log loss's curvature (sum p (1 - p) over
    its rows) and h / (h + 2 L2) the part of its weight the data determine; then L2 = 1 / (2 sd^2). A
    cross the data do not support shrinks toward zero, one they support keeps its weights.
    """
    if module.deep is not None:
        last = module.deep[-1]
        assert isinstance(last, nn.Linear)
        with torch.no_grad():
            last.weight.zero_()
            last.bias.zero_()
    groups = module.wide_groups()
    cross_l2 = config.l2 if config.cross_l2 is None else config.cross_l2
    linear = module.linear.weight.weight if module.linear is not None else None
    l2 = {name: config.l2 if table is linear else cross_l2 for name, table, _ in groups}
    params = module.wide_parameters()
    n = max(len(yt), 1)
    with torch.no_grad():
        rows = module.wide_rows(module.ids(Xt))
    # the tables laid end to end as `wide_rows` indexes them (the linear table first); the logit of the
    # wide part is the bias plus the sum of a row's entries, the deep part's being zero
    tables = list({id(t): t for _, t, _ in groups}.values())
    base = {id(t): sum(x.shape[0] for x in tables[:k]) for k, t in enumerate(tables)}
    size = sum(t.shape[0] for t in tables)

    def logit() -> torch.Tensor:
        return module.bias + torch.cat([t.reshape(-1) for t in tables])[rows].sum(dim=1)

    def penalties() -> torch.Tensor:
        """Each entry's L2 (an entry outside every group, none)."""
        out = torch.zeros(size)
        for name, table, part in groups:
            out[base[id(table)] + part.start : base[id(table)] + part.stop] = l2[name]
        return out

    iterations: list[int] = []
    sd: dict[str, float] = {}
    progress = Progress(f"{config.family} (L-BFGS)", total=config.evidence_rounds, unit="fits")
    for round_ in range(config.evidence_rounds):
        if round_:
            with torch.no_grad():
                p = torch.sigmoid(logit())
                weights = (p * (1 - p)).unsqueeze(1).expand_as(rows).reshape(-1).double()
                curvature = torch.bincount(rows.reshape(-1), weights=weights, minlength=size)
            for name, table, part in groups:
                h = curvature[base[id(table)] + part.start : base[id(table)] + part.stop]
                w = table[part].detach().double().reshape(-1)
                seen = h > 0
                if not bool(seen.any()):
                    continue
                # each value's share of its weight that the data determine rather than the prior
                determined = float((h[seen] / (h[seen] + 2 * l2[name])).sum())
                var = float((w[seen] ** 2).sum()) / max(determined, 1e-9)
                sd[name] = min(max(math.sqrt(var), _SD_RANGE[0]), _SD_RANGE[1])
                l2[name] = 1.0 / (2 * sd[name] ** 2)
        lam = penalties()
        lbfgs = torch.optim.LBFGS(
            params,
            lr=1.0,
            max_iter=_LBFGS_ITERATIONS,
            history_size=20,
            line_search_fn="strong_wolfe",
            tolerance_grad=1e-7,
            tolerance_change=1e-10,
        )

        def closure(lbfgs: torch.optim.LBFGS = lbfgs, lam: torch.Tensor = lam) -> torch.Tensor:
            lbfgs.zero_grad(set_to_none=True)
            flat = torch.cat([t.reshape(-1) for t in tables])
            loss = nn.functional.binary_cross_entropy_with_logits(module.bias + flat[rows].sum(dim=1), yt)
            loss = loss + (lam * flat.pow(2)).sum() / n
            loss.backward()
            return loss

        lbfgs.step(closure)
        iterations.append(int(lbfgs.state[params[0]]["n_iter"]))
        progress.label = f"{config.family} (L-BFGS fit {round_ + 1}, {iterations[-1]} iterations)"
        progress.update(1)
    progress.close()
    return {
        "solver": "lbfgs",
        "fits": len(iterations),
        "iterations": iterations,
        "l2": {name: round(value, 4) for name, value in l2.items()},
        "sd": {name: round(value, 4) for name, value in sd.items()},
    }
