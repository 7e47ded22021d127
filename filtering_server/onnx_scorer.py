"""A neural release's scorer: its ONNX export run by ONNX Runtime (a `filtering_server.scorer.Scorer`).

Imported only when a neural release is loaded (`model.load_model`), and onnxruntime only when a
session is opened, so a server of boosters neither pays its import nor needs it installed. ONNX
Runtime parses the file in this process, unlike xgboost (`xgboost_child`): it raises on a bad file
rather than aborting, and the file's digest was checked against the release's manifest first.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from aik import onnx_model
from filtering_server.scorer import Predict7


@dataclass(frozen=True)
class OnnxScorer:
    """An ONNX Runtime session over a neural model's graph from feature rows to probabilities."""

    family: str
    session: Any
    num_feature: int
    #: ONNX Runtime's version, for the log line
    runtime: str = ""
    #: the graph maps any value to an embedding row itself: no re-coding to training categories
    category_encodings: dict[int, tuple[Any, ...]] = field(default_factory=dict)
    predict7: Predict7 = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        run = self.session.run
        outputs, name = [onnx_model.OUTPUT], onnx_model.INPUT

        def predict7(a: float, b: float, c: float, d: float, e: float, f: float, g: float) -> float:
            row = np.array([[a, b, c, d, e, f, g]], dtype=np.float32)
            return float(run(outputs, {name: row})[0].reshape(-1)[0])

        object.__setattr__(self, "predict7", predict7)

    def predict(self, x: np.ndarray) -> np.ndarray:
        """Probabilities (float64) for a 2-D array of rows (used as float32, as the export was checked)."""
        rows = np.ascontiguousarray(x, dtype=np.float32)
        if rows.ndim != 2 or rows.shape[1] != self.num_feature:
            raise ValueError(f"expected rows of {self.num_feature} features, got shape {rows.shape}")
        if rows.shape[0] == 0:
            return np.empty(0, dtype=np.float64)
        out = self.session.run([onnx_model.OUTPUT], {onnx_model.INPUT: rows})[0]
        return np.asarray(out, dtype=np.float64).reshape(-1)

    def describe(self) -> str:
        """The family and the runtime."""
        return f"{self.family} through ONNX Runtime {self.runtime}".rstrip()


def load_onnx_scorer(data: bytes, uri: str, family: str, features: int) -> tuple[OnnxScorer, dict[str, str]]:
    """The scorer of an ONNX file and its metadata (`ArtifactError` naming `uri` for a file that is not
    one or has another signature; `onnx_model.OnnxRuntimeMissing` without onnxruntime)."""
    session = onnx_model.session(data, uri)
    onnx_model.check_signature(session, features, uri)
    import onnxruntime

    return OnnxScorer(family, session, features, runtime=onnxruntime.__version__), onnx_model.metadata(
        session
    )
