"""XGBoost trees flattened into arrays and walked by numba-compiled kernels: scoring in microseconds.

Why not xgboost itself on the hot path: `inplace_predict` costs ~100 us per single row (DMatrix-free,
but still a C API round trip with thread dispatch); a new DMatrix per row (the original server) ~250 us.
Why numba and not treelite/tl2cgen or a C extension: numba ships as manylinux wheels (llvmlite bundles
LLVM), so the slim Docker image needs no compiler, and the kernels are compiled once and cached on disk
(NUMBA_CACHE_DIR); a new model only replaces arrays, never code, so a model swap never recompiles.

Semantics follow xgboost's CPU predictor exactly (checked against `Booster.predict` in the tests and at
every model load): inputs are float32; a numerical split goes left when `x < split_condition`; a
categorical split goes right when the category is in the node's set, left when it is not, negative,
beyond the set's bit field or >= 2^24; a missing value (NaN) takes the node's default direction; leaf
values are summed in float32 in tree order, starting from the base margin; `binary:logistic` applies
the sigmoid. Every tree of the booster is used, as `Booster.predict` does by default.

Layout: each tree is padded to a complete binary tree of its own depth (a shallow leaf becomes a chain
of "always left" nodes with a NaN threshold), so a walk is a fixed number of branch-free steps
`i = 2i + 1 + go_right`. One row advances all trees a level at a time (trees sorted by depth, so the
ones still descending are a suffix): independent chains the CPU overlaps, instead of one tree's
dependent loads at a time. A batch advances a block of rows through one tree at a time instead, that
tree's nodes staying in cache. Models whose padded size would be too large or mostly padding (deep
lossguide trees) keep their own shape in a sparse layout with explicit child indices.

Models of stumps (every tree of depth 0 or 1, like the kit's `default` training preset: about 200 to
2,000 depth-1 trees on the categorical Index* columns) are additive: the margin is the base margin plus
one function per feature, a step function of its value. They are folded at load time into one table
per feature (the "additive" layout): a row costs one lookup per feature, whatever the number of trees.
The folded sums are exact in float64; xgboost accumulates leaves in float32, so the two differ by
xgboost's own rounding, which grows with the number of trees (measured up to 6.6e-7 in probability on
a 1,757-tree default model; the tests bound it by 1e-6).
"""

from __future__ import annotations

import functools
import itertools
import json
import logging
import math
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numba import njit, prange

from aik.errors import ArtifactError
from filtering_server._jit import CACHE

log = logging.getLogger(__name__)

#: Objectives whose prediction is sigmoid(margin): a probability in [0, 1].
LOGISTIC_OBJECTIVES = ("binary:logistic", "reg:logistic")
#: Largest category value xgboost accepts (`OutOfRangeCat`): larger or negative ones go left.
MAX_CATEGORY = 16777216.0
#: Padded (complete-tree) layout only while it stays this small and mostly real nodes; else sparse.
MAX_COMPLETE_NODES = 1 << 21
MAX_COMPLETE_DEPTH = 20
#: Largest categorical decision matrices (all features) of the complete layout; beyond, sparse.
MAX_DECISION_BYTES = 64 << 20
#: Models no deeper than this are walked tree by tree for one row (measured faster up to depth 3;
#: deeper ones level by level across all trees).
SHALLOW_DEPTH = 3
#: Rows per block in the batch kernels: one tree's nodes stay hot while it scores the whole block.
BLOCK_ROWS = 64

LEAF = -1
#: The array layouts a forest can take (`forest_from_json` picks one when not told).
LAYOUTS = ("complete", "sparse", "additive")


@dataclass(frozen=True)
class _Tree:
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


@dataclass(frozen=True)
class Forest:
    """A binary-logistic tree ensemble as flat arrays; `predict` and `predict_row` score like xgboost."""

    num_feature: int
    base_margin: np.float32
    layout: str  # one of LAYOUTS
    arrays: tuple[np.ndarray, ...]  # the layout's arrays packed by dtype (`_PACK`)
    num_trees: int
    feature_names: tuple[str, ...] | None
    feature_types: tuple[str, ...] | None
    #: feature index -> the training categories (xgboost >= 3 stores them for pandas input): a raw
    #: value must be re-coded to its position in this list before scoring (see `category_codes`).
    category_encodings: dict[int, tuple[Any, ...]] = field(default_factory=dict)
    has_categorical_splits: bool = False
    best_iteration: int | None = None
    #: the kernels' leading arguments: the packed arrays, the base margin, and "use the general walk"
    _args: tuple[Any, ...] = field(init=False, repr=False, compare=False)
    #: `predict7(f0, ..., f6)`: the probability for one row of exactly seven features, the server's hot
    #: path (no array built). The row kernel with its leading arguments bound (`functools.partial`):
    #: measured 0.15-0.2 us faster per call than a method unpacking them each time.
    predict7: Callable[[float, float, float, float, float, float, float], float] = field(
        init=False, repr=False, compare=False
    )

    def __post_init__(self) -> None:
        object.__setattr__(self, "_args", (*self.arrays, self.base_margin, self.has_categorical_splits))
        object.__setattr__(self, "predict7", functools.partial(_ROW7[self.layout], *self._args))

    def predict(self, x: np.ndarray, parallel: bool = False) -> np.ndarray:
        """Probabilities for a 2-D array of rows (float64 out; inputs are used as float32, like xgboost)."""
        rows = np.ascontiguousarray(x, dtype=np.float32)
        if rows.ndim != 2 or rows.shape[1] != self.num_feature:
            raise ValueError(f"expected rows of {self.num_feature} features, got shape {rows.shape}")
        out = np.empty(rows.shape[0], dtype=np.float64)
        if rows.shape[0] == 0:
            return out
        if parallel:
            # numba's default (workqueue) threading layer must not be entered by two threads at once
            with _PARALLEL_LOCK:
                _BATCH_PARALLEL[self.layout](*self._args, rows, out)
        else:
            _BATCH[self.layout](*self._args, rows, out)
        return out

    def predict_row(self, row: Sequence[float]) -> float:
        """The probability for one row (any feature count)."""
        x = np.asarray(row, dtype=np.float32)
        if x.shape != (self.num_feature,):
            raise ValueError(f"expected {self.num_feature} features, got {x.shape}")
        return float(_ROW[self.layout](*self._args, x))


# ------------------------------------------------------------------------------------------------
# Parsing xgboost's JSON model
# ------------------------------------------------------------------------------------------------


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


def _parse_tree(doc: Mapping[str, Any]) -> _Tree:
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
    tree = _Tree(
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


def _bitset_words(categories: np.ndarray) -> np.ndarray:
    """xgboost's category bit field as 32-bit words (bit c set when category c goes right)."""
    if categories.size == 0:
        return np.zeros(0, dtype=np.uint32)
    words = np.zeros(int(categories.max()) // 32 + 1, dtype=np.uint32)
    for c in categories.tolist():
        words[c // 32] |= np.uint32(1 << (c % 32))
    return words


class _CategoryTable:
    """All categorical splits' bit fields in one array: node -> (offset, words)."""

    def __init__(self) -> None:
        self.offsets: list[int] = []
        self.lengths: list[int] = []
        self.words: list[np.ndarray] = []
        self._size = 0

    def add(self, categories: np.ndarray) -> int:
        words = _bitset_words(categories)
        self.offsets.append(self._size)
        self.lengths.append(int(words.shape[0]))
        self.words.append(words)
        self._size += int(words.shape[0])
        return len(self.offsets) - 1

    def arrays(self) -> tuple[np.ndarray, np.ndarray]:
        """(meta[k] = (word offset, word count), words); never empty, so the kernels always type-check."""
        words = np.concatenate(self.words) if self.words else np.zeros(1, dtype=np.uint32)
        meta = np.stack([np.asarray(self.offsets or [0]), np.asarray(self.lengths or [0])], axis=1)
        return meta.astype(np.int64), words.astype(np.uint32)


def _decision_bytes(trees: Sequence[_Tree], num_feature: int) -> int:
    """Size of the categorical decision matrices `_complete_arrays` would build."""
    nodes = [0] * num_feature
    top = [0] * num_feature
    for tree in trees:
        for node, cats in tree.categories.items():
            f = int(tree.feature[node])
            nodes[f] += 1
            top[f] = max(top[f], int(cats.max()) + 1 if cats.size else 0)
    return sum(4 * (k + 1) * ((n + 31) // 32) for n, k in zip(nodes, top, strict=True) if n)


def _complete_arrays(trees: Sequence[_Tree], weights: np.ndarray, num_feature: int) -> tuple[np.ndarray, ...]:
    """Trees padded to complete binary trees, stored in ascending depth order.

    Sorting by depth makes the trees still descending at level `l` a suffix of the order, so the
    kernels advance every tree one level at a time (independent chains the CPU overlaps) and then
    sum the leaves in the original tree order (xgboost's float32 summation order).

    Categorical splits become decision matrices: for each feature with categorical splits, one row
    per category value holding one bit per such node (set: the category goes right), plus an all-zero
    row for values outside every set (negative, too large, unknown). A row is looked up once per
    request and feature, so each categorical node costs a bit test in a cache-hot row instead of a
    bit field of its own somewhere in memory.
    """
    depths = np.asarray([t.depth() for t in trees], dtype=np.int64)
    order = np.argsort(depths, kind="stable")  # sorted position -> tree
    pos = np.empty_like(order)
    pos[order] = np.arange(order.shape[0])  # tree -> sorted position
    sorted_depths = depths[order]
    internal = (np.int64(1) << sorted_depths) - 1
    leaves = np.int64(1) << sorted_depths
    node_off = np.concatenate([[0], np.cumsum(internal)[:-1]]).astype(np.int64)
    leaf_off = np.concatenate([[0], np.cumsum(leaves)[:-1]]).astype(np.int64)
    total_nodes = max(int(internal.sum()), 1)
    feat = np.zeros(total_nodes, dtype=np.int32)
    thr = np.full(total_nodes, np.nan, dtype=np.float32)  # NaN threshold: padding, always left
    dright = np.zeros(total_nodes, dtype=np.uint8)
    catn = np.full(total_nodes, -1, dtype=np.int32)
    leaf = np.zeros(int(leaves.sum()), dtype=np.float32)
    categorical: list[list[np.ndarray]] = [[] for _ in range(num_feature)]  # feature -> node sets
    for p, t in enumerate(order.tolist()):
        tree = trees[t]
        depth = int(sorted_depths[p])
        weight = weights[t]
        stack = [(0, 0, 0)]  # (node, position in the complete tree, level)
        while stack:
            node, at, level = stack.pop()
            if tree.left[node] == LEAF:
                value = tree.condition[node] if weight == 1.0 else np.float32(tree.condition[node] * weight)
                first = ((at + 1) << (depth - level)) - 1 - ((1 << depth) - 1)
                leaf[leaf_off[p] + first : leaf_off[p] + first + (1 << (depth - level))] = value
                continue
            j = node_off[p] + at
            feat[j] = tree.feature[node]
            dright[j] = 0 if tree.default_left[node] else 1
            if node in tree.categories:
                sets = categorical[int(tree.feature[node])]
                catn[j] = len(sets)  # the node's bit in its feature's decision rows
                sets.append(tree.categories[node])
            else:
                thr[j] = tree.condition[node]
            stack.append((int(tree.left[node]), 2 * at + 1, level + 1))
            stack.append((int(tree.right[node]), 2 * at + 2, level + 1))
    # decision matrices, flattened; word 0 stays 0 for features without categorical splits
    cat_feature = np.zeros((num_feature, 3), dtype=np.int64)  # (first word, categories K, words per row)
    parts = [np.zeros(1, dtype=np.uint32)]
    offset = 1
    for f, sets in enumerate(categorical):
        if not sets:
            continue
        k = max((int(c.max()) + 1 if c.size else 0) for c in sets)
        w = (len(sets) + 31) // 32
        matrix = np.zeros((k + 1, w), dtype=np.uint32)  # row k: outside every set
        for bit, cats in enumerate(sets):
            matrix[cats, bit >> 5] |= np.uint32(1 << (bit & 31))
        cat_feature[f] = (offset, k, w)
        parts.append(matrix.ravel())
        offset += matrix.size
    decisions = np.concatenate(parts)
    # tree table: node offset, leaf offset (minus the leaf-level base index), depth, per sorted position
    tree_table = np.stack([node_off, leaf_off - internal, sorted_depths], axis=1).astype(np.int64)
    # the same per tree in the original order, as flat arrays (the shallow walk's)
    by_tree = tree_table[pos]
    t_node, t_leaf, t_depth = (np.ascontiguousarray(by_tree[:, k]) for k in range(3))
    max_depth = int(sorted_depths.max()) if sorted_depths.size else 0
    # start[l]: first sorted position whose tree is deeper than l
    start = np.searchsorted(sorted_depths, np.arange(max_depth), side="right").astype(np.int64)
    return (
        feat,
        thr,
        catn,
        dright,
        leaf,
        tree_table,
        start,
        pos.astype(np.int64),
        t_node,
        t_leaf,
        t_depth,
        cat_feature,
        decisions,
    )


def _sparse_arrays(trees: Sequence[_Tree], weights: np.ndarray) -> tuple[np.ndarray, ...]:
    """Nodes renumbered so that every right child directly follows its left sibling."""
    feats: list[int] = []
    values: list[float] = []
    firsts: list[int] = []  # index of the left child; LEAF for leaves
    drights: list[int] = []
    catns: list[int] = []
    roots: list[int] = []
    table = _CategoryTable()
    for t, tree in enumerate(trees):
        weight = weights[t]
        root = len(feats)
        roots.append(root)
        feats.append(0)
        values.append(0.0)
        firsts.append(LEAF)
        drights.append(0)
        catns.append(-1)
        queue = [(0, root)]
        while queue:
            node, idx = queue.pop()
            if tree.left[node] == LEAF:
                value = tree.condition[node] if weight == 1.0 else np.float32(tree.condition[node] * weight)
                values[idx] = float(value)
                continue
            child = len(feats)
            for _ in range(2):
                feats.append(0)
                values.append(0.0)
                firsts.append(LEAF)
                drights.append(0)
                catns.append(-1)
            feats[idx] = int(tree.feature[node])
            firsts[idx] = child
            drights[idx] = 0 if tree.default_left[node] else 1
            if node in tree.categories:
                catns[idx] = table.add(tree.categories[node])
            else:
                values[idx] = float(tree.condition[node])
            queue.append((int(tree.left[node]), child))
            queue.append((int(tree.right[node]), child + 1))
    cat_meta, cat_words = table.arrays()
    return (
        np.asarray(feats, dtype=np.int32),
        np.asarray(values, dtype=np.float64).astype(np.float32),
        np.asarray(firsts, dtype=np.int64),
        np.asarray(drights, dtype=np.uint8),
        np.asarray(catns, dtype=np.int32),
        np.asarray(roots, dtype=np.int64),
        cat_meta,
        cat_words,
    )


#: `_additive_arrays` feature kinds.
UNUSED, NUMERIC, CATEGORICAL = 0, 1, 2


def _additive_eligible(trees: Sequence[_Tree], depths: Sequence[int]) -> bool:
    """Stumps only, and no feature split both numerically and categorically (xgboost never does that)."""
    if max(depths) > 1:
        return False
    kinds: dict[int, bool] = {}
    for tree in trees:
        if tree.left[0] != LEAF:
            f = int(tree.feature[0])
            if kinds.setdefault(f, 0 in tree.categories) != (0 in tree.categories):
                return False
    return True


def _additive_arrays(
    trees: Sequence[_Tree], weights: np.ndarray, num_feature: int, base_margin: np.float32
) -> tuple[np.ndarray, ...]:
    """Stumps folded into one step function per feature: (kind, meta, thresholds, values, nan_values, const).

    A numerical stump on f at t adds its left leaf below t and its right leaf from t up; with the
    feature's distinct thresholds T sorted, a value's interval is the number of thresholds <= it
    (`searchsorted(T, v, "right")`), and the feature's table holds the sum for each interval.
    A categorical stump adds its right leaf to the categories in its set and its left leaf to every
    other value; the table has one entry per category up to the largest one in any set, plus a last
    entry for every value outside all sets (negative, beyond, >= 2^24: all go left in xgboost).
    A missing value takes each stump's default branch: one more sum per feature (`nan_values`).
    Trees of depth 0 add their leaf to every row (`const`, with the base margin).
    meta[f] = (first entry in `values`, entries, first threshold in `thresholds`, thresholds).
    """
    stumps: list[list[tuple[_Tree, float, float]]] = [[] for _ in range(num_feature)]
    const = np.float64(base_margin)
    for tree, weight in zip(trees, weights.tolist(), strict=True):

        def leaf(node: int, tree: _Tree = tree, weight: float = weight) -> np.float64:
            # the leaf as the other layouts store it (float32, dart weight applied), then widened
            value = tree.condition[node] if weight == 1.0 else np.float32(tree.condition[node] * weight)
            return np.float64(value)

        if tree.left[0] == LEAF:
            const += leaf(0)
            continue
        stumps[int(tree.feature[0])].append((tree, leaf(int(tree.left[0])), leaf(int(tree.right[0]))))
    kind = np.zeros(num_feature, dtype=np.int64)
    meta = np.zeros((num_feature, 4), dtype=np.int64)
    nan_values = np.zeros(num_feature, dtype=np.float64)
    tables: list[np.ndarray] = []
    cuts: list[np.ndarray] = []
    n_values = n_cuts = 0
    for f, group in enumerate(stumps):
        if not group:
            continue
        if 0 in group[0][0].categories:
            kind[f] = CATEGORICAL
            k = max((int(t.categories[0].max()) + 1 if t.categories[0].size else 0) for t, _, _ in group)
            table = np.zeros(k + 1, dtype=np.float64)  # entry k: outside every set
            for tree, left, right in group:
                step = np.full(k + 1, left)
                step[tree.categories[0]] = right
                table += step
            thresholds = np.zeros(0, dtype=np.float32)
        else:
            kind[f] = NUMERIC
            thresholds = np.unique(np.asarray([t.condition[0] for t, _, _ in group], dtype=np.float32))
            table = np.zeros(thresholds.shape[0] + 1, dtype=np.float64)
            for tree, left, right in group:
                cut = int(np.searchsorted(thresholds, tree.condition[0], side="right"))
                table[:cut] += left  # intervals below the threshold (x < t)
                table[cut:] += right  # from the threshold's own interval up (x >= t)
        nan_values[f] = sum(left if tree.default_left[0] else right for tree, left, right in group)
        meta[f] = (n_values, table.shape[0], n_cuts, thresholds.shape[0])
        tables.append(table)
        cuts.append(thresholds)
        n_values += table.shape[0]
        n_cuts += thresholds.shape[0]
    values = np.concatenate(tables) if tables else np.zeros(1, dtype=np.float64)
    thresholds_all = np.concatenate(cuts) if n_cuts else np.zeros(1, dtype=np.float32)
    return (kind, meta, thresholds_all.astype(np.float32), values, nan_values, np.asarray([const]))


def forest_from_json(doc: Mapping[str, Any], uri: str = "<model>", layout: str | None = None) -> Forest:
    """Flatten a parsed xgboost JSON model (`Booster.save_raw("json")`); errors name the URI."""
    try:
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
        if name == "dart":
            weights = np.asarray(booster["weight_drop"], dtype=np.float32)
            model = booster["gbtree"]["model"]
        elif name == "gbtree":
            model = booster["model"]
            weights = None
        else:
            raise ValueError(f"booster {name!r} is not a tree model (use gbtree or dart)")
        trees = [_parse_tree(t) for t in model["trees"]]
        if not trees:
            raise ValueError("the model has no trees")
        weights = np.ones(len(trees), dtype=np.float32) if weights is None else weights
        if weights.shape[0] != len(trees):
            raise ValueError("dart weight_drop does not match the number of trees")
        feature_names = tuple(learner.get("feature_names") or ()) or None
        feature_types = tuple(learner.get("feature_types") or ()) or None
        encodings = _parse_encodings(model.get("cats"), num_feature)
        attributes = learner.get("attributes") or {}
        best = attributes.get("best_iteration")
        for tree in trees:
            used = tree.feature[tree.left != LEAF]
            if used.size and (used.min() < 0 or used.max() >= num_feature):
                raise ValueError("a split uses a feature index outside num_feature")
    except (KeyError, TypeError, ValueError, IndexError) as exc:
        raise ArtifactError(uri, f"not a usable xgboost model ({exc})") from exc

    depths = [t.depth() for t in trees]
    padded = sum((1 << d) for d in depths)
    real = sum(t.left.shape[0] for t in trees)
    additive = _additive_eligible(trees, depths)
    if layout is None and additive:
        layout = "additive"
    if layout is None:
        # padding pays while trees are nearly full (depth-wise growth); lopsided lossguide trees would
        # mostly walk padding, so they keep their own shape
        small = max(depths) <= MAX_COMPLETE_DEPTH and padded <= MAX_COMPLETE_NODES
        small = small and _decision_bytes(trees, num_feature) <= MAX_DECISION_BYTES
        layout = "complete" if small and padded <= 4 * real else "sparse"
    if layout == "complete":
        arrays = _complete_arrays(trees, weights, num_feature)
    elif layout == "sparse":
        arrays = _sparse_arrays(trees, weights)
    elif layout == "additive":
        if not additive:
            raise ValueError("the additive layout needs trees of depth <= 1")
        arrays = _additive_arrays(trees, weights, num_feature, base_margin)
    else:
        raise ValueError(f"unknown layout {layout!r}")
    return Forest(
        num_feature=num_feature,
        base_margin=base_margin,
        layout=layout,
        arrays=_PACK[layout](arrays),
        num_trees=len(trees),
        feature_names=feature_names,
        feature_types=feature_types,
        category_encodings=encodings,
        has_categorical_splits=any(t.categories for t in trees),
        best_iteration=int(best) if best is not None else None,
    )


def booster_json(model_bytes: bytes, uri: str = "<model>") -> dict[str, Any]:
    """Load booster bytes (UBJSON or JSON, as `save_model` writes them) and return xgboost's JSON dump."""
    import xgboost

    if not model_bytes:
        raise ArtifactError(uri, "the model file is empty")  # xgboost 3.2 aborts the process on b""
    booster = xgboost.Booster()
    try:
        booster.load_model(bytearray(model_bytes))
    except xgboost.core.XGBoostError as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else "unreadable"
        raise ArtifactError(uri, f"not an xgboost model xgboost can load ({first})") from exc
    return json.loads(booster.save_raw(raw_format="json"))


def load_forest(model_bytes: bytes, uri: str = "<model>", layout: str | None = None) -> Forest:
    """Booster bytes -> Forest (xgboost parses its own formats; we flatten its JSON)."""
    return forest_from_json(booster_json(model_bytes, uri), uri, layout)


# ------------------------------------------------------------------------------------------------
# Kernels: compiled once per process and cached on disk; `nogil`, so connection threads score in
# parallel. Two walks per tree layout (complete, sparse): a fast one for numerical splits on rows
# without missing values (one compare per level, no branches), and a general one for missing values
# and categorical splits. The additive layout looks each feature up in its table.
# The node decision is written out in every kernel on purpose: passing arrays to a helper function,
# even one numba inlines, costs reference-count updates per node and made the walk five times slower.
# The general decision is xgboost's: NaN -> the default direction; a categorical node sends a
# category right when its bit is set, and an invalid category (negative, >= 2^24) or one beyond the
# bit field left; a numerical node sends v right unless v < threshold.
# ------------------------------------------------------------------------------------------------


@njit(inline="always", nogil=True)
def _sigmoid(margin):  # type: ignore[no-untyped-def]
    return 1.0 / (1.0 + math.exp(-np.float64(margin)))


@njit(inline="always", nogil=True)
def _decision_rows(cat_feature, x, rows, r):  # type: ignore[no-untyped-def]
    """rows[r, f]: the first word of x[f]'s decision row (the all-zero row outside every set)."""
    for f in range(cat_feature.shape[0]):
        k = cat_feature[f, 1]
        if cat_feature[f, 2] == 0:  # no categorical split on f: word 0, always 0
            rows[r, f] = 0
        else:
            v = x[f]
            # xgboost: a negative, NaN or beyond-the-bit-field category is never in a set
            row = np.int64(v) if v >= 0.0 and v < k else k
            rows[r, f] = cat_feature[f, 0] + row * cat_feature[f, 2]


# ------------------------------------------------------------------------------------------------
# Packed arguments. numba's dispatcher unboxes every array argument on every call (~0.09 us each,
# measured: 13 arrays cost 1.75 us per call, 1 array 0.61 us), more than the walk of a small model.
# So a forest keeps each layout's arrays concatenated by dtype, sizes first in its int64 array
# (`_PACK`), and every kernel slices them back into views (`*_views`), which costs nanoseconds; the
# views travel between kernels as one tuple.
# ------------------------------------------------------------------------------------------------


def _pack_complete(arrays: tuple[np.ndarray, ...]) -> tuple[np.ndarray, ...]:
    feat, thr, catn, dright, leaf, trees, start, pos, t_node, t_leaf, t_depth, cat_feature, decisions = arrays
    n, depth, nf, nodes = trees.shape[0], start.shape[0], cat_feature.shape[0], feat.shape[0]
    i64 = np.concatenate(
        [[n, depth, nf, nodes], trees.ravel(), start, pos, t_node, t_leaf, t_depth, cat_feature.ravel()]
    )
    i32 = np.concatenate([feat, catn, dright.astype(np.int32)])
    return (i64.astype(np.int64), i32.astype(np.int32), np.concatenate([thr, leaf]), decisions)


@njit(inline="always", nogil=True)
def _complete_views(i64, i32, f32, decisions):  # type: ignore[no-untyped-def]
    n, depth, nf, nodes = i64[0], i64[1], i64[2], i64[3]
    o = 4
    trees = i64[o : o + 3 * n].reshape((n, 3))
    o += 3 * n
    start = i64[o : o + depth]
    o += depth
    pos = i64[o : o + n]
    t_node = i64[o + n : o + 2 * n]
    t_leaf = i64[o + 2 * n : o + 3 * n]
    t_depth = i64[o + 3 * n : o + 4 * n]
    o += 4 * n
    cat_feature = i64[o : o + 3 * nf].reshape((nf, 3))
    feat, catn, dright = i32[:nodes], i32[nodes : 2 * nodes], i32[2 * nodes : 3 * nodes]
    thr, leaf = f32[:nodes], f32[nodes:]
    return (feat, thr, catn, dright, leaf, trees, start, pos, t_node, t_leaf, t_depth, cat_feature, decisions)


def _pack_sparse(arrays: tuple[np.ndarray, ...]) -> tuple[np.ndarray, ...]:
    feat, value, first, dright, catn, roots, cat_meta, cat_words = arrays
    nodes, n, metas = feat.shape[0], roots.shape[0], cat_meta.shape[0]
    i64 = np.concatenate([[nodes, n, metas], first, roots, cat_meta.ravel()]).astype(np.int64)
    i32 = np.concatenate([feat, catn, dright.astype(np.int32)]).astype(np.int32)
    return (i64, i32, value, cat_words)


@njit(inline="always", nogil=True)
def _sparse_views(i64, i32, value, cat_words):  # type: ignore[no-untyped-def]
    nodes, n, metas = i64[0], i64[1], i64[2]
    first = i64[3 : 3 + nodes]
    roots = i64[3 + nodes : 3 + nodes + n]
    cat_meta = i64[3 + nodes + n : 3 + nodes + n + 2 * metas].reshape((metas, 2))
    feat, catn, dright = i32[:nodes], i32[nodes : 2 * nodes], i32[2 * nodes : 3 * nodes]
    return (feat, value, first, dright, catn, roots, cat_meta, cat_words)


def _pack_additive(arrays: tuple[np.ndarray, ...]) -> tuple[np.ndarray, ...]:
    kind, meta, thresholds, values, nan_values, const = arrays
    i64 = np.concatenate([[kind.shape[0]], kind, meta.ravel()]).astype(np.int64)
    return (i64, thresholds, np.concatenate([const, nan_values, values]))


@njit(inline="always", nogil=True)
def _additive_views(i64, thresholds, f64):  # type: ignore[no-untyped-def]
    nf = i64[0]
    kind = i64[1 : 1 + nf]
    meta = i64[1 + nf : 1 + 5 * nf].reshape((nf, 4))
    const, nan_values, values = f64[:1], f64[1 : 1 + nf], f64[1 + nf :]
    return (kind, meta, thresholds, values, nan_values, const)


@njit(inline="always", nogil=True)
def _row7(a, b, c, d, e, f, g):  # type: ignore[no-untyped-def]
    x = np.empty(7, dtype=np.float32)
    x[0], x[1], x[2], x[3], x[4], x[5], x[6] = a, b, c, d, e, f, g
    return x


# ------------------------------------------------------------------------------------------------
# Complete layout
# ------------------------------------------------------------------------------------------------


@njit(nogil=True, cache=CACHE)
def _complete_margin(v, base, general, x):  # type: ignore[no-untyped-def]
    feat, thr, catn, dright, leaf, trees, start, pos, t_node, t_leaf, t_depth, cat_feature, decisions = v
    n = trees.shape[0]
    has_nan = False
    for k in range(x.shape[0]):
        if x[k] != x[k]:
            has_nan = True
    if not (general or has_nan) and start.shape[0] <= SHALLOW_DEPTH:
        # shallow trees: walk each tree to its leaf in the original order and sum as we go (the
        # short chains of consecutive trees overlap in the CPU; no index array round trip)
        s = np.float32(base)
        for t in range(n):
            o = t_node[t]
            i = 0
            for _ in range(t_depth[t]):
                j = o + i
                i = 2 * i + 1 + (1 if x[feat[j]] >= thr[j] else 0)
            s += leaf[t_leaf[t] + i]
        return s
    idx = np.zeros(n, dtype=np.int64)
    if general or has_nan:
        rows = np.empty((1, cat_feature.shape[0]), dtype=np.int64)
        _decision_rows(cat_feature, x, rows, 0)
        for level in range(start.shape[0]):
            for p in range(start[level], n):
                i = idx[p]
                j = trees[p, 0] + i
                f = feat[j]
                xv = x[f]
                c = catn[j]
                if has_nan and xv != xv:
                    go = dright[j] == 1
                else:
                    cb = max(c, 0)
                    in_set = (decisions[rows[0, f] + (cb >> 5)] >> np.uint32(cb & 31)) & np.uint32(1) != 0
                    go = in_set if c >= 0 else xv >= thr[j]
                idx[p] = 2 * i + 1 + (1 if go else 0)
    else:
        for level in range(start.shape[0]):
            for p in range(start[level], n):
                i = idx[p]
                j = trees[p, 0] + i
                idx[p] = 2 * i + 1 + (1 if x[feat[j]] >= thr[j] else 0)
    s = np.float32(base)
    for t in range(n):
        p = pos[t]
        s += leaf[trees[p, 1] + idx[p]]
    return s


@njit(nogil=True, cache=CACHE)
def _complete_block(v, base, general, rows, out, lo, hi):  # type: ignore[no-untyped-def]
    # one tree at a time (original order) over the block's rows, all rows advancing a level together
    # (independent chains the CPU overlaps), the tree's nodes hot in cache; leaves summed in tree
    # order. The block is copied feature-major first: a level's loads of one feature are contiguous
    # (measured 1.1-1.4x faster than reading the row-major input in place).
    feat, thr, catn, dright, leaf, _trees, _start, _pos, t_node, t_leaf, t_depth, cat_feature, decisions = v
    m = hi - lo
    nf = rows.shape[1]
    xb = np.empty((nf, m), dtype=np.float32)
    has_nan = False
    for q in range(m):
        for k in range(nf):
            xv = rows[lo + q, k]
            xb[k, q] = xv
            if xv != xv:
                has_nan = True
    slow = general or has_nan
    decision_rows = np.empty((m, cat_feature.shape[0]), dtype=np.int64)
    if slow:
        for q in range(m):
            _decision_rows(cat_feature, rows[lo + q], decision_rows, q)
    sums = np.full(m, np.float32(base), dtype=np.float32)
    idx = np.empty(m, dtype=np.int64)
    for t in range(t_node.shape[0]):
        o = t_node[t]
        for q in range(m):
            idx[q] = 0
        if slow:
            for _ in range(t_depth[t]):
                for q in range(m):
                    i = idx[q]
                    j = o + i
                    f = feat[j]
                    xv = xb[f, q]
                    c = catn[j]
                    if has_nan and xv != xv:
                        go = dright[j] == 1
                    else:
                        cb = max(c, 0)
                        word = decisions[decision_rows[q, f] + (cb >> 5)]
                        in_set = (word >> np.uint32(cb & 31)) & np.uint32(1) != 0
                        go = in_set if c >= 0 else xv >= thr[j]
                    idx[q] = 2 * i + 1 + (1 if go else 0)
        else:
            for _ in range(t_depth[t]):
                for q in range(m):
                    i = idx[q]
                    j = o + i
                    idx[q] = 2 * i + 1 + (1 if xb[feat[j], q] >= thr[j] else 0)
        base_leaf = t_leaf[t]
        for q in range(m):
            sums[q] += leaf[base_leaf + idx[q]]
    for q in range(m):
        out[lo + q] = _sigmoid(sums[q])


@njit(nogil=True, cache=CACHE)
def _complete_row(i64, i32, f32, decisions, base, general, x):  # type: ignore[no-untyped-def]
    return _sigmoid(_complete_margin(_complete_views(i64, i32, f32, decisions), base, general, x))


@njit(nogil=True, cache=CACHE)
def _complete_row7(i64, i32, f32, decisions, base, general, a, b, c, d, e, f, g):  # type: ignore[no-untyped-def]
    v = _complete_views(i64, i32, f32, decisions)
    return _sigmoid(_complete_margin(v, base, general, _row7(a, b, c, d, e, f, g)))


@njit(nogil=True, cache=CACHE)
def _complete_batch(i64, i32, f32, decisions, base, general, rows, out):  # type: ignore[no-untyped-def]
    v = _complete_views(i64, i32, f32, decisions)
    nrows = rows.shape[0]
    for lo in range(0, nrows, BLOCK_ROWS):
        _complete_block(v, base, general, rows, out, lo, min(lo + BLOCK_ROWS, nrows))


@njit(nogil=True, cache=CACHE, parallel=True)
def _complete_batch_parallel(i64, i32, f32, decisions, base, general, rows, out):  # type: ignore[no-untyped-def]
    v = _complete_views(i64, i32, f32, decisions)
    nrows = rows.shape[0]
    for b in prange((nrows + BLOCK_ROWS - 1) // BLOCK_ROWS):
        lo = b * BLOCK_ROWS
        _complete_block(v, base, general, rows, out, lo, min(lo + BLOCK_ROWS, nrows))


# ------------------------------------------------------------------------------------------------
# Sparse layout
# ------------------------------------------------------------------------------------------------


@njit(nogil=True, cache=CACHE)
def _sparse_margin(v, base, x):  # type: ignore[no-untyped-def]
    feat, value, first, dright, catn, roots, cat_meta, cat_words = v
    s = np.float32(base)
    for t in range(roots.shape[0]):
        j = roots[t]
        while first[j] >= 0:
            xv = x[feat[j]]
            c = catn[j]
            if xv != xv:
                go = dright[j] == 1
            elif c < 0:
                go = xv >= value[j]
            elif xv < 0.0 or xv >= MAX_CATEGORY:
                go = False
            else:
                cat = np.int64(xv)
                word = cat >> 5
                if word >= cat_meta[c, 1]:
                    go = False
                else:
                    go = ((cat_words[cat_meta[c, 0] + word] >> np.uint32(cat & 31)) & np.uint32(1)) != 0
            j = first[j] + (1 if go else 0)
        s += value[j]
    return s


@njit(nogil=True, cache=CACHE)
def _sparse_row(i64, i32, value, cat_words, base, general, x):  # type: ignore[no-untyped-def]
    return _sigmoid(_sparse_margin(_sparse_views(i64, i32, value, cat_words), base, x))


@njit(nogil=True, cache=CACHE)
def _sparse_row7(i64, i32, value, cat_words, base, general, a, b, c, d, e, f, g):  # type: ignore[no-untyped-def]
    v = _sparse_views(i64, i32, value, cat_words)
    return _sigmoid(_sparse_margin(v, base, _row7(a, b, c, d, e, f, g)))


@njit(nogil=True, cache=CACHE)
def _sparse_batch(i64, i32, value, cat_words, base, general, rows, out):  # type: ignore[no-untyped-def]
    v = _sparse_views(i64, i32, value, cat_words)
    for r in range(rows.shape[0]):
        out[r] = _sigmoid(_sparse_margin(v, base, rows[r]))


@njit(nogil=True, cache=CACHE, parallel=True)
def _sparse_batch_parallel(i64, i32, value, cat_words, base, general, rows, out):  # type: ignore[no-untyped-def]
    v = _sparse_views(i64, i32, value, cat_words)
    for r in prange(rows.shape[0]):
        out[r] = _sigmoid(_sparse_margin(v, base, rows[r]))


# ------------------------------------------------------------------------------------------------
# Additive layout (folded stumps)
# ------------------------------------------------------------------------------------------------


@njit(nogil=True, cache=CACHE)
def _additive_margin(v, x):  # type: ignore[no-untyped-def]
    # the base margin is already in const (with the depth-0 trees); float64 sums of the folded tables
    kind, meta, thresholds, values, nan_values, const = v
    s = const[0]
    for f in range(kind.shape[0]):
        k = kind[f]
        if k == UNUSED:
            continue
        xv = x[f]
        if xv != xv:
            s += nan_values[f]
        elif k == CATEGORICAL:
            top = meta[f, 1] - 1  # entries: categories 0..top-1, then "outside every set"
            s += values[meta[f, 0] + (np.int64(xv) if xv >= 0.0 and xv < top else top)]
        else:
            # number of thresholds <= xv (binary search): xv's interval
            lo = meta[f, 2]
            hi = lo + meta[f, 3]
            first = lo
            while lo < hi:
                mid = (lo + hi) >> 1
                if thresholds[mid] <= xv:
                    lo = mid + 1
                else:
                    hi = mid
            s += values[meta[f, 0] + lo - first]
    return s


@njit(nogil=True, cache=CACHE)
def _additive_row(i64, thresholds, f64, base, general, x):  # type: ignore[no-untyped-def]
    return _sigmoid(_additive_margin(_additive_views(i64, thresholds, f64), x))


@njit(nogil=True, cache=CACHE)
def _additive_row7(i64, thresholds, f64, base, general, a, b, c, d, e, f, g):  # type: ignore[no-untyped-def]
    v = _additive_views(i64, thresholds, f64)
    return _sigmoid(_additive_margin(v, _row7(a, b, c, d, e, f, g)))


@njit(nogil=True, cache=CACHE)
def _additive_batch(i64, thresholds, f64, base, general, rows, out):  # type: ignore[no-untyped-def]
    v = _additive_views(i64, thresholds, f64)
    for r in range(rows.shape[0]):
        out[r] = _sigmoid(_additive_margin(v, rows[r]))


@njit(nogil=True, cache=CACHE, parallel=True)
def _additive_batch_parallel(i64, thresholds, f64, base, general, rows, out):  # type: ignore[no-untyped-def]
    v = _additive_views(i64, thresholds, f64)
    for r in prange(rows.shape[0]):
        out[r] = _sigmoid(_additive_margin(v, rows[r]))


_PACK = {"complete": _pack_complete, "sparse": _pack_sparse, "additive": _pack_additive}
_ROW = {"complete": _complete_row, "sparse": _sparse_row, "additive": _additive_row}
_ROW7 = {"complete": _complete_row7, "sparse": _sparse_row7, "additive": _additive_row7}
_BATCH = {"complete": _complete_batch, "sparse": _sparse_batch, "additive": _additive_batch}
_BATCH_PARALLEL = {
    "complete": _complete_batch_parallel,
    "sparse": _sparse_batch_parallel,
    "additive": _additive_batch_parallel,
}
_PARALLEL_LOCK = threading.Lock()


def warm_up() -> None:
    """Compile (or load from the disk cache) every kernel now, so no request pays for compilation."""
    for layout in LAYOUTS:
        forest = _tiny_forest(layout)
        forest.predict7(1.0, 2.0, 3.0, 4.0, 5.0, 6.0, float("nan"))
        forest.predict_row([1.0] * 7)
        forest.predict(np.ones((3, 7)))
        forest.predict(np.ones((3, 7)), parallel=True)


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
