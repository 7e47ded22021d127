"""Message boundaries of the Thrift binary protocol on an unframed (buffered) transport, found safely.

The server's clients use TBinaryProtocol over a plain socket (TBufferedTransport): no frame header says
where a message ends. thriftpy2's decoder trusts every length on the wire — a garbage "string length"
of 2 GB makes it allocate 2 GB and block until that many bytes arrive. So before anything is decoded,
`scan_message` walks the bytes of one message (compiled with numba) and either returns its exact
length, asks for more bytes, or names what is wrong (negative or oversized lengths, unknown types,
nesting too deep, an unversioned header). The server then hands exactly that many bytes to thriftpy2's
Cython decoder, so one connection can never hold more than one bounded message in memory, and a bad
message is answered without losing the others' bytes. `gather_columns` spreads the values of a
`filterColumns` call's string dictionaries over its rows, also compiled, so no row costs Python work.
Hand-written because no Thrift library for Python offers such limits on the unframed transport.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from filtering_server._jit import CACHE

T_STOP = 0
T_BOOL = 2
T_BYTE = 3
T_DOUBLE = 4
T_I16 = 6
T_I32 = 8
T_I64 = 10
T_STRING = 11
T_STRUCT = 12
T_MAP = 13
T_SET = 14
T_LIST = 15
T_UUID = 16

VERSION_1 = 0x80010000
MAX_NAME = 255

NEED_MORE = -1
BAD_VERSION = -2
BAD_NAME = -3
BAD_TYPE = -4
TOO_LONG = -5
TOO_MANY = -6
TOO_DEEP = -7
NEGATIVE = -8

REASONS = {
    BAD_VERSION: "not a versioned Thrift binary-protocol message (strict header expected)",
    BAD_NAME: "method name length out of range",
    BAD_TYPE: "unknown Thrift type id",
    TOO_LONG: "a string or binary field is longer than the message limit",
    TOO_MANY: "a list, set or map has more elements than allowed",
    TOO_DEEP: "structs or containers nested too deeply",
    NEGATIVE: "negative length",
}

_STRUCT = 0
_LIST = 1
_MAP = 2


@njit(inline="always")
def _i32(buf, pos):
    v = (
        (np.int64(buf[pos]) << 24)
        | (np.int64(buf[pos + 1]) << 16)
        | (np.int64(buf[pos + 2]) << 8)
        | buf[pos + 3]
    )
    return v - (np.int64(1) << 32) if v >= (np.int64(1) << 31) else v


#: `scan_message`'s `info` array: the most elements of any list, set or map in the message, and the
#: element type and count of the arguments' field 1 when it is a list or set (-1 and 0 otherwise).
INFO_MAX_ELEMENTS = 0
INFO_ARG1_ELEMENT_TYPE = 1
INFO_ARG1_COUNT = 2
INFO_SIZE = 3

TYPE_NAMES = {
    T_BOOL: "bool",
    T_BYTE: "byte",
    T_DOUBLE: "double",
    T_I16: "i16",
    T_I32: "i32",
    T_I64: "i64",
    T_STRING: "string",
    T_STRUCT: "struct",
    T_MAP: "map",
    T_SET: "set",
    T_LIST: "list",
    T_UUID: "uuid",
}


def new_info() -> np.ndarray:
    """An `info` array for `scan_message` (one per connection, reused)."""
    return np.zeros(INFO_SIZE, dtype=np.int64)


@njit(nogil=True, cache=CACHE)
def scan_message(buf, start, end, max_string, max_elements, max_depth, info):
    """Length of the complete message at buf[start:end], NEED_MORE, or a negative error code.

    Fills `info` (see INFO_*) so the caller can refuse oversized containers before decoding.
    """
    info[INFO_MAX_ELEMENTS] = 0
    info[INFO_ARG1_ELEMENT_TYPE] = -1
    info[INFO_ARG1_COUNT] = 0
    field_id = np.int64(0)
    pos = start
    if end - pos < 4:
        return NEED_MORE
    head = _i32(buf, pos)
    if head >= 0 or (head + (np.int64(1) << 32)) & 0xFFFF0000 != VERSION_1:
        return BAD_VERSION
    pos += 4
    if end - pos < 4:
        return NEED_MORE
    n = _i32(buf, pos)
    if n < 0 or n > MAX_NAME:
        return BAD_NAME
    pos += 4 + n + 4  # name, seqid
    if pos > end:
        return NEED_MORE
    kinds = np.empty(max_depth + 1, dtype=np.int64)
    remaining = np.empty(max_depth + 1, dtype=np.int64)
    first = np.empty(max_depth + 1, dtype=np.int64)
    second = np.empty(max_depth + 1, dtype=np.int64)
    depth = 0
    kinds[0] = _STRUCT
    while depth >= 0:
        kind = kinds[depth]
        if kind == _STRUCT:
            if end - pos < 1:
                return NEED_MORE
            vt = np.int64(buf[pos])
            pos += 1
            if vt == T_STOP:
                depth -= 1
                continue
            if end - pos < 2:
                return NEED_MORE
            field_id = (np.int64(buf[pos]) << 8) | buf[pos + 1] if depth == 0 else np.int64(0)
            pos += 2
        elif kind == _LIST:
            if remaining[depth] == 0:
                depth -= 1
                continue
            remaining[depth] -= 1
            vt = first[depth]
        else:
            if remaining[depth] == 0:
                depth -= 1
                continue
            vt = first[depth] if remaining[depth] % 2 == 0 else second[depth]
            remaining[depth] -= 1
        # one value of type vt
        if vt in (T_BOOL, T_BYTE):
            size = 1
        elif vt == T_I16:
            size = 2
        elif vt == T_I32:
            size = 4
        elif vt in (T_I64, T_DOUBLE):
            size = 8
        elif vt == T_UUID:
            size = 16
        elif vt == T_STRING:
            if end - pos < 4:
                return NEED_MORE
            n = _i32(buf, pos)
            if n < 0:
                return NEGATIVE
            if n > max_string:
                return TOO_LONG
            size = 4 + n
        elif vt == T_STRUCT:
            if depth + 1 > max_depth:
                return TOO_DEEP
            depth += 1
            kinds[depth] = _STRUCT
            continue
        elif vt in (T_LIST, T_SET):
            if end - pos < 5:
                return NEED_MORE
            et = np.int64(buf[pos])
            n = _i32(buf, pos + 1)
            pos += 5
            if n < 0:
                return NEGATIVE
            if n > max_elements:
                return TOO_MANY
            if depth + 1 > max_depth:
                return TOO_DEEP
            if n > info[INFO_MAX_ELEMENTS]:
                info[INFO_MAX_ELEMENTS] = n
            if depth == 0 and field_id == 1 and kinds[0] == _STRUCT:
                info[INFO_ARG1_ELEMENT_TYPE] = et
                info[INFO_ARG1_COUNT] = n
            depth += 1
            kinds[depth] = _LIST
            remaining[depth] = n
            first[depth] = et
            continue
        elif vt == T_MAP:
            if end - pos < 6:
                return NEED_MORE
            kt = np.int64(buf[pos])
            vt2 = np.int64(buf[pos + 1])
            n = _i32(buf, pos + 2)
            pos += 6
            if n < 0:
                return NEGATIVE
            if n > max_elements:
                return TOO_MANY
            if depth + 1 > max_depth:
                return TOO_DEEP
            if n > info[INFO_MAX_ELEMENTS]:
                info[INFO_MAX_ELEMENTS] = n
            depth += 1
            kinds[depth] = _MAP
            remaining[depth] = 2 * n
            first[depth] = kt
            second[depth] = vt2
            continue
        else:
            return BAD_TYPE
        if end - pos < size:
            return NEED_MORE
        pos += size
    return pos - start


def header_fields(data: bytes) -> tuple[str, int, int] | None:
    """(method name, message type, seqid) of a message whose header is complete and versioned, else None."""
    if len(data) < 8:
        return None
    head = int.from_bytes(data[0:4], "big", signed=True)
    if head >= 0 or ((head + (1 << 32)) & 0xFFFF0000) != VERSION_1:
        return None
    n = int.from_bytes(data[4:8], "big", signed=True)
    if n < 0 or n > MAX_NAME or len(data) < 12 + n:
        return None
    name = data[8 : 8 + n].decode("utf-8", "replace")
    seqid = int.from_bytes(data[8 + n : 12 + n], "big", signed=True)
    return name, head & 0xFF, seqid


#: The smallest i32, a missing value in a `BidColumns` integer column (api.thrift).
I32_MISSING = -(2**31)


@njit(nogil=True, cache=CACHE)
def gather_columns(out, dow_position, dow, positions, codes, values, starts, device_type, unknown_device):
    """Fill the feature rows `out` of a `filterColumns` call; -1, or the slot whose codes are bad.

    Slot k's feature (column `positions[k]` of `out`) of row r is `values[starts[k] + codes[k, r]]`; its
    last value (at `starts[k + 1] - 1`) is the missing value's, taken for code -1. The last slot is the
    device type: where its value is NaN (no user agent) the row's `device_type` decides, else
    `unknown_device`. `dow` and `device_type` are empty when the request left them out; their missing
    rows hold `I32_MISSING`.
    """
    rows = out.shape[0]
    slots = codes.shape[0]
    for k in range(slots):
        size = starts[k + 1] - starts[k] - 1
        for r in range(rows):
            c = codes[k, r]
            if c < -1 or c >= size:
                return k
    device = positions[slots - 1]
    for r in range(rows):
        d = dow[r] if dow.shape[0] else I32_MISSING
        out[r, dow_position] = np.nan if d == I32_MISSING else d
        for k in range(slots):
            c = codes[k, r]
            if c < 0:
                c = starts[k + 1] - starts[k] - 1
            out[r, positions[k]] = values[starts[k] + c]
        if out[r, device] != out[r, device]:
            t = device_type[r] if device_type.shape[0] else I32_MISSING
            out[r, device] = unknown_device if t == I32_MISSING else t
    return -1


def warm_up() -> None:
    """Compile (or load from the disk cache) the kernels before the first connection needs them."""
    probe = np.frombuffer(b"\x80\x01\x00\x01\x00\x00\x00\x01f\x00\x00\x00\x01\x00", dtype=np.uint8)
    scan_message(probe, 0, probe.shape[0], 1024, 1024, 8, new_info())
    empty = np.frombuffer(b"", dtype="<i4")
    gather_columns(
        np.empty((1, 7), dtype=np.float32),
        0,
        empty,
        np.arange(1, 7, dtype=np.int64),
        np.full((6, 1), -1, dtype=np.int32),
        np.zeros(6, dtype=np.float64),
        np.arange(7, dtype=np.int64),
        empty,
        6.0,
    )
