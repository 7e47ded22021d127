"""A thriftpy2 client of the filtering server, a wait until it reports itself ready, and columnar calls.

`bid_columns` builds the `BidColumns` of a `filterColumns` call from one sequence per BidRequest field
(integer fields as little-endian arrays, string fields dictionary-encoded, bidId plain-encoded),
`likelihoods` reads its reply as a numpy array, `arm_of_rows` which experiment arm answered each row.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Collection, Mapping, Sequence
from typing import Any

import numpy as np

from aik.errors import AikError

log = logging.getLogger(__name__)


def connect(host: str, port: int, timeout_ms: int = 10_000) -> Any:
    """A thriftpy2 client of the server (binary protocol, buffered transport: the server's wire format)."""
    from thriftpy2.rpc import make_client

    from filtering_api.idl import BidRequestFilter

    return make_client(BidRequestFilter, host, port, timeout=timeout_ms)


def wait_until_ready(host: str, port: int, timeout: float, timeout_ms: int = 5_000) -> Any:
    """Poll `health()` until the server is ready; return its HealthStatus or raise after `timeout` s."""
    deadline = time.monotonic() + timeout
    last = "no answer yet"
    next_log = time.monotonic() + 5.0
    while True:
        try:
            client = connect(host, port, timeout_ms)
            try:
                status = client.health()
            finally:
                client.close()
            if status.ready:
                return status
            last = "the server answered but is not ready"
        except Exception as exc:  # refused, reset, timeout: the server is not up yet
            last = f"{type(exc).__name__}: {exc}"
        now = time.monotonic()
        if now >= deadline:
            raise AikError(
                f"the filtering server at {host}:{port} was not ready within {timeout:.0f} s ({last})"
            )
        if now >= next_log:
            log.info("waiting for the filtering server at %s:%d (%s)", host, port, last)
            next_log = now + 5.0
        time.sleep(min(0.5, max(0.0, deadline - now)))


#: BidRequest's integer fields and their byte widths in a `BidColumns`; every other field is a string.
INTEGER_FIELDS: dict[str, int] = {"dayOfWeek": 4, "biddingPrice": 8, "payingPrice": 8, "deviceTypeId": 4}
STRING_FIELDS = ("bidId", "hour", "regionId", "cityId", "domainId", "advertiserId", "userAgent")
#: Fields `bid_columns` plain-encodes by default: every request's value differs.
PLAIN_FIELDS = ("bidId",)


def string_column(values: Sequence[str | bytes | None] | np.ndarray) -> Any:
    """A dictionary-encoded `StringColumn`: each distinct value once, one i32 code per row (-1: None)."""
    from filtering_api.idl import StringColumn

    table: dict[str | bytes, int] = {}
    codes = [-1 if v is None else table.setdefault(v, len(table)) for v in values]
    return StringColumn(values=list(table), codes=np.asarray(codes, dtype="<i4").tobytes())


def plain_string_column(values: Sequence[str | bytes] | np.ndarray) -> Any:
    """A plain `StringColumn`: the values' UTF-8 bytes concatenated, and rows + 1 offsets (no None)."""
    from filtering_api.idl import StringColumn

    encoded = [v.encode() if isinstance(v, str) else bytes(v) for v in values]
    offsets = np.zeros(len(encoded) + 1, dtype="<i4")
    np.cumsum([len(b) for b in encoded], out=offsets[1:])
    return StringColumn(data=b"".join(encoded), offsets=offsets.tobytes())


def integer_column(values: Sequence[int | None] | np.ndarray, width: int) -> bytes:
    """Little-endian integers of `width` bytes; None becomes the type's smallest value (missing)."""
    dtype = np.dtype(f"<i{width}")
    if isinstance(values, np.ndarray):
        return values.astype(dtype).tobytes()
    missing = int(np.iinfo(dtype).min)
    return np.asarray([missing if v is None else v for v in values], dtype=dtype).tobytes()


def bid_columns(
    columns: Mapping[str, Sequence[Any] | np.ndarray], plain: Collection[str] = PLAIN_FIELDS
) -> Any:
    """The `BidColumns` of equally long sequences named as BidRequest's fields (fields left out: missing).

    String fields are dictionary-encoded, those named in `plain` plain-encoded (they must have no None).
    """
    from filtering_api.idl import BidColumns

    unknown = set(columns) - set(INTEGER_FIELDS) - set(STRING_FIELDS)
    if unknown:
        raise ValueError(f"not BidRequest fields: {', '.join(sorted(unknown))}")
    lengths = {len(values) for values in columns.values()}
    if len(lengths) > 1:
        raise ValueError(f"columns of different lengths: {sorted(lengths)}")
    fields: dict[str, Any] = {"rows": lengths.pop() if lengths else 0}
    for name, values in columns.items():
        width = INTEGER_FIELDS.get(name)
        if width is not None:
            fields[name] = integer_column(values, width)
        elif name in plain:
            if any(v is None for v in values):
                raise ValueError(f"{name} has missing values: a plain column cannot hold them")
            fields[name] = plain_string_column(values)
        else:
            fields[name] = string_column(values)
    return BidColumns(**fields)


def bid_columns_of(requests: Sequence[Any]) -> Any:
    """The `BidColumns` of BidRequest objects (every field of theirs; bidId plain-encoded when no
    request lacks one)."""
    names = (*STRING_FIELDS, *INTEGER_FIELDS)
    columns = {name: [getattr(r, name) for r in requests] for name in names}
    plain = [name for name in PLAIN_FIELDS if None not in columns[name]]
    return bid_columns(columns, plain=plain)


def likelihoods(response: Any) -> np.ndarray:
    """The likelihoods of a `filterColumns` reply (a `BidColumnsResponse`), one float64 per row."""
    return np.frombuffer(response.likelihoodToBid, dtype="<f8")


def arm_of_rows(response: Any) -> np.ndarray | None:
    """Each row's arm of a `filterColumns` reply during an experiment, as an index into `response.arms`
    (None outside an experiment: the champion answered every row)."""
    if response.armOfRequest is None:
        return None
    return np.frombuffer(response.armOfRequest, dtype="<i2")
