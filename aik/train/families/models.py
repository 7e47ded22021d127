"""One interface over the families' models for the workflow and backtests: file name, load, predict, describe.

An XGBoost model is an `xgboost.Booster` (UBJSON file); a PyTorch family's is a `NeuralModel` (its
`torch.save` file). Both expose `num_features()` and `feature_names`, which the features gate reads.
PyTorch is imported only when a neural family is used.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from aik.errors import AikError
from aik.train.families import FAMILIES, NEURAL_FAMILIES

if TYPE_CHECKING:
    import xgboost as xgb
    from typing_extensions import TypeIs

    from aik.train.families.neural import NeuralModel
    from aik.train.families.spark_ml import SparkMlp

    Model = xgb.Booster | NeuralModel | SparkMlp
else:
    Model = Any

#: The file a neural family's candidate is written to (the booster keeps the published model's name).
NEURAL_FILE = "model.pt"
#: The file of a neural model's ONNX export in its release.
ONNX_FILE = "model.onnx"


def check_family(family: str) -> str:
    """The family's name (`aik train --model`), or AikError naming the choices."""
    if family not in FAMILIES:
        raise AikError(f"unknown model family {family!r} (choose from {', '.join(FAMILIES)})")
    return family


def is_neural(family: str) -> bool:
    """Trained with PyTorch (the `neural` extra)."""
    return family in NEURAL_FAMILIES


def needs_torch(family: str) -> bool:
    """The family's model is a PyTorch module (the neural families, and spark-logreg's converted model)."""
    return family in NEURAL_FAMILIES or family == "spark-logreg"


def file_name(family: str) -> str:
    """The file a candidate of the family is written to."""
    if family == "xgboost":
        return "model.ubj"
    return "model.npz" if family == "spark-mlp" else NEURAL_FILE


def served_as(family: str) -> str:
    """How a release of the family's model is served: the booster, ONNX, or not at all (a baseline)."""
    if family == "xgboost":
        return "booster"
    if family == "spark-mlp":
        return "baseline only"
    return "logreg (ONNX)" if family == "spark-logreg" else "ONNX"


def require_torch(family: str) -> None:
    """AikError with the install hint when PyTorch is missing."""
    try:
        import torch  # noqa: F401
    except ImportError as exc:
        raise AikError(
            f"--model {family} needs PyTorch: pip install 'advertising-intelligence-kit[neural]' "
            "(the README's 'Model families' says how to get the CPU build)"
        ) from exc


def load_model(family: str, data: bytes, uri: str = "<bytes>") -> Model:
    """The family's model from its file's bytes (a corrupt file raises ArtifactError with its URI)."""
    if family == "spark-mlp":
        from aik.train.families.spark_ml import SparkMlp

        return SparkMlp.from_bytes(data, uri)
    if needs_torch(family):
        from aik.train.families.neural import NeuralModel

        return NeuralModel.from_bytes(data, uri)
    from aik.train.model import load_booster

    return load_booster(data, uri)


def is_booster(model: Model) -> TypeIs[xgb.Booster]:
    """An xgboost booster (the other families' models are `NeuralModel`s)."""
    import xgboost as xgb

    return isinstance(model, xgb.Booster)


def is_spark_mlp(model: Model) -> TypeIs[SparkMlp]:
    """A spark-mlp model (a NumPy forward pass; the other non-booster models are `NeuralModel`s)."""
    from aik.train.families.spark_ml import SparkMlp

    return isinstance(model, SparkMlp)


def is_torch_model(model: Model) -> TypeIs[NeuralModel]:
    """A PyTorch model (imports PyTorch: ask `is_booster` first)."""
    from aik.train.families.neural import NeuralModel

    return isinstance(model, NeuralModel)


def model_bytes(model: Model) -> bytes:
    """The model's file."""
    if not is_booster(model):
        return model.to_bytes()
    from aik.train.model import model_bytes as booster_bytes

    return booster_bytes(model)


def predict(model: Model, X: np.ndarray) -> np.ndarray:
    """Probabilities for rows in FEATURE_COLUMNS order."""
    if not is_booster(model):
        return np.asarray(model.predict(X), dtype=np.float32)
    from aik.train.model import predict as booster_predict

    return booster_predict(model, X)


def describe(model: Model) -> dict[str, Any]:
    """What metrics.json's `model` says about the model beyond its file (format, size, structure)."""
    if not is_booster(model):
        fmt = "numpy savez" if is_spark_mlp(model) else "torch.save (weights_only)"
        return {"format": fmt, **model.describe()}
    return {
        "family": "xgboost",
        "format": "ubjson",
        "features": list(model.feature_names or []),
        "feature_types": list(model.feature_types or []),
        "trees": model.num_boosted_rounds(),
    }


def per_request_seconds(model: Model, rows: np.ndarray, repeat: int = 1) -> float:
    """Median seconds to score one request at a time in the model's own runtime (not the server's).

    The booster scores through `inplace_predict`, a PyTorch family through its module's forward pass
    without gradients, spark-mlp through its NumPy forward pass: the cost a Python process pays per
    request, a comparison between families.
    """
    import time

    if is_booster(model):

        def score(row: np.ndarray) -> Any:
            return model.inplace_predict(row)
    elif is_spark_mlp(model):

        def score(row: np.ndarray) -> Any:
            return model.predict(row)
    else:
        import torch

        module = model.module
        module.eval()

        def score(row: np.ndarray) -> Any:
            with torch.no_grad():
                return module(torch.from_numpy(row))

    times = []
    for _ in range(repeat):
        for i in range(len(rows)):
            row = np.ascontiguousarray(rows[i : i + 1], dtype=np.float32)
            start = time.perf_counter()
            score(row)
            times.append(time.perf_counter() - start)
    return float(np.median(times)) if times else float("nan")
