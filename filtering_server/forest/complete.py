"""The complete layout: every tree padded to a complete binary tree of its own depth, walked branch-free.

A shallow leaf becomes a chain of "always left" nodes with a NaN threshold, so a walk is a fixed number
of steps `i = 2i + 1 + go_right`. One row advances all trees a level at a time (trees sorted by depth,
so the ones still descending are a suffix): independent chains the CPU overlaps, instead of one tree's
dependent loads at a time. A batch advances a block of rows through one tree at a time instead, that
tree's nodes staying in cache. Categorical splits become per-feature decision matrices (`arrays`).

Two walks: a fast one for numerical splits on rows without missing values (one compare per level, no
branches), and a general one for missing values and categorical splits, xgboost's decision: NaN takes
the default direction; a category goes right when its bit is set, and an invalid category (negative,
>= 2^24) or one beyond the bit field goes left; a number goes right unless it is < the threshold. The
decision is written out in every kernel on purpose: passing the arrays to a helper, even one numba
inlines, costs reference-count updates per node.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from numba import njit

from filtering_server.forest._kernel import CACHE, row_of7, sigmoid
from filtering_server.forest.parse import LEAF, ParsedModel, Tree

#: Models no deeper than this are walked tree by tree for one row (deeper ones level by level).
SHALLOW_DEPTH = 3
#: Rows per block in the batch kernel: one tree's nodes stay hot while it scores the whole block.
BLOCK_ROWS = 64
#: Padded size limits: beyond them (or when mostly padding) a model takes the sparse layout.
MAX_NODES = 1 << 21
MAX_DEPTH = 20
#: Largest categorical decision matrices (all features); beyond, the sparse layout.
MAX_DECISION_BYTES = 64 << 20


def fits(model: ParsedModel, depths: Sequence[int]) -> bool:
    """Whether padding pays: trees nearly full (depth-wise growth) and the padded arrays small.

    Lopsided lossguide trees would mostly walk padding, so they keep their own shape (sparse layout).
    """
    padded = sum((1 << d) for d in depths)
    real = sum(t.left.shape[0] for t in model.trees)
    small = max(depths) <= MAX_DEPTH and padded <= MAX_NODES
    small = small and decision_bytes(model.trees, model.num_feature) <= MAX_DECISION_BYTES
    return small and padded <= 4 * real


def build(model: ParsedModel) -> tuple[np.ndarray, ...]:
    """The model's packed arrays in this layout (the kernels' leading arguments)."""
    return pack(arrays(model.trees, model.weights, model.num_feature))


def decision_bytes(trees: Sequence[Tree], num_feature: int) -> int:
    """Size of the categorical decision matrices `arrays` would build."""
    nodes = [0] * num_feature
    top = [0] * num_feature
    for tree in trees:
        for node, cats in tree.categories.items():
            f = int(tree.feature[node])
            nodes[f] += 1
            top[f] = max(top[f], int(cats.max()) + 1 if cats.size else 0)
    return sum(4 * (k + 1) * ((n + 31) // 32) for n, k in zip(nodes, top, strict=True) if n)


def arrays(trees: Sequence[Tree], weights: np.ndarray, num_feature: int) -> tuple[np.ndarray, ...]:
    """Trees padded to complete binary trees, stored in ascending depth order.

    Sorting by depth makes the trees still descending at level `l` a suffix of the order, so the
    kernels advance every tree one level at a time (independent chains the CPU overlaps) and then
    sum the leaves in tree order (xgboost's float32 summation order).

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
                value = tree.leaf_value(node, weight)
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
    # the same per tree in the tree order, as flat arrays (the shallow walk's)
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


@njit(inline="always", nogil=True)
def _decision_rows(cat_feature, x, rows, r):
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


def pack(parts: tuple[np.ndarray, ...]) -> tuple[np.ndarray, ...]:
    """The arrays concatenated by dtype, sizes first in the int64 one (`views` slices them back)."""
    feat, thr, catn, dright, leaf, trees, start, pos, t_node, t_leaf, t_depth, cat_feature, decisions = parts
    n, depth, nf, nodes = trees.shape[0], start.shape[0], cat_feature.shape[0], feat.shape[0]
    i64 = np.concatenate(
        [[n, depth, nf, nodes], trees.ravel(), start, pos, t_node, t_leaf, t_depth, cat_feature.ravel()]
    )
    i32 = np.concatenate([feat, catn, dright.astype(np.int32)])
    return (i64.astype(np.int64), i32.astype(np.int32), np.concatenate([thr, leaf]), decisions)


@njit(inline="always", nogil=True)
def views(i64, i32, f32, decisions):
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


@njit(nogil=True, cache=CACHE)
def margin(v, base, general, x):
    feat, thr, catn, dright, leaf, trees, start, pos, t_node, t_leaf, t_depth, cat_feature, decisions = v
    n = trees.shape[0]
    has_nan = False
    for k in range(x.shape[0]):
        if x[k] != x[k]:
            has_nan = True
    if not (general or has_nan) and start.shape[0] <= SHALLOW_DEPTH:
        # shallow trees: walk each tree to its leaf in the tree order and sum as we go (the
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
def block(v, base, general, rows, out, lo, hi):
    # one tree at a time (tree order) over the block's rows, all rows advancing a level together
    # (independent chains the CPU overlaps), the tree's nodes hot in cache; leaves summed in tree
    # order. The block is copied feature-major first: a level's loads of one feature are contiguous.
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
        out[lo + q] = sigmoid(sums[q])


@njit(nogil=True, cache=CACHE)
def predict7(i64, i32, f32, decisions, base, general, a, b, c, d, e, f, g):
    v = views(i64, i32, f32, decisions)
    return sigmoid(margin(v, base, general, row_of7(a, b, c, d, e, f, g)))


@njit(nogil=True, cache=CACHE)
def predict_batch(i64, i32, f32, decisions, base, general, rows, out):
    v = views(i64, i32, f32, decisions)
    nrows = rows.shape[0]
    for lo in range(0, nrows, BLOCK_ROWS):
        block(v, base, general, rows, out, lo, min(lo + BLOCK_ROWS, nrows))
