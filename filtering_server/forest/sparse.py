"""The sparse layout: trees in their own shape, with explicit child indices (deep or lopsided trees).

For models whose padded (complete) size would be too large or mostly padding, such as deep lossguide
trees. Nodes are renumbered so that a right child directly follows its left sibling (`first[j]` is the
left child, `first[j] + 1` the right one); categorical splits keep xgboost's bit fields, all in one
array. The decision is xgboost's, as in the complete layout.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from numba import njit

from filtering_server.forest._kernel import CACHE, row_of7, sigmoid
from filtering_server.forest.parse import LEAF, ParsedModel, Tree

#: Largest category value xgboost accepts (`OutOfRangeCat`): larger or negative ones go left.
MAX_CATEGORY = 16777216.0


def build(model: ParsedModel) -> tuple[np.ndarray, ...]:
    """The model's packed arrays in this layout (the kernels' leading arguments)."""
    return pack(arrays(model.trees, model.weights))


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


def arrays(trees: Sequence[Tree], weights: np.ndarray) -> tuple[np.ndarray, ...]:
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
                value = tree.leaf_value(node, weight)
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


def pack(parts: tuple[np.ndarray, ...]) -> tuple[np.ndarray, ...]:
    """The arrays concatenated by dtype, sizes first in the int64 one (`views` slices them back)."""
    feat, value, first, dright, catn, roots, cat_meta, cat_words = parts
    nodes, n, metas = feat.shape[0], roots.shape[0], cat_meta.shape[0]
    i64 = np.concatenate([[nodes, n, metas], first, roots, cat_meta.ravel()]).astype(np.int64)
    i32 = np.concatenate([feat, catn, dright.astype(np.int32)]).astype(np.int32)
    return (i64, i32, value, cat_words)


@njit(inline="always", nogil=True)
def views(i64, i32, value, cat_words):
    nodes, n, metas = i64[0], i64[1], i64[2]
    first = i64[3 : 3 + nodes]
    roots = i64[3 + nodes : 3 + nodes + n]
    cat_meta = i64[3 + nodes + n : 3 + nodes + n + 2 * metas].reshape((metas, 2))
    feat, catn, dright = i32[:nodes], i32[nodes : 2 * nodes], i32[2 * nodes : 3 * nodes]
    return (feat, value, first, dright, catn, roots, cat_meta, cat_words)


@njit(nogil=True, cache=CACHE)
def margin(v, base, x):
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
def predict7(i64, i32, value, cat_words, base, general, a, b, c, d, e, f, g):
    v = views(i64, i32, value, cat_words)
    return sigmoid(margin(v, base, row_of7(a, b, c, d, e, f, g)))


@njit(nogil=True, cache=CACHE)
def predict_batch(i64, i32, value, cat_words, base, general, rows, out):
    v = views(i64, i32, value, cat_words)
    for r in range(rows.shape[0]):
        out[r] = sigmoid(margin(v, base, rows[r]))
