"""numba's on-disk cache, only where it can be written (numba refuses to import cached kernels otherwise).

Kernels are compiled once and cached (NUMBA_CACHE_DIR, else `__pycache__` beside the module, else the
user's cache directory). In a container whose filesystem is read-only for the server's user, numba
would raise at import time ("no locator available"); there the kernels are compiled in memory at every
start instead (before the server listens) and a warning says so.
"""

from __future__ import annotations

import logging
import os
import tempfile
from pathlib import Path

from numba import config

log = logging.getLogger(__name__)


def _writable(path: str | os.PathLike[str]) -> bool:
    try:
        os.makedirs(path, exist_ok=True)
        tempfile.TemporaryFile(dir=path).close()
        return True
    except OSError:
        return False


def _cache_enabled() -> bool:
    cache_dir = config.CACHE_DIR  # type: ignore[attr-defined]  # numba.config sets its options at import
    candidates = [cache_dir] if cache_dir else []
    candidates.append(str(Path(__file__).parent / "__pycache__"))
    home = Path.home() if "HOME" in os.environ else None
    if home is not None:
        candidates.append(str(home / ".cache" / "numba"))
    if any(_writable(c) for c in candidates):
        return True
    log.warning("no writable numba cache directory (set NUMBA_CACHE_DIR): kernels compile at every start")
    return False


#: `cache=` argument of every kernel.
CACHE = _cache_enabled()
