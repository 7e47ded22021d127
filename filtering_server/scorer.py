"""What a served release scores with: feature rows in, probabilities out (`Scorer`).

The server turns raw requests into the pipeline's feature rows (`model.ServedModel`) and hands them
to the release's scorer: the compiled XGBoost trees (`forest.Forest`) for a booster, an ONNX Runtime
session (`onnx_scorer.OnnxScorer`) for the PyTorch families. One scorer per loaded release, immutable
once built, safe to call from every connection thread at once; a server holding several releases holds
one each.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Protocol

import numpy as np

#: `predict7(f0, ..., f6)`: the probability of one row of the seven features, as floats.
Predict7 = Callable[[float, float, float, float, float, float, float], float]


class Scorer(Protocol):
    """Scores batches of feature rows (FEATURE_COLUMNS order, float; NaN is a missing value)."""

    @property
    def family(self) -> str:
        """The model family it scores (`xgboost`, `logreg`, `fm`, `mlp`, `wide-deep`)."""
        ...

    @property
    def num_feature(self) -> int:
        """How many features a row has."""
        ...

    @property
    def category_encodings(self) -> Mapping[int, tuple[Any, ...]]:
        """Feature position -> the training categories a raw code is re-coded to (usually empty)."""
        ...

    @property
    def predict7(self) -> Predict7:
        """The probability for one row given as seven floats: the server's one-request path."""
        ...

    def predict(self, x: np.ndarray) -> np.ndarray:
        """Probabilities (float64) for a 2-D array of rows: the batch path."""
        ...

    def describe(self) -> str:
        """A few words for the log: what the model is and how it is scored."""
        ...
