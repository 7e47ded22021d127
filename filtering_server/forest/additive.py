"""The additive layout: a model of stumps folded into one step function per feature.

A model whose trees all have depth 0 or 1 (like the kit's `default` training preset: hundreds to
thousands of depth-1 trees on the categorical Index* columns) is additive: its margin is the base
margin plus one function per feature, a step function of its value. Folded at load time into one table
per feature, a row costs one lookup per feature, whatever the number of trees. The folded sums are
exact in float64; xgboost accumulates leaves in float32, so the two differ by xgboost's own rounding,
which grows with the number of trees (docs/serving.md gives the measured gap; the tests bound it).
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Callable, Sequence

import numpy as np
from numba import njit

from filtering_server.forest._kernel import CACHE, row_of7, sigmoid
from filtering_server.forest.parse import LEAF, ParsedModel, Tree


def build(model: ParsedModel) -> tuple[np.ndarray, ...]:
    """The model's packed arrays in this layout (the kernels' leading arguments)."""
    return pack(arrays(model.trees, model.weights, model.num_feature, model.base_margin))


#: `arrays` feature kinds.
UNUSED, NUMERIC, CATEGORICAL = 0, 1, 2


def eligible(trees: Sequence[Tree], depths: Sequence[int]) -> bool:
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


def arrays(
    trees: Sequence[Tree], weights: np.ndarray, num_feature: int, base_margin: np.float32
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
    stumps: list[list[tuple[Tree, float, float]]] = [[] for _ in range(num_feature)]
    const = np.float64(base_margin)
    for tree, weight in zip(trees, weights.tolist(), strict=True):

        def leaf(node: int, tree: Tree = tree, weight: float = weight) -> np.float64:
            # the leaf as the other layouts store it (float32, dart weight applied), then widened
            return np.float64(tree.leaf_value(node, weight))

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


def pack(parts: tuple[np.ndarray, ...]) -> tuple[np.ndarray, ...]:
    """The arrays concatenated by dtype, sizes first in the int64 one (`views` slices them back)."""
    kind, meta, thresholds, values, nan_values, const = parts
    i64 = np.concatenate([[kind.shape[0]], kind, meta.ravel()]).astype(np.int64)
    return (i64, thresholds, np.concatenate([const, nan_values, values]))


@njit(inline="always", nogil=True)
def views(i64, thresholds, f64):
    nf = i64[0]
    kind = i64[1 : 1 + nf]
    meta = i64[1 + nf : 1 + 5 * nf].reshape((nf, 4))
    const, nan_values, values = f64[:1], f64[1 : 1 + nf], f64[1 + nf :]
    return (kind, meta, thresholds, values, nan_values, const)


@njit(nogil=True, cache=CACHE)
def margin(v, x):
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
def predict7(i64, thresholds, f64, base, general, a, b, c, d, e, f, g):
    v = views(i64, thresholds, f64)
    return sigmoid(margin(v, row_of7(a, b, c, d, e, f, g)))


@njit(nogil=True, cache=CACHE)
def predict_batch(i64, thresholds, f64, base, general, rows, out):
    v = views(i64, thresholds, f64)
    for r in range(rows.shape[0]):
        out[r] = sigmoid(margin(v, rows[r]))


class _Terms(dict[float, float]):
    """One feature's folded table as a dict of exact small values -> margin term; any other value
    (NaN, a fraction, out of range) is computed by `term`, as `margin` computes it."""

    def __init__(self, known: dict[float, float], term: Callable[[float], float]) -> None:
        super().__init__(known)
        self.term = term

    def __missing__(self, value: float) -> float:
        term = self.term(value)
        if len(self) < _CACHE_LIMIT and value == value:  # remembered up to a bound (NaN never hits)
            self[value] = term
        return term


#: Most entries a feature's dict grows to (values seen beyond its table, e.g. unseen-label indices).
_CACHE_LIMIT = 65536


#: `python_terms`: the base margin (with the depth-0 trees) and each feature's folded table as a dict.
Terms = tuple[float, tuple[_Terms, ...]]


def python_terms(arrays: tuple[np.ndarray, ...]) -> Terms:
    """The layout's tables in plain Python: the base margin and, per feature, value -> margin term.

    A row's margin is the base plus each feature's term in feature order, summed in float64 as `margin`
    sums them (each input rounded to float32 first): `python_predict7` and the server's fused request
    path (`filtering_server.model`) both add them so.
    """
    kind, meta, thresholds, values, nan_values, const = views.py_func(*arrays)
    cuts = thresholds.astype(np.float64).tolist()
    tables = tuple(_feature_terms(f, kind, meta, cuts, values, nan_values) for f in range(kind.shape[0]))
    return float(const[0]), tables


def python_predict7(terms: Terms) -> Callable[..., float]:
    """`predict7` in plain Python for this layout: seven dict lookups and the sigmoid, no kernel call.

    Numba's dispatcher costs more per call (unboxing three arrays and nine scalars) than a stump
    model's seven table lookups, and the kernel's GIL release hands the GIL to another connection's
    thread mid-request. The same float64 sums in the same feature order as `margin`, each input rounded
    to float32 first: the same margin bit for bit (tested).
    """
    base, tables = terms
    if len(tables) != 7:
        raise ValueError(f"python_predict7 needs 7 features, the model has {len(tables)}")
    t0, t1, t2, t3, t4, t5, t6 = tables
    exp = math.exp

    def predict7(a: float, b: float, c: float, d: float, e: float, f: float, g: float) -> float:
        return 1.0 / (1.0 + exp(-(base + t0[a] + t1[b] + t2[c] + t3[d] + t4[e] + t5[f] + t6[g])))

    return predict7


#: Integer inputs of a numeric feature kept in its dict (hours, days, device types and the like).
_NUMERIC_KNOWN = range(-1, 256)


def _feature_terms(
    f: int,
    kind: np.ndarray,
    meta: np.ndarray,
    cuts: list[float],
    values: np.ndarray,
    nan_values: np.ndarray,
) -> _Terms:
    k = int(kind[f])
    first, entries, lo, count = (int(v) for v in meta[f])
    steps = values[first : first + entries].tolist()
    on_nan = float(nan_values[f])
    feature_cuts = cuts[lo : lo + count]

    def term(value: float) -> float:
        x = float(np.float32(value))
        if x != x:
            return on_nan
        if k == CATEGORICAL:
            top = entries - 1
            return steps[int(x) if 0.0 <= x < top else top]
        return steps[bisect.bisect_right(feature_cuts, x)]

    if k == UNUSED:
        return _Terms({}, lambda value: 0.0)
    known = range(entries - 1) if k == CATEGORICAL else _NUMERIC_KNOWN
    return _Terms({float(v): term(float(v)) for v in known}, term)
