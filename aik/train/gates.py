"""Gates a model must pass before it is published: the server would otherwise serve whatever we write.

Each gate is checked on the model file as written (reloaded from its bytes) and on its predictions
for the test split: the feature list matches the pipeline's, predictions are finite, the AUC clears a
floor, and the mean prediction is close to the base rate (a relative tolerance, widened to four
standard errors of the observed rate so that small or very unbalanced test splits do not trip it).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from aik.errors import AikError

if TYPE_CHECKING:
    pass


@dataclass(frozen=True)
class GateLimits:
    """Thresholds of the gates (CLI: --min-auc, --max-mean-error, --min-oracle-ratio)."""

    min_auc: float = 0.55
    #: Largest |mean prediction - base rate| / base rate (before the statistical allowance).
    max_mean_error: float = 0.2
    #: Optional floor of auc / oracle_auc, checked only when the truth is known (synthetic data).
    min_oracle_ratio: float | None = None


@dataclass(frozen=True)
class GateResult:
    """One gate's verdict, with the reason in words."""

    name: str
    passed: bool
    message: str

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready."""
        return asdict(self)


class GateFailed(AikError):
    """The model failed at least one gate: it was not published and the previous model is untouched."""

    def __init__(self, failures: Sequence[GateResult], result: Any = None) -> None:
        self.failures = list(failures)
        self.result = result
        reasons = "; ".join(f"{g.name}: {g.message}" for g in self.failures)
        super().__init__(f"model not published, the previous one stays in place ({reasons})")


class HasFeatures(Protocol):
    """What the features gate reads of a model (an xgboost booster or a `NeuralModel`)."""

    @property
    def feature_names(self) -> Sequence[str] | None: ...

    def num_features(self) -> int: ...


def features_gate(booster: HasFeatures, pipeline_columns: Sequence[str]) -> GateResult:
    """The model's features are the pipeline's, in order (names when the model carries them)."""
    count = booster.num_features()
    names = list(booster.feature_names or [])
    expected = list(pipeline_columns)
    if count != len(expected):
        return GateResult(
            "features",
            False,
            f"the model has {count} features, the pipeline's splits have {len(expected)} "
            f"({', '.join(expected)})",
        )
    if names and names != expected:
        return GateResult("features", False, f"feature names {names} differ from the pipeline's {expected}")
    return GateResult("features", True, f"{count} features in the pipeline's order")


def finite_gate(p: np.ndarray) -> GateResult:
    """Every prediction is a finite probability."""
    bad = int(np.sum(~np.isfinite(p)))
    if bad:
        return GateResult("finite_predictions", False, f"{bad} of {len(p)} predictions are NaN or infinite")
    outside = int(np.sum((p < 0) | (p > 1)))
    if outside:
        return GateResult("finite_predictions", False, f"{outside} predictions are outside [0, 1]")
    return GateResult("finite_predictions", True, f"all {len(p)} predictions finite")


def auc_gate(auc: float | None, limits: GateLimits) -> GateResult:
    """AUC at or above the floor."""
    if auc is None:
        return GateResult("auc", False, "AUC is undefined (one class in the test split, or bad predictions)")
    if auc < limits.min_auc:
        return GateResult("auc", False, f"AUC {auc:.4f} is below the floor {limits.min_auc:.4f}")
    return GateResult("auc", True, f"AUC {auc:.4f} >= {limits.min_auc:.4f}")


def calibration_gate(mean_prediction: float, base_rate: float, rows: int, limits: GateLimits) -> GateResult:
    """Mean prediction within the tolerance of the test split's base rate."""
    if not math.isfinite(mean_prediction):
        return GateResult("mean_prediction", False, "the mean prediction is not finite")
    allowed = max(
        limits.max_mean_error * base_rate, 4.0 * math.sqrt(base_rate * (1 - base_rate) / max(rows, 1))
    )
    error = abs(mean_prediction - base_rate)
    if error > allowed:
        return GateResult(
            "mean_prediction",
            False,
            f"mean prediction {mean_prediction:.4f} is far from the base rate {base_rate:.4f} "
            f"(off by {error:.4f}, allowed {allowed:.4f})",
        )
    return GateResult(
        "mean_prediction", True, f"mean prediction {mean_prediction:.4f} vs base rate {base_rate:.4f}"
    )


def onnx_parity_gate(max_abs_diff: float, rows: int, tolerance: float) -> GateResult:
    """The ONNX export scores as PyTorch does: the largest probability difference within the tolerance."""
    if not max_abs_diff <= tolerance:
        return GateResult(
            "onnx_parity",
            False,
            f"ONNX Runtime differs from PyTorch by up to {max_abs_diff:.2e} on {rows} rows "
            f"(allowed {tolerance:.0e})",
        )
    return GateResult(
        "onnx_parity", True, f"ONNX Runtime within {max_abs_diff:.2e} of PyTorch on {rows} rows"
    )


def oracle_gate(ratio: float | None, limits: GateLimits) -> GateResult | None:
    """auc / oracle_auc at or above the optional floor (None when not configured or no truth)."""
    if limits.min_oracle_ratio is None or ratio is None:
        return None
    if ratio < limits.min_oracle_ratio:
        return GateResult(
            "oracle_ratio", False, f"AUC / oracle AUC {ratio:.4f} is below {limits.min_oracle_ratio:.4f}"
        )
    return GateResult("oracle_ratio", True, f"AUC / oracle AUC {ratio:.4f} >= {limits.min_oracle_ratio:.4f}")
