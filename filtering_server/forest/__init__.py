"""XGBoost trees flattened into arrays and walked by numba-compiled kernels: scoring in microseconds.

A pipeline of stages behind a thin front (`Forest`, `forest_from_json`, `warm_up`):

- `parse`: xgboost's JSON model -> `ParsedModel` (trees as numpy arrays, parameters, checks);
- one module per layout, each building its packed arrays from the parsed trees and holding the kernels
  that walk them: `complete` (trees padded to complete binary trees), `sparse` (trees in their own
  shape, for deep or lopsided ones) and `additive` (stumps folded into one table per feature);
- `_kernel`: what the kernels share.

Why not xgboost itself on the hot path: even `inplace_predict` is a C API round trip with thread
dispatch per row, far above these kernels (bench/bench_serving.py measures both).
Why numba and not treelite/tl2cgen or a C extension: numba ships as manylinux wheels (llvmlite bundles
LLVM), so the slim Docker image needs no compiler, and the kernels are compiled once and cached on disk
(NUMBA_CACHE_DIR).

Semantics follow xgboost's CPU predictor exactly (checked against `Booster.predict` in the tests and at
every model load): inputs are float32; a numerical split goes left when `x < split_condition`; a
categorical split goes right when the category is in the node's set, left when it is not, negative,
beyond the set's bit field or >= 2^24; a missing value (NaN) takes the node's default direction; leaf
values are summed in float32 in tree order, starting from the base margin; `binary:logistic` applies
the sigmoid. Every tree of the booster is used, as `Booster.predict` does by default.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

import numpy as np

from filtering_server.forest import additive, complete, sparse
from filtering_server.forest.parse import ParsedModel, parse_model

__all__ = ["LAYOUTS", "Forest", "forest_from_json", "warm_up"]

#: The layouts a forest can take, by name (`forest_from_json` picks one when not told).
_LAYOUT_MODULES: dict[str, ModuleType] = {"complete": complete, "sparse": sparse, "additive": additive}
LAYOUTS = tuple(_LAYOUT_MODULES)


@dataclass(frozen=True)
class Forest:
    """A binary-logistic tree ensemble as flat arrays; `predict7` and `predict` score like xgboost.

    The server's `Scorer` for an xgboost release.
    """

    num_feature: int
    base_margin: np.float32
    layout: str  # one of LAYOUTS
    arrays: tuple[np.ndarray, ...]  # the layout's arrays packed by dtype (its `pack`)
    num_trees: int
    feature_names: tuple[str, ...] | None
    feature_types: tuple[str, ...] | None
    #: feature index -> the training categories (xgboost >= 3 stores them for pandas input): a raw
    #: value must be re-coded to its position in this list before scoring (`ServedModel` does).
    category_encodings: dict[int, tuple[Any, ...]] = field(default_factory=dict)
    has_categorical_splits: bool = False
    best_iteration: int | None = None
    #: the kernels' leading arguments: the packed arrays, the base margin, and "use the general walk"
    kernel_args: tuple[Any, ...] = field(init=False, repr=False, compare=False)
    #: `predict7(f0, ..., f6)`: the probability for one row of exactly seven features, the server's hot
    #: path (no array built): the additive layout's plain-Python table lookups (`additive.python_predict7`,
    #: bit-identical to its kernel), else `kernel_predict7`.
    predict7: Callable[[float, float, float, float, float, float, float], float] = field(
        init=False, repr=False, compare=False
    )
    #: the layout's one-row kernel with its leading arguments bound, so a call unpacks nothing in Python
    kernel_predict7: Callable[[float, float, float, float, float, float, float], float] = field(
        init=False, repr=False, compare=False
    )
    #: the additive layout's tables in plain Python (`additive.python_terms`) for a model of seven
    #: features, else None: `predict7` adds them, and the server's request path reads them directly
    terms: additive.Terms | None = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        args = (*self.arrays, self.base_margin, self.has_categorical_splits)
        object.__setattr__(self, "kernel_args", args)
        kernel = functools.partial(_LAYOUT_MODULES[self.layout].predict7, *args)
        object.__setattr__(self, "kernel_predict7", kernel)
        fast: Callable[..., float] = kernel
        terms = None
        if self.layout == "additive" and self.num_feature == 7:
            terms = additive.python_terms(self.arrays)
            fast = additive.python_predict7(terms)
        object.__setattr__(self, "terms", terms)
        object.__setattr__(self, "predict7", fast)

    @property
    def family(self) -> str:
        """The model family (a `filtering_server.scorer.Scorer`)."""
        return "xgboost"

    def describe(self) -> str:
        """Trees, layout and whether any split is categorical."""
        categorical = ", categorical splits" if self.has_categorical_splits else ""
        return f"{self.num_trees} trees, {self.layout} layout{categorical}"

    def predict(self, x: np.ndarray) -> np.ndarray:
        """Probabilities for a 2-D array of rows (float64 out; inputs are used as float32, like xgboost)."""
        rows = np.ascontiguousarray(x, dtype=np.float32)
        if rows.ndim != 2 or rows.shape[1] != self.num_feature:
            raise ValueError(f"expected rows of {self.num_feature} features, got shape {rows.shape}")
        out = np.empty(rows.shape[0], dtype=np.float64)
        if rows.shape[0] == 0:
            return out
        _LAYOUT_MODULES[self.layout].predict_batch(*self.kernel_args, rows, out)
        return out


def choose_layout(model: ParsedModel, depths: list[int]) -> str:
    """Additive for stumps, else complete while padding pays, else sparse."""
    if additive.eligible(model.trees, depths):
        return "additive"
    return "complete" if complete.fits(model, depths) else "sparse"


def forest_from_json(doc: Mapping[str, Any], uri: str = "<model>", layout: str | None = None) -> Forest:
    """Flatten a parsed xgboost JSON model (`Booster.save_raw("json")`); errors name the URI."""
    model = parse_model(doc, uri)
    depths = model.depths
    if layout is None:
        layout = choose_layout(model, depths)
    elif layout not in _LAYOUT_MODULES:
        raise ValueError(f"unknown layout {layout!r}")
    elif layout == "additive" and not additive.eligible(model.trees, depths):
        raise ValueError("the additive layout needs trees of depth <= 1")
    return Forest(
        num_feature=model.num_feature,
        base_margin=model.base_margin,
        layout=layout,
        arrays=_LAYOUT_MODULES[layout].build(model),
        num_trees=len(model.trees),
        feature_names=model.feature_names,
        feature_types=model.feature_types,
        category_encodings=model.category_encodings,
        has_categorical_splits=model.has_categorical_splits,
        best_iteration=model.best_iteration,
    )


def warm_up() -> None:
    """Compile (or load from the disk cache) the kernels the server uses, so no request pays for it."""
    for layout in LAYOUTS:
        forest = _tiny_forest(layout)
        forest.kernel_predict7(1.0, 2.0, 3.0, 4.0, 5.0, 6.0, float("nan"))
        forest.predict(np.ones((3, 7)))


def _tiny_forest(layout: str) -> Forest:
    """A one-tree, one-split model built in memory (no xgboost) with the kernels' argument types."""
    tree = {
        "left_children": [1, -1, -1],
        "right_children": [2, -1, -1],
        "split_indices": [0, 0, 0],
        "split_conditions": [1.5, -0.25, 0.25],
        "default_left": [1, 0, 0],
        "split_type": [0, 0, 0],
        "categories": [],
        "categories_nodes": [],
        "categories_segments": [],
        "categories_sizes": [],
        "tree_param": {"size_leaf_vector": "1"},
    }
    doc = {
        "learner": {
            "objective": {"name": "binary:logistic"},
            "learner_model_param": {"base_score": "5E-1", "num_class": "0", "num_feature": "7"},
            "gradient_booster": {"name": "gbtree", "model": {"trees": [tree]}},
        }
    }
    return forest_from_json(doc, "<warm-up>", layout)
