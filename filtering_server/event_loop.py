"""The event-loop transport: one thread multiplexes every connection (`ServerConfig.transport = "loop"`).

The same wire and the same behaviour as the threaded transport (`server.py`): unframed binary-protocol
messages found by `framing.MessageBuffer`, answered by the server's `Processor`; a message that cannot be
framed gets a PROTOCOL_ERROR reply, then its connection half-closes and discards what the client still
sends for `linger` seconds; the idle, read and send deadlines, the connection limit and its reserve,
and the shared buffer budget all hold. What differs is the threading: non-blocking sockets under one
`selectors` selector (epoll on Linux), so a request never waits for another connection thread to hand
over the GIL. Calls run one at a time in the loop: a long `filterBatch` delays the other connections'
requests behind it (the threaded transport overlaps them where scoring releases the GIL).

`selectors` rather than asyncio or Thrift's TNonblockingServer: asyncio adds a callback and a
transport object between each recv and the synchronous decode-score-encode, and TNonblockingServer
speaks only the framed transport, which the original clients do not.
"""

from __future__ import annotations

import contextlib
import logging
import selectors
import socket
import time
from functools import partial
from typing import TYPE_CHECKING, Any, cast

from thriftpy2.protocol import TCyBinaryProtocol
from thriftpy2.transport import TCyMemoryBuffer

from filtering_server.framing import READ_TIMEOUT, RECV, FrameError, MessageBuffer, frame_error_reply
from filtering_server.handler import record_scored

if TYPE_CHECKING:
    from filtering_server.server import FilteringServer

log = logging.getLogger(__name__)

#: Seconds between checks of every connection's deadlines (and of a paused accept).
_TICK = 0.25
#: Connections accepted per readiness of the listener before the loop serves the others again.
_ACCEPT_BURST = 64
#: Receives of discarded input per readiness of a lingering connection.
_DISCARD_BURST = 16

_READ = selectors.EVENT_READ
_WRITE = selectors.EVENT_WRITE


class _Closed(Exception):
    """The peer closed the connection."""


class EventLoop:
    """Serve all of `server`'s connections from the thread that calls `run` (until `server.shutdown`)."""

    def __init__(self, server: FilteringServer) -> None:
        self.server = server
        self.selector = selectors.DefaultSelector()
        # `wake` makes a blocked select return at once (shutdown from another thread)
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._wake_w.setblocking(False)
        self._accept_paused_until: float | None = None
        #: the connections, by id; the server's own registry counts them for health and limits
        self.connections: dict[int, LoopConnection] = {}
        # one call at a time, so every connection shares one pair of protocol buffers
        self.inbuf = TCyMemoryBuffer()
        self.outbuf = TCyMemoryBuffer()
        self.iprot = TCyBinaryProtocol(self.inbuf, strict_read=True, strict_write=True)
        self.oprot = TCyBinaryProtocol(self.outbuf, strict_read=True, strict_write=True)
        self.scratch = bytearray(RECV)
        #: all connections ended within the drain timeout (set when `run` returns)
        self.drained = True

    def wake(self) -> None:
        """Make the loop look at the server's stop flag now (callable from any thread)."""
        with contextlib.suppress(OSError):
            self._wake_w.send(b"\0")

    def run(self) -> None:
        """Accept and serve until the server stops, then drain."""
        server = self.server
        listener = server._listener
        assert listener is not None
        listener.setblocking(False)
        self.selector.register(listener, _READ, None)
        self.selector.register(self._wake_r, _READ, self)
        next_tick = time.monotonic() + _TICK
        try:
            while not server._stopping.is_set():
                self._dispatch(self.selector.select(max(0.0, next_tick - time.monotonic())))
                now = time.monotonic()
                if now >= next_tick:
                    self._tick(now)
                    next_tick = now + _TICK
            self._drain()
        finally:
            with contextlib.suppress(KeyError, ValueError, OSError):
                self.selector.unregister(listener)
            for connection in list(self.connections.values()):
                connection.close()
            self.selector.close()
            self._wake_r.close()
            self._wake_w.close()

    def _dispatch(self, events: list[tuple[selectors.SelectorKey, int]]) -> None:
        for key, mask in events:
            data = key.data
            if data is None:
                self._accept(cast(socket.socket, key.fileobj))  # the listener registered in `run`
            elif data is self:
                with contextlib.suppress(OSError):
                    self._wake_r.recv(4096)
            else:
                data.on_event(mask)

    def _accept(self, listener: socket.socket) -> None:
        server = self.server
        for _ in range(_ACCEPT_BURST):
            try:
                sock, addr = listener.accept()
            except BlockingIOError:
                return
            except OSError as exc:
                # out of file handles (EMFILE) and the like: one line per kind, then stop accepting for
                # a second (the listener stays readable, so retrying at once would spin)
                server.limited_log.log("accept", logging.ERROR, "accept failed: %s", exc)
                self.selector.unregister(listener)
                self._accept_paused_until = time.monotonic() + max(1.0, server.config.poll_interval)
                return
            connection = server._admit(sock, addr, partial(LoopConnection, self, sock, addr))
            if connection is not None:
                connection.start()

    def _tick(self, now: float) -> None:
        """Deadlines: idle and trickling connections, stuck sends, lingering closes; a paused accept."""
        server = self.server
        server.limited_log.flush()
        if self._accept_paused_until is not None and now >= self._accept_paused_until:
            self._accept_paused_until = None
            assert server._listener is not None
            self.selector.register(server._listener, _READ, None)
        for connection in list(self.connections.values()):
            connection.check_deadlines(now)

    def _drain(self) -> None:
        """Stop accepting; close idle connections now, the others once their reply is sent."""
        server = self.server
        listener = server._listener
        assert listener is not None
        with contextlib.suppress(KeyError, ValueError):
            self.selector.unregister(listener)
        if server._draining:  # not listening any more (`shutdown` closes it too, whoever is first)
            with contextlib.suppress(OSError):
                listener.close()
        log.info("draining %d connection(s) (timeout %.1f s)", len(self.connections), server.drain_timeout)
        for connection in list(self.connections.values()):
            connection.stop_reading()
        deadline = time.monotonic() + server.drain_timeout
        while self.connections and (left := deadline - time.monotonic()) > 0:
            self._dispatch(self.selector.select(min(left, _TICK)))
            for connection in list(self.connections.values()):
                connection.check_deadlines(time.monotonic())
        self.drained = not self.connections
        if self.connections:
            log.warning(
                "drain timed out: %d connection(s) closed with replies in progress", len(self.connections)
            )


class LoopConnection:
    """One non-blocking client socket of the event loop: receive, frame, call, reply, in turns."""

    def __init__(self, loop: EventLoop, sock: socket.socket, addr: Any, conn_id: int) -> None:
        self.loop = loop
        self.server = server = loop.server
        self.sock = sock
        self.addr = addr
        self.id = conn_id
        config = server.config
        self.messages = MessageBuffer(
            max_message_bytes=config.max_message_bytes,
            max_depth=config.max_depth,
            reserve=server._reserve_buffer,
            release=server._release_buffer,
        )
        self.served = 0
        #: When the connection began waiting for a new message with nothing buffered (None: busy).
        self.idle_since: float | None = time.monotonic()
        #: Chosen to be closed to make room for a new client.
        self.evicted = False
        self.closed = False
        self._reading = True
        self._events = 0
        self._out: memoryview | None = None  # the part of a reply the socket has not taken yet
        self._send_started = 0.0
        #: after an error reply: half-close once it is sent, discard input until this time
        self._close_after_send = False
        self._linger_until: float | None = None

    def start(self) -> None:
        """Register with the loop's selector."""
        sock = self.sock
        sock.setblocking(False)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
        self.loop.connections[self.id] = self
        self._events = _READ
        self.loop.selector.register(sock, _READ, self)

    def stop_reading(self) -> None:
        """Draining: no further request is read; a reply being sent is finished, then the socket closes."""
        self._reading = False
        if self._out is None:
            self.close()

    def force_close(self) -> None:
        """End the connection now (evicted to make room; the loop's own thread calls it)."""
        self.close()

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        self.loop.connections.pop(self.id, None)
        with contextlib.suppress(KeyError, ValueError):
            self.loop.selector.unregister(self.sock)
        with contextlib.suppress(OSError):
            self.sock.close()
        self.messages.shrink()
        self.server._forget(self)

    # -- events -----------------------------------------------------------------------------------

    def on_event(self, mask: int) -> None:
        """The socket is readable and/or writable."""
        if self.closed:  # closed earlier in the same round of events
            return
        try:
            if mask & _WRITE:
                self._flush()
            if mask & _READ:
                if self._linger_until is not None:
                    self._discard()
                    return
                self._receive()
            self._pump()
        except FrameError as exc:
            self._reject(exc)
        except (_Closed, ConnectionError, TimeoutError):
            self.close()
        except OSError as exc:
            log.debug("connection %s ended: %s", self.addr, exc)
            self.close()
        except Exception:
            self.server.limited_log.log(
                "connection-failed", logging.ERROR, "connection %s failed", self.addr, exc_info=True
            )
            self.close()

    def check_deadlines(self, now: float) -> None:
        """Close (or refuse the message of) a connection past one of its deadlines."""
        if self.closed:
            return
        config = self.server.config
        if self._linger_until is not None:
            if now >= self._linger_until:
                self.close()
        elif self._out is not None:
            if now - self._send_started > config.read_timeout:
                log.debug("closing connection %s: the reply was not read within the read timeout", self.addr)
                self.close()
        elif not self.messages.empty:
            if now - self.messages.message_started > config.read_timeout:  # a trickle
                self._reject(FrameError(READ_TIMEOUT, self.messages.head()))
        elif self.idle_since is not None and now - self.idle_since > config.idle_timeout:
            log.debug("closing connection %s: idle for %.0f s", self.addr, now - self.idle_since)
            self.close()

    def _receive(self) -> None:
        try:
            n = self.sock.recv_into(self.messages.room())
        except BlockingIOError:
            return
        if n == 0:
            raise _Closed
        if self.idle_since is not None:
            self.idle_since = None
            self.messages.message_started = time.monotonic()
        self.messages.received(n)

    def _pump(self) -> None:
        """Answer every complete message buffered, as long as the socket takes the replies."""
        messages = self.messages
        while self._out is None and self._reading and not self.closed:
            if self.server._stopping.is_set():
                self.stop_reading()
                return
            data = messages.next_message()
            if data is None:
                break
            self._call(data)
        if self.closed:
            return
        if self._out is None and messages.empty and self.idle_since is None:
            self.idle_since = time.monotonic()
        self._arm()

    def _call(self, data: bytes) -> None:
        loop, server = self.loop, self.server
        t0 = time.perf_counter()
        loop.inbuf.setvalue(data)
        messages, max_batch = self.messages, server.config.max_batch
        result = server.processor.process(
            loop.iprot, loop.oprot, lambda method: messages.check_containers(method, max_batch)
        )
        reply = loop.outbuf.getvalue()
        loop.outbuf.clean()
        if reply:
            self._send(reply)
        self.served += record_scored(server.metrics, result, t0)

    def _send(self, reply: bytes) -> None:
        try:
            n = self.sock.send(reply)
        except BlockingIOError:
            n = 0
        if n < len(reply):
            self._out = memoryview(reply)[n:]
            self._send_started = time.monotonic()

    def _flush(self) -> None:
        """Send more of a pending reply; once it is out, go on with the next message (or close)."""
        assert self._out is not None
        try:
            n = self.sock.send(self._out)
        except BlockingIOError:
            return
        self._out = self._out[n:] if n < len(self._out) else None
        if self._out is None:
            if self._close_after_send:
                self._start_linger()
            elif not self._reading:
                self.close()

    def _arm(self) -> None:
        """Wait for what the connection needs next: the socket to take a reply, or more bytes."""
        if self._out is not None:
            events = _WRITE
        elif self._reading or self._linger_until is not None:
            events = _READ
        else:
            self.close()
            return
        if events != self._events:
            self._events = events
            self.loop.selector.modify(self.sock, events, self)

    # -- a message that cannot be framed ---------------------------------------------------------------

    def _reject(self, exc: FrameError) -> None:
        """Reply PROTOCOL_ERROR, then half-close and discard what the client still sends for `linger`
        seconds, so that it reads the reply instead of a reset (closing with unread bytes sends one)."""
        self.server.frame_rejected(self.addr, exc)
        self._reading = False
        self._close_after_send = True
        try:
            self._send(frame_error_reply(exc))
            if self._out is None:
                self._start_linger()
            else:
                self._arm()
        except OSError:
            self.close()

    def _start_linger(self) -> None:
        self._close_after_send = False
        try:
            self.sock.shutdown(socket.SHUT_WR)
        except OSError:
            self.close()
            return
        self._linger_until = time.monotonic() + self.server.config.linger
        if self.server.config.linger <= 0:
            self.close()
            return
        self._arm()

    def _discard(self) -> None:
        try:
            for _ in range(_DISCARD_BURST):  # bounded, so a fast sender cannot hold the loop
                if self.sock.recv_into(self.loop.scratch) == 0:
                    break
            else:
                return
        except BlockingIOError:
            return
        except OSError:
            pass
        self.close()  # the client closed its side (recv returned 0) or the socket failed
