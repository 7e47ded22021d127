"""Booster bytes read by xgboost, with one error for a file it cannot load (trainer and server alike).

xgboost is imported when called, so importing this module costs nothing where xgboost is absent.
"""

from __future__ import annotations

import re
from typing import Any

from aik.errors import ArtifactError


def xgboost_message(exc: BaseException) -> str:
    """The first line of an xgboost error, without its "[hh:mm:ss] /path/file.cc:123: " prefix."""
    lines = str(exc).strip().splitlines()
    return re.sub(r"^\[[\d:]+\] \S+:\d+: ", "", lines[0]) if lines else type(exc).__name__


def load_booster(data: bytes, uri: str = "<bytes>") -> Any:
    """An `xgboost.Booster` from UBJSON or JSON bytes; an empty or corrupt file is an `ArtifactError`."""
    import xgboost

    if not data:
        raise ArtifactError(uri, "the model file is empty")  # xgboost aborts the process on b""
    booster = xgboost.Booster()
    try:
        booster.load_model(bytearray(data))
    except xgboost.core.XGBoostError as exc:
        raise ArtifactError(uri, f"not an xgboost model xgboost can load ({xgboost_message(exc)})") from exc
    return booster
