"""Thrift binary protocol encoded by hand from the original IDL's field ids and types.

Independent of thriftpy2 and of the server's own api.thrift: if either drifted from the original
contract (field ids, types, method name, message layout), the bytes would no longer match.
"""

from __future__ import annotations

import socket
import struct
from typing import Any

VERSION_1 = 0x80010000
CALL, REPLY, EXCEPTION = 1, 2, 3
T_STOP, T_BOOL, T_DOUBLE, T_I32, T_I64, T_STRING, T_STRUCT, T_LIST = 0, 2, 4, 8, 10, 11, 12, 15

#: BidRequest of the original api.thrift: attribute -> (field id, type)
BID_REQUEST_FIELDS: dict[str, tuple[int, int]] = {
    "bidId": (1, T_STRING),
    "dayOfWeek": (2, T_I32),
    "hour": (3, T_STRING),
    "regionId": (4, T_STRING),
    "cityId": (5, T_STRING),
    "domainId": (6, T_STRING),
    "advertiserId": (7, T_STRING),
    "biddingPrice": (8, T_I64),
    "payingPrice": (9, T_I64),
    "userAgent": (10, T_STRING),
    "deviceTypeId": (11, T_I32),
}


def string(value: str | bytes) -> bytes:
    """A binary-protocol string: i32 length, then the bytes."""
    data = value.encode("utf-8") if isinstance(value, str) else value
    return struct.pack(">i", len(data)) + data


def field(fid: int, ttype: int, value: Any) -> bytes:
    """One struct field: type byte, i16 id, value."""
    head = struct.pack(">bh", ttype, fid)
    if ttype == T_STRING:
        return head + string(value)
    if ttype == T_I32:
        return head + struct.pack(">i", value)
    if ttype == T_I64:
        return head + struct.pack(">q", value)
    if ttype == T_DOUBLE:
        return head + struct.pack(">d", value)
    if ttype == T_STRUCT:
        return head + value
    raise ValueError(ttype)


def bid_request(**values: Any) -> bytes:
    """A BidRequest struct with the given fields, in field-id order (as Apache Thrift writes them)."""
    body = b""
    for name, (fid, ttype) in BID_REQUEST_FIELDS.items():
        if values.get(name) is not None:
            body += field(fid, ttype, values[name])
    return body + bytes([T_STOP])


def message(name: str, seqid: int, args: bytes, mtype: int = CALL) -> bytes:
    """A strict message: version|type, method name, seqid, then the args struct."""
    return struct.pack(">i", (VERSION_1 | mtype) - (1 << 32)) + string(name) + struct.pack(">i", seqid) + args


def filter_call(seqid: int, request: bytes | None) -> bytes:
    """`filter(1: BidRequest request)`; `request` None sends the args struct without its field."""
    args = (field(1, T_STRUCT, request) if request is not None else b"") + bytes([T_STOP])
    return message("filter", seqid, args)


def filter_reply(seqid: int, likelihood: float) -> bytes:
    """The exact bytes an Apache Thrift server replies to `filter`: result{0: BidResponse{1: double}}."""
    response = field(1, T_DOUBLE, likelihood) + bytes([T_STOP])
    return message("filter", seqid, field(0, T_STRUCT, response) + bytes([T_STOP]), REPLY)


def recv_exactly(sock: socket.socket, n: int) -> bytes:
    """n bytes, or fewer if the peer closes."""
    out = b""
    while len(out) < n:
        chunk = sock.recv(n - len(out))
        if not chunk:
            break
        out += chunk
    return out


def read_reply(sock: socket.socket) -> tuple[int, str, int, bytes]:
    """(message type, name, seqid, body up to and including the final STOP of a flat result struct).

    Handles the replies the tests expect: a `filter` or `filterBatch` REPLY and a TApplicationException.
    """
    head = recv_exactly(sock, 8)
    if len(head) < 8:
        raise ConnectionError("connection closed before a reply")
    version, n = struct.unpack(">ii", head)
    mtype = (version + (1 << 32)) & 0xFF
    name = recv_exactly(sock, n).decode()
    (seqid,) = struct.unpack(">i", recv_exactly(sock, 4))
    body = _read_struct(sock)
    return mtype, name, seqid, body


def _read_struct(sock: socket.socket) -> bytes:
    out = b""
    while True:
        t = recv_exactly(sock, 1)
        out += t
        if t[0] == T_STOP:
            return out
        out += recv_exactly(sock, 2)
        out += _read_value(sock, t[0])


def _read_value(sock: socket.socket, ttype: int) -> bytes:
    if ttype == T_STRING:
        n = recv_exactly(sock, 4)
        return n + recv_exactly(sock, struct.unpack(">i", n)[0])
    if ttype == T_I32:
        return recv_exactly(sock, 4)
    if ttype in (T_I64, T_DOUBLE):
        return recv_exactly(sock, 8)
    if ttype == T_STRUCT:
        return _read_struct(sock)
    if ttype == T_LIST:
        head = recv_exactly(sock, 5)
        element, count = struct.unpack(">bi", head)
        return head + b"".join(_read_value(sock, element) for _ in range(count))
    raise ValueError(f"unexpected type {ttype}")


def application_exception(body: bytes) -> tuple[str, int]:
    """(message, type) of a TApplicationException struct {1: string message, 2: i32 type}."""
    pos, message_text, kind = 0, "", -1
    while body[pos] != T_STOP:
        ttype, fid = struct.unpack(">bh", body[pos : pos + 3])
        pos += 3
        if ttype == T_STRING:
            (n,) = struct.unpack(">i", body[pos : pos + 4])
            value = body[pos + 4 : pos + 4 + n].decode()
            pos += 4 + n
            if fid == 1:
                message_text = value
        elif ttype == T_I32:
            (kind,) = struct.unpack(">i", body[pos : pos + 4])
            pos += 4
    return message_text, kind


def likelihood_of(body: bytes) -> float:
    """The double of a `filter` result body, checking the exact original layout on the way."""
    assert body[:3] == struct.pack(">bh", T_STRUCT, 0)  # success, field 0, a struct
    assert body[3:6] == struct.pack(">bh", T_DOUBLE, 1)  # likelihoodToBid, field 1, a double
    assert body[14:] == bytes([T_STOP, T_STOP])
    return struct.unpack(">d", body[6:14])[0]
