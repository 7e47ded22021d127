"""Gates: each stops a deliberately broken model (exit 1, reason printed, previous model untouched)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import xgboost as xgb
from train_fixture_data import model_path

from aik.cli import main
from aik.schema import FEATURE_COLUMNS
from aik.train.gates import GateLimits, calibration_gate, features_gate, finite_gate


def _state(ws: Path) -> tuple[bytes, int]:
    path = model_path(ws)
    return path.read_bytes(), path.stat().st_mtime_ns


def _latest_candidate_metrics(ws: Path) -> dict:
    runs = sorted((ws / "bucket" / "releases").iterdir())
    return json.loads((runs[-1] / "metrics.json").read_text())


def _train(ws: Path, *args: str) -> int:
    return main(["--workspace", str(ws), "train", "--no-baselines", *args])


def _assert_refused(ws: Path, before: tuple[bytes, int], code: int, err: str, gate: str, reason: str) -> None:
    assert code == 1
    lines = err.strip().splitlines()
    assert lines[-1].startswith("aik train: model not published, the previous one stays in place")
    assert reason in lines[-1]
    assert _state(ws) == before
    metrics = _latest_candidate_metrics(ws)
    assert metrics["published"] is False and metrics["gates"]["passed"] is False
    failed = {c["name"] for c in metrics["gates"]["checks"] if not c["passed"]}
    assert gate in failed


def test_auc_floor_stops_a_model_that_learned_nothing(
    published_ws: Path, capsys: pytest.CaptureFixture
) -> None:
    before = _state(published_ws)
    code = _train(published_ws, "--set", "eta=0")  # every prediction is the base score: AUC 0.5
    _assert_refused(
        published_ws, before, code, capsys.readouterr().err, "auc", "AUC 0.5000 is below the floor"
    )


def test_mean_prediction_gate_stops_a_miscalibrated_model(
    published_ws: Path, capsys: pytest.CaptureFixture
) -> None:
    before = _state(published_ws)
    code = _train(published_ws, "--preset", "original", "--set", "scale_pos_weight=6")
    err = capsys.readouterr().err
    _assert_refused(published_ws, before, code, err, "mean_prediction", "is far from the base rate")
    assert "auc:" not in err.strip().splitlines()[-1]  # it still ranks well: only calibration fails


def test_nan_gate_stops_a_model_that_predicts_nan(
    published_ws: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    booster = xgb.Booster()
    booster.load_model(bytearray(model_path(published_ws).read_bytes()))
    doc = json.loads(booster.save_raw("json"))
    tree = doc["learner"]["gradient_booster"]["model"]["trees"][0]
    leaf = tree["left_children"].index(-1)
    tree["split_conditions"][leaf] = float("nan")  # xgboost's JSON reader accepts NaN
    broken = tmp_path / "nan.json"
    broken.write_text(json.dumps(doc))
    before = _state(published_ws)
    code = _train(published_ws, "--model-file", str(broken))
    _assert_refused(
        published_ws, before, code, capsys.readouterr().err, "finite_predictions", "are NaN or infinite"
    )


def test_feature_gate_stops_a_model_with_another_feature_count(
    published_ws: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    rng = np.random.default_rng(0)
    six = list(FEATURE_COLUMNS[:-1])
    booster = xgb.train(
        {"objective": "binary:logistic"},
        xgb.DMatrix(rng.random((200, 6)), rng.integers(0, 2, 200), feature_names=six),
        5,
    )
    broken = tmp_path / "six.ubj"
    booster.save_model(broken)
    before = _state(published_ws)
    code = _train(published_ws, "--model-file", str(broken))
    _assert_refused(
        published_ws,
        before,
        code,
        capsys.readouterr().err,
        "features",
        "the model has 6 features, the pipeline's splits have 7",
    )


def test_a_good_model_file_passes_and_is_published(published_ws: Path, tmp_path: Path) -> None:
    good = tmp_path / "good.json"
    booster = xgb.Booster()
    booster.load_model(bytearray(model_path(published_ws).read_bytes()))
    booster.save_model(good)
    before = _state(published_ws)
    assert _train(published_ws, "--model-file", str(good)) == 0
    assert _state(published_ws)[1] != before[1]  # rewritten (same trees, new file)
    assert _latest_candidate_metrics(published_ws)["model"]["training"] == {
        "source": "file",
        "uri": str(good),
    }


def test_feature_names_in_another_order_fail_the_feature_gate() -> None:
    rng = np.random.default_rng(0)
    names = list(reversed(FEATURE_COLUMNS))
    booster = xgb.train({}, xgb.DMatrix(rng.random((50, 7)), rng.random(50), feature_names=names), 1)
    result = features_gate(booster, FEATURE_COLUMNS)
    assert not result.passed and "differ from the pipeline's" in result.message
    assert features_gate(booster, names).passed


def test_mean_prediction_tolerance_widens_on_small_splits() -> None:
    limits = GateLimits(max_mean_error=0.2)
    assert calibration_gate(0.015, 0.01, 100_000, limits).passed is False  # 50 % off, many rows
    assert calibration_gate(0.015, 0.01, 300, limits).passed is True  # 4 standard errors of 300 rows: 0.023
    assert calibration_gate(0.23, 0.2, 100_000, limits).passed is True  # 15 % off


def test_predictions_outside_zero_one_fail_the_finite_gate() -> None:
    assert finite_gate(np.array([0.2, 1.3])).passed is False
    assert finite_gate(np.array([0.2, np.inf])).passed is False
    assert finite_gate(np.array([0.0, 1.0])).passed is True


def test_a_model_file_trained_on_a_bare_matrix_is_published_with_the_contract_names(
    published_ws: Path, tmp_path: Path
) -> None:
    parts = sorted((published_ws / "bucket" / "processed" / "sample" / "train").glob("*.parquet"))
    data = np.concatenate([pd.read_parquet(p).to_numpy(np.float32) for p in parts])
    bare = xgb.train(
        {"objective": "binary:logistic", "max_depth": 3}, xgb.DMatrix(data[:, 1:], label=data[:, 0]), 40
    )
    assert bare.feature_names is None
    path = tmp_path / "bare.ubj"
    bare.save_model(path)
    assert _train(published_ws, "--model-file", str(path)) == 0
    published = xgb.Booster()
    published.load_model(bytearray(model_path(published_ws).read_bytes()))
    assert published.feature_names == list(FEATURE_COLUMNS)
