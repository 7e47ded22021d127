"""Publish a model so the server never sees half of one: candidate first, then one write at the model URI.

Layout beside the published model (`/aik/xgboost/path`, e.g. `binary-model/xgboost.bin`):
`metrics.json`, `reports/*.png`, and `candidates/<run-id>/` holding every run's model, metrics and
plots whether or not it passed the gates (so a rejected model can be inspected). The server's watcher
polls the model URI's fingerprint (local mtime+size, S3 ETag): a local write is a rename of a
complete temporary file and an S3 PUT replaces the object whole, so it sees the old model or the new
one, never a mix. Reports are written before the model, so they are in place when it appears.
"""

from __future__ import annotations

import json
import logging
import shutil
from collections.abc import Mapping
from typing import Any

from aik import storage
from aik.schema import RAW_SCHEMA

log = logging.getLogger(__name__)

METRICS_FILE = "metrics.json"
REPORTS_DIR = "reports"
CANDIDATES_DIR = "candidates"


def model_dir(model_uri: str) -> str:
    """The directory (prefix) holding the model file."""
    if "/" not in model_uri.rstrip("/"):
        return "."
    return model_uri.rsplit("/", 1)[0]


def candidate_model_uri(model_uri: str, run_id: str) -> str:
    """Where a run writes its model before any gate: `candidates/<run-id>/<model file name>`."""
    return storage.join(model_dir(model_uri), CANDIDATES_DIR, run_id, model_uri.rsplit("/", 1)[-1])


def write_reports(directory: str, metrics: Mapping[str, Any], plots: Mapping[str, bytes]) -> dict[str, str]:
    """Write the plots under `reports/` and then `metrics.json` in a directory; return their URIs."""
    uris: dict[str, str] = {}
    for name, data in plots.items():
        uri = storage.join(directory, REPORTS_DIR, name)
        storage.write_bytes(uri, data)
        uris[name] = uri
    uris[METRICS_FILE] = storage.join(directory, METRICS_FILE)
    storage.write_text(uris[METRICS_FILE], json.dumps(metrics, indent=2, sort_keys=False) + "\n")
    return uris


def publish(
    model_data: bytes, model_uri: str, metrics: Mapping[str, Any], plots: Mapping[str, bytes]
) -> dict[str, str]:
    """Write reports beside the published model, then the model itself in one write."""
    uris = write_reports(model_dir(model_uri), metrics, plots)
    storage.write_bytes(model_uri, model_data)
    uris["model"] = model_uri
    log.info("published %s (%d bytes)", model_uri, len(model_data))
    return uris


def ensure_schema(schema_uri: str) -> bool:
    """Write the pipeline schema JSON (RAW_SCHEMA) unless the pipeline already did; True if written."""
    if storage.exists(schema_uri):
        return False
    storage.write_text(schema_uri, json.dumps(RAW_SCHEMA, indent=2) + "\n")
    log.info("wrote the pipeline schema to %s", schema_uri)
    return True


def prune_candidates(model_uri: str, keep: int = 10) -> list[str]:
    """Delete all but the newest `keep` candidate runs (run ids sort by time); return the deleted runs."""
    root = storage.join(model_dir(model_uri), CANDIDATES_DIR)
    runs: dict[str, list[str]] = {}
    for uri in storage.list_uris(root):
        run_id = uri[len(root.rstrip("/")) + 1 :].split("/", 1)[0]
        runs.setdefault(run_id, []).append(uri)
    old = sorted(runs)[:-keep] if keep > 0 else sorted(runs)
    for run_id in old:
        for uri in runs[run_id]:
            storage.delete(uri)
        if not storage.is_s3(root):  # S3 has no directories; locally remove the emptied ones
            shutil.rmtree(storage.local_path(storage.join(root, run_id)), ignore_errors=True)
    return old
