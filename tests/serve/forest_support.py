"""Forest helpers only the tests and the benchmark use: a booster's forest, and parallel batch kernels.

The server scores one row per call (`Forest.predict7`) or a batch on the connection's own thread
(`Forest.predict`); it never runs numba's parallel kernels, so they live here, compiled only when a test
or the benchmark asks for them. They reuse each layout's own views, block walk and margin.
"""

from __future__ import annotations

import json
import threading
from typing import Any

import numpy as np
from numba import njit, prange

from filtering_server.forest import Forest, forest_from_json
from filtering_server.forest._kernel import sigmoid
from filtering_server.forest.additive import margin as additive_margin
from filtering_server.forest.additive import views as additive_views
from filtering_server.forest.complete import BLOCK_ROWS
from filtering_server.forest.complete import block as complete_block
from filtering_server.forest.complete import views as complete_views
from filtering_server.forest.sparse import margin as sparse_margin
from filtering_server.forest.sparse import views as sparse_views
from filtering_server.xgboost_child import BoosterInspector


def load_forest(model_bytes: bytes, uri: str = "<model>", layout: str | None = None) -> Forest:
    """Booster bytes -> Forest the way the server loads them: xgboost parses them in its child process."""
    with BoosterInspector(uri) as inspector:
        return forest_from_json(inspector.load_json(model_bytes), uri, layout)


def forest_of(booster: Any, layout: str | None = None) -> Forest:
    """The forest of an in-memory booster, from its JSON dump (what the server's xgboost child sends)."""
    return forest_from_json(json.loads(booster.save_raw(raw_format="json")), "<test booster>", layout)


@njit(nogil=True, cache=True, parallel=True)
def _complete_parallel(i64, i32, f32, decisions, base, general, rows, out):  # type: ignore[no-untyped-def]
    v = complete_views(i64, i32, f32, decisions)
    nrows = rows.shape[0]
    for b in prange((nrows + BLOCK_ROWS - 1) // BLOCK_ROWS):
        lo = b * BLOCK_ROWS
        complete_block(v, base, general, rows, out, lo, min(lo + BLOCK_ROWS, nrows))


@njit(nogil=True, cache=True, parallel=True)
def _sparse_parallel(i64, i32, value, cat_words, base, general, rows, out):  # type: ignore[no-untyped-def]
    v = sparse_views(i64, i32, value, cat_words)
    for r in prange(rows.shape[0]):
        out[r] = sigmoid(sparse_margin(v, base, rows[r]))


@njit(nogil=True, cache=True, parallel=True)
def _additive_parallel(i64, thresholds, f64, base, general, rows, out):  # type: ignore[no-untyped-def]
    v = additive_views(i64, thresholds, f64)
    for r in prange(rows.shape[0]):
        out[r] = sigmoid(additive_margin(v, rows[r]))


_PARALLEL = {"complete": _complete_parallel, "sparse": _sparse_parallel, "additive": _additive_parallel}
#: numba's default (workqueue) threading layer must not be entered by two threads at once.
_PARALLEL_LOCK = threading.Lock()


def predict_parallel(forest: Forest, x: np.ndarray) -> np.ndarray:
    """`forest.predict(x)` computed by numba's parallel kernels (all cores)."""
    rows = np.ascontiguousarray(x, dtype=np.float32)
    out = np.empty(rows.shape[0], dtype=np.float64)
    with _PARALLEL_LOCK:
        _PARALLEL[forest.layout](*forest.kernel_args, rows, out)
    return out
