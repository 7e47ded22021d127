"""Fixtures of the pipeline tests: one local SparkSession for the whole run, workspaces with data."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from aik.context import Context
from aik.params import configure
from aik.settings import Settings

if TYPE_CHECKING:
    from pyspark.sql import SparkSession


@pytest.fixture(scope="session")
def spark() -> Iterator[SparkSession]:
    """A local SparkSession shared by every Spark test (starting one costs seconds)."""
    from aik.features.spark import local_session

    session = local_session("aik-tests", cores=2, shuffle_partitions=2, driver_memory="2g")
    yield session
    session.stop()


def make_context(workspace: Path) -> Context:
    """A configured local context (notebook 0 done) in `workspace`."""
    ctx = Context(Settings(backend="local", workspace=workspace))
    configure(ctx.params, ctx.settings)
    return ctx


@pytest.fixture
def ctx(workspace: Path) -> Context:
    """A configured local context in an empty workspace."""
    return make_context(workspace)


@pytest.fixture(scope="module")
def module_workspace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A workspace shared by the tests of one module (for data that is costly to produce)."""
    return tmp_path_factory.mktemp("ws")


def pytest_configure(config: pytest.Config) -> None:
    """pyspark warns about pandas 3 when it starts Python workers; the pipeline never hands it pandas."""
    config.addinivalue_line(
        "filterwarnings", "ignore:PySpark does not yet fully support pandas:FutureWarning"
    )
