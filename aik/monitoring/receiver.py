"""A local StatsD UDP receiver that stands in for the CloudWatch agent of the ECS task.

There is no well-kept Python StatsD *server* library (the `statsd` package is a client; the servers are
etsy's Node daemon, telegraf and the agent itself, none of which run here without a download), so this
is a small hand-written one: one thread reads datagrams, parses them as the agent does
(`aik.monitoring.protocol`), aggregates them into 10-s windows (`aik.monitoring.windows`) and appends
each closed window to a JSON-lines file, one record per metric per window.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import struct
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import IO

from aik.dashboard import PERIOD_S
from aik.errors import AikError
from aik.monitoring.windows import WindowAggregator, WindowRecord
from aik.progress import Progress

log = logging.getLogger(__name__)

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8125
#: Kernel receive buffer asked for: a burst of ~20k datagrams waits there while the thread catches up
#: (Linux caps it at net.core.rmem_max, 4 MiB on this machine; the default 208 KiB holds ~300).
RECEIVE_BUFFER = 8 * 1024 * 1024
#: Largest UDP payload.
MAX_DATAGRAM = 65535
#: How often the thread wakes when no datagram arrives, to close windows and notice `stop()`.
POLL_S = 0.2
#: Malformed lines kept in the `.rejected` file beside the output (counted beyond that, not kept).
MAX_REJECTED = 10_000


@dataclass
class ReceiverStats:
    """What the receiver has seen so far (updated live by its thread)."""

    datagrams: int = 0
    lines: int = 0
    malformed: int = 0
    records: int = 0
    #: Datagrams the kernel dropped because the socket buffer was full (Linux; None elsewhere).
    kernel_drops: int | None = None


class StatsdReceiver:
    """Receive StatsD on UDP `host:port` (port 0 = ephemeral) in a background thread, write 10-s windows."""

    def __init__(
        self,
        out: str | os.PathLike[str] | None = None,
        *,
        host: str = DEFAULT_HOST,
        port: int = DEFAULT_PORT,
        period_s: int = PERIOD_S,
        clock: Callable[[], float] = time.time,
        on_records: Callable[[list[WindowRecord]], None] | None = None,
    ) -> None:
        self.out = Path(out) if out is not None else None
        self.host = host
        self.requested_port = port
        self.stats = ReceiverStats()
        #: Every record written so far, oldest first (4 metrics per 10 s: small for any run).
        self.records: list[WindowRecord] = []
        self._aggregator = WindowAggregator(period_s)
        self._clock = clock
        self._on_records = on_records
        self._sock: socket.socket | None = None
        self._port: int | None = None
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()
        self._file: IO[str] | None = None
        self._rejected: IO[str] | None = None
        self._rejected_kept = 0
        self._error: BaseException | None = None
        self._progress = Progress("statsd receiver", unit="datagrams", every_s=30.0, logger=log)

    @property
    def port(self) -> int:
        """The bound UDP port (the ephemeral one when started with port 0)."""
        if self._port is None:
            raise RuntimeError("receiver not started")
        return self._port

    @property
    def address(self) -> tuple[str, int]:
        """(host, port) the receiver listens on."""
        return self.host, self.port

    @property
    def running(self) -> bool:
        """True between `start()` and `stop()`."""
        return self._thread is not None and self._thread.is_alive()

    @property
    def rejected_path(self) -> Path | None:
        """Where malformed lines are set aside (beside the output file)."""
        return None if self.out is None else self.out.with_name(self.out.name + ".rejected")

    def start(self) -> StatsdReceiver:
        """Bind the socket, open the output and start the thread; raise AikError if the port is taken."""
        if self._thread is not None:
            raise RuntimeError("receiver already started")
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RECEIVE_BUFFER)
            sock.bind((self.host, self.requested_port))
        except OSError as exc:
            sock.close()
            raise AikError(
                f"cannot listen for StatsD on udp {self.host}:{self.requested_port}: {exc.strerror or exc}"
            ) from exc
        set_receive_timeout(sock, POLL_S)
        self._sock = sock
        self._port = int(sock.getsockname()[1])
        self._progress = Progress("statsd receiver", unit="datagrams", every_s=30.0, logger=log)
        if self.out is not None:
            try:
                self.out.parent.mkdir(parents=True, exist_ok=True)
                # Line-buffered: each record reaches the file as soon as its window closes.
                self._file = open(self.out, "w", encoding="utf-8", buffering=1)  # noqa: SIM115
            except OSError as exc:
                sock.close()
                raise AikError(f"cannot write metrics to {self.out}: {exc.strerror or exc}") from exc
        self._thread = threading.Thread(target=self._run, name="statsd-receiver", daemon=True)
        self._thread.start()
        log.info(
            "StatsD receiver listening on udp %s:%d (buffer %d KiB), %d-s windows -> %s",
            self.host,
            self.port,
            sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF) // 1024,
            self._aggregator.period_s,
            self.out or "memory",
        )
        return self

    def stop(self, timeout: float = 10.0) -> ReceiverStats:
        """Read what is already queued, flush every window (the open one too), close; return the stats."""
        if self._thread is None:
            raise RuntimeError("receiver not started")
        self._stopping.set()
        self._wake()
        self._thread.join(timeout)
        if self._thread.is_alive():
            raise AikError(f"StatsD receiver on port {self.port} did not stop within {timeout:.0f} s")
        if self._error is not None:
            raise AikError(f"StatsD receiver failed: {self._error}") from self._error
        return self.stats

    def __enter__(self) -> StatsdReceiver:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self.running:
            self.stop()

    def _wake(self) -> None:
        """Send the thread an empty datagram so it sees `stop()` now rather than at its next poll."""
        host = "127.0.0.1" if self.host in ("", "0.0.0.0") else self.host
        with contextlib.suppress(OSError), socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.sendto(b"", (host, self.port))

    def wait_for(self, datagrams: int, timeout: float = 10.0) -> bool:
        """Wait until at least `datagrams` have been read (tests and benchmarks); False on timeout."""
        deadline = time.monotonic() + timeout
        while self.stats.datagrams < datagrams:
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.005)
        return True

    def _run(self) -> None:
        assert self._sock is not None
        try:
            self._loop(self._sock)
        except BaseException as exc:  # reported by stop(); the thread must not die silently
            log.exception("StatsD receiver failed")
            self._error = exc
        finally:
            self._close()

    def _loop(self, sock: socket.socket) -> None:
        recv = sock.recv
        clock = self._clock
        period = self._aggregator.period_s
        next_close = self._aggregator.window_start(clock()) + period
        stopping = self._stopping.is_set
        seen = 0
        while not stopping():
            try:
                data = recv(MAX_DATAGRAM)
            except (TimeoutError, BlockingIOError, InterruptedError):
                data = b""
            now = clock()
            if data:
                self._datagram(data, now)
            if now >= next_close:
                self._emit(self._aggregator.pop_closed(now))
                next_close = self._aggregator.window_start(now) + period
                self._progress.update(self.stats.datagrams - seen)
                seen = self.stats.datagrams
        # Whatever was sent before stop() is already in the socket buffer: read it all.
        sock.setblocking(False)
        while True:
            try:
                data = recv(MAX_DATAGRAM)
            except (BlockingIOError, InterruptedError):
                break
            if data:  # not the empty wake-up datagram of stop()
                self._datagram(data, clock())
        self.stats.kernel_drops = kernel_drops_of(sock)
        self._emit(self._aggregator.pop_all())
        self._progress.update(self.stats.datagrams - seen)

    def _datagram(self, data: bytes, now: float) -> None:
        self.stats.datagrams += 1
        rejected = self._aggregator.add_datagram(data, now)
        self.stats.lines = self._aggregator.lines
        if rejected:
            self.stats.malformed = self._aggregator.malformed
            self._set_aside(rejected)

    def _set_aside(self, rejected: list[tuple[str, str]]) -> None:
        if self.stats.malformed == len(rejected):
            line, reason = rejected[0]
            log.warning(
                "malformed StatsD line %r (%s); malformed lines are counted and set aside", line, reason
            )
        path = self.rejected_path
        if path is None:
            return
        if self._rejected is None:
            self._rejected = open(path, "w", encoding="utf-8")  # noqa: SIM115
        for line, reason in rejected:
            if self._rejected_kept >= MAX_REJECTED:
                return
            self._rejected.write(f"{line!r}\t{reason}\n")
            self._rejected_kept += 1

    def _emit(self, records: list[WindowRecord]) -> None:
        if not records:
            return
        if self._file is not None:
            self._file.write("".join(record.to_json() + "\n" for record in records))
        self.records.extend(records)
        self.stats.records += len(records)
        if self._on_records is not None:
            self._on_records(records)

    def _close(self) -> None:
        for handle in (self._file, self._rejected):
            if handle is not None:
                handle.close()
        if self._sock is not None:
            self._sock.close()
        self._progress.close()
        log.info(
            "StatsD receiver stopped: %d datagrams, %d lines, %d malformed, %d records, kernel drops %s",
            self.stats.datagrams,
            self.stats.lines,
            self.stats.malformed,
            self.stats.records,
            "n/a" if self.stats.kernel_drops is None else self.stats.kernel_drops,
        )


def set_receive_timeout(sock: socket.socket, seconds: float) -> None:
    """Make `recv` give up after `seconds` with one system call per datagram: the kernel's SO_RCVTIMEO
    on a blocking socket (EAGAIN on expiry), where Python's own timeout polls before every read (one
    more system call, a microsecond per datagram); Python's timeout where the option is refused."""
    whole = int(seconds)
    timeval = struct.pack("ll", whole, int((seconds - whole) * 1_000_000))
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, timeval)
    except OSError:
        sock.settimeout(seconds)


def kernel_drops_of(sock: socket.socket) -> int | None:
    """Datagrams Linux dropped for this socket (the `drops` column of /proc/net/udp), else None."""
    try:
        inode = os.fstat(sock.fileno()).st_ino
        with open("/proc/net/udp", encoding="ascii") as f:
            next(f)
            for row in f:
                fields = row.split()
                if len(fields) >= 13 and fields[9] == str(inode):
                    return int(fields[12])
    except (OSError, ValueError, StopIteration):
        return None
    return None
