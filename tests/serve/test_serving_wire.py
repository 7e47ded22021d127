"""Message framing: exact lengths for valid messages, NEED_MORE for every prefix, named errors otherwise."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from thriftpy2.protocol import TCyBinaryProtocol
from thriftpy2.thrift import TMessageType
from thriftpy2.transport import TCyMemoryBuffer

from filtering_api.idl import BidRequest, BidRequestFilter
from filtering_server import wire

LIMITS = (1 << 20, 100_000, 16)  # max string bytes, max elements, max depth


def encode(name: str, args: object) -> bytes:
    """A call message as thriftpy2 writes it."""
    buf = TCyMemoryBuffer()
    proto = TCyBinaryProtocol(buf)
    proto.write_message_begin(name, TMessageType.CALL, 42)
    proto.write_struct(args)
    proto.write_message_end()
    return buf.getvalue()


def scan(data: bytes, start: int = 0, end: int | None = None, info: np.ndarray | None = None) -> int:
    arr = np.frombuffer(data, dtype=np.uint8)
    info = wire.new_info() if info is None else info
    return int(wire.scan_message(arr, start, len(data) if end is None else end, *LIMITS, info))


_text = st.one_of(st.none(), st.text(max_size=40))
_int32 = st.one_of(st.none(), st.integers(-(2**31), 2**31 - 1))
_int64 = st.one_of(st.none(), st.integers(-(2**63), 2**63 - 1))
requests = st.builds(
    BidRequest,
    bidId=_text,
    dayOfWeek=_int32,
    hour=_text,
    regionId=_text,
    cityId=_text,
    domainId=_text,
    advertiserId=_text,
    biddingPrice=_int64,
    payingPrice=_int64,
    userAgent=_text,
    deviceTypeId=_int32,
)


@settings(max_examples=200, deadline=None)
@given(request=requests)
def test_a_valid_filter_call_scans_to_its_exact_length_and_every_prefix_needs_more(
    request: BidRequest,
) -> None:
    data = encode("filter", BidRequestFilter.filter_args(request=request))
    assert scan(data + b"\x80\x01trailing bytes of the next message") == len(data)
    for cut in range(len(data)):
        assert scan(data, 0, cut) == wire.NEED_MORE


@settings(max_examples=50, deadline=None)
@given(batch=st.lists(requests, max_size=30))
def test_a_batch_call_scans_to_its_exact_length(batch: list[BidRequest]) -> None:
    data = encode("filterBatch", BidRequestFilter.filterBatch_args(requests=batch))
    assert scan(b"junk" + data, 4) == len(data)


@settings(max_examples=50, deadline=None)
@given(batch=st.lists(requests, max_size=30))
def test_the_scan_reports_the_batch_size_and_element_type(batch: list[BidRequest]) -> None:
    data = encode("filterBatch", BidRequestFilter.filterBatch_args(requests=batch))
    info = wire.new_info()
    assert scan(data, info=info) == len(data)
    assert info[wire.INFO_ARG1_COUNT] == len(batch)
    assert info[wire.INFO_MAX_ELEMENTS] == len(batch)
    assert info[wire.INFO_ARG1_ELEMENT_TYPE] == wire.T_STRUCT


def test_the_scan_reports_a_list_of_the_wrong_element_type_and_nested_counts() -> None:
    head = b"\x80\x01\x00\x01" + b"\x00\x00\x00\x01f" + b"\x00\x00\x00\x01"
    info = wire.new_info()
    ints = b"\x0f\x00\x01\x08\x00\x00\x00\x02" + bytes(8) + b"\x00"
    assert scan(head + ints, info=info) == len(head + ints)
    assert list(info) == [2, wire.T_I32, 2]
    nested = b"\x0c\x00\x01" + b"\x0f\x00\x05\x03\x00\x00\x00\x07" + bytes(7) + b"\x00" + b"\x00"
    assert scan(head + nested, info=info) == len(head + nested)
    assert list(info) == [7, -1, 0]  # a list inside field 1's struct, not field 1 itself


@settings(max_examples=500, deadline=None)
@given(data=st.binary(max_size=200))
def test_random_bytes_scan_to_a_length_need_more_or_a_named_error(data: bytes) -> None:
    result = scan(data)
    assert result == wire.NEED_MORE or result in wire.REASONS or 0 < result <= len(data)


def test_each_error_is_named() -> None:
    head = b"\x80\x01\x00\x01" + b"\x00\x00\x00\x01f" + b"\x00\x00\x00\x01"
    assert scan(b"GET / HTTP/1.1\r\n") == wire.BAD_VERSION
    assert scan(b"\x80\x01\x00\x01\x00\x00\x01\x00") == wire.BAD_NAME
    assert scan(head + b"\x63\x00\x01") == wire.BAD_TYPE
    assert scan(head + b"\x0b\x00\x01\xff\xff\xff\xff") == wire.NEGATIVE
    assert scan(head + b"\x0b\x00\x01\x7f\xff\xff\xff") == wire.TOO_LONG
    assert scan(head + b"\x0f\x00\x01\x08\x00\x10\x00\x00") == wire.TOO_MANY
    assert scan(head + b"\x0c\x00\x01" * 17) == wire.TOO_DEEP
    assert wire.header_fields(head) == ("f", 1, 1)
    assert wire.header_fields(b"GET / HTTP/1.1") is None
