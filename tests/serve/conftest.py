"""Serving fixtures: artifacts built in a temporary workspace, a live server on an ephemeral port, a
StatsD receiver, and clients (uvicorn's `run_server` style: start the real thing, talk to it, stop it)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import serve_live
from serve_live import LiveServer, run_server
from serving_fixtures import Artifacts, StatsdLines, build_artifacts, copy_artifacts

from filtering_server.model import ModelSources, ServedModel, load_model
from filtering_server.server import TRANSPORTS


@pytest.fixture(scope="session", autouse=True)
def _compiled_kernels() -> None:
    """Compile (or load from numba's cache) the scoring and framing kernels once per session."""
    from filtering_server import forest, wire

    forest.warm_up()
    wire.warm_up()


@pytest.fixture(scope="session")
def numeric_artifacts(tmp_path_factory: pytest.TempPathFactory) -> Artifacts:
    """Artifacts with a booster of numerical splits (shared: tests must not republish into it)."""
    return build_artifacts(tmp_path_factory.mktemp("numeric") / "ws", rows=20_000, flavour="numeric")


@pytest.fixture(scope="session")
def categorical_artifacts(tmp_path_factory: pytest.TempPathFactory) -> Artifacts:
    """Artifacts with native categorical splits on the index columns (numpy input, no re-coding)."""
    return build_artifacts(tmp_path_factory.mktemp("categorical") / "ws", rows=20_000, flavour="categorical")


@pytest.fixture(scope="session")
def stump_artifacts(tmp_path_factory: pytest.TempPathFactory) -> Artifacts:
    """Artifacts with a model like the kit's `default` preset: 1,500 depth-1 categorical trees."""
    from aik.train.presets import DEFAULT

    return build_artifacts(
        tmp_path_factory.mktemp("stumps") / "ws",
        rows=20_000,
        flavour="categorical",
        rounds=1500,
        depth=1,
        extra=dict(DEFAULT.params),
    )


@pytest.fixture(scope="session")
def pandas_artifacts(tmp_path_factory: pytest.TempPathFactory) -> Artifacts:
    """Artifacts with categorical splits trained from pandas categoricals (categories stored in the model)."""
    return build_artifacts(
        tmp_path_factory.mktemp("pandas") / "ws", rows=20_000, flavour="pandas-categorical"
    )


@pytest.fixture(scope="session")
def numeric_model(numeric_artifacts: Artifacts) -> ServedModel:
    """The numeric model as the server loads it (once: loading spawns xgboost in a child process)."""
    return load_model(ModelSources.from_store(numeric_artifacts.store))


@pytest.fixture(scope="session")
def stump_model(stump_artifacts: Artifacts) -> ServedModel:
    """The loaded model of `stump_artifacts` (an additive forest: the fused request path)."""
    return load_model(ModelSources.from_store(stump_artifacts.store))


@pytest.fixture(scope="session")
def pandas_model(pandas_artifacts: Artifacts) -> ServedModel:
    """The loaded model of `pandas_artifacts` (its Index* features re-coded to the training categories)."""
    return load_model(ModelSources.from_store(pandas_artifacts.store))


@pytest.fixture
def live(numeric_artifacts: Artifacts, numeric_model: ServedModel) -> Iterator[LiveServer]:
    """A live server of the numeric model on an ephemeral port (tests must not modify the model)."""
    with run_server(numeric_artifacts, model=numeric_model) as server:
        yield server


@pytest.fixture(scope="session")
def small_artifacts(tmp_path_factory: pytest.TempPathFactory) -> Artifacts:
    """Small artifacts, built once; tests get copies (`own_artifacts`)."""
    return build_artifacts(tmp_path_factory.mktemp("small") / "ws", rows=5_000, rounds=20, inference_rows=500)


@pytest.fixture
def own_artifacts(small_artifacts: Artifacts, tmp_path: Path) -> Artifacts:
    """A copy of the small artifacts in this test's own workspace (it may change or republish them)."""
    return copy_artifacts(small_artifacts, tmp_path / "ws")


@pytest.fixture
def statsd_receiver() -> Iterator[StatsdLines]:
    """A local StatsD receiver on an ephemeral UDP port."""
    receiver = StatsdLines()
    yield receiver
    receiver.close()


@pytest.fixture(params=TRANSPORTS)
def transport(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Each transport in turn: `run_server` serves with it (`pytestmark = usefixtures("transport")`)."""
    monkeypatch.setattr(serve_live, "transport_under_test", request.param)
    return str(request.param)
