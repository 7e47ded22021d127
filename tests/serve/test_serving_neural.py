"""A neural release is served through ONNX Runtime with PyTorch's answers, swapped as a whole release,
refused beside another bundle, and refused in one line (the previous release serving on) without
ONNX Runtime; a server of boosters never imports it."""

from __future__ import annotations

import logging
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from neural_release import train_small, write_booster_release, write_neural_release
from serve_live import LiveServer, run_server
from serving_fixtures import Artifacts, copy_artifacts, index_features, varied_rows

from ad_server_emulator.emulator import bid_request
from aik import releases, storage
from aik.errors import ArtifactError
from filtering_server.model import ModelSources, load_model, model_version
from filtering_server.watcher import ModelHolder, ModelWatcher

pytest.importorskip("torch", reason="the neural extra (PyTorch) trains the model")
pytest.importorskip("onnxruntime", reason="the neural extra (onnxruntime) serves it")

#: The issue's bound: the server's answers equal PyTorch's to within this on 10k rows.
PARITY = 1e-5
ROWS = 10_000
SWAP_TIMEOUT = 90.0  # a load spawns xgboost or opens a session; the machine may be busy


@pytest.fixture(scope="module")
def neural_base(tmp_path_factory: pytest.TempPathFactory) -> Artifacts:
    """Serving artifacts (a booster published by the parameters) for the neural tests to copy."""
    from serving_fixtures import build_artifacts

    return build_artifacts(
        tmp_path_factory.mktemp("neural") / "ws", rows=5_000, rounds=20, inference_rows=500
    )


@pytest.fixture(scope="module")
def fm_model(neural_base: Artifacts) -> Any:
    """A factorization machine trained for two epochs on the fixtures' rows."""
    return train_small(neural_base, "fm")


@pytest.fixture
def artifacts(neural_base: Artifacts, tmp_path: Path) -> Artifacts:
    """This test's own copy of the artifacts."""
    return copy_artifacts(neural_base, tmp_path / "ws")


def _wait_for(live: LiveServer, release: releases.Release) -> None:
    deadline = time.monotonic() + SWAP_TIMEOUT
    while time.monotonic() < deadline:
        current = live.holder.current
        if current is not None and current.sources.release_id == release.id:
            return
        time.sleep(0.05)
    raise AssertionError(f"release {release.id} was not swapped in within {SWAP_TIMEOUT} s")


def _served_answers(live: LiveServer, requests: list[Any]) -> tuple[np.ndarray, np.ndarray, str]:
    """Each request's answer one by one (`filter`) and in batches (`filterBatch`); the batches' version."""
    client = live.client()
    one = np.array([client.filter(r).likelihoodToBid for r in requests])
    batch: list[float] = []
    versions = set()
    for start in range(0, len(requests), 1000):
        reply = client.filterBatch(requests[start : start + 1000])
        batch.extend(reply.likelihoodToBid)
        versions.add(reply.modelVersion)
    assert len(versions) == 1
    return one, np.array(batch), versions.pop()


@pytest.mark.parametrize(
    "family",
    [
        "fm",
        pytest.param("logreg", marks=pytest.mark.slow),
        pytest.param("mlp", marks=pytest.mark.slow),
        pytest.param("wide-deep", marks=pytest.mark.slow),
    ],
)
def test_a_neural_release_is_served_with_pytorchs_answers(
    artifacts: Artifacts, fm_model: Any, family: str
) -> None:
    model = fm_model if family == "fm" else train_small(artifacts, family)
    built = write_neural_release(artifacts, model)
    releases.promote(artifacts.store, built.release)
    rows = varied_rows(artifacts, ROWS)  # with unseen and missing categories
    expected = built.predict(index_features(rows, artifacts.specs))
    with run_server(artifacts) as live:
        one, batch, version = _served_answers(live, [bid_request(r) for r in rows])
        health = live.client().health()
    assert np.max(np.abs(one - expected)) <= PARITY
    assert np.max(np.abs(batch - expected)) <= PARITY
    onnx_bytes = storage.read_bytes(built.release.file_uri("onnx"))
    assert version == health.modelVersion == model_version(onnx_bytes)
    assert expected.std() > 0.01  # the model answers differently for different requests


def test_a_booster_release_and_a_neural_release_swap_as_whole_releases(
    artifacts: Artifacts, fm_model: Any
) -> None:
    booster = write_booster_release(artifacts)
    releases.promote(artifacts.store, booster)
    neural = write_neural_release(artifacts, fm_model)
    rows = varied_rows(artifacts, 500, seed=5)
    requests = [bid_request(r) for r in rows]
    expected = neural.predict(index_features(rows, artifacts.specs))
    with run_server(artifacts, watch_interval=0.1) as live:
        client = live.client()
        before = np.array(client.filterBatch(requests).likelihoodToBid)
        releases.promote(artifacts.store, neural.release)
        _wait_for(live, neural.release)
        served = np.array(client.filterBatch(requests).likelihoodToBid)
        releases.promote(artifacts.store, booster)
        _wait_for(live, booster)
        after = np.array(client.filterBatch(requests).likelihoodToBid)
    assert np.max(np.abs(served - expected)) <= PARITY
    assert np.max(np.abs(before - artifacts.predict_reference(index_features(rows, artifacts.specs)))) < 1e-6
    np.testing.assert_array_equal(after, before)
    assert np.max(np.abs(served - before)) > 0.01  # two different models: the swap is visible


def test_an_onnx_model_bound_to_another_bundle_is_refused(artifacts: Artifacts, fm_model: Any) -> None:
    built = write_neural_release(artifacts, fm_model, binding="0" * 64)
    with pytest.raises(releases.ReleaseError, match="does not belong to the model"):
        releases.promote(artifacts.store, built.release)
    # a pointer switched by hand is refused by the server too, naming the bundle and the ONNX file
    artifacts.store.put(releases.RELEASE_LIVE, built.release.manifest_uri)
    with pytest.raises(ArtifactError, match=r"does not belong to the model .*model\.onnx"):
        load_model(ModelSources.from_store(artifacts.store))


def test_an_onnx_model_without_a_binding_is_refused(artifacts: Artifacts, fm_model: Any) -> None:
    built = write_neural_release(artifacts, fm_model, binding=None)
    artifacts.store.put(releases.RELEASE_LIVE, built.release.manifest_uri)
    with pytest.raises(ArtifactError, match="does not say which bundle it was trained on"):
        load_model(ModelSources.from_store(artifacts.store))


@pytest.fixture
def no_onnxruntime(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """`import onnxruntime` fails, as where the package is not installed."""
    monkeypatch.setitem(sys.modules, "onnxruntime", None)
    yield


def test_without_onnxruntime_a_live_neural_release_is_named_in_one_line_and_the_previous_serves(
    artifacts: Artifacts, fm_model: Any, caplog: pytest.LogCaptureFixture, request: pytest.FixtureRequest
) -> None:
    holder = ModelHolder()
    watcher = ModelWatcher(artifacts.store, holder, interval=0)
    previous = watcher.load_initial()  # the parameters' booster
    built = write_neural_release(artifacts, fm_model)
    releases.promote(artifacts.store, built.release)
    request.getfixturevalue("no_onnxruntime")
    with caplog.at_level(logging.ERROR, logger="filtering_server.watcher"):
        assert watcher.poll_once() is False
    assert holder.current is previous
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1 and len(errors[0].splitlines()) == 1
    assert built.release.manifest_uri in errors[0] and "ONNX Runtime" in errors[0]
    assert "not installed" in errors[0] and "keeps serving" in errors[0]


def test_a_server_of_boosters_never_imports_onnxruntime(artifacts: Artifacts) -> None:
    code = (
        "import sys\n"
        "from aik import params\n"
        "from filtering_server import __main__\n"
        "from filtering_server.model import ModelSources, load_model\n"
        f"store = params.LocalParameterStore({str(artifacts.settings.workspace / 'parameters.json')!r})\n"
        "model = load_model(ModelSources.from_store(store))\n"
        "print(model.scorer.family, 'onnxruntime' in sys.modules)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=300, check=True
    )
    assert out.stdout.split() == ["xgboost", "False"]
