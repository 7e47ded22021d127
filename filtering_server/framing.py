"""Whole Thrift messages out of one connection's byte stream: the part both transports share.

`MessageBuffer` holds a connection's received bytes, finds each complete message with
`wire.scan_message` (bounded lengths, before anything is decoded), grows beyond its base buffer only
within the server's shared budget, and names what is wrong with a message that cannot be framed
(`FrameError`). `check_containers` refuses over-long lists before decoding; `frame_error_reply` is the
TApplicationException a connection sends before it closes on a `FrameError`. The threaded transport
(`server.py`) and the event loop (`event_loop.py`) differ only in how they wait for bytes.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np
from thriftpy2.protocol import TCyBinaryProtocol
from thriftpy2.thrift import TApplicationException
from thriftpy2.transport import TCyMemoryBuffer

from filtering_server import wire
from filtering_server.model import BadRequest
from filtering_server.processor import send_exception

RECV = 65536
BASE_BUFFER = 2 * RECV

READ_TIMEOUT = -100
OUT_OF_MEMORY = -101
_REASONS = {
    READ_TIMEOUT: "the message did not arrive in full within the read timeout",
    OUT_OF_MEMORY: "the server's message memory is in use by other connections; retry later",
}


class FrameError(Exception):
    """A message that cannot be framed or is too large; the connection must close after the reply."""

    def __init__(self, code: int, head: bytes) -> None:
        super().__init__(code)
        self.code = code
        self.head = head

    @property
    def reason(self) -> str:
        """The one-line reason sent to the client and logged."""
        return wire.REASONS.get(self.code) or _REASONS.get(self.code, "invalid message")


class MessageBuffer:
    """A connection's received bytes and the complete messages in them.

    `reserve(n)` / `release(n)` take and give back bytes of the server's shared budget for growth
    beyond the base buffer (`reserve` returns False when the budget would be exceeded).
    """

    def __init__(
        self,
        *,
        max_message_bytes: int,
        max_depth: int,
        reserve: Callable[[int], bool],
        release: Callable[[int], None],
    ) -> None:
        self.max_message_bytes = max_message_bytes
        self.max_depth = max_depth
        self._reserve = reserve
        self._release = release
        self._buf = np.empty(BASE_BUFFER, dtype=np.uint8)
        self._start = 0
        self._end = 0
        #: what `scan_message` reported about the last message framed (for `check_containers`)
        self.info = wire.new_info()
        #: when the first bytes of the message being received arrived
        self.message_started = 0.0

    @property
    def empty(self) -> bool:
        """No bytes of a next message are buffered."""
        return self._start == self._end

    def room(self) -> memoryview:
        """Free space after the buffered bytes to receive into (compacting or growing as needed)."""
        buf = self._buf
        if self._end == buf.shape[0]:
            pending = self._end - self._start
            if self._start > 0:
                buf[:pending] = buf[self._start : self._end]
            else:
                limit = self.max_message_bytes + RECV
                size = min(max(buf.shape[0] * 2, pending + RECV), limit)
                if not self._reserve(size - buf.shape[0]):
                    raise FrameError(OUT_OF_MEMORY, self.head())
                grown = np.empty(size, dtype=np.uint8)
                grown[:pending] = buf[self._start : self._end]
                self._buf = buf = grown
            self._start, self._end = 0, pending
        # an ndarray is a buffer; numpy's stubs declare it only for Python 3.12+ (__buffer__)
        return memoryview(buf)[self._end :]  # type: ignore[arg-type]

    def received(self, n: int) -> None:
        """`n` bytes were received into `room()`."""
        self._end += n

    def next_message(self) -> bytes | None:
        """The next complete message's bytes, or None until more arrive; `FrameError` if it is invalid."""
        if self._end == self._start:
            return None
        limit = self.max_message_bytes
        n = wire.scan_message(self._buf, self._start, self._end, limit, limit, self.max_depth, self.info)
        if n > 0:
            if n > limit:
                raise FrameError(wire.TOO_LONG, self.head())
            data = self._buf[self._start : self._start + n].tobytes()
            self._start += n
            if self._start == self._end:
                self._start = self._end = 0
                self.shrink()
            else:
                self.message_started = time.monotonic()
            return data
        if n != wire.NEED_MORE:
            raise FrameError(n, self.head())
        if self._end - self._start > limit:
            raise FrameError(wire.TOO_LONG, self.head())
        return None

    def head(self) -> bytes:
        """The first bytes of what is buffered (enough for a message header)."""
        return self._buf[self._start : min(self._end, self._start + 4096)].tobytes()

    def shrink(self) -> None:
        """Give a grown buffer back once it is empty (its bytes return to the shared budget)."""
        extra = self._buf.shape[0] - BASE_BUFFER
        if extra > 0:
            self._buf = np.empty(BASE_BUFFER, dtype=np.uint8)
            self._release(extra)

    def check_containers(self, method: str, max_batch: int) -> None:
        """Before decoding: refuse a message whose lists are too long or of the wrong element type.

        Decided from `scan_message`'s report on the message's bytes, so no request object is built.
        """
        info = self.info
        largest = int(info[wire.INFO_MAX_ELEMENTS])
        element = int(info[wire.INFO_ARG1_ELEMENT_TYPE])
        if method == "filterBatch":
            if element not in (-1, wire.T_STRUCT):
                kind = wire.TYPE_NAMES.get(element, str(element))
                raise BadRequest(f"requests must be a list of BidRequest structs, not of {kind}")
            count = int(info[wire.INFO_ARG1_COUNT])
            if count > max_batch:
                raise BadRequest(f"{count} requests in one batch (limit {max_batch})")
        if largest > max_batch:
            raise BadRequest(f"a list, set or map of {largest} elements (limit {max_batch})")


def frame_error_reply(exc: FrameError) -> bytes:
    """The PROTOCOL_ERROR reply to a message that cannot be framed (named after its header if readable)."""
    header = wire.header_fields(exc.head)
    name, seqid = (header[0], header[2]) if header else ("", 0)
    out = TCyMemoryBuffer()
    kind = TApplicationException.PROTOCOL_ERROR
    send_exception(TCyBinaryProtocol(out), name, seqid, kind, f"bad message: {exc.reason}")
    return bytes(out.getvalue())
