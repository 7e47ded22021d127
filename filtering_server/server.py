"""The Thrift server: binary protocol on unframed sockets, a thread per connection, graceful drain.

The wire format is TBinaryProtocol with a strict message header on TBufferedTransport (no frame
length), as aws-rtb-intelligence-kit's clients speak it (Apache Thrift's TSocket + TBinaryProtocol);
thriftpy2 and Apache Thrift clients in any language work too. Decoding and encoding are thriftpy2's Cython
binary protocol; `wire.scan_message` finds each message's end first and bounds every length, so:

- garbage bytes or an oversized/invalid frame get a TApplicationException(PROTOCOL_ERROR) reply when
  the header was readable, then that connection is closed (its byte stream cannot be re-synchronised);
- a well-framed but bad request (unknown method, missing request struct, an over-long user agent) gets
  an error reply and the connection stays open; a failure inside scoring gets INTERNAL_ERROR, logged
  (`processor.Processor`: one error-reply path for all of them);
- a client that disconnects mid-frame only ends its own connection; every other connection keeps going.

Connections are served by one thread each and are never closed for being idle: a load client keeps
one connection per thread for a whole run. Scoring releases
the GIL inside the numba kernel, and the GIL is released in every socket call, so connections overlap.
`shutdown` drains: stop accepting, stop reading new requests, let requests in progress finish and reply,
close connections, and give up after `drain_timeout` seconds.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import threading
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
from thriftpy2.protocol import TCyBinaryProtocol
from thriftpy2.thrift import TApplicationException
from thriftpy2.transport import TCyMemoryBuffer

from filtering_api.idl import BidRequestFilter
from filtering_api.metrics import MetricsAggregator
from filtering_server import wire
from filtering_server.handler import FilteringHandler, requests_scored
from filtering_server.processor import Processor, send_exception
from filtering_server.watcher import ModelHolder

log = logging.getLogger(__name__)

_RECV = 65536


@dataclass(frozen=True)
class ServerConfig:
    """Network and safety settings of the server (filled from the CLI in `__main__`)."""

    host: str = "0.0.0.0"
    port: int = 9090
    backlog: int = 256
    max_connections: int = 1024
    #: Largest message accepted (room for a batch of `max_batch` requests); bigger ones close the connection.
    max_message_bytes: int = 16 * 1024 * 1024
    max_batch: int = 10_000
    max_depth: int = 16
    drain_timeout: float = 10.0
    #: Seconds between accept-loop checks of the stop flag.
    poll_interval: float = 0.25


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
    ) -> None:
        self.holder = holder
        self.config = config or ServerConfig()
        self.metrics = metrics
        #: Reply a constant without scoring (the benchmark's transport baseline on the same stack).
        self.echo = echo
        self.started = time.monotonic()
        self._served_closed = 0  # requests served by connections that have ended
        self._listener: socket.socket | None = None
        self._stopping = threading.Event()
        self._draining = False
        self._connections: dict[int, _Connection] = {}
        self._lock = threading.Lock()
        self._accept_thread: threading.Thread | None = None
        self._next_id = 0
        self.handler = FilteringHandler(self)
        #: decodes each message, calls `handler`, writes the reply or the error reply
        self.processor = Processor(
            BidRequestFilter, self.handler, on_error=metrics.record_error if metrics is not None else None
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
        """Accept connections until `shutdown` (each gets its own thread)."""
        if self._listener is None:
            self.bind()
        assert self._listener is not None
        listener = self._listener
        while not self._stopping.is_set():
            try:
                conn, addr = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                if self._stopping.is_set():
                    break
                log.exception("accept failed")
                time.sleep(self.config.poll_interval)
                continue
            self._admit(conn, addr)

    def start(self) -> FilteringServer:
        """Bind (if needed) and accept in a background thread."""
        if self._listener is None:
            self.bind()
        self._accept_thread = threading.Thread(target=self.serve_forever, name="thrift-accept", daemon=True)
        self._accept_thread.start()
        return self

    def shutdown(self, timeout: float | None = None) -> bool:
        """Drain: stop accepting, finish requests in progress, close; True if all ended within the timeout."""
        timeout = self.config.drain_timeout if timeout is None else timeout
        self._draining = True
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

    # -- connections ------------------------------------------------------------------------------

    def _admit(self, conn: socket.socket, addr: Any) -> None:
        with self._lock:
            if len(self._connections) >= self.config.max_connections or self._draining:
                full = True
            else:
                full = False
                self._next_id += 1
                connection = _Connection(self, conn, addr, self._next_id)
                self._connections[connection.id] = connection
        if full:
            log.warning("refusing a connection from %s: %d connections open", addr, len(self._connections))
            with contextlib.suppress(OSError):
                conn.close()
            return
        connection.thread.start()

    def _forget(self, connection: _Connection) -> None:
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
        self._buf = np.empty(_RECV * 2, dtype=np.uint8)
        self._start = 0
        self._end = 0
        self._reading = True
        self.served = 0  # written only by this connection's thread

    # -- socket -----------------------------------------------------------------------------------

    def stop_reading(self) -> None:
        """Draining: no further request is read; one in progress still gets its reply."""
        self._reading = False
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_RD)

    def force_close(self) -> None:
        """End the connection now (drain timeout)."""
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_RDWR)

    def _fill(self) -> None:
        """Receive more bytes after the buffered ones (compacting or growing the buffer as needed)."""
        buf = self._buf
        if self._end == buf.shape[0]:
            pending = self._end - self._start
            if self._start > 0:
                buf[:pending] = buf[self._start : self._end]
            else:
                limit = self.server.config.max_message_bytes + _RECV
                grown = np.empty(min(max(buf.shape[0] * 2, pending + _RECV), limit), dtype=np.uint8)
                grown[:pending] = buf[self._start : self._end]
                self._buf = buf = grown
            self._start, self._end = 0, pending
        n = self.sock.recv_into(memoryview(buf)[self._end :])
        if n == 0:
            raise _Closed
        self._end += n

    def _next_message(self) -> bytes:
        """The next complete message's bytes (blocks); raises `_Closed` at EOF, `_FrameError` if invalid."""
        config = self.server.config
        while True:
            if self._end > self._start:
                n = wire.scan_message(
                    self._buf,
                    self._start,
                    self._end,
                    config.max_message_bytes,
                    config.max_message_bytes,
                    config.max_depth,
                )
                if n > 0:
                    if n > config.max_message_bytes:
                        raise _FrameError(wire.TOO_LONG, self._pending_bytes())
                    data = self._buf[self._start : self._start + n].tobytes()
                    self._start += n
                    if self._start == self._end:
                        self._start = self._end = 0
                    return data
                if n != wire.NEED_MORE:
                    raise _FrameError(n, self._pending_bytes())
                if self._end - self._start > config.max_message_bytes:
                    raise _FrameError(wire.TOO_LONG, self._pending_bytes())
            if not self._reading:
                raise _Closed
            self._fill()

    def _pending_bytes(self) -> bytes:
        return self._buf[self._start : min(self._end, self._start + 4096)].tobytes()

    # -- protocol ---------------------------------------------------------------------------------

    def run(self) -> None:
        server = self.server
        inbuf = TCyMemoryBuffer()
        outbuf = TCyMemoryBuffer()
        iprot = TCyBinaryProtocol(inbuf, strict_read=True, strict_write=True)
        oprot = TCyBinaryProtocol(outbuf, strict_read=True, strict_write=True)
        processor = server.processor
        sock = self.sock
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
            while self._reading:
                data = self._next_message()
                t0 = time.perf_counter()
                inbuf.setvalue(data)
                count = requests_scored(processor.process(iprot, oprot))
                reply = outbuf.getvalue()
                outbuf.clean()
                if reply:
                    sock.sendall(reply)
                if count:
                    self.served += count
                    if server.metrics is not None:
                        server.metrics.record(count, (time.perf_counter() - t0) * 1000.0)
        except _FrameError as exc:
            self._reject_frame(exc)
        except (_Closed, ConnectionError, TimeoutError):
            pass
        except OSError as exc:
            log.debug("connection %s ended: %s", self.addr, exc)
        except Exception:
            log.exception("connection %s failed", self.addr)
        finally:
            with contextlib.suppress(OSError):
                sock.close()
            server._forget(self)

    def _reject_frame(self, exc: _FrameError) -> None:
        reason = wire.REASONS.get(exc.code, "invalid message")
        log.warning("closing connection %s: %s", self.addr, reason)
        if self.server.metrics is not None:
            self.server.metrics.record_error()
        header = wire.header_fields(exc.head)
        name, seqid = (header[0], header[2]) if header else ("", 0)
        out = TCyMemoryBuffer()
        send_exception(
            TCyBinaryProtocol(out),
            name,
            seqid,
            TApplicationException.PROTOCOL_ERROR,
            f"bad message: {reason}",
        )
        with contextlib.suppress(OSError):
            self.sock.sendall(out.getvalue())


class _FrameError(Exception):
    """A message that cannot be framed or is too large; the connection must close after the reply."""

    def __init__(self, code: int, head: bytes) -> None:
        super().__init__(code)
        self.code = code
        self.head = head
