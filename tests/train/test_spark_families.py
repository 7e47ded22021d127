"""Spark ML baselines as backtest candidates: spark-logreg (served as a logreg model) and spark-mlp."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from train_fixture_data import FixtureSpec

from aik.cli import main
from aik.errors import AikError
from aik.train.families.models import load_model
from aik.train.families.spark_ml import resolve_spark

TINY = FixtureSpec(rows=6_000, seed=4, domains=200, cities=40, regions=8)

EXPERIMENTS = """
name: spark
candidates:
  - model: spark-logreg
    params: {max_iter: 30}
  - model: spark-mlp
    params: {hidden: 8, max_iter: 20, iterations_per_check: 10, max_categories: 30}
  - model: logreg
"""


@pytest.fixture(scope="module")
def spark_report(tmp_path_factory: pytest.TempPathFactory) -> dict:
    from train_fixture_data import make_workspace

    tmp = tmp_path_factory.mktemp("spark")
    ws = tmp / "ws"
    ws.mkdir()
    make_workspace(ws, TINY)
    path = tmp / "experiments.yaml"
    path.write_text(EXPERIMENTS)
    assert main(["--workspace", str(ws), "backtest", str(path), "--jobs", "1", "--no-mlflow"]) == 0
    report = next((ws / "bucket").rglob("backtests/*/report.json"))
    return {"ws": ws, **{c["name"]: c for c in json.loads(report.read_text())["candidates"]}}


# The Spark tests start a Spark session and fit two Spark ML models: minutes on a busy 2-core machine.
@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_spark_logreg_is_written_as_a_logreg_model_that_predicts_as_spark_did(spark_report: dict) -> None:
    row = spark_report["spark-logreg"]
    assert row["ok"], row
    assert row["training"]["served_as"] == "logreg" and row["served_as"] == "logreg (ONNX)"
    assert row["training"]["conversion_max_abs_diff"] <= 1e-5
    model = load_model("spark-logreg", Path(row["model_uri"]).read_bytes(), row["model_uri"])
    assert model.family == "logreg"


@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_a_spark_logreg_candidate_is_released_as_a_logreg_model_with_its_onnx_export(
    spark_report: dict,
) -> None:
    ws, uri = spark_report["ws"], spark_report["spark-logreg"]["model_uri"]
    argv = ["--workspace", str(ws), "train", "--model", "logreg", "--model-file", uri, "--no-baselines"]
    assert main(argv) == 0
    (manifest,) = (ws / "bucket").rglob("releases/*/release.json")
    assert (manifest.parent / "model.onnx").is_file()


@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_spark_logreg_ranks_as_the_pytorch_logreg_does(spark_report: dict) -> None:
    assert spark_report["spark-logreg"]["auc"] == pytest.approx(spark_report["logreg"]["auc"], abs=0.01)


@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_spark_mlp_is_a_numpy_forward_pass_equal_to_sparks_and_marked_not_servable(
    spark_report: dict,
) -> None:
    row = spark_report["spark-mlp"]
    assert row["ok"], row
    assert row["training"]["numpy_max_abs_diff"] <= 1e-5
    assert row["model_details"]["servable"] is False and row["served_as"] == "baseline only"
    model = load_model("spark-mlp", Path(row["model_uri"]).read_bytes(), row["model_uri"])
    p = model.predict(np.array([[2, 10, 0, 0, 0, 0, 3], [2, 10, np.nan, 1e9, -1, 0, 3]], dtype=np.float32))
    assert np.all((p > 0) & (p < 1))
    assert row["auc"] > 0.6


def test_an_unknown_spark_hyperparameter_is_refused_by_name() -> None:
    with pytest.raises(AikError, match="spark-mlp has no hyperparameter 'embedding_dim'"):
        resolve_spark("spark-mlp", {"embedding_dim": 4})


def test_a_spark_candidate_with_a_preset_is_refused_before_anything_trains(
    make_ws: Callable[..., Path], tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    ws = make_ws(TINY)
    path = tmp_path / "bad.yaml"
    path.write_text("candidates:\n  - model: spark-logreg\n    preset: default\n")
    assert main(["--workspace", str(ws), "backtest", str(path)]) == 1
    assert "preset is xgboost's" in capsys.readouterr().err
