"""`aik backtest` end to end: candidates in parallel processes, one report, MLflow runs."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import mlflow
import pyarrow.parquet as pq
import pytest
from train_fixture_data import FixtureSpec

from aik.cli import main

PNG = b"\x89PNG\r\n\x1a\n"
TINY = FixtureSpec(rows=6_000, seed=4, domains=200, cities=40, regions=8)

EXPERIMENTS = """
name: tiny
candidates:
  - name: xgb
    model: xgboost
    params: {num_round: 30, early_stopping_rounds: 5}
  - name: fm-subset
    model: fm
    params: {max_epochs: 2, patience: 1}
    features: [IndexAdvertiserID, IndexDomain, device_type_id]
  - name: logreg-window
    model: logreg
    params: {max_epochs: 2, patience: 1}
    window: {days: [2, 3, 4], train_rows: 2000}
  - name: mlp
    model: mlp
    params: {max_epochs: 2, patience: 1, hidden: 16}
  - name: wide-deep
    model: wide-deep
    params: {max_epochs: 2, patience: 1, hidden: 16}
"""
NAMES = ["xgb", "fm-subset", "logreg-window", "mlp", "wide-deep"]


def _run(ws: Path, experiments: str, tmp_path: Path, *extra: str) -> int:
    path = tmp_path / "experiments.yaml"
    path.write_text(experiments)
    return main(["--workspace", str(ws), "backtest", str(path), "--jobs", "2", *extra])


def test_a_backtest_of_five_candidates_writes_one_report_and_an_mlflow_run_per_candidate(
    make_ws: Callable[..., Path], tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    ws = make_ws(TINY)
    assert _run(ws, EXPERIMENTS, tmp_path) == 0
    out = capsys.readouterr().out
    assert "| xgb | xgboost |" in out and "| fm-subset | fm |" in out
    lines = dict(line.split("=", 1) for line in out.splitlines() if "=" in line and "|" not in line)
    report = json.loads(Path(lines["report.json"]).read_text())
    assert [c["name"] for c in report["candidates"]] == NAMES
    oracle = report["reference"]["oracle_auc"]
    for row in report["candidates"]:
        assert row["ok"], row
        assert row["oracle_ratio"] == pytest.approx(row["auc"] / oracle)
        assert row["per_request_us"] > 0 and row["train_s"] > 0 and row["calibration_ratio"] > 0
        assert Path(row["model_uri"]).is_file()
    assert report["candidates"][1]["features"] == "IndexAdvertiserID IndexDomain device_type_id"
    assert report["candidates"][2]["train_rows"] == 2000
    for name in ("roc.png", "calibration.png"):
        assert Path(lines[name]).read_bytes().startswith(PNG)

    client = mlflow.MlflowClient(tracking_uri=lines["mlflow.tracking_uri"])
    experiment = client.get_experiment_by_name("aik-backtest")
    assert experiment is not None
    runs = client.search_runs([experiment.experiment_id])
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == lines["mlflow.parent_run_id"]]
    assert sorted(r.info.run_name for r in children) == sorted(NAMES)
    for run in children:
        assert 0.5 < run.data.metrics["auc"] < 1 and "oracle_ratio" in run.data.metrics
    parent = next(r for r in runs if r.info.run_id == lines["mlflow.parent_run_id"])
    artifacts = {a.path for a in client.list_artifacts(parent.info.run_id)}
    assert {"report.md", "report.json", "roc.png", "calibration.png"} <= artifacts


def test_a_failing_candidate_is_reported_beside_the_others_and_the_exit_status_says_so(
    make_ws: Callable[..., Path], tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    ws = make_ws(TINY)
    experiments = """
candidates:
  - name: fine
    model: logreg
    params: {max_epochs: 1}
  - name: broken
    model: xgboost
    params: {objective: "binary:nonsense", num_round: 5}
"""
    assert _run(ws, experiments, tmp_path, "--no-mlflow") == 1
    out = capsys.readouterr().out
    assert "failed: broken" in out
    lines = dict(line.split("=", 1) for line in out.splitlines() if "=" in line and "|" not in line)
    report = json.loads(Path(lines["report.json"]).read_text())
    fine, broken = report["candidates"]
    assert fine["ok"] and fine["auc"] > 0.5
    assert not broken["ok"] and "nonsense" in broken["error"]
    assert "mlflow.tracking_uri" not in lines


def test_a_bad_experiments_file_is_a_one_line_error(
    make_ws: Callable[..., Path], tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    ws = make_ws(TINY)
    assert _run(ws, "candidates:\n  - model: catboost\n", tmp_path) == 1
    err = capsys.readouterr().err.strip()
    assert "model must be one of xgboost, logreg, fm, mlp, wide-deep" in err and len(err.splitlines()) == 1


def test_a_window_of_days_keeps_its_days_when_the_feature_subset_leaves_out_dow(
    make_ws: Callable[..., Path], tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    ws = make_ws(TINY)
    experiments = """
candidates:
  - name: weekdays-no-dow
    model: xgboost
    params: {num_round: 10}
    features: [IndexAdvertiserID, IndexDomain]
    window: {days: [2, 3, 4, 5, 6]}
"""
    assert _run(ws, experiments, tmp_path, "--no-mlflow") == 0
    out = capsys.readouterr().out
    lines = dict(line.split("=", 1) for line in out.splitlines() if "=" in line and "|" not in line)
    (row,) = json.loads(Path(lines["report.json"]).read_text())["candidates"]
    train = pq.read_table(json.loads((ws / "parameters.json").read_text())["/aik/output_train"])
    weekdays = sum(1 for day in train.column("dow").to_pylist() if 2 <= day <= 6)
    assert row["ok"] and row["train_rows"] == weekdays < train.num_rows


def test_each_candidate_records_its_validation_auc_to_choose_by(
    make_ws: Callable[..., Path], tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    from aik.backtest.runner import SplitUris, read_splits
    from aik.train import evaluate as E
    from aik.train.families import models

    ws = make_ws(TINY)
    experiments = "candidates:\n  - model: logreg\n    params: {max_epochs: 2}\n"
    assert _run(ws, experiments, tmp_path, "--no-mlflow") == 0
    out = capsys.readouterr().out
    lines = dict(line.split("=", 1) for line in out.splitlines() if "=" in line and "|" not in line)
    (row,) = json.loads(Path(lines["report.json"]).read_text())["candidates"]
    params = json.loads((ws / "parameters.json").read_text())
    uris = SplitUris(
        params["/aik/output_train"], params["/aik/output_verify"], params["/aik/output_test"], ""
    )
    _, valid, _ = read_splits(uris, 0, None)
    model = models.load_model("logreg", Path(row["model_uri"]).read_bytes())
    assert row["training"]["valid_auc"] == pytest.approx(E.auc(valid.y, models.predict(model, valid.X)))
