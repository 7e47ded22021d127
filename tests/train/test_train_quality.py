"""The quality target on synthetic data: the default preset reaches 0.98 of the oracle AUC (slow)."""

from __future__ import annotations

from pathlib import Path

import pytest
from train_fixture_data import FixtureSpec, make_workspace

from aik.context import Context
from aik.train import TrainOptions, train_and_publish


@pytest.mark.slow
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_default_preset_reaches_98_percent_of_the_oracle_auc(seed: int, tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    ws.mkdir()
    ctx = Context(make_workspace(ws, FixtureSpec(rows=150_000, seed=seed)))
    default = train_and_publish(ctx, TrainOptions(seed=seed, baselines=False, publish=False)).metrics
    original = train_and_publish(
        ctx, TrainOptions(preset="original", seed=seed, baselines=False, publish=False)
    )
    assert default.oracle_ratio is not None and original.metrics.oracle_ratio is not None
    assert default.oracle_ratio >= 0.98
    assert default.oracle_ratio > original.metrics.oracle_ratio
