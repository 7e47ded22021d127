"""Training and evaluation (notebook 3): XGBoost locally or as a SageMaker job, judged against the truth.

Entry point: `train_and_publish(ctx, TrainOptions(...)) -> TrainResult` (what `aik train`, notebook 3
and the demo call). Modules: `presets` (hyperparameters), `data` (reading the parquet splits),
`model` (local xgboost), `sagemaker_job` (the cloud path), `evaluate` (metrics, calibration, oracle),
`baselines` (logistic regression, MLP), `plots` (PNG reports), `gates`, `metrics` (metrics.json),
`options`, `stages` and `assess` (the stages of a run), `workflow` (the run).
"""

import os

# xgboost and scikit-learn use GNU OpenMP, whose idle threads spin by default and slow boosting down badly
# on a shared or busy CPU (docs/training.md). Set before they load libgomp; a user's own value wins.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from aik.train.gates import GateFailed, GateLimits, GateResult
    from aik.train.presets import PRESETS, TrainConfig, resolve
    from aik.train.workflow import TrainOptions, TrainResult, train_and_publish

#: Public names -> the module defining them, imported on first use so that `aik --help` (which reads the
#: presets and gate defaults) does not load xgboost, scikit-learn and the SageMaker SDK.
_EXPORTS = {
    "PRESETS": "aik.train.presets",
    "TrainConfig": "aik.train.presets",
    "resolve": "aik.train.presets",
    "GateFailed": "aik.train.gates",
    "GateLimits": "aik.train.gates",
    "GateResult": "aik.train.gates",
    "TrainOptions": "aik.train.workflow",
    "TrainResult": "aik.train.workflow",
    "train_and_publish": "aik.train.workflow",
}

__all__ = [
    "PRESETS",
    "GateFailed",
    "GateLimits",
    "GateResult",
    "TrainConfig",
    "TrainOptions",
    "TrainResult",
    "resolve",
    "train_and_publish",
]


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'aik.train' has no attribute {name!r}")
