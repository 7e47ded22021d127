"""EXPERIMENTS.yaml: the candidates of a backtest, read and checked before anything runs.

```yaml
name: families            # optional: names the report and the MLflow experiment's parent run
seed: 0                   # optional: every candidate's seed unless it sets its own
max_rows: null            # optional: cap on rows read from each split (a seeded sample above it)
mlflow:                   # optional
  experiment: aik-backtest
  tracking_uri: null      # default: MLFLOW_TRACKING_URI, else sqlite:///<workspace>/mlflow.db
candidates:
  - name: xgboost         # unique; defaults to the model's name
    model: xgboost        # xgboost | logreg | fm | mlp | wide-deep | spark-logreg | spark-mlp
    preset: default       # xgboost only
    params: {eta: 0.2}    # xgboost parameters / a PyTorch or Spark ML family's hyperparameters
    features: [IndexAdvertiserID, IndexDomain, device_type_id]   # a subset; the rest read as missing
    window: {days: [2, 3, 4, 5, 6], train_rows: 50000}           # training data only
```

Every candidate is judged on the same test split. A feature subset keeps the model's seven inputs (so
the model stays servable) and sets the others to missing in every split; a window keeps only the
training rows of the given days of the week (Spark's dayofweek, 1 = Sunday) and/or a seeded sample of
`train_rows`. Bad input is refused with one line naming the candidate and the key.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from aik.errors import AikError
from aik.schema import FEATURE_COLUMNS
from aik.train.families import FAMILIES, NEURAL_FAMILIES, SPARK_FAMILIES

_TOP_KEYS = {"name", "seed", "max_rows", "mlflow", "candidates"}
_CANDIDATE_KEYS = {"name", "model", "preset", "params", "features", "window", "seed"}
_WINDOW_KEYS = {"days", "train_rows"}


@dataclass(frozen=True)
class Window:
    """Which training rows a candidate sees (the validation and test splits stay whole)."""

    days: tuple[int, ...] | None = None
    train_rows: int | None = None

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready."""
        return {"days": list(self.days) if self.days else None, "train_rows": self.train_rows}


@dataclass(frozen=True)
class Candidate:
    """One model to train and judge."""

    name: str
    family: str
    preset: str | None = None
    params: Mapping[str, Any] = field(default_factory=dict)
    features: tuple[str, ...] = FEATURE_COLUMNS
    window: Window = field(default_factory=Window)
    seed: int = 0

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready (the report, MLflow params)."""
        return {
            "name": self.name,
            "model": self.family,
            "preset": self.preset,
            "params": dict(self.params),
            "features": list(self.features),
            "window": self.window.as_dict(),
            "seed": self.seed,
        }


@dataclass(frozen=True)
class Experiments:
    """A whole EXPERIMENTS.yaml."""

    name: str
    candidates: tuple[Candidate, ...]
    #: Seeds the reading of the splits (the same rows for every candidate) and each candidate's default.
    seed: int = 0
    max_rows: int | None = None
    mlflow_experiment: str = "aik-backtest"
    mlflow_tracking_uri: str | None = None


def _fail(where: str, message: str) -> AikError:
    return AikError(f"{where}: {message}")


def _positive(value: Any, where: str, key: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise _fail(where, f"{key} must be a positive whole number, got {value!r}")
    return value


def _window(doc: Any, where: str) -> Window:
    if doc is None:
        return Window()
    if not isinstance(doc, Mapping):
        raise _fail(where, "window must be a mapping (days, train_rows)")
    unknown = set(doc) - _WINDOW_KEYS
    if unknown:
        raise _fail(
            where, f"unknown window key(s) {', '.join(sorted(map(str, unknown)))} (use days, train_rows)"
        )
    days = doc.get("days")
    if days is not None:
        if (
            not isinstance(days, list)
            or not days
            or not all(isinstance(d, int) and 1 <= d <= 7 for d in days)
        ):
            raise _fail(where, f"window days must be a list of Spark dayofweek values 1-7, got {days!r}")
        days = tuple(sorted(set(days)))
    rows = doc.get("train_rows")
    return Window(
        days=days, train_rows=_positive(rows, where, "window train_rows") if rows is not None else None
    )


def _candidate(doc: Any, index: int, default_seed: int) -> Candidate:
    where = f"candidate {index + 1}"
    if not isinstance(doc, Mapping):
        raise _fail(where, "must be a mapping with at least `model`")
    if "name" in doc:
        where = f"candidate {doc['name']!r}"
    unknown = set(doc) - _CANDIDATE_KEYS
    if unknown:
        raise _fail(
            where,
            f"unknown key(s) {', '.join(sorted(map(str, unknown)))} "
            f"(use {', '.join(sorted(_CANDIDATE_KEYS))})",
        )
    family = doc.get("model")
    if family not in FAMILIES + SPARK_FAMILIES:
        raise _fail(where, f"model must be one of {', '.join(FAMILIES + SPARK_FAMILIES)}, got {family!r}")
    preset = doc.get("preset")
    if preset is not None and family != "xgboost":
        raise _fail(where, f"preset is xgboost's; {family} takes params")
    params = doc.get("params") or {}
    if not isinstance(params, Mapping):
        raise _fail(where, "params must be a mapping of name: value")
    features = doc.get("features")
    if features is None:
        features = FEATURE_COLUMNS
    else:
        if not isinstance(features, list) or not features:
            raise _fail(where, "features must be a non-empty list of feature names")
        bad = [f for f in features if f not in FEATURE_COLUMNS]
        if bad:
            raise _fail(
                where,
                f"unknown feature(s) {', '.join(map(str, bad))} (choose from {', '.join(FEATURE_COLUMNS)})",
            )
        features = tuple(c for c in FEATURE_COLUMNS if c in features)
    seed = doc.get("seed", default_seed)
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise _fail(where, f"seed must be a whole number, got {seed!r}")
    name = str(doc.get("name") or family)
    candidate = Candidate(
        name=name,
        family=family,
        preset=preset,
        params=dict(params),
        features=tuple(features),
        window=_window(doc.get("window"), where),
        seed=seed,
    )
    _check_params(candidate, where)
    return candidate


def parse_candidate(doc: Any, seed: int = 0) -> Candidate:
    """One candidate from its mapping (`Candidate.as_dict()` round-trips), checked as in a file."""
    return _candidate(doc, 0, seed)


def _check_params(candidate: Candidate, where: str) -> None:
    """Resolve the hyperparameters now, so a typo fails before any candidate trains."""
    try:
        if candidate.family in NEURAL_FAMILIES:
            from aik.train.families.config import resolve_neural

            resolve_neural(candidate.family, candidate.params, seed=candidate.seed)
        elif candidate.family in SPARK_FAMILIES:
            from aik.train.families.spark_ml import resolve_spark

            resolve_spark(candidate.family, candidate.params, seed=candidate.seed)
        else:
            from aik.train.presets import resolve

            resolve(candidate.preset or "default", candidate.params, seed=candidate.seed)
    except AikError as exc:
        raise _fail(where, str(exc)) from exc


def parse(doc: Any, source: str = "EXPERIMENTS.yaml") -> Experiments:
    """Check a parsed EXPERIMENTS document; AikError names the first problem."""
    if not isinstance(doc, Mapping):
        raise _fail(source, "must be a mapping with a `candidates` list")
    unknown = set(doc) - _TOP_KEYS
    if unknown:
        raise _fail(
            source,
            f"unknown key(s) {', '.join(sorted(map(str, unknown)))} (use {', '.join(sorted(_TOP_KEYS))})",
        )
    seed = doc.get("seed", 0)
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise _fail(source, f"seed must be a whole number, got {seed!r}")
    raw = doc.get("candidates")
    if not isinstance(raw, list) or not raw:
        raise _fail(source, "candidates must be a non-empty list")
    candidates = tuple(_candidate(c, i, seed) for i, c in enumerate(raw))
    names = [c.name for c in candidates]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise _fail(source, f"candidate names must be unique (give each a name): {', '.join(duplicates)}")
    max_rows = doc.get("max_rows")
    mlflow = doc.get("mlflow") or {}
    if not isinstance(mlflow, Mapping) or set(mlflow) - {"experiment", "tracking_uri"}:
        raise _fail(source, "mlflow takes experiment and tracking_uri")
    return Experiments(
        name=str(doc.get("name") or "backtest"),
        candidates=candidates,
        seed=seed,
        max_rows=_positive(max_rows, source, "max_rows") if max_rows is not None else None,
        mlflow_experiment=str(mlflow.get("experiment") or "aik-backtest"),
        mlflow_tracking_uri=mlflow.get("tracking_uri"),
    )


def load(uri: str) -> Experiments:
    """Read and check an EXPERIMENTS.yaml (a path or URI)."""
    import yaml

    from aik import storage

    try:
        text = storage.read_text(uri)
    except FileNotFoundError as exc:
        raise AikError(f"{uri}: no such file") from exc
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise AikError(f"{uri}: not valid YAML ({str(exc).splitlines()[0]})") from exc
    return parse(doc, uri)
