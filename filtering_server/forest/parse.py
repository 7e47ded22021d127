"""Stage 1: xgboost's JSON model (`Booster.save_raw("json")`) parsed into trees as numpy arrays.

Only what scoring needs is kept: the objective must predict a probability (binary logistic), the
booster must be gbtree or dart (dart's tree weights are applied by the layouts), and every split must
use a feature the model declares. Any other model is an `ArtifactError` naming its URI.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from aik.errors import ArtifactError

#: Objectives whose prediction is sigmoid(margin): a probability in [0, 1].
LOGISTIC_OBJECTIVES = ("binary:logistic", "reg:logistic")
#: Child index of a leaf in xgboost's `left_children` / `right_children`.
LEAF = -1


@dataclass(frozen=True)
class Tree:
    """One parsed xgboost tree (the JSON arrays, as numpy)."""

    left: np.ndarray
    right: np.ndarray
    feature: np.ndarray
    condition: np.ndarray  # float32: split threshold, or leaf value at leaves
    default_left: np.ndarray
    categories: dict[int, np.ndarray]  # node -> categories going right

    def depth(self) -> int:
        """Edges on the longest root-to-leaf path."""
        best = 0
        stack = [(0, 0)]
        while stack:
            node, d = stack.pop()
            if self.left[node] == LEAF:
                best = max(best, d)
            else:
                stack.append((int(self.left[node]), d + 1))
                stack.append((int(self.right[node]), d + 1))
        return best

    def leaf_value(self, node: int, weight: Any) -> np.float32:
        """A leaf's value as every layout stores it: float32, with dart's tree weight applied."""
        value = self.condition[node]
        return value if weight == 1.0 else np.float32(value * weight)


@dataclass(frozen=True)
class ParsedModel:
    """A binary-logistic tree ensemble as parsed trees, before any layout."""

    num_feature: int
    base_margin: np.float32
    trees: tuple[Tree, ...]
    weights: np.ndarray  # float32 per tree (1.0 except for dart)
    feature_names: tuple[str, ...] | None
    feature_types: tuple[str, ...] | None
    #: feature index -> the training categories (xgboost >= 3 stores them for pandas input)
    category_encodings: dict[int, tuple[Any, ...]]
    best_iteration: int | None

    @property
    def depths(self) -> list[int]:
        """Each tree's depth, in tree order."""
        return [t.depth() for t in self.trees]

    @property
    def has_categorical_splits(self) -> bool:
        """Whether any tree splits on a category set."""
        return any(t.categories for t in self.trees)


def parse_model(doc: Mapping[str, Any], uri: str = "<model>") -> ParsedModel:
    """The trees and parameters of a parsed xgboost JSON model; errors name the URI."""
    try:
        return _parse_model(doc)
    except (KeyError, TypeError, ValueError, IndexError) as exc:
        raise ArtifactError(uri, f"not a usable xgboost model ({exc})") from exc


def _parse_model(doc: Mapping[str, Any]) -> ParsedModel:
    learner = doc["learner"]
    objective = learner["objective"]["name"]
    if objective not in LOGISTIC_OBJECTIVES:
        raise ValueError(
            f"objective {objective!r} does not predict a probability; train with binary:logistic"
        )
    params = learner["learner_model_param"]
    if int(_first_number(params.get("num_class", "0"))) > 1:
        raise ValueError("multi-class models are not supported (bid filtering is binary)")
    if int(_first_number(params.get("num_target", "1"))) > 1:
        raise ValueError("multi-target models are not supported")
    num_feature = int(_first_number(params["num_feature"]))
    base_score = _first_number(params["base_score"])
    if not 0.0 < base_score < 1.0:
        raise ValueError(f"base_score {base_score} is not a probability")
    # xgboost's ProbToMargin, in float32 as xgboost computes it
    p = np.float32(base_score)
    base_margin = np.float32(-np.log(np.float32(1.0) / p - np.float32(1.0)))
    booster = learner["gradient_booster"]
    name = booster.get("name", "gbtree")
    weights: np.ndarray | None
    if name == "dart":
        weights = np.asarray(booster["weight_drop"], dtype=np.float32)
        model = booster["gbtree"]["model"]
    elif name == "gbtree":
        model = booster["model"]
        weights = None
    else:
        raise ValueError(f"booster {name!r} is not a tree model (use gbtree or dart)")
    trees = tuple(_parse_tree(t) for t in model["trees"])
    if not trees:
        raise ValueError("the model has no trees")
    weights = np.ones(len(trees), dtype=np.float32) if weights is None else weights
    if weights.shape[0] != len(trees):
        raise ValueError("dart weight_drop does not match the number of trees")
    for tree in trees:
        used = tree.feature[tree.left != LEAF]
        if used.size and (used.min() < 0 or used.max() >= num_feature):
            raise ValueError("a split uses a feature index outside num_feature")
    best = (learner.get("attributes") or {}).get("best_iteration")
    return ParsedModel(
        num_feature=num_feature,
        base_margin=base_margin,
        trees=trees,
        weights=weights,
        feature_names=tuple(learner.get("feature_names") or ()) or None,
        feature_types=tuple(learner.get("feature_types") or ()) or None,
        category_encodings=_parse_encodings(model.get("cats"), num_feature),
        best_iteration=int(best) if best is not None else None,
    )


def _first_number(text: Any) -> float:
    """xgboost >= 3 writes vector parameters as '[4.39E-1]'; older versions as '4.39E-1'."""
    if isinstance(text, int | float):
        return float(text)
    value = str(text).strip().strip("[]").split(",")[0]
    return float(value)


def _parse_encodings(cats: Mapping[str, Any] | None, num_feature: int) -> dict[int, tuple[Any, ...]]:
    """The per-feature category lists xgboost >= 3 stores for pandas categoricals (empty otherwise)."""
    out: dict[int, tuple[Any, ...]] = {}
    if not cats:
        return out
    for i, enc in enumerate(cats.get("enc", [])[:num_feature]):
        values = enc.get("values", [])
        if not values:
            continue
        offsets = enc.get("offsets")
        if offsets:  # string categories: utf-8 bytes, split at the offsets
            raw = bytes(int(v) & 0xFF for v in values)
            out[i] = tuple(raw[a:b].decode("utf-8") for a, b in itertools.pairwise(offsets))
        else:
            out[i] = tuple(float(v) for v in values)
    return out


def _parse_tree(doc: Mapping[str, Any]) -> Tree:
    left = np.asarray(doc["left_children"], dtype=np.int64)
    n = left.shape[0]
    split_type = np.asarray(doc.get("split_type") or [0] * n, dtype=np.int64)
    categories: dict[int, np.ndarray] = {}
    if np.any(split_type == 1):
        cats = np.asarray(doc["categories"], dtype=np.int64)
        nodes = doc["categories_nodes"]
        segments = doc["categories_segments"]
        sizes = doc["categories_sizes"]
        for node, seg, size in zip(nodes, segments, sizes, strict=True):
            categories[int(node)] = cats[int(seg) : int(seg) + int(size)]
        missing = [int(i) for i in np.flatnonzero(split_type == 1) if int(i) not in categories]
        for node in missing:  # a categorical split whose set is empty sends every valid category left
            categories[node] = np.empty(0, dtype=np.int64)
    tree = Tree(
        left=left,
        right=np.asarray(doc["right_children"], dtype=np.int64),
        feature=np.asarray(doc["split_indices"], dtype=np.int64),
        condition=np.asarray(doc["split_conditions"], dtype=np.float64).astype(np.float32),
        default_left=np.asarray(doc["default_left"], dtype=np.int64).astype(bool),
        categories=categories,
    )
    size_leaf = int(doc.get("tree_param", {}).get("size_leaf_vector", "1") or 1)
    if size_leaf > 1:
        raise ValueError("multi-target trees (vector leaves) are not supported")
    return tree
