"""A neural family's model as ONNX, exported at training time and checked against PyTorch.

The exported graph is the whole model behind the feature transform: it takes the pipeline's float
rows (FEATURE_COLUMNS order, `features`, any number of rows) and returns the probability of label 1
(`probability`), so ONNX Runtime scores it from the same rows as the booster; its metadata names the
family and the bundle it was trained on (`aik.onnx_model`), so a server refuses it beside another
bundle as it refuses such a booster. The export uses the
TorchScript-based exporter: these graphs use only ops it covers, and on a small CPU it exports them in
seconds where the dynamo exporter takes minutes (docs/training.md). Parity is measured on rows the
caller gives (the test split, up to `PARITY_ROWS`) through ONNX Runtime.
"""

from __future__ import annotations

import io
import time
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from aik import onnx_model
from aik.train.families.neural import NeuralModel

PARITY_ROWS = 10_000
#: Largest |ONNX Runtime - PyTorch| probability a servable export may show.
PARITY_TOLERANCE = 1e-5
OPSET = 17
INPUT, OUTPUT = onnx_model.INPUT, onnx_model.OUTPUT


class _Probability(nn.Module):
    """The model's logit through the logistic: what a server returns."""

    def __init__(self, module: nn.Module) -> None:
        super().__init__()
        self.module = module

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.module(x))


@dataclass(frozen=True)
class OnnxExport:
    """The ONNX file and how closely ONNX Runtime reproduces PyTorch on the parity rows."""

    data: bytes
    parity_rows: int
    max_abs_diff: float
    seconds: float
    opset: int = OPSET
    tolerance: float = PARITY_TOLERANCE

    @property
    def within_tolerance(self) -> bool:
        """ONNX Runtime's probabilities are PyTorch's to within the tolerance."""
        return self.max_abs_diff <= self.tolerance

    def describe(self) -> dict[str, Any]:
        """What metrics.json records (everything but the bytes)."""
        out = {k: v for k, v in asdict(self).items() if k != "data"}
        out["bytes"] = len(self.data)
        return out


class OnnxScorer:
    """Scores rows with an exported model through ONNX Runtime (the session the server opens)."""

    def __init__(self, data: bytes, uri: str = "<bytes>") -> None:
        self.session = onnx_model.session(data, uri)

    def predict(self, X: np.ndarray) -> np.ndarray:
        """Probabilities of label 1 for rows in FEATURE_COLUMNS order."""
        rows = np.ascontiguousarray(X, dtype=np.float32)
        return np.asarray(self.session.run([OUTPUT], {INPUT: rows})[0], dtype=np.float32)


def export_onnx(model: NeuralModel, rows: np.ndarray, indexer_sha256: str | None = None) -> OnnxExport:
    """Export the model and measure the parity of ONNX Runtime with PyTorch on `rows` (at most 10k).

    `indexer_sha256` (`aik.releases.indexer_sha256` of the bundle it was trained on) is written into
    the file's metadata: a release's ONNX file must carry it to be served.
    """
    start = time.monotonic()
    wrapped = _Probability(model.module).eval()
    sample = torch.from_numpy(np.ascontiguousarray(rows[:2], dtype=np.float32))
    buffer = io.BytesIO()
    torch.onnx.export(
        wrapped,
        (sample,),
        buffer,  # type: ignore[arg-type]  # export writes to a file-like object too; its hints name paths
        input_names=[INPUT],
        output_names=[OUTPUT],
        dynamic_axes={INPUT: {0: "rows"}, OUTPUT: {0: "rows"}},
        opset_version=OPSET,
        dynamo=False,
    )
    data = _with_metadata(buffer.getvalue(), model.family, indexer_sha256)
    check = rows[:PARITY_ROWS]
    expected = model.predict(check)
    actual = OnnxScorer(data).predict(check)
    diff = float(np.max(np.abs(actual.astype(np.float64) - expected))) if len(check) else 0.0
    return OnnxExport(data, len(check), diff, time.monotonic() - start)


def _with_metadata(data: bytes, family: str, indexer_sha256: str | None) -> bytes:
    """The exported model with the family and its bundle's digest among its metadata properties."""
    import onnx

    proto = onnx.load_model_from_string(data)
    props = {onnx_model.FAMILY_KEY: family}
    if indexer_sha256 is not None:
        props[onnx_model.BINDING_KEY] = indexer_sha256
    onnx.helper.set_model_props(proto, props)
    return proto.SerializeToString()
