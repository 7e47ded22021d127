"""The Thrift server: binary protocol on unframed sockets, a thread per connection (or an event loop),
graceful drain.

The wire format is TBinaryProtocol with a strict message header on TBufferedTransport (no frame
length), as aws-rtb-intelligence-kit's clients speak it (Apache Thrift's TSocket + TBinaryProtocol);
thriftpy2 and Apache Thrift clients in any language work too. Decoding and encoding are thriftpy2's Cython
binary protocol; `wire.scan_message` finds each message's end first and bounds every length, so:

- garbage bytes or an oversized/invalid frame get a TApplicationException(PROTOCOL_ERROR) reply when
  the header was readable, then that connection is closed (its byte stream cannot be re-synchronised);
- a well-framed but bad request (unknown method, missing request struct, an over-long user agent, a
  list longer than `max_batch` or of the wrong element type — refused before anything is decoded) gets
  an error reply and the connection stays open; a failure inside scoring gets INTERNAL_ERROR, logged
  (`processor.Processor`: one error-reply path for all of them);
- a client that disconnects mid-frame only ends its own connection; every other connection keeps going.

Connections are served by one thread each, or all by one event-loop thread with
`ServerConfig.transport = "loop"` (`event_loop.py`: the same bounds and replies; message framing both
share is `framing.py`). Bounds (docs/serving.md lists them): a connection idle for
`idle_timeout` is closed (far longer than a load client waits between calls on its kept-alive
connection); a started message must arrive within `read_timeout`; once fewer than
`reserve_connections` slots are left, connections idle for `busy_idle_timeout` make room for new
clients; message buffers beyond each connection's base buffer share a `max_buffered_bytes` budget;
warnings a client can trigger are rate-limited (`LogLimiter`). Scoring releases
the GIL inside the numba kernel, and the GIL is released in every socket call, so connections overlap.
`shutdown` drains: stop accepting, stop reading new requests, let requests in progress finish and reply,
close connections, and give up after `drain_timeout` seconds.

Over 400 lines on purpose: the accept loop and the connection reader share the slot reserve and the
buffer budget; one module keeps those internals private.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import struct
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING, Any

from thriftpy2.protocol import TCyBinaryProtocol
from thriftpy2.transport import TCyMemoryBuffer

from filtering_api.idl import BidRequestFilter
from filtering_api.metrics import MetricsAggregator
from filtering_server.framing import READ_TIMEOUT, RECV, FrameError, MessageBuffer, frame_error_reply
from filtering_server.handler import FilteringHandler, record_scored
from filtering_server.log_limit import LogLimiter
from filtering_server.prediction_log import PredictionLog
from filtering_server.processor import Processor
from filtering_server.watcher import ModelHolder

if TYPE_CHECKING:
    from filtering_server.event_loop import EventLoop

log = logging.getLogger(__name__)

#: Seconds a blocked socket call waits before the connection re-checks its deadlines.
_TICK = 1.0

#: The transports `ServerConfig.transport` names: a thread per connection, or one event-loop thread.
THREADS = "threads"
LOOP = "loop"
TRANSPORTS = (THREADS, LOOP)


@dataclass(frozen=True)
class ServerConfig:
    """Network and safety settings of the server (filled from the CLI in `__main__`)."""

    #: Loopback unless told otherwise: the ECS task passes 0.0.0.0 explicitly.
    host: str = "127.0.0.1"
    port: int = 9090
    backlog: int = 256
    max_connections: int = 1024
    #: Slots kept for new clients: with fewer left, connections idle for `busy_idle_timeout` are closed.
    reserve_connections: int = 64
    #: Seconds a connection may stay idle between messages.
    idle_timeout: float = 600.0
    #: Seconds of idleness after which a connection may be closed to admit a new client (reserve in use).
    busy_idle_timeout: float = 10.0
    #: Seconds a started message (or a reply being sent) may take.
    read_timeout: float = 30.0
    #: Largest message accepted (room for a batch of `max_batch` requests); bigger ones close the connection.
    max_message_bytes: int = 16 * 1024 * 1024
    #: Bytes all connections together may buffer beyond their 128 KiB base buffers.
    max_buffered_bytes: int = 512 * 1024 * 1024
    #: Most requests in a filterBatch, and most elements of any list, set or map in a message.
    max_batch: int = 10_000
    max_depth: int = 16
    drain_timeout: float = 10.0
    #: Seconds between accept-loop checks of the stop flag.
    poll_interval: float = 0.25
    #: After refusing a message, seconds to read and discard what the client still sends, so that it
    #: reads the error reply instead of a connection reset.
    linger: float = 2.0
    #: Warnings of one kind a client can trigger, logged per `log_interval` seconds (the rest counted).
    log_burst: int = 10
    log_interval: float = 60.0
    #: `threads` (a thread per connection) or `loop` (one thread multiplexes all, `event_loop.py`).
    transport: str = THREADS

    def __post_init__(self) -> None:
        if self.transport not in TRANSPORTS:
            raise ValueError(f"transport must be one of {', '.join(TRANSPORTS)}, not {self.transport!r}")


class _Closed(Exception):
    """The peer closed the connection (or the server is draining)."""


class FilteringServer:
    """Serve `BidRequestFilter` from the model in `holder` until `shutdown`."""

    def __init__(
        self,
        holder: ModelHolder,
        config: ServerConfig | None = None,
        metrics: MetricsAggregator | None = None,
        *,
        echo: bool = False,
        model_check_age: Callable[[], float | None] | None = None,
        predictions: PredictionLog | None = None,
    ) -> None:
        self.holder = holder
        #: Seconds since the watcher last checked for a new model successfully (None: not watching).
        self.model_check_age = model_check_age
        self.config = config or ServerConfig()
        self.metrics = metrics
        #: Reply a constant without scoring (the benchmark's transport baseline on the same stack).
        self.echo = echo
        #: Seconds the event loop gives replies in progress when draining (set by `shutdown`).
        self.drain_timeout = self.config.drain_timeout
        self.started = time.monotonic()
        self._served_closed = 0  # requests served by connections that have ended
        self._listener: socket.socket | None = None
        self._stopping = threading.Event()
        self._draining = False
        self._connections: dict[int, Any] = {}  # _Connection, or event_loop's connections
        self._lock = threading.Lock()
        self._accept_thread: threading.Thread | None = None
        self._loop: EventLoop | None = None
        self._next_id = 0
        self._buffered = 0  # bytes of message buffers beyond the base buffers, all connections
        self.limited_log = LogLimiter(log, burst=self.config.log_burst, interval=self.config.log_interval)
        #: the sampled prediction log the handler offers each answer to (None: off)
        self.predictions = predictions
        self.handler = FilteringHandler(self, predictions)
        #: decodes each message, calls `handler`, writes the reply or the error reply
        self.processor = Processor(
            BidRequestFilter,
            self.handler,
            on_error=metrics.record_error if metrics is not None else None,
            limited_log=self.limited_log,
        )

    # -- lifecycle --------------------------------------------------------------------------------

    def bind(self) -> int:
        """Listen on host:port (0 picks a free port) and return the port."""
        family = socket.AF_INET6 if ":" in self.config.host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        # SO_REUSEADDR for restarts; deliberately not SO_REUSEPORT, which would let a second server
        # silently share the port (thriftpy2's own server socket sets it)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((self.config.host, self.config.port))
        sock.listen(self.config.backlog)
        sock.settimeout(self.config.poll_interval)
        self._listener = sock
        return self.port

    @property
    def port(self) -> int:
        """The bound port."""
        if self._listener is None:
            raise RuntimeError("the server is not bound")
        return int(self._listener.getsockname()[1])

    @property
    def ready(self) -> bool:
        """Bound, a model loaded, and not draining."""
        return self._listener is not None and self.holder.current is not None and not self._draining

    def serve_forever(self) -> None:
        """Accept and serve connections until `shutdown` (each in its own thread, or all in the loop)."""
        if self._listener is None:
            self.bind()
        assert self._listener is not None
        if self.config.transport == LOOP:
            from filtering_server.event_loop import EventLoop

            self._loop = EventLoop(self)
            self._loop.run()
            return
        listener = self._listener
        while not self._stopping.is_set():
            self.limited_log.flush()
            try:
                conn, addr = listener.accept()
            except TimeoutError:
                continue
            except OSError as exc:
                if self._stopping.is_set():
                    break
                # out of file handles (EMFILE) and the like: one line per kind, then wait a second
                self.limited_log.log("accept", logging.ERROR, "accept failed: %s", exc)
                self._stopping.wait(max(1.0, self.config.poll_interval))
                continue
            connection = self._admit(conn, addr, partial(_Connection, self, conn, addr))
            if connection is not None:
                connection.start()

    def start(self) -> FilteringServer:
        """Bind (if needed) and accept in a background thread."""
        if self._listener is None:
            self.bind()
        name = "thrift-loop" if self.config.transport == LOOP else "thrift-accept"
        self._accept_thread = threading.Thread(target=self.serve_forever, name=name, daemon=True)
        self._accept_thread.start()
        return self

    def shutdown(self, timeout: float | None = None) -> bool:
        """Drain: stop accepting, finish requests in progress, close; True if all ended within the timeout."""
        timeout = self.config.drain_timeout if timeout is None else timeout
        self._draining = True
        if self.config.transport == LOOP:
            return self._shutdown_loop(timeout)
        self._stopping.set()
        if self._accept_thread is not None:
            self._accept_thread.join(timeout=self.config.poll_interval * 4 + 1)
        if self._listener is not None:
            with contextlib.suppress(OSError):
                self._listener.close()
        with self._lock:
            connections = list(self._connections.values())
        log.info("draining %d connection(s) (timeout %.1f s)", len(connections), timeout)
        for c in connections:
            c.stop_reading()
        deadline = time.monotonic() + timeout
        for c in connections:
            c.thread.join(timeout=max(0.0, deadline - time.monotonic()))
        left = [c for c in connections if c.thread.is_alive()]
        for c in left:
            c.force_close()
        if left:
            log.warning("drain timed out: %d connection(s) closed with requests in progress", len(left))
        return not left

    def _shutdown_loop(self, timeout: float) -> bool:
        """Drain the event loop: it stops accepting, lets replies in progress finish, then closes."""
        self.drain_timeout = timeout
        self._stopping.set()
        if self._loop is not None:
            self._loop.wake()
        if self._accept_thread is not None:
            # the loop may be inside a call when asked to stop: it drains once the call returns
            self._accept_thread.join(timeout=timeout + self.config.poll_interval * 4 + 1)
            if self._accept_thread.is_alive():
                log.warning("drain timed out: the event loop did not stop")
                return False
        if self._listener is not None:
            with contextlib.suppress(OSError):
                self._listener.close()
        return self._loop is None or self._loop.drained

    def frame_rejected(self, addr: Any, exc: FrameError) -> None:
        """Log (rate-limited) and count a message that could not be framed; its connection will close."""
        self.limited_log.warning("bad-message", "closing connection %s: %s", addr, exc.reason)
        if self.metrics is not None:
            self.metrics.record_error()

    # -- connections ------------------------------------------------------------------------------

    def _admit(self, conn: socket.socket, addr: Any, make: Callable[[int], Any]) -> Any:
        """Register a new connection made by `make(conn_id)` and return it, or refuse and close the socket
        (None) when the server is full or draining; evicts the idlest connection when slots run low."""
        config = self.config
        victim = None
        with self._lock:
            open_ = sum(1 for c in self._connections.values() if not c.evicted)
            if open_ >= config.max_connections - config.reserve_connections and not self._draining:
                victim = self._idlest(time.monotonic() - config.busy_idle_timeout)
                if victim is not None:
                    victim.evicted = True
                    open_ -= 1
            if open_ >= config.max_connections or self._draining:
                full = True
            else:
                full = False
                self._next_id += 1
                connection = make(self._next_id)
                self._connections[connection.id] = connection
        if victim is not None:
            self.limited_log.log(
                "evicted",
                logging.INFO,
                "closing connection %s, idle, to keep slots for new clients",
                victim.addr,
            )
            victim.force_close()
        if full:
            self.limited_log.warning(
                "refused", "refusing a connection from %s: %d connections open", addr, open_
            )
            with contextlib.suppress(OSError):
                conn.close()
            return None
        return connection

    def _idlest(self, idle_before: float) -> Any:
        """The connection idle the longest, if idle since before `idle_before` (call under the lock)."""
        idle = [c for c in self._connections.values() if not c.evicted and c.idle_since is not None]
        idle = [c for c in idle if (c.idle_since or 0.0) < idle_before]
        return min(idle, key=lambda c: c.idle_since or 0.0, default=None)

    def _reserve_buffer(self, n: int) -> bool:
        """Take `n` bytes of the shared message-buffer budget; False when it would be exceeded."""
        with self._lock:
            if self._buffered + n > self.config.max_buffered_bytes:
                return False
            self._buffered += n
            return True

    def _release_buffer(self, n: int) -> None:
        with self._lock:
            self._buffered -= n

    @property
    def buffered_bytes(self) -> int:
        """Bytes of message buffers beyond the base buffers, over all connections."""
        with self._lock:
            return self._buffered

    def _forget(self, connection: Any) -> None:
        with self._lock:
            if self._connections.pop(connection.id, None) is not None:
                self._served_closed += connection.served

    @property
    def requests_served(self) -> int:
        """Requests scored since start (exact: each connection counts its own)."""
        with self._lock:
            return self._served_closed + sum(c.served for c in self._connections.values())

    @property
    def connection_count(self) -> int:
        """Open connections."""
        with self._lock:
            return len(self._connections)


class _Connection:
    """One client socket: read whole messages, decode, dispatch, reply; in its own thread."""

    def __init__(self, server: FilteringServer, sock: socket.socket, addr: Any, conn_id: int) -> None:
        self.server = server
        self.sock = sock
        self.addr = addr
        self.id = conn_id
        self.thread = threading.Thread(target=self.run, name=f"thrift-conn-{conn_id}", daemon=True)
        config = server.config
        self._messages = MessageBuffer(
            max_message_bytes=config.max_message_bytes,
            max_depth=config.max_depth,
            reserve=server._reserve_buffer,
            release=server._release_buffer,
        )
        self._reading = True
        self.served = 0  # written only by this connection's thread
        #: When the connection began waiting for a new message with nothing buffered (None: busy).
        self.idle_since: float | None = time.monotonic()
        #: Chosen to be closed to make room for a new client.
        self.evicted = False

    # -- socket -----------------------------------------------------------------------------------

    def start(self) -> None:
        """Serve the connection in its own thread."""
        self.thread.start()

    def stop_reading(self) -> None:
        """Draining: no further request is read; one in progress still gets its reply."""
        self._reading = False
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_RD)

    def force_close(self) -> None:
        """End the connection now (drain timeout, or evicted to make room)."""
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_RDWR)

    def _fill(self) -> None:
        """Receive more bytes after the buffered ones."""
        messages = self._messages
        room = messages.room()
        config = self.server.config
        while True:
            try:
                n = self.sock.recv_into(room)
                break
            except (BlockingIOError, TimeoutError):  # SO_RCVTIMEO: check the deadlines, then wait on
                now = time.monotonic()
                if messages.empty:
                    if self.idle_since is not None and now - self.idle_since > config.idle_timeout:
                        log.debug("closing connection %s: idle for %.0f s", self.addr, now - self.idle_since)
                        raise _Closed from None
                elif now - messages.message_started > config.read_timeout:
                    raise FrameError(READ_TIMEOUT, messages.head()) from None
                if not self._reading or self.evicted:
                    raise _Closed from None
        if n == 0:
            raise _Closed
        if self.idle_since is not None:
            self.idle_since = None
            messages.message_started = time.monotonic()
        messages.received(n)

    def _next_message(self) -> bytes:
        """The next complete message's bytes (blocks); raises `_Closed` at EOF, `FrameError` if invalid."""
        messages = self._messages
        read_timeout = self.server.config.read_timeout
        while True:
            data = messages.next_message()
            if data is not None:
                return data
            if not messages.empty and time.monotonic() - messages.message_started > read_timeout:
                raise FrameError(READ_TIMEOUT, messages.head())  # a trickle
            if not self._reading:
                raise _Closed
            if messages.empty and self.idle_since is None:
                self.idle_since = time.monotonic()
            self._fill()

    # -- protocol ---------------------------------------------------------------------------------

    def run(self) -> None:
        server = self.server
        inbuf = TCyMemoryBuffer()
        outbuf = TCyMemoryBuffer()
        iprot = TCyBinaryProtocol(inbuf, strict_read=True, strict_write=True)
        oprot = TCyBinaryProtocol(outbuf, strict_read=True, strict_write=True)
        processor = server.processor
        sock = self.sock
        max_batch = server.config.max_batch
        messages = self._messages

        def check(method: str) -> None:
            messages.check_containers(method, max_batch)

        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
            # kernel-side timeouts (no per-call cost): a blocked recv wakes every tick to check the
            # idle and read deadlines; a send blocked for the read timeout ends the connection
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, _timeval(_TICK))
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDTIMEO, _timeval(server.config.read_timeout))
            while self._reading:
                data = self._next_message()
                t0 = time.perf_counter()
                inbuf.setvalue(data)
                result = processor.process(iprot, oprot, check)
                reply = outbuf.getvalue()
                outbuf.clean()
                if reply:
                    sock.sendall(reply)
                self.served += record_scored(server.metrics, result, t0)
        except FrameError as exc:
            self._reject_frame(exc)
        except (_Closed, ConnectionError, TimeoutError):
            pass
        except OSError as exc:
            log.debug("connection %s ended: %s", self.addr, exc)
        except Exception:
            server.limited_log.log(
                "connection-failed", logging.ERROR, "connection %s failed", self.addr, exc_info=True
            )
        finally:
            with contextlib.suppress(OSError):
                sock.close()
            messages.shrink()
            server._forget(self)

    def _reject_frame(self, exc: FrameError) -> None:
        self.server.frame_rejected(self.addr, exc)
        with contextlib.suppress(OSError):
            self.sock.sendall(frame_error_reply(exc))
            self._linger()

    def _linger(self) -> None:
        """Half-close, then discard what the client still sends for up to `linger` seconds, so that the
        reply is read instead of being lost to a reset (closing with unread bytes sends one)."""
        self.sock.shutdown(socket.SHUT_WR)
        deadline = time.monotonic() + self.server.config.linger
        scratch = bytearray(RECV)
        while (left := deadline - time.monotonic()) > 0:
            self.sock.settimeout(left)
            try:
                if self.sock.recv_into(scratch) == 0:
                    return
            except (TimeoutError, BlockingIOError):
                return


def _timeval(seconds: float) -> bytes:
    """A `struct timeval` for SO_RCVTIMEO / SO_SNDTIMEO."""
    whole = int(seconds)
    return struct.pack("ll", whole, int((seconds - whole) * 1_000_000))
