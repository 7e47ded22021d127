"""Spark ML baselines on the pipeline's splits: logistic regression and MLlib's multilayer perceptron.

The path for data that outgrows one machine: Spark reads the split's parquet where it lies (a local
directory here, S3 on EMR) and trains with Spark ML; the backtest judges the candidate on the same
test rows as every other. Every feature is one-hot encoded in the JVM (OneHotEncoder, the field's size
fixed through the column's ML attribute), a value outside the field's range taking the field's last
slot, as in the PyTorch families; training adds rows with an index column set to unseen, drawn
uniformly over that column's values (as `aik.train.model.add_unseen_rows`), so that slot learns the
average effect of a value.

- `spark-logreg`: `pyspark.ml.classification.LogisticRegression`, L2 without standardisation (a
  prior per value, as the `logreg` family). Its coefficients are exactly the `logreg` family's tables,
  so the model is written as a `logreg` model (`model.pt`) and served as one, through the same ONNX
  export; the conversion is checked against Spark's own predictions on the test rows.
- `spark-mlp`: `MultilayerPerceptronClassifier` (sigmoid hidden layers, softmax output, L-BFGS). It
  stacks its inputs into dense blocks, so the long tail of domains and cities (codes at or past
  `max_categories`: the indexer's codes run in descending frequency) shares one input; it has no
  regularisation, so it is early-stopped on the validation split's log loss, `iterations_per_check`
  L-BFGS iterations at a time from the previous weights. Its weights are kept as a plain NumPy forward
  pass (checked against Spark's predictions). No export to the server's formats is built, so it is a
  baseline only.
"""

from __future__ import annotations

import io
import json
import logging
import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from typing import TYPE_CHECKING, Any

import numpy as np

from aik.errors import AikError, ArtifactError
from aik.schema import FEATURE_COLUMNS, LABEL
from aik.train.families import SPARK_FAMILIES
from aik.train.families.config import parse_hidden, parse_overrides

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

log = logging.getLogger(__name__)

#: The model file of a spark-mlp candidate (NumPy arrays, `np.savez`).
MLP_FILE = "model.npz"
#: Largest |converted model - Spark| probability on the test rows the conversion may show.
PARITY_TOLERANCE = 1e-5
_FORMAT = "aik-spark-mlp-1"


@dataclass(frozen=True)
class SparkConfig:
    """Hyperparameters of a Spark ML candidate."""

    family: str
    #: L2 per training row (spark-logreg), as the `logreg` family's `l2`: Spark's regParam = 2 l2 / rows.
    l2: float = 1.0
    #: L-BFGS iterations in all (spark-logreg) or at most (spark-mlp).
    max_iter: int = 100
    #: Hidden layer widths (spark-mlp).
    hidden: tuple[int, ...] = (8,)
    #: Distinct inputs per field at most (spark-mlp): codes from here on share one.
    max_categories: int = 50
    #: spark-mlp: iterations between two looks at the validation log loss.
    iterations_per_check: int = 10
    #: spark-mlp: stop after this many checks without a better validation log loss.
    patience: int = 2
    unseen_fraction: float = 0.01
    seed: int = 0

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready."""
        out = asdict(self)
        out["hidden"] = list(self.hidden)
        return out


def _spark_value(name: str, value: Any) -> Any:
    if name == "hidden":
        return parse_hidden(value)
    if name in ("l2", "unseen_fraction"):
        return float(value)
    return int(value)


def resolve_spark(
    family: str, overrides: Mapping[str, Any] | None = None, seed: int | None = None
) -> SparkConfig:
    """The family's defaults with overrides by field name; unknown names and bad values raise AikError."""
    if family not in SPARK_FAMILIES:
        raise AikError(f"unknown Spark ML family {family!r} (choose from {', '.join(SPARK_FAMILIES)})")
    changes = parse_overrides(family, SparkConfig, overrides, _spark_value)
    if seed is not None:
        changes["seed"] = seed
    config = replace(SparkConfig(family=family), **changes)
    if config.max_iter < 1 or config.iterations_per_check < 1 or config.patience < 1:
        raise AikError(f"{family}: max_iter, iterations_per_check and patience must be at least 1")
    if config.max_categories < 2 or not config.hidden or min(config.hidden) < 1:
        raise AikError(f"{family}: max_categories must be at least 2 and hidden a list of widths >= 1")
    if config.l2 < 0 or not 0.0 <= config.unseen_fraction < 0.5:
        raise AikError(f"{family}: l2 must be >= 0 and unseen_fraction in [0, 0.5)")
    return config


def slot_sizes(config: SparkConfig, cards: Sequence[int]) -> tuple[int, ...]:
    """Inputs per field: every value and one more slot (spark-mlp: at most max_categories, then one)."""
    if config.family == "spark-logreg":
        return tuple(c + 1 for c in cards)
    return tuple(min(c, config.max_categories) + 1 for c in cards)


def slots(X: np.ndarray, sizes: Sequence[int], cards: Sequence[int]) -> np.ndarray:
    """Per-field slots of float rows, as `_encode` computes them in Spark (NaN and out of range: last)."""
    out = np.empty(X.shape, dtype=np.int64)
    for j, (size, card) in enumerate(zip(sizes, cards, strict=True)):
        x = X[:, j]
        with np.errstate(invalid="ignore"):
            valid = np.isfinite(x) & (x >= 0) & (x < card)
        code = np.where(valid, np.floor(np.where(valid, x, 0)), card).astype(np.int64)
        out[:, j] = np.minimum(code, size - 1)
    return out


@dataclass
class SparkMlp:
    """A trained MLlib perceptron as a NumPy forward pass over the one-hot slots."""

    config: SparkConfig
    cards: tuple[int, ...]
    layers: tuple[int, ...]
    weights: np.ndarray
    feature_names: list[str]

    @property
    def family(self) -> str:
        """The family's name."""
        return self.config.family

    def num_features(self) -> int:
        """Features the model reads (as `xgboost.Booster.num_features`)."""
        return len(self.feature_names)

    def _affine(self) -> list[tuple[np.ndarray, np.ndarray]]:
        # MLlib's layout: per layer a (out x in) matrix in column-major order, then the bias
        out, at = [], 0
        for n_in, n_out in zip(self.layers[:-1], self.layers[1:], strict=True):
            w = self.weights[at : at + n_in * n_out].reshape(
                n_in, n_out
            )  # column-major (out, in) = (in, out)
            at += n_in * n_out
            out.append((w, self.weights[at : at + n_out]))
            at += n_out
        return out

    def predict(self, X: np.ndarray) -> np.ndarray:
        """Probabilities of label 1 for rows in FEATURE_COLUMNS order."""
        sizes = slot_sizes(self.config, self.cards)
        ids = slots(np.asarray(X, dtype=np.float64), sizes, self.cards)
        offsets = np.concatenate([[0], np.cumsum(sizes)[:-1]])
        (w0, b0), *rest = self._affine()
        h = w0[ids + offsets].sum(axis=1) + b0  # the first layer of a one-hot input: a sum of rows
        for w, b in rest:
            h = 1.0 / (1.0 + np.exp(-h))
            h = h @ w + b
        return (1.0 / (1.0 + np.exp(-(h[:, 1] - h[:, 0])))).astype(np.float32)  # softmax of two

    def to_bytes(self) -> bytes:
        """The model file (`np.savez`: the config, field sizes, layers and MLlib's weight vector)."""
        buffer = io.BytesIO()
        meta = {"format": _FORMAT, "config": self.config.as_dict(), "features": self.feature_names}
        np.savez(
            buffer,
            meta=np.array(json.dumps(meta)),
            cards=np.array(self.cards),
            layers=np.array(self.layers),
            weights=self.weights,
        )
        return buffer.getvalue()

    @classmethod
    def from_bytes(cls, data: bytes, uri: str = "<bytes>") -> SparkMlp:
        """Read a model file; anything else is reported with its URI."""
        try:
            with np.load(io.BytesIO(data), allow_pickle=False) as doc:
                meta = json.loads(str(doc["meta"]))
                cards, layers, weights = doc["cards"], doc["layers"], doc["weights"]
        except Exception as exc:  # numpy raises zip, key and value errors alike
            raise ArtifactError(uri, f"not a spark-mlp model file ({exc})") from exc
        if meta.get("format") != _FORMAT:
            raise ArtifactError(uri, f"not a {_FORMAT} model file")
        values = dict(meta["config"])
        values["hidden"] = tuple(values["hidden"])
        return cls(
            SparkConfig(**values),
            tuple(int(c) for c in cards),
            tuple(int(n) for n in layers),
            np.asarray(weights, dtype=np.float64),
            list(meta["features"]),
        )

    def describe(self) -> dict[str, Any]:
        """What the report says about the model."""
        return {
            "family": self.family,
            "parameters": int(self.weights.size),
            "layers": list(self.layers),
            "config": self.config.as_dict(),
            "servable": False,
        }


@dataclass
class TrainedSpark:
    """A trained Spark ML candidate and how it was reached."""

    model: Any  # a `logreg` NeuralModel (spark-logreg) or a SparkMlp
    info: dict[str, Any]


def _encode(df: DataFrame, sizes: Sequence[int], cards: Sequence[int], features: Sequence[str]) -> DataFrame:
    """Per-field slot columns with their size as the ML attribute, one-hot encoded and assembled."""
    from pyspark.ml.feature import OneHotEncoder, VectorAssembler
    from pyspark.sql import functions as F

    slot_columns = []
    for name, size, card in zip(FEATURE_COLUMNS, sizes, cards, strict=True):
        col = F.col(name).cast("double")
        valid = (
            col.isNotNull() & ~F.isnan(col) & (col >= 0) & (col < card) if name in features else F.lit(False)
        )
        code = F.when(valid, F.floor(col)).otherwise(F.lit(card))
        slot = F.least(code, F.lit(size - 1)).cast("double")
        meta = {"ml_attr": {"type": "nominal", "num_vals": int(size), "name": f"{name}_slot"}}
        slot_columns.append(slot.alias(f"{name}_slot", metadata=meta))
    kept = [F.col("_row")] if "_row" in df.columns else []  # a `_frame`'s row order
    slotted = df.select(F.col(LABEL).cast("double").alias(LABEL), *slot_columns, *kept)
    inputs = [f"{name}_slot" for name in FEATURE_COLUMNS]
    encoder = OneHotEncoder(
        inputCols=inputs, outputCols=[f"{c}_hot" for c in inputs], dropLast=False, handleInvalid="error"
    )
    hot = encoder.fit(slotted).transform(slotted)
    return VectorAssembler(inputCols=[f"{c}_hot" for c in inputs], outputCol="features").transform(hot)


def _with_unseen(df: DataFrame, unseen: Mapping[str, int], fraction: float, seed: int) -> DataFrame:
    """Append, per index column, about `fraction` of the rows with the unseen code, uniform over values."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    if fraction <= 0 or not unseen:
        return df
    total = df.count()
    extra = []
    for k, column in enumerate(unseen):
        values = df.select(column).distinct().count()
        if values == 0:
            continue
        per_value = F.count(F.lit(1)).over(Window.partitionBy(column))
        # a row of a value with `c` rows is kept with probability fraction * total / (values * c)
        keep = F.rand(seed + k) < F.lit(fraction * total / values) / per_value
        extra.append(
            df.withColumn("_keep", keep)
            .where("_keep")
            .drop("_keep")
            .withColumn(column, F.lit(float(unseen[column])))
        )
    for part in extra:
        df = df.unionByName(part)
    return df


def _frame(spark: SparkSession, X: np.ndarray, y: np.ndarray) -> DataFrame:
    """Rows in memory as a Spark DataFrame with their position (`_row`), to score in order."""
    from pyspark.sql.types import DoubleType, LongType, StructField, StructType

    columns = [StructField(c, DoubleType()) for c in (LABEL, *FEATURE_COLUMNS)]
    schema = StructType([*columns, StructField("_row", LongType())])
    values = np.column_stack([np.asarray(y, dtype=np.float64), np.asarray(X, dtype=np.float64)])
    rows = [(*map(float, r), i) for i, r in enumerate(values)]  # NaN stays NaN: read as missing
    return spark.createDataFrame(rows, schema)


def _probabilities(model: Any, frame: DataFrame) -> np.ndarray:
    """Spark's probability of label 1 per row of a `_frame`, in row order."""
    from pyspark.ml.functions import vector_to_array
    from pyspark.sql import functions as F

    scored = model.transform(frame).select("_row", vector_to_array(F.col("probability"))[1].alias("p"))
    return np.array([r["p"] for r in scored.orderBy("_row").collect()], dtype=np.float64)


def _log_loss(y: np.ndarray, p: np.ndarray) -> float:
    p = np.clip(p, 1e-15, 1 - 1e-15)
    return float(-np.mean(y * np.log(p) + (1 - y) * np.log(1 - p)))


def train_spark(
    spark: SparkSession,
    train: DataFrame,
    valid: tuple[np.ndarray, np.ndarray],
    test_X: np.ndarray,
    config: SparkConfig,
    cards: Sequence[int],
    *,
    unseen: Mapping[str, int] | None = None,
    features: Sequence[str] = FEATURE_COLUMNS,
) -> TrainedSpark:
    """Train a Spark ML candidate on `train` (a DataFrame of the split's columns); the model to judge."""
    start = time.monotonic()
    sizes = slot_sizes(config, cards)
    train = train.cache()  # read once: counted and sampled per index column below
    rows = _with_unseen(train, dict(unseen or {}), config.unseen_fraction, config.seed)
    data = _encode(rows, sizes, cards, features).select(LABEL, "features").cache()
    n = data.count()
    valid_frame = _encode(_frame(spark, *valid), sizes, cards, features)
    test_frame = _encode(_frame(spark, test_X, np.zeros(len(test_X))), sizes, cards, features)
    info: dict[str, Any] = {"source": "spark", "family": config.family, "train_rows_with_unseen": n}
    if config.family == "spark-logreg":
        model, info = _train_logreg(data, valid, valid_frame, test_frame, test_X, config, cards, n, info)
    else:
        model, info = _train_mlp(data, valid, valid_frame, test_frame, test_X, config, cards, sizes, info)
    data.unpersist()
    train.unpersist()
    info["train_seconds"] = round(time.monotonic() - start, 2)
    info["spark_version"] = spark.version
    return TrainedSpark(model, info)


def _train_logreg(
    data: DataFrame,
    valid: tuple[np.ndarray, np.ndarray],
    valid_frame: DataFrame,
    test_frame: DataFrame,
    test_X: np.ndarray,
    config: SparkConfig,
    cards: Sequence[int],
    n: int,
    info: dict[str, Any],
) -> tuple[Any, dict[str, Any]]:
    import torch
    from pyspark.ml.classification import LogisticRegression

    from aik.train.families.config import resolve_neural
    from aik.train.families.neural import CtrModel, NeuralModel

    reg = 2.0 * config.l2 / max(n, 1)  # Spark: mean log loss + reg/2 |w|^2; here l2/n |w|^2
    fitted = LogisticRegression(
        featuresCol="features",
        labelCol=LABEL,
        regParam=reg,
        elasticNetParam=0.0,
        standardization=False,
        maxIter=config.max_iter,
        tol=1e-8,
    ).fit(data)
    neural = resolve_neural("logreg", {"l2": config.l2}, seed=config.seed)
    module = CtrModel(neural, cards)
    assert module.linear is not None  # the logreg family always has its linear tables
    with torch.no_grad():
        module.bias.fill_(float(fitted.intercept))
        module.linear.weight.weight[:, 0] = torch.tensor(fitted.coefficients.toArray(), dtype=torch.float32)
    model = NeuralModel(neural, tuple(cards), module.eval())
    spark_p = _probabilities(fitted, test_frame)
    diff = float(np.max(np.abs(model.predict(test_X).astype(np.float64) - spark_p))) if len(spark_p) else 0.0
    if diff > PARITY_TOLERANCE:
        raise AikError(
            f"spark-logreg: the converted model differs from Spark's by {diff:.2e} on the test rows"
        )
    info.update(
        {
            "reg_param": reg,
            "iterations": int(fitted.summary.totalIterations),
            "valid_logloss": round(_log_loss(valid[1], _probabilities(fitted, valid_frame)), 6),
            "served_as": "logreg",
            "conversion_max_abs_diff": diff,
        }
    )
    return model, info


def _train_mlp(
    data: DataFrame,
    valid: tuple[np.ndarray, np.ndarray],
    valid_frame: DataFrame,
    test_frame: DataFrame,
    test_X: np.ndarray,
    config: SparkConfig,
    cards: Sequence[int],
    sizes: Sequence[int],
    info: dict[str, Any],
) -> tuple[Any, dict[str, Any]]:
    from pyspark.ml.classification import MultilayerPerceptronClassifier
    from pyspark.ml.linalg import Vectors

    layers = (int(sum(sizes)), *config.hidden, 2)
    weights = None
    best: tuple[float, int, Any] = (math.inf, 0, None)
    history: list[float] = []
    done = 0
    while done < config.max_iter:
        step = min(config.iterations_per_check, config.max_iter - done)
        trainer = MultilayerPerceptronClassifier(
            featuresCol="features",
            labelCol=LABEL,
            layers=list(layers),
            maxIter=step,
            seed=config.seed,
            tol=1e-9,
        )
        if weights is not None:
            trainer.setInitialWeights(Vectors.dense(weights))
        fitted = trainer.fit(data)
        weights = fitted.weights.toArray()
        done += step
        score = _log_loss(valid[1], _probabilities(fitted, valid_frame))
        history.append(round(score, 6))
        log.info("spark-mlp: %d/%d iterations, valid logloss %.5f", done, config.max_iter, score)
        if score < best[0] - 1e-6:
            best = (score, done, fitted)
        elif len(history) - best[1] // config.iterations_per_check >= config.patience:
            break
    fitted = best[2]
    model = SparkMlp(config, tuple(cards), layers, fitted.weights.toArray(), list(FEATURE_COLUMNS))
    spark_p = _probabilities(fitted, test_frame)
    diff = float(np.max(np.abs(model.predict(test_X).astype(np.float64) - spark_p))) if len(spark_p) else 0.0
    if diff > PARITY_TOLERANCE:
        raise AikError(
            f"spark-mlp: the NumPy forward pass differs from Spark's by {diff:.2e} on the test rows"
        )
    info.update(
        {
            "layers": list(layers),
            "best_iterations": best[1],
            "iterations": done,
            "valid_logloss": round(best[0], 6),
            "history": history,
            "served_as": None,
            "numpy_max_abs_diff": diff,
        }
    )
    return model, info


def train_candidate(
    train_uri: str,
    valid: Any,
    test_X: np.ndarray,
    candidate: Any,
    cards: Sequence[int],
    unseen: Mapping[str, int],
    *,
    max_rows: int | None,
    threads: int | None,
) -> TrainedSpark:
    """A backtest candidate (`aik.backtest.spec.Candidate`): Spark reads the train split and trains.

    The candidate's window (days, then a seeded sample of `train_rows`) and the backtest's `max_rows`
    are applied in Spark; the feature subset reads the other features as missing, as for the others.
    """
    from pyspark.sql import functions as F

    from aik.features.spark import local_session

    config = resolve_spark(candidate.family, candidate.params, seed=candidate.seed)
    spark = local_session(  # threads None: every core
        "aik-backtest", cores=threads, shuffle_partitions=max(2, threads or 2), driver_memory="2g"
    )
    train = spark.read.parquet(train_uri).where(F.col(LABEL).isNotNull())
    if candidate.window.days:
        train = train.where(F.col("dow").isin(list(candidate.window.days)))
    limits = [n for n in (max_rows, candidate.window.train_rows) if n is not None]
    if limits:
        train = train.orderBy(F.rand(candidate.seed)).limit(min(limits))
    return train_spark(
        spark, train, (valid.X, valid.y), test_X, config, cards, unseen=unseen, features=candidate.features
    )
