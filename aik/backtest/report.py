"""A backtest's side-by-side report: one table (markdown and JSON), overlaid ROC and calibration plots.

On synthetic data the truth gives each candidate its oracle ratio (AUC / the truth's AUC on the same
test rows). When the truth has interaction terms, the report also scores the truth without them: a
candidate's `interaction share` is (AUC - that AUC) / (oracle AUC - that AUC), the part of what the
interactions add to the ranking that the candidate captured (about 0 for an additive model).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any

import numpy as np

from aik import storage
from aik.backtest.runner import CandidateResult
from aik.backtest.spec import Candidate
from aik.schema import FEATURE_COLUMNS
from aik.train import evaluate as E
from aik.train import plots as plots_mod
from aik.train.families.models import served_as

REPORT_MD = "report.md"
REPORT_JSON = "report.json"
ROC_PNG = "roc.png"
CALIBRATION_PNG = "calibration.png"

#: Table columns: (key in a row, header, format).
COLUMNS: tuple[tuple[str, str, str], ...] = (
    ("name", "candidate", "{}"),
    ("model", "model", "{}"),
    ("auc", "AUC", "{:.4f}"),
    ("logloss", "log loss", "{:.4f}"),
    ("oracle_ratio", "oracle ratio", "{:.4f}"),
    ("interaction_share", "interaction share", "{:.2f}"),
    ("calibration_ratio", "calibration ratio", "{:.3f}"),
    ("train_s", "train s", "{:.1f}"),
    ("per_request_us", "µs/request", "{:.0f}"),
    ("batch_us_per_row", "µs/row (batch)", "{:.2f}"),
    ("size", "size", "{}"),
    ("served_as", "served as", "{}"),
    ("features", "features", "{}"),
    ("window", "window", "{}"),
)


def truth_reference(
    truth: Any, use_case: str, y: np.ndarray, X: np.ndarray, indexer: Any
) -> dict[str, float | None]:
    """The oracle AUC on the test rows and, for a truth with interactions, the AUC of its additive part."""
    columns, _ = E.deindex(X, indexer)
    model = E.truth_model(truth, use_case)
    out: dict[str, float | None] = {"oracle_auc": E.auc(y, model.probability(columns)), "additive_auc": None}
    if model.pairs:
        out["additive_auc"] = E.auc(y, replace(model, pairs={}).probability(columns))
    return out


def _size(model: Mapping[str, Any]) -> str:
    if "trees" in model:
        return f"{model['trees']} trees"
    if "parameters" in model:
        return f"{model['parameters']:,} weights"
    return ""


def _features(candidate: Candidate) -> str:
    if candidate.features == FEATURE_COLUMNS:
        return "all"
    return " ".join(candidate.features)


def _window(candidate: Candidate) -> str:
    parts = []
    if candidate.window.days:
        parts.append("days " + ",".join(map(str, candidate.window.days)))
    if candidate.window.train_rows:
        parts.append(f"{candidate.window.train_rows:,} rows")
    return "; ".join(parts) or "all"


def rows(
    candidates: Sequence[Candidate],
    results: Sequence[CandidateResult],
    reference: Mapping[str, float | None],
) -> list[dict[str, Any]]:
    """One JSON-ready table row per candidate (failed ones carry their error)."""
    oracle_auc, additive_auc = reference.get("oracle_auc"), reference.get("additive_auc")
    out = []
    for candidate, result in zip(candidates, results, strict=True):
        row: dict[str, Any] = {
            "name": candidate.name,
            "model": candidate.family,
            "ok": result.ok,
            "features": _features(candidate),
            "window": _window(candidate),
        }
        if not result.ok:
            row["error"] = result.error
            out.append(row)
            continue
        auc = result.metrics.get("auc")
        row.update(
            {
                "auc": auc,
                "logloss": result.metrics.get("logloss"),
                "oracle_ratio": auc / oracle_auc if auc is not None and oracle_auc else None,
                "interaction_share": (auc - additive_auc) / (oracle_auc - additive_auc)
                if auc is not None and oracle_auc and additive_auc is not None and oracle_auc > additive_auc
                else None,
                "calibration_ratio": result.metrics.get("calibration_ratio"),
                "train_s": result.train_seconds,
                "per_request_us": result.per_request_us,
                "batch_us_per_row": result.batch_us_per_row,
                "size": _size(result.model),
                "served_as": served_as(candidate.family),
                "train_rows": result.train_rows,
                "model_uri": result.model_uri,
                "training": result.training,
                "model_details": result.model,
            }
        )
        out.append(row)
    return out


def _cell(row: Mapping[str, Any], key: str, fmt: str) -> str:
    value = row.get(key)
    if value is None:
        return "failed: " + str(row.get("error")) if key == "auc" and not row.get("ok") else "–"
    return fmt.format(value)


def markdown_table(table: Sequence[Mapping[str, Any]], reference: Mapping[str, float | None]) -> str:
    """The table as markdown (what `aik backtest` prints and report.md holds)."""
    columns = [c for c in COLUMNS if c[0] != "interaction_share" or reference.get("additive_auc") is not None]
    lines = [
        "| " + " | ".join(header for _, header, _ in columns) + " |",
        "|" + "|".join(" --- " for _ in columns) + "|",
    ]
    for row in table:
        lines.append("| " + " | ".join(_cell(row, key, fmt) for key, _, fmt in columns) + " |")
    return "\n".join(lines)


def plots(
    y: np.ndarray,
    results: Sequence[CandidateResult],
    p_oracle: np.ndarray | None,
    reference: Mapping[str, float | None],
) -> dict[str, bytes]:
    """Overlaid ROC curves (with the oracle's) and reliability diagrams of every candidate that finished."""
    curves: dict[str, np.ndarray] = {}
    aucs: dict[str, float | None] = {}
    deciles: dict[str, list[dict[str, Any]]] = {}
    for result in results:
        if result.ok and result.p_test is not None:
            curves[result.name] = result.p_test
            aucs[result.name] = result.metrics.get("auc")
            if result.deciles:
                deciles[result.name] = result.deciles
    if p_oracle is not None:
        curves["oracle"] = p_oracle
        aucs["oracle"] = reference.get("oracle_auc")
    out = {}
    if curves:
        out[ROC_PNG] = plots_mod.roc_plot(y, curves, aucs)
    if deciles:
        out[CALIBRATION_PNG] = plots_mod.calibration_plot(deciles)
    return out


def write(
    directory: str,
    header: Mapping[str, Any],
    table: Sequence[Mapping[str, Any]],
    reference: Mapping[str, float | None],
    images: Mapping[str, bytes],
) -> dict[str, str]:
    """Write the plots, report.json and report.md under `directory`; returns name -> URI."""
    uris: dict[str, str] = {}
    for name, data in images.items():
        uris[name] = storage.join(directory, name)
        storage.write_bytes(uris[name], data)
    doc = {**header, "reference": reference, "candidates": list(table)}
    uris[REPORT_JSON] = storage.join(directory, REPORT_JSON)
    storage.write_text(uris[REPORT_JSON], json.dumps(doc, indent=2, default=_json_default) + "\n")
    lines = [
        f"# Backtest {header.get('name')} ({header.get('backtest_id')})",
        "",
        f"Test split: {header.get('test_rows'):,} rows, the same for every candidate"
        + (f"; oracle AUC {reference['oracle_auc']:.4f}" if reference.get("oracle_auc") else "")
        + (
            f"; AUC of the truth without its interactions {reference['additive_auc']:.4f}"
            if reference.get("additive_auc") is not None
            else ""
        )
        + ".",
        (
            f"{header.get('processes')} parallel SageMaker training jobs on {header.get('instance_type')}, "
            f"{header.get('threads') or 'every vCPU'} thread(s) each (train time and µs/request measured "
            "there); "
            if header.get("on") == "sagemaker"
            else f"{header.get('processes')} parallel processes, {header.get('threads')} thread(s) each; "
        )
        + f"load average before {header.get('load_before')}, after {header.get('load_after')}.",
        "µs/request: one request at a time in the model's own runtime (xgboost inplace_predict, a "
        "PyTorch forward pass, spark-mlp's NumPy pass), not the filtering server's compiled forest.",
        "",
        markdown_table(table, reference),
        "",
    ]
    lines += [f"![{name}]({name})" for name in images]
    uris[REPORT_MD] = storage.join(directory, REPORT_MD)
    storage.write_text(uris[REPORT_MD], "\n".join(lines) + "\n")
    return uris


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, tuple):
        return list(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")
