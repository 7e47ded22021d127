"""`aik train --model <family>`: the PyTorch families through the same evaluation, plots and gates."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
from train_fixture_data import model_path

from aik.cli import main
from aik.context import Context
from aik.settings import Settings
from aik.train import GateFailed, GateLimits, TrainOptions, train_and_publish
from aik.train.families.neural import NeuralModel

PNG = b"\x89PNG\r\n\x1a\n"
QUICK = ["--set", "max_epochs=3", "--set", "patience=1"]


def test_a_neural_family_is_evaluated_gated_and_released_live(
    make_ws: Callable[..., Path], capsys: pytest.CaptureFixture
) -> None:
    ws = make_ws()
    assert main(["--workspace", str(ws), "train", "--model", "fm", "--no-baselines", *QUICK]) == 0
    out = dict(line.split("=", 1) for line in capsys.readouterr().out.strip().splitlines())
    onnx = Path(out["model"])
    assert onnx.name == "model.onnx" and not model_path(ws).exists()  # no booster mirror for a neural model
    candidate = onnx.parent / "model.pt"
    metrics = json.loads((candidate.parent / "metrics.json").read_text())
    assert metrics["model"]["family"] == "fm" and metrics["model"]["training"]["epochs"] <= 3
    assert metrics["oracle_ratio"] == pytest.approx(metrics["auc"] / metrics["oracle_auc"], abs=1e-5)
    assert metrics["gates"]["passed"] is True and metrics["published"] is True
    assert {c["name"] for c in metrics["gates"]["checks"]} >= {"features", "auc", "mean_prediction"}
    for name in ("roc.png", "calibration.png", "prediction_histogram.png", "confusion_matrix.png"):
        assert (candidate.parent / "reports" / name).read_bytes().startswith(PNG), name
    NeuralModel.from_bytes(candidate.read_bytes())  # the candidate file is the family's model file
    assert metrics["model"]["onnx"]["max_abs_diff"] <= 1e-5 and metrics["model"]["onnx"]["parity_rows"] > 0
    assert metrics["model"]["onnx"]["bytes"] == onnx.stat().st_size
    assert {c["name"]: c["passed"] for c in metrics["gates"]["checks"]}["onnx_parity"] is True


def test_a_neural_model_file_is_evaluated_again_from_its_file(make_ws: Callable[..., Path]) -> None:
    ws = make_ws()
    ctx = Context(Settings(backend="local", workspace=ws))
    quick = {"max_epochs": 2, "patience": 1}
    first = train_and_publish(ctx, TrainOptions(family="logreg", overrides=quick, baselines=False))
    again = train_and_publish(
        ctx, TrainOptions(family="logreg", model_uri=first.candidate_uri, baselines=False)
    )
    assert again.metrics.auc == first.metrics.auc
    assert again.metrics.model.training == {"source": "file", "uri": first.candidate_uri}


def test_a_neural_family_fails_its_gates_like_the_booster(make_ws: Callable[..., Path]) -> None:
    ws = make_ws()
    ctx = Context(Settings(backend="local", workspace=ws))
    options = TrainOptions(
        family="mlp", overrides={"max_epochs": 1}, baselines=False, limits=GateLimits(min_auc=0.99)
    )
    with pytest.raises(GateFailed, match="auc"):
        train_and_publish(ctx, options)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--model", "fm", "--preset", "original"], "--preset and --sagemaker are xgboost's"),
        (["--model", "fm", "--eta", "0.1"], "--eta is xgboost's"),
        (["--model", "fm", "--set", "max_depth=3"], "fm has no hyperparameter 'max_depth'"),
    ],
)
def test_xgboost_options_with_a_neural_family_are_a_one_line_error(
    make_ws: Callable[..., Path], capsys: pytest.CaptureFixture, argv: list[str], message: str
) -> None:
    ws = make_ws()
    assert main(["--workspace", str(ws), "train", *argv]) == 1
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1


def test_an_unknown_family_prints_usage(capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["train", "--model", "catboost"])
    assert exit_info.value.code == 2
    assert "invalid choice: 'catboost'" in capsys.readouterr().err


def test_a_neural_release_names_its_family_and_can_be_promoted_again(make_ws: Callable[..., Path]) -> None:
    from aik import releases as R

    ws = make_ws()
    ctx = Context(Settings(backend="local", workspace=ws))
    result = train_and_publish(
        ctx, TrainOptions(family="logreg", overrides={"max_epochs": 1}, baselines=False)
    )
    release = R.read_release(result.release.manifest_uri)
    assert release.family == "logreg" and release.served_role == "onnx"
    assert release.files["model"].path == "model.pt" and release.files["onnx"].path == "model.onnx"
    assert R.live_uri(ctx.params) == release.manifest_uri
    R.promote(ctx.params, release)  # re-checked: digests, the ONNX file's binding to the bundle, gates
    assert R.live_uri(ctx.params) == release.manifest_uri
    assert "logreg" in R.describe_release(release, live_id=release.id)
