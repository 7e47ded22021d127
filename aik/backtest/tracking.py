"""Record a backtest in MLflow: one parent run holding the report, one nested run per candidate.

Locally the runs go to a SQLite store in the workspace (`<workspace>/mlflow.db`, artifacts under
`<workspace>/mlartifacts`; `mlflow ui --backend-store-uri sqlite:///.aik/mlflow.db` shows them). MLflow
3 keeps its plain-directory store in maintenance mode and refuses it unless `MLFLOW_ALLOW_FILE_STORE`
is set, so the local store is MLflow's recommended database backend, still one file on disk.
`MLFLOW_TRACKING_URI` or the EXPERIMENTS file's `mlflow.tracking_uri` point it elsewhere, e.g. a
tracking server. In AWS, when the sagemaker-emr stack created the SageMaker managed MLflow tracking
server (`aik:mlflow`), its ARN in `/aik/mlflow/tracking-server-arn` is the default: MLflow reaches it
through the `sagemaker-mlflow` plugin, which resolves the ARN to the server's URL and signs each request
with the caller's AWS credentials (SigV4). MLflow and the plugin are the `tracking` extra.
"""

from __future__ import annotations

import logging
import os
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from aik.backtest.spec import Candidate
from aik.errors import AikError
from aik.params import MLFLOW_TRACKING_SERVER, ParameterStore

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


def stack_server_arn(store: ParameterStore) -> str | None:
    """The tracking server the stacks created (`/aik/mlflow/tracking-server-arn`), or None."""
    try:
        return store.get(MLFLOW_TRACKING_SERVER) or None
    except AikError:
        return None


def default_tracking_uri(workspace: Path, configured: str | None, server_arn: str | None = None) -> str:
    """The EXPERIMENTS file's URI, else MLFLOW_TRACKING_URI, else the stacks' tracking server (its ARN),
    else a SQLite store in the workspace."""
    uri = (
        configured
        or os.environ.get("MLFLOW_TRACKING_URI")
        or server_arn
        or "sqlite:///" + str((workspace / "mlflow.db").resolve())
    )
    if uri.startswith("arn:") and not arn_plugin_installed():
        raise AikError(
            f"the MLflow tracking URI {uri} is a SageMaker tracking server's ARN, which MLflow reaches "
            "through the sagemaker-mlflow plugin: install it (the tracking extra), or pass --no-mlflow"
        )
    return uri


def arn_plugin_installed() -> bool:
    """An MLflow tracking-store plugin for `arn:` URIs (sagemaker-mlflow's) is installed."""
    from importlib.metadata import entry_points

    return any(ep.name == "arn" for ep in entry_points(group="mlflow.tracking_store"))


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
    # mlflow's setters also write these variables: a notebook's next backtest would follow them
    client_env = {name: os.environ.get(name) for name in ("MLFLOW_TRACKING_URI", "MLFLOW_EXPERIMENT_ID")}
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
        for name, value in client_env.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
