"""A backtest candidate's SageMaker job program, run on channels laid out as SageMaker lays them out."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from train_fixture_data import FixtureSpec

from aik import params as P
from aik.backtest import job as J
from aik.backtest.runner import Job, SplitUris, run_candidate
from aik.backtest.spec import Candidate, parse
from aik.params import open_store
from aik.settings import Settings

SPEC = FixtureSpec(rows=6000, seed=5, domains=200, cities=40, regions=10)
CANDIDATES = parse(
    {
        "candidates": [
            {"name": "xgb", "model": "xgboost", "params": {"num_round": 30, "early_stopping_rounds": 5}},
            {
                "name": "xgb window",
                "model": "xgboost",
                "params": {"num_round": 20},
                "features": ["IndexAdvertiserID", "IndexDomain", "hour"],
                "window": {"days": [2, 3, 4, 5], "train_rows": 2500},
                "seed": 9,
            },
        ]
    }
).candidates


def _uris(ws: Path) -> SplitUris:
    store = open_store(Settings(backend="local", workspace=ws))
    return SplitUris(
        train=store.get(P.OUTPUT_TRAIN),
        valid=store.get(P.OUTPUT_VALID),
        test=store.get(P.OUTPUT_TEST),
        pipeline_model=store.get(P.PIPELINE_MODEL),
    )


def _layout(uris: SplitUris, root: Path, hps: dict[str, str]) -> dict[str, str]:
    """A job directory as SageMaker fills it (File mode), and the toolkit's variables pointing at it."""
    data = root / "input" / "data"
    for channel, uri in (("train", uris.train), ("validation", uris.valid), ("test", uris.test)):
        shutil.copytree(uri, data / channel)
    (data / "pipeline").mkdir(parents=True)
    shutil.copy(uris.pipeline_model, data / "pipeline" / "model.zip")
    return {
        **{f"SM_CHANNEL_{c.upper()}": str(data / c) for c in J.CHANNELS},
        "SM_MODEL_DIR": str(root / "model"),
        "SM_OUTPUT_DIR": str(root / "output"),
        "SM_HPS": json.dumps(hps),
    }


def test_the_hyperparameters_carry_the_candidate_whole() -> None:
    for candidate in CANDIDATES:
        hps = J.hyperparameters(candidate.as_dict(), 0, None, None)
        assert all(isinstance(v, str) for v in hps.values())
        assert parse({"candidates": [json.loads(hps["candidate"])]}).candidates[0] == candidate


@pytest.mark.parametrize("candidate", CANDIDATES, ids=lambda c: c.name)
def test_the_job_judges_a_candidate_as_a_local_backtest_does(
    make_ws: Callable[..., Path], tmp_path: Path, candidate: Candidate
) -> None:
    uris = _uris(make_ws(SPEC))
    local = run_candidate(Job(candidate, uris, str(tmp_path / "local"), 7, None, 1))
    assert local.ok, local.error

    hps = J.hyperparameters(candidate.as_dict(), 7, None, 1)
    env = _layout(uris, tmp_path / "job", hps)
    assert J.main([], env) == 0

    model_dir = tmp_path / "job" / "model"
    doc = json.loads((model_dir / J.RESULT_FILE).read_text())
    assert doc["metrics"] == local.metrics
    assert doc["train_rows"] == local.train_rows
    assert np.array_equal(np.load(model_dir / J.PREDICTIONS_FILE), local.p_test)
    assert (model_dir / doc["model_uri"]).read_bytes() == Path(str(local.model_uri)).read_bytes()


def test_a_missing_channel_fails_the_job_with_the_reason_in_the_failure_file(
    make_ws: Callable[..., Path], tmp_path: Path
) -> None:
    env = _layout(
        _uris(make_ws(SPEC)), tmp_path / "job", J.hyperparameters(CANDIDATES[0].as_dict(), 0, None, 1)
    )
    shutil.rmtree(env["SM_CHANNEL_TEST"])
    assert J.main([], env) == 1
    reason = (tmp_path / "job" / "output" / "failure").read_text()
    assert reason.startswith("the test channel ") and reason.endswith(" is missing")


def test_a_candidate_that_fails_to_train_fails_the_job_with_its_error(
    make_ws: Callable[..., Path], tmp_path: Path
) -> None:
    doc = {**CANDIDATES[0].as_dict(), "window": {"days": [1], "train_rows": None}}
    env = _layout(_uris(make_ws(SPEC)), tmp_path / "job", J.hyperparameters(doc, 0, None, 1))
    keep_sundays_out(Path(env["SM_CHANNEL_TRAIN"]))
    assert J.main([], env) == 1
    reason = (tmp_path / "job" / "output" / "failure").read_text()
    assert reason.startswith("AikError: the window ") and "keeps no training rows" in reason


def keep_sundays_out(train: Path) -> None:
    """Rewrite the train channel's parquet without Sunday's rows (Spark's dayofweek 1)."""
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    for part in train.glob("*.parquet"):
        table = pq.read_table(part)
        pq.write_table(table.filter(pc.not_equal(table["dow"], 1)), part)
