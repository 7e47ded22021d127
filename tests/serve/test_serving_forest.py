"""The compiled tree evaluator scores exactly like xgboost (within 1e-6) for every kind of model."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pytest
import xgboost
from forest_support import forest_of, load_forest, predict_parallel
from serving_fixtures import Artifacts, train_booster

from aik.errors import ArtifactError
from filtering_server.forest import LAYOUTS, Forest, forest_from_json

TOLERANCE = 1e-6


def stress_rows(artifacts: Artifacts, n: int = 10_000, seed: int = 1) -> np.ndarray:
    """Pipeline features, then unseen indices (one past the labels, and far beyond) and missing values."""
    rng = np.random.default_rng(seed)
    x = artifacts.features[rng.integers(0, artifacts.features.shape[0], n)].copy()
    for j in range(2, 6):  # the index columns
        top = int(artifacts.features[:, j].max()) + 1
        unseen = rng.random(n) < 0.05
        x[unseen, j] = rng.choice([top, top + 7, 40_000], unseen.sum())
    x[rng.random(x.shape) < 0.03] = np.nan
    return x


def xgboost_predict(booster: Any, x: np.ndarray) -> np.ndarray:
    """xgboost's own prediction on a float32 matrix (what the server's features are)."""
    return booster.inplace_predict(x.astype(np.float32), validate_features=False).astype(np.float64)


@pytest.mark.parametrize("layout", ["complete", "sparse"])
@pytest.mark.parametrize("flavour", ["numeric", "categorical"])
def test_equals_xgboost_on_10k_rows_with_unseen_and_missing(
    flavour: str, layout: str, numeric_artifacts: Artifacts, categorical_artifacts: Artifacts
) -> None:
    artifacts = numeric_artifacts if flavour == "numeric" else categorical_artifacts
    forest = forest_of(artifacts.booster, layout=layout)
    assert forest.layout == layout
    assert forest.has_categorical_splits == (flavour == "categorical")
    x = stress_rows(artifacts)
    expected = xgboost_predict(artifacts.booster, x)
    batch = forest.predict(x)
    rows = np.array([forest.predict7(*row) for row in x])
    assert np.max(np.abs(batch - expected)) < TOLERANCE
    assert np.max(np.abs(rows - expected)) < TOLERANCE
    assert np.max(np.abs(predict_parallel(forest, x) - expected)) < TOLERANCE
    assert expected.std() > 0.05  # the model really discriminates: equality is not trivially constant


@pytest.mark.parametrize("flavour", ["numeric", "categorical"])
def test_stump_models_fold_into_one_table_per_feature_equal_to_xgboost(
    flavour: str, numeric_artifacts: Artifacts, stump_artifacts: Artifacts
) -> None:
    # categorical: the kit's default preset (1,500 depth-1 trees); numeric: 1,500 numerical stumps
    if flavour == "categorical":
        artifacts, booster = stump_artifacts, stump_artifacts.booster
    else:
        artifacts = numeric_artifacts
        booster = train_booster(
            artifacts.features, artifacts.labels, artifacts.specs, rounds=1500, depth=1, extra={"eta": 0.3}
        )
    forest = forest_of(booster)
    assert forest.layout == "additive" and forest.num_trees == 1500
    x = stress_rows(artifacts)
    expected = xgboost_predict(booster, x)
    walked = forest_of(booster, layout="complete").predict(x)  # float32 in tree order, like xgboost
    rows = np.array([forest.predict7(*row) for row in x])
    for got in (forest.predict(x), predict_parallel(forest, x), rows):
        assert np.max(np.abs(got - expected)) < TOLERANCE
        assert np.max(np.abs(got - walked)) < TOLERANCE
    assert expected.std() > 0.05


@pytest.mark.parametrize("flavour", ["numeric", "categorical"])
def test_the_additive_layouts_python_lookups_equal_its_kernel_bit_for_bit(
    flavour: str, numeric_artifacts: Artifacts, stump_artifacts: Artifacts
) -> None:
    artifacts = stump_artifacts if flavour == "categorical" else numeric_artifacts
    booster = (
        artifacts.booster
        if flavour == "categorical"
        else train_booster(
            artifacts.features, artifacts.labels, artifacts.specs, rounds=300, depth=1, extra={"eta": 0.3}
        )
    )
    forest = forest_of(booster)
    assert forest.layout == "additive" and forest.predict7 is not forest.kernel_predict7
    x = stress_rows(artifacts, n=5_000)
    rng = np.random.default_rng(2)
    odd = rng.random(x.shape) < 0.05  # fractions, negatives, values float32 rounds, huge ones
    x[odd] = rng.choice([0.5, -1.0, -3.7, 2.0**25 + 1, 1e30, 255.5], odd.sum())
    for row in x.tolist():
        assert forest.predict7(*row) == forest.kernel_predict7(*row)


@pytest.mark.parametrize("depth", [2, 3])
def test_shallow_trees_walked_one_by_one_equal_xgboost(depth: int, numeric_artifacts: Artifacts) -> None:
    # the numeric preset's shape (depth 2, hundreds of trees): rows are walked tree by tree
    booster = train_booster(
        numeric_artifacts.features, numeric_artifacts.labels, numeric_artifacts.specs, rounds=300, depth=depth
    )
    forest = forest_of(booster)
    assert forest.layout == "complete"
    x = stress_rows(numeric_artifacts)
    expected = xgboost_predict(booster, x)
    rows = np.array([forest.predict7(*row) for row in x])
    assert np.max(np.abs(rows - expected)) < TOLERANCE
    assert np.max(np.abs(forest.predict(x) - expected)) < TOLERANCE


def test_the_additive_layout_refuses_trees_deeper_than_one(numeric_artifacts: Artifacts) -> None:
    with pytest.raises(ValueError, match="depth <= 1"):
        forest_of(numeric_artifacts.booster, layout="additive")


@pytest.mark.parametrize("kind", ["depth-6", "stumps"])
def test_categorical_model_routes_invalid_categories_like_xgboost(
    kind: str, categorical_artifacts: Artifacts, stump_artifacts: Artifacts
) -> None:
    artifacts = categorical_artifacts if kind == "depth-6" else stump_artifacts
    forest = forest_of(artifacts.booster)
    assert forest.layout == ("complete" if kind == "depth-6" else "additive")
    base = artifacts.features[:64].copy()
    odd = np.repeat(base, 5, axis=0)
    odd[0::5, 3] = -1.0  # negative: invalid, goes left
    odd[1::5, 3] = 2.0**24  # beyond xgboost's largest category
    odd[2::5, 3] = 3.7  # truncated to category 3
    odd[3::5, 3] = 1e9
    odd[4::5, 3] = np.nan  # missing: default direction
    expected = xgboost_predict(artifacts.booster, odd)
    assert np.max(np.abs(forest.predict(odd) - expected)) < TOLERANCE
    assert np.max(np.abs(np.array([forest.predict7(*r) for r in odd]) - expected)) < TOLERANCE


def _random_data(seed: int, n: int = 4000) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 30, size=(n, 7)).astype(np.float64)
    logit = np.sin(x[:, 0]) + (x[:, 3] % 4 == 1) - 0.5 * (x[:, 6] > 20)
    y = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(int)
    x[rng.random(x.shape) < 0.05] = np.nan
    return x, y


@pytest.mark.parametrize(
    "param",
    [
        {"booster": "dart", "rate_drop": 0.3, "skip_drop": 0.0},
        {"grow_policy": "lossguide", "max_leaves": 24, "max_depth": 0},
        {"base_score": 0.1, "boost_from_average": 0},
        {"max_depth": 2, "eta": 1.0},
        {"max_depth": 1, "eta": 1.0},
        {"booster": "dart", "max_depth": 1, "rate_drop": 0.3, "skip_drop": 0.0},
        {"max_depth": 10, "min_child_weight": 0},
        {"objective": "reg:logistic"},
    ],
    ids=["dart", "lossguide", "base-score", "depth-2", "stumps", "dart-stumps", "deep", "reg-logistic"],
)
def test_equals_xgboost_for_other_boosters(param: dict[str, Any]) -> None:
    x, y = _random_data(3)
    booster = xgboost.train(
        {"objective": "binary:logistic", "nthread": 1, **param}, xgboost.DMatrix(x, y), 25
    )
    forest = forest_of(booster)
    assert (forest.layout == "additive") == (param.get("max_depth") == 1)
    expected = booster.predict(xgboost.DMatrix(x))
    assert np.max(np.abs(forest.predict(x) - expected)) < TOLERANCE
    assert np.max(np.abs(np.array([forest.predict7(*r) for r in x[:500]]) - expected[:500])) < TOLERANCE


def _chain_model(depth: int) -> dict[str, Any]:
    """One lopsided tree: node i splits x0 at i + 0.5; its left child is a leaf worth -i (xgboost JSON)."""
    left, right, cond = [], [], []
    for i in range(depth):  # internal node 2i, its leaf 2i + 1, the next internal node 2i + 2
        left += [2 * i + 1, -1]
        right += [2 * i + 2, -1]
        cond += [i + 0.5, -float(i)]
    left.append(-1)
    right.append(-1)
    cond.append(-float(depth))
    n = len(left)
    tree = {
        "left_children": left,
        "right_children": right,
        "split_indices": [0] * n,
        "split_conditions": cond,
        "default_left": [1] * n,
        "split_type": [0] * n,
        "categories": [],
        "categories_nodes": [],
        "categories_segments": [],
        "categories_sizes": [],
    }
    return {
        "learner": {
            "objective": {"name": "binary:logistic"},
            "learner_model_param": {"base_score": "[5E-1]", "num_feature": "7"},
            "gradient_booster": {"name": "gbtree", "model": {"trees": [tree]}},
        }
    }


def test_lopsided_trees_keep_their_shape_and_both_layouts_walk_them_right() -> None:
    doc = _chain_model(12)
    auto = forest_from_json(doc)
    assert auto.layout == "sparse"  # 4096 padded nodes for 25 real ones
    complete = forest_from_json(doc, layout="complete")
    x = np.zeros((16, 7))
    x[:, 0] = np.arange(16)
    x[3, 0] = np.nan  # default left at the root: leaf 0
    expected_margin = -np.minimum(np.nan_to_num(x[:, 0], nan=0.0), 12)
    expected = 1 / (1 + np.exp(-expected_margin))
    for forest in (auto, complete):
        assert np.max(np.abs(forest.predict(x) - expected)) < TOLERANCE
        assert np.max(np.abs(np.array([forest.predict7(*r) for r in x]) - expected)) < TOLERANCE


def test_full_depthwise_trees_use_the_padded_layout(numeric_artifacts: Artifacts) -> None:
    assert forest_of(numeric_artifacts.booster).layout == "complete"


def test_json_and_ubjson_files_give_the_same_forest(numeric_artifacts: Artifacts) -> None:
    booster = numeric_artifacts.booster
    a = load_forest(bytes(booster.save_raw("ubj")))
    b = load_forest(bytes(booster.save_raw("json")))
    x = numeric_artifacts.features[:1000]
    assert np.array_equal(a.predict(x), b.predict(x))


def test_uses_every_tree_like_booster_predict_even_after_early_stopping() -> None:
    x, y = _random_data(5)
    train, valid = xgboost.DMatrix(x[:3000], y[:3000]), xgboost.DMatrix(x[3000:], y[3000:])
    booster = xgboost.train(
        {"objective": "binary:logistic", "eta": 0.5},
        train,
        200,
        evals=[(valid, "valid")],
        early_stopping_rounds=3,
        verbose_eval=False,
    )
    forest = forest_of(booster)
    assert forest.best_iteration == booster.best_iteration
    assert forest.num_trees == booster.num_boosted_rounds() > booster.best_iteration + 1
    assert np.max(np.abs(forest.predict(x) - booster.predict(xgboost.DMatrix(x)))) < TOLERANCE


@pytest.mark.parametrize(
    ("param", "reason"),
    [
        ({"objective": "reg:squarederror"}, "does not predict a probability"),
        ({"objective": "binary:logitraw"}, "does not predict a probability"),
        ({"objective": "multi:softprob", "num_class": 3}, "does not predict a probability"),
        ({"objective": "binary:logistic", "booster": "gblinear"}, "not a tree model"),
    ],
)
def test_models_that_are_not_binary_probability_trees_are_rejected_with_the_uri(
    param: dict[str, Any], reason: str
) -> None:
    x, y = _random_data(6, 500)
    if param.get("num_class"):
        y = np.arange(500) % 3
    booster = xgboost.train(param, xgboost.DMatrix(x, y), 2)
    with pytest.raises(ArtifactError, match=reason) as info:
        load_forest(bytes(booster.save_raw("ubj")), "s3://bucket/binary-model/xgboost.bin")
    assert "s3://bucket/binary-model/xgboost.bin" in str(info.value)


@pytest.mark.parametrize("payload", [b"", b"not a model", b"{}", b'{"learner": {}}', bytes(range(256)) * 4])
def test_corrupt_model_bytes_are_an_artifact_error_naming_the_uri(payload: bytes) -> None:
    with pytest.raises(ArtifactError) as info:
        load_forest(payload, "/ws/bucket/binary-model/xgboost.bin")
    assert str(info.value).startswith("cannot use /ws/bucket/binary-model/xgboost.bin: ")


def test_pandas_categorical_model_stores_the_category_encodings(pandas_artifacts: Artifacts) -> None:
    forest = forest_of(pandas_artifacts.booster)
    assert set(forest.category_encodings) == {2, 3, 4, 5}  # the four index columns
    n_domains = len(next(s.labels for s in pandas_artifacts.specs if s.input_col == "Domain"))
    assert forest.category_encodings[3] == tuple(float(v) for v in range(n_domains))[::-1]


def test_stumps_of_depth_zero_and_a_single_tree_score_their_leaf() -> None:
    x, y = _random_data(7, 300)
    booster = xgboost.train(
        {"objective": "binary:logistic", "max_depth": 1, "min_split_loss": 1e9}, xgboost.DMatrix(x, y), 3
    )
    forest: Forest = forest_from_json(json.loads(booster.save_raw("json")))
    assert forest.layout == "additive"  # depth-0 trees: constants folded with the base margin
    assert np.max(np.abs(forest.predict(x) - booster.predict(xgboost.DMatrix(x)))) < TOLERANCE


def test_flavour_training_helper_rejects_unknown_flavours(numeric_artifacts: Artifacts) -> None:
    with pytest.raises(ValueError, match="unknown flavour"):
        train_booster(numeric_artifacts.features, numeric_artifacts.labels, [], flavour="nope")  # type: ignore[arg-type]


def test_categorical_splits_whose_sets_are_empty_send_every_category_left() -> None:
    doc = _chain_model(1)
    tree = doc["learner"]["gradient_booster"]["model"]["trees"][0]
    tree["split_type"][0] = 1  # the root becomes a categorical split on x0 with an empty set
    tree["categories_nodes"] = [0]
    tree["categories_segments"] = [0]
    tree["categories_sizes"] = [0]
    second = json.loads(json.dumps(_chain_model(1)["learner"]["gradient_booster"]["model"]["trees"][0]))
    second["split_indices"] = [1, 1, 1]  # a numerical split on x1 at 0.5, leaves 0 and -1
    second["split_conditions"] = [0.5, 0.0, -1.0]
    doc["learner"]["gradient_booster"]["model"]["trees"].append(second)
    x = np.array([[c, 1.0, 0, 0, 0, 0, 0] for c in (0.0, 3.0, 40.0, -1.0)])
    expected = 1 / (1 + np.exp(-np.array([0.0 - 1.0] * 4)))  # left leaf 0 of tree 1, right leaf -1 of tree 2
    for layout in LAYOUTS:
        forest = forest_from_json(doc, layout=layout)
        assert np.max(np.abs(forest.predict(x) - expected)) < TOLERANCE
        assert np.max(np.abs(np.array([forest.predict7(*r) for r in x]) - expected)) < TOLERANCE
