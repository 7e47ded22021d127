"""What every layout's kernels share: the on-disk cache flag, the sigmoid, a row of seven from scalars.

Kernels are compiled once per process (or loaded from numba's disk cache) and release the GIL
(`nogil`), so connection threads score in parallel. A new model only replaces arrays, never code, so a
model swap never recompiles. numba's dispatcher unboxes every array argument on every call, so each
layout packs its arrays by dtype (`pack`) and its kernels slice them back into views (`views`), which
travel between kernels as one tuple.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from filtering_server._jit import CACHE

__all__ = ["CACHE", "row_of7", "sigmoid"]


@njit(inline="always", nogil=True)
def sigmoid(margin):
    return 1.0 / (1.0 + math.exp(-np.float64(margin)))


@njit(inline="always", nogil=True)
def row_of7(a, b, c, d, e, f, g):
    x = np.empty(7, dtype=np.float32)
    x[0], x[1], x[2], x[3], x[4], x[5], x[6] = a, b, c, d, e, f, g
    return x
