"""Presets: the original kit's hyperparameters kept verbatim, overrides, and their validation."""

from __future__ import annotations

import pytest

from aik.errors import AikError
from aik.schema import FEATURE_COLUMNS
from aik.train.presets import PRESETS, parse_overrides, resolve


def test_original_preset_is_the_original_notebooks_hyperparameters() -> None:
    original = resolve("original")
    assert {
        k: original.params[k] for k in ("max_depth", "eta", "gamma", "min_child_weight", "subsample")
    } == {
        "max_depth": 5,
        "eta": 0.2,
        "gamma": 4,
        "min_child_weight": 6,
        "subsample": 0.8,
    }
    assert original.params["objective"] == "binary:logistic"
    assert (original.num_round, original.early_stopping_rounds) == (50, 20)
    assert not original.categorical
    assert original.feature_types() == ["q"] * len(FEATURE_COLUMNS)


def test_default_preset_treats_only_the_index_columns_as_categorical() -> None:
    default = resolve()
    assert default.name == "default"
    types = dict(zip(FEATURE_COLUMNS, default.feature_types(), strict=True))
    assert {c for c, t in types.items() if t == "c"} == {
        "IndexAdvertiserID",
        "IndexDomain",
        "IndexRegionID",
        "IndexCityID",
    }


def test_overrides_set_parameters_and_run_settings_and_none_removes() -> None:
    config = resolve(
        "original",
        parse_overrides(["eta=0.05", "num_round=7", "gamma=none", "refit=true", "grow_policy=lossguide"]),
        seed=9,
    )
    assert config.params["eta"] == 0.05
    assert "gamma" not in config.params
    assert config.params["grow_policy"] == "lossguide"
    assert (config.num_round, config.refit, config.seed) == (7, True, 9)
    assert PRESETS["original"].params["eta"] == 0.2  # the preset itself is untouched


@pytest.mark.parametrize(
    ("preset", "overrides", "message"),
    [
        ("nope", {}, "unknown preset"),
        ("default", {"num_round": 0}, "num_round"),
        ("default", {"early_stopping_rounds": 0}, "early_stopping_rounds"),
        ("default", {"unseen_fraction": 0.7}, "unseen_fraction"),
    ],
)
def test_invalid_settings_are_refused(preset: str, overrides: dict[str, object], message: str) -> None:
    with pytest.raises(AikError, match=message):
        resolve(preset, overrides)


def test_override_without_equals_is_refused() -> None:
    with pytest.raises(AikError, match="not name=value"):
        parse_overrides(["eta"])
