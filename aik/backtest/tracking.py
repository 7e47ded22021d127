"""Record a backtest in MLflow: one parent run holding the report, one nested run per candidate.

Locally the runs go to a SQLite store in the workspace (`<workspace>/mlflow.db`, artifacts under
`<workspace>/mlartifacts`; `mlflow ui --backend-store-uri sqlite:///.aik/mlflow.db` shows them). MLflow
3 keeps its plain-directory store in maintenance mode and refuses it unless `MLFLOW_ALLOW_FILE_STORE`
is set, so the local store is MLflow's recommended database backend, still one file on disk.
`MLFLOW_TRACKING_URI` or the EXPERIMENTS file's `mlflow.tracking_uri` point it elsewhere, e.g. a
tracking server. MLflow is the `tracking` extra.
"""

from __future__ import annotations

import logging
import os
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from aik.backtest.spec import Candidate

log = logging.getLogger(__name__)

#: The candidate metrics logged to MLflow (report row key -> MLflow metric name).
METRICS: dict[str, str] = {
    "auc": "auc",
    "logloss": "logloss",
    "oracle_ratio": "oracle_ratio",
    "interaction_share": "interaction_share",
    "calibration_ratio": "calibration_ratio",
    "train_s": "train_seconds",
    "per_request_us": "per_request_us",
    "batch_us_per_row": "batch_us_per_row",
    "train_rows": "train_rows",
}


def available() -> bool:
    """MLflow is installed."""
    try:
        import mlflow  # noqa: F401
    except ImportError:
        return False
    return True


def default_tracking_uri(workspace: Path, configured: str | None) -> str:
    """The EXPERIMENTS file's URI, else MLFLOW_TRACKING_URI, else a SQLite store in the workspace."""
    return (
        configured
        or os.environ.get("MLFLOW_TRACKING_URI")
        or "sqlite:///" + str((workspace / "mlflow.db").resolve())
    )


def _experiment_id(mlflow: Any, name: str, artifact_root: Path | None) -> str:
    """The experiment's id, creating it (with its artifacts under `artifact_root`, if given) when new."""
    found = mlflow.get_experiment_by_name(name)
    if found is not None:
        return str(found.experiment_id)
    location = artifact_root.resolve().as_uri() if artifact_root is not None else None
    return str(mlflow.create_experiment(name, artifact_location=location))


def flatten(doc: Mapping[str, Any], prefix: str = "") -> dict[str, str]:
    """Nested params as MLflow's flat name -> text."""
    out: dict[str, str] = {}
    for key, value in doc.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            out.update(flatten(value, name + "."))
        else:
            out[name] = str(value)
    return out


def record(
    tracking_uri: str,
    experiment: str,
    artifact_root: Path | None,
    run_name: str,
    header: Mapping[str, Any],
    candidates: Sequence[Candidate],
    table: Sequence[Mapping[str, Any]],
    files: Mapping[str, bytes],
) -> dict[str, Any]:
    """Log the backtest; returns the tracking URI, experiment id and run ids (for the report).

    `artifact_root` is where a new experiment keeps its artifacts (a local directory; None leaves it to
    the tracking server).
    """
    import mlflow

    client_uri = mlflow.get_tracking_uri()
    mlflow.set_tracking_uri(tracking_uri)
    try:
        experiment_id = _experiment_id(mlflow, experiment, artifact_root)
        mlflow.set_experiment(experiment_id=experiment_id)
        runs: dict[str, str] = {}
        with mlflow.start_run(run_name=run_name) as parent:
            mlflow.log_params(flatten({k: v for k, v in header.items() if not isinstance(v, (list, dict))}))
            for candidate, row in zip(candidates, table, strict=True):
                with mlflow.start_run(run_name=candidate.name, nested=True) as run:
                    mlflow.log_params(flatten(candidate.as_dict()))
                    mlflow.set_tags(
                        {"family": candidate.family, "status": "finished" if row.get("ok") else "failed"}
                    )
                    metrics = {
                        metric: float(row[key])
                        for key, metric in METRICS.items()
                        if isinstance(row.get(key), (int, float))
                    }
                    if metrics:
                        mlflow.log_metrics(metrics)
                    if row.get("error"):
                        mlflow.set_tag("error", str(row["error"])[:500])
                    runs[candidate.name] = run.info.run_id
            with tempfile.TemporaryDirectory() as tmp:
                for name, data in files.items():
                    (Path(tmp) / name).write_bytes(data)
                mlflow.log_artifacts(tmp)
        return {
            "tracking_uri": tracking_uri,
            "experiment": experiment,
            "experiment_id": experiment_id,
            "parent_run_id": parent.info.run_id,
            "run_ids": runs,
        }
    finally:
        mlflow.set_tracking_uri(client_uri)
