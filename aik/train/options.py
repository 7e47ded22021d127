"""What `aik train`, notebook 3 and the demo ask a training run to do."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from aik.train.gates import GateLimits

if TYPE_CHECKING:
    from aik.train.sagemaker_job import SageMakerJob


@dataclass(frozen=True)
class TrainOptions:
    """What `aik train` was asked to do (every field has the CLI's default)."""

    #: The model family (`aik.train.families.FAMILIES`); `preset` is xgboost's, `overrides` any family's.
    family: str = "xgboost"
    preset: str | None = None  # None: "default" locally, "numeric" on SageMaker
    overrides: Mapping[str, Any] = field(default_factory=dict)
    use_case: str = "bid-filtering"
    seed: int = 0
    #: Cap on the rows read from each split (a seeded uniform sample above it); None reads everything.
    max_rows: int | None = None
    publish: bool = True
    baselines: bool = True
    baseline_max_rows: int = 200_000
    #: The chosen lower threshold keeps this share of the positives on the validation split.
    target_recall: float = 0.95
    limits: GateLimits = field(default_factory=GateLimits)
    #: Evaluate, gate and publish this model file (of `family`) instead of training one.
    model_uri: str | None = None
    #: Train as a SageMaker job instead of locally.
    sagemaker: SageMakerJob | None = None
    nthread: int | None = None
    keep_candidates: int = 10
