"""The figures of a training run, as dataclasses, and `metrics.json` written and read in one place.

The JSON keys are a contract (docs/training.md: at least `auc`, `logloss`, `base_rate`, `mean_prediction`, and
`oracle_auc` on synthetic data; the demo, notebooks and releases read them): the test split's headline
metrics, `oracle_ratio` and the oracle's metrics sit at the top level, then `model`, `data`,
`calibration`, `baselines`, `gates`, `published`, `timings` and `plots`. `Metrics.to_dict` writes that
layout and `Metrics.from_dict` reads it back.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from aik.train.gates import GateLimits, GateResult

SCHEMA_VERSION = 1


def rounded(value: float | None, digits: int = 6) -> float | None:
    """A JSON-friendly figure: rounded, None when missing or not finite."""
    if value is None or not math.isfinite(value):
        return None
    return round(float(value), digits)


def oracle_ratio(auc: float | None, oracle_auc: float | None) -> float | None:
    """auc / oracle_auc: the share of the best achievable AUC a model reaches (None without an oracle)."""
    return rounded(auc / oracle_auc) if auc is not None and oracle_auc else None


@dataclass(frozen=True)
class SplitMetrics:
    """One model's headline metrics on one split (`aik.train.evaluate.evaluate`)."""

    rows: int
    auc: float | None = None
    logloss: float | None = None
    brier: float | None = None
    base_rate: float | None = None
    mean_prediction: float | None = None
    #: mean prediction / base rate: 1 is calibrated on average.
    calibration_ratio: float | None = None
    non_finite_predictions: int = 0
    #: Classification metrics at the fixed thresholds, by threshold ("0.5", "0.1"); None when a
    #: prediction is not finite.
    thresholds: dict[str, dict[str, Any]] | None = None
    #: At the threshold chosen on the valid split for a target recall; None when none was chosen.
    chosen_threshold: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready; the thresholds only when they were computed."""
        out = asdict(self)
        for name in ("thresholds", "chosen_threshold"):
            if out[name] is None:
                del out[name]
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SplitMetrics:
        """Read back what `to_dict` wrote (extra keys are ignored)."""
        return cls(**{f.name: data[f.name] for f in fields(cls) if f.name in data})


@dataclass(frozen=True)
class OracleMetrics:
    """The true probabilities' metrics on the test rows (synthetic data, whose truth is known)."""

    auc: float | None
    logloss: float | None
    mean_prediction: float | None
    #: Test rows with a value the pipeline never saw (the truth's effect for it is unknown: 0).
    unseen_rows: int
    #: The other use case's oracle AUC, when the labels fit that truth clearly better (a warning sign).
    auc_other_use_case: float | None = None

    def to_dict(self) -> dict[str, Any]:
        """The `oracle_*` keys of metrics.json."""
        out = {f"oracle_{k}": v for k, v in asdict(self).items()}
        if self.auc_other_use_case is None:
            del out["oracle_auc_other_use_case"]
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> OracleMetrics | None:
        """Read the `oracle_*` keys back (None when the run had no oracle)."""
        if "oracle_auc" not in data:
            return None
        values: dict[str, Any] = {f.name: data.get(f"oracle_{f.name}") for f in fields(cls)}
        return cls(**values)


@dataclass(frozen=True)
class BaselineMetrics:
    """A baseline model's metrics on the test split and what fitting it took."""

    auc: float | None
    logloss: float | None
    brier: float | None
    mean_prediction: float | None
    calibration_ratio: float | None
    oracle_ratio: float | None
    train_rows: int
    seconds: float
    params: dict[str, Any]

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> BaselineMetrics:
        """Read back what `asdict` wrote."""
        values: dict[str, Any] = {f.name: data.get(f.name) for f in fields(cls)}
        return cls(**values)


@dataclass(frozen=True)
class ModelInfo:
    """The candidate model file: where it is, its digest and size, its features and how it was made."""

    #: The model file in the run's release.
    uri: str
    candidate_uri: str
    sha256: str
    bytes: int
    format: str
    features: list[str]
    feature_types: list[str]
    trees: int
    #: The resolved training configuration (`TrainConfig.as_dict`).
    config: dict[str, Any]
    #: How the booster was made: `source` (local, sagemaker, file) and what that source reports.
    training: dict[str, Any]
    #: The model family (`aik.train.families.FAMILIES`); a neural family has no trees (0).
    family: str = "xgboost"
    #: Trainable weights of a neural family.
    parameters: int | None = None
    #: A neural family's ONNX export: file, size, parity with PyTorch (`OnnxExport.describe`).
    onnx: dict[str, Any] | None = None

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelInfo:
        """Read back what `asdict` wrote (the fields added later may be missing)."""
        return cls(
            **{f.name: data[f.name] for f in fields(cls) if f.name in data or f.name not in _LATER_FIELDS}
        )


#: ModelInfo fields metrics.json files written before them lack.
_LATER_FIELDS = ("family", "parameters", "onnx")


@dataclass(frozen=True)
class SplitData:
    """One split as read: where from, rows kept and in the files, sampling, unlabelled rows, base rate."""

    uri: str
    rows: int
    total_rows: int
    sampled: bool
    rows_without_label: int
    base_rate: float

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SplitData:
        """Read back what `asdict` wrote."""
        return cls(**{f.name: data[f.name] for f in fields(cls)})


@dataclass(frozen=True)
class GateReport:
    """Every gate's verdict and the limits they were judged against."""

    passed: bool
    limits: GateLimits
    checks: list[GateResult]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready."""
        return {
            "passed": self.passed,
            "limits": asdict(self.limits),
            "checks": [g.as_dict() for g in self.checks],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> GateReport:
        """Read back what `to_dict` wrote."""
        return cls(
            passed=data["passed"],
            limits=GateLimits(**data["limits"]),
            checks=[GateResult(**c) for c in data["checks"]],
        )


@dataclass(frozen=True)
class Metrics:
    """Everything `metrics.json` records about one run."""

    run_id: str
    #: The release the run wrote (its id is the run id).
    release: str
    created_at: str
    use_case: str
    #: The candidate's metrics on the test split.
    test: SplitMetrics
    oracle: OracleMetrics | None
    oracle_ratio: float | None
    model: ModelInfo
    data: dict[str, SplitData]
    #: Overall, per prediction decile and per advertiser (rows of `aik.train.evaluate.calibration_row`).
    calibration: dict[str, Any]
    baselines: dict[str, BaselineMetrics]
    gates: GateReport
    published: bool
    #: Seconds per stage (read_s, train_s, evaluate_s, baselines_s, total_s).
    timings: dict[str, float]
    #: Plot file name -> its path relative to the metrics file.
    plots: dict[str, str] = field(default_factory=dict)
    schema_version: int = SCHEMA_VERSION
    #: Why a run that passed its gates was not made live (a model the server cannot serve).
    not_published_because: str | None = None

    @property
    def auc(self) -> float | None:
        """The candidate's test AUC."""
        return self.test.auc

    @property
    def oracle_auc(self) -> float | None:
        """The oracle's test AUC (None without a known truth)."""
        return self.oracle.auc if self.oracle else None

    def to_dict(self) -> dict[str, Any]:
        """The metrics.json document."""
        return {
            "schema_version": self.schema_version,
            "run_id": self.run_id,
            "release": self.release,
            "created_at": self.created_at,
            "use_case": self.use_case,
            **self.test.to_dict(),
            "oracle_ratio": self.oracle_ratio,
            **(self.oracle.to_dict() if self.oracle else {}),
            "model": asdict(self.model),
            "data": {name: asdict(split) for name, split in self.data.items()},
            "calibration": self.calibration,
            "baselines": {name: asdict(b) for name, b in self.baselines.items()},
            "gates": self.gates.to_dict(),
            "published": self.published,
            **({"not_published_because": self.not_published_because} if self.not_published_because else {}),
            "timings": self.timings,
            "plots": self.plots,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Metrics:
        """Read a metrics.json document."""
        return cls(
            run_id=data["run_id"],
            release=data.get("release", data["run_id"]),
            created_at=data["created_at"],
            use_case=data["use_case"],
            test=SplitMetrics.from_dict(data),
            oracle=OracleMetrics.from_dict(data),
            oracle_ratio=data.get("oracle_ratio"),
            model=ModelInfo.from_dict(data["model"]),
            data={name: SplitData.from_dict(d) for name, d in data["data"].items()},
            calibration=data["calibration"],
            baselines={name: BaselineMetrics.from_dict(b) for name, b in data["baselines"].items()},
            gates=GateReport.from_dict(data["gates"]),
            published=data["published"],
            timings=data["timings"],
            plots=data.get("plots", {}),
            schema_version=data.get("schema_version", SCHEMA_VERSION),
            not_published_because=data.get("not_published_because"),
        )
