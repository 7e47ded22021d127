"""The ground-truth model of synthetic data: vectorised probabilities and a lossless file format."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from aik.truth import LogitModel, TruthModel, truth_uri


def _model(intercept: float) -> LogitModel:
    return LogitModel(
        intercept=intercept,
        advertiser={"1458": 0.5},
        domain={"d1": -1.0},
        region={"1": 0.2},
        city={"2": 0.1},
        device_type={"3": 0.3},
        hour={"10": 0.4},
        dow={"1": -0.2},
    )


def test_logit_sums_the_effects_and_ignores_unknown_values() -> None:
    cols = {
        "AdvertiserID": ["1458", "x"],
        "Domain": ["d1", "d1"],
        "RegionID": ["1", "1"],
        "CityID": ["2", "9"],
        "device_type_id": [3, 6],
        "hour": [10, 11],
        "dow": [1, 2],
    }
    logit = _model(-1.5).logit(cols)
    np.testing.assert_allclose(logit, [-1.5 + 0.5 - 1 + 0.2 + 0.1 + 0.3 + 0.4 - 0.2, -1.5 - 1 + 0.2])
    np.testing.assert_allclose(_model(0).probability(cols), 1 / (1 + np.exp(-_model(0).logit(cols))))


def test_truth_round_trips_through_a_file(tmp_path: Path) -> None:
    truth = TruthModel(win=_model(-1.5), click=_model(-4.0), seed=3)
    uri = truth_uri(str(tmp_path / "raw"))
    truth.save(uri)
    assert TruthModel.load(uri) == truth
    assert uri == f"{tmp_path}/raw/truth/truth.json"
