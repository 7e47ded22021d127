"""Fixtures of the training tests: small synthetic workspaces, and one with a published model."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
from train_fixture_data import FixtureSpec, make_workspace

from aik.cli import main

#: Small enough for the default test run, large enough for stable gates (16k train rows).
SMALL = FixtureSpec(rows=20_000, seed=3, domains=800, cities=120, regions=20)


@pytest.fixture
def make_ws(tmp_path: Path) -> Callable[..., Path]:
    """Build a synthetic workspace: make_ws(spec=SMALL, truth=True) -> workspace directory."""

    def build(spec: FixtureSpec = SMALL, truth: bool = True, name: str = "ws") -> Path:
        ws = tmp_path / name
        ws.mkdir()
        make_workspace(ws, spec, truth=truth)
        return ws

    return build


@pytest.fixture(scope="session")
def _published_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    ws = tmp_path_factory.mktemp("published") / "ws"
    ws.mkdir()
    make_workspace(ws, SMALL)
    assert main(["--workspace", str(ws), "train", "--no-baselines"]) == 0
    return ws


@pytest.fixture
def published_ws(_published_template: Path, tmp_path: Path) -> Path:
    """A workspace whose model was trained and published by `aik train` (a private copy per test)."""
    ws = tmp_path / "ws"
    shutil.copytree(_published_template, ws)
    params = ws / "parameters.json"
    params.write_text(params.read_text().replace(str(_published_template), str(ws)))
    return ws
