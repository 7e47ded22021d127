"""Bounds a hostile or broken client meets: list sizes and types checked before decoding, message
memory, idle and read timeouts, a connection reserve for new clients, rate-limited logging, and
hours of thousands of digits."""

from __future__ import annotations

import contextlib
import logging
import socket
import struct
import threading
import time
from pathlib import Path

import pytest
import thrift_bytes as tb
from serve_live import LiveServer, run_server
from serving_fixtures import Artifacts
from thriftpy2.thrift import TApplicationException

from ad_server_emulator.emulator import bid_request
from filtering_api.idl import BidRequest
from filtering_server.log_limit import LogLimiter
from filtering_server.model import ServedModel
from filtering_server.server import ServerConfig

#: every test here runs against both transports
pytestmark = pytest.mark.usefixtures("transport")


def raw_socket(live: LiveServer, timeout: float = 30) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", live.port), timeout=timeout)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def batch_call(seqid: int, element_type: int, count: int, elements: bytes) -> bytes:
    """`filterBatch(1: list<...> requests)` with a hand-written list header."""
    args = struct.pack(">bhbi", tb.T_LIST, 1, element_type, count) + elements + bytes([tb.T_STOP])
    return tb.message("filterBatch", seqid, args)


def assert_connection_still_serves(sock: socket.socket, live: LiveServer) -> None:
    model = live.holder.current
    assert model is not None
    row = live.artifacts.rows[0]
    sock.sendall(tb.filter_call(77, tb.bid_request(hour="3", domainId=row["Domain"])))
    mtype, _, seqid, body = tb.read_reply(sock)
    assert (mtype, seqid) == (tb.REPLY, 77)
    assert tb.likelihood_of(body) == model.score(BidRequest(hour="3", domainId=row["Domain"]))


def peak_rss_reset() -> None:
    Path("/proc/self/clear_refs").write_text("5")  # resets VmHWM, the peak resident set


def peak_rss_bytes() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmHWM")


# -- lists ------------------------------------------------------------------------------------------


def test_a_huge_batch_of_empty_structs_is_refused_without_building_them(live: LiveServer) -> None:
    count = 4_000_000  # one stop byte each on the wire; decoded, one request object each
    with raw_socket(live) as sock:
        rss = peak_rss_bytes()
        peak_rss_reset()
        sock.sendall(batch_call(1, tb.T_STRUCT, count, bytes(count)))
        mtype, name, seqid, body = tb.read_reply(sock)
        assert (mtype, name, seqid) == (tb.EXCEPTION, "filterBatch", 1)
        assert tb.application_exception(body)[0] == (
            f"invalid request: {count} requests in one batch (limit {live.server.config.max_batch})"
        )
        assert peak_rss_bytes() - rss < 100 * 1024 * 1024  # the message's bytes, not 4M objects
        assert_connection_still_serves(sock, live)


def test_a_batch_over_the_limit_is_refused_and_the_connection_lives(
    numeric_artifacts: Artifacts, numeric_model: ServedModel
) -> None:
    config = ServerConfig(host="127.0.0.1", port=0, max_batch=10)
    with run_server(numeric_artifacts, config=config, model=numeric_model) as live, raw_socket(live) as sock:
        one = tb.bid_request(hour="5")
        sock.sendall(batch_call(3, tb.T_STRUCT, 11, one * 11))
        mtype, _, _, body = tb.read_reply(sock)
        assert mtype == tb.EXCEPTION
        assert tb.application_exception(body)[0] == "invalid request: 11 requests in one batch (limit 10)"
        assert_connection_still_serves(sock, live)


def test_a_batch_of_i32_where_requests_belong_is_an_error(live: LiveServer) -> None:
    with raw_socket(live) as sock:
        sock.sendall(batch_call(4, tb.T_I32, 3, struct.pack(">iii", 1, 2, 3)))
        mtype, _, seqid, body = tb.read_reply(sock)
        assert (mtype, seqid) == (tb.EXCEPTION, 4)
        assert tb.application_exception(body)[0] == (
            "invalid request: requests must be a list of BidRequest structs, not of i32"
        )
        assert_connection_still_serves(sock, live)


def test_a_long_list_inside_a_request_is_refused_too(
    numeric_artifacts: Artifacts, numeric_model: ServedModel
) -> None:
    config = ServerConfig(host="127.0.0.1", port=0, max_batch=10)
    with run_server(numeric_artifacts, config=config, model=numeric_model) as live, raw_socket(live) as sock:
        hidden = struct.pack(">bhbi", tb.T_LIST, 50, tb.T_I32, 1000) + bytes(4000)  # an unknown field
        sock.sendall(tb.filter_call(5, hidden + tb.bid_request(hour="3")))
        mtype, _, _, body = tb.read_reply(sock)
        assert mtype == tb.EXCEPTION
        assert "a list, set or map of 1000 elements (limit 10)" in tb.application_exception(body)[0]
        assert_connection_still_serves(sock, live)


# -- message size, memory, timeouts ------------------------------------------------------------------


def test_a_client_still_sending_an_oversized_message_reads_the_error_instead_of_a_reset(
    numeric_artifacts: Artifacts, numeric_model: ServedModel
) -> None:
    config = ServerConfig(host="127.0.0.1", port=0, max_message_bytes=64 * 1024)
    with run_server(numeric_artifacts, config=config, model=numeric_model) as live, raw_socket(live) as sock:
        rows = tb.bid_request(hour="3", domainId="d" * 200) * 5000  # over the message limit
        data = batch_call(6, tb.T_STRUCT, 5000, rows)
        sent: list[BaseException] = []

        def send() -> None:
            try:
                sock.sendall(data)  # as a Thrift client does: the whole message, then read
            except OSError as exc:
                sent.append(exc)

        sender = threading.Thread(target=send)
        sender.start()
        sender.join(timeout=30)
        mtype, _, _, body = tb.read_reply(sock)
        assert mtype == tb.EXCEPTION
        assert "longer than the message limit" in tb.application_exception(body)[0]
        assert sent == []


def test_message_buffers_share_one_budget(numeric_artifacts: Artifacts, numeric_model: ServedModel) -> None:
    config = ServerConfig(host="127.0.0.1", port=0, max_buffered_bytes=512 * 1024)
    with run_server(numeric_artifacts, config=config, model=numeric_model) as live:
        big = tb.filter_call(1, tb.bid_request(hour="3", domainId="d" * 2_000_000))
        with raw_socket(live) as first, raw_socket(live) as second:
            first.sendall(big[:400_000])  # holds most of the budget, mid-message
            deadline = time.monotonic() + 10
            while live.server.buffered_bytes < 256 * 1024 and time.monotonic() < deadline:
                time.sleep(0.02)
            second.sendall(big[:400_000])
            mtype, _, _, body = tb.read_reply(second)
            assert mtype == tb.EXCEPTION
            assert "message memory" in tb.application_exception(body)[0]
        deadline = time.monotonic() + 10
        while live.server.buffered_bytes and time.monotonic() < deadline:
            time.sleep(0.02)
        assert live.server.buffered_bytes == 0  # given back when the connections ended


def test_idle_connections_are_closed_after_the_idle_timeout(
    numeric_artifacts: Artifacts, numeric_model: ServedModel
) -> None:
    config = ServerConfig(host="127.0.0.1", port=0, idle_timeout=0.3)
    with run_server(numeric_artifacts, config=config, model=numeric_model) as live, raw_socket(live) as sock:
        assert_connection_still_serves(sock, live)
        assert sock.recv(1) == b""  # closed by the server, not by the socket's own timeout


def test_a_message_trickling_in_is_cut_at_the_read_timeout(
    numeric_artifacts: Artifacts, numeric_model: ServedModel
) -> None:
    config = ServerConfig(host="127.0.0.1", port=0, read_timeout=0.3)
    with run_server(numeric_artifacts, config=config, model=numeric_model) as live, raw_socket(live) as sock:
        call = tb.filter_call(8, tb.bid_request(hour="3"))
        sock.sendall(call[:10])
        mtype, _, _, body = tb.read_reply(sock)
        assert mtype == tb.EXCEPTION
        assert "did not arrive in full within the read timeout" in tb.application_exception(body)[0]
        assert sock.recv(1) == b""


def test_idle_sockets_cannot_lock_new_clients_out(
    numeric_artifacts: Artifacts, numeric_model: ServedModel
) -> None:
    config = ServerConfig(
        host="127.0.0.1", port=0, max_connections=20, reserve_connections=4, busy_idle_timeout=0.2
    )
    with run_server(numeric_artifacts, config=config, model=numeric_model) as live:
        hoard = [raw_socket(live) for _ in range(20)]
        try:
            time.sleep(0.3)  # idle longer than busy_idle_timeout
            for _ in range(3):
                assert live.client().health().ready  # each new client gets a slot
            closed = 0
            for sock in hoard:
                sock.settimeout(0.5)
                with contextlib.suppress(TimeoutError):
                    closed += sock.recv(1) == b""
            assert closed >= 3  # the idlest hoarded sockets made room
        finally:
            for sock in hoard:
                sock.close()


def test_a_busy_connection_is_not_closed_to_make_room(
    numeric_artifacts: Artifacts, numeric_model: ServedModel
) -> None:
    config = ServerConfig(
        host="127.0.0.1", port=0, max_connections=3, reserve_connections=2, busy_idle_timeout=0.2
    )
    with run_server(numeric_artifacts, config=config, model=numeric_model) as live:
        busy = live.client()
        request = bid_request(live.artifacts.rows[0])
        expected = busy.filter(request).likelihoodToBid
        others = []
        for _ in range(4):
            try:
                others.append(live.client())
                others[-1].health()
            except Exception:
                pass
            # never idle past the eviction threshold: kept
            assert busy.filter(request).likelihoodToBid == expected


# -- hour ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("digits", [11, 400, 5000])
def test_an_hour_of_many_digits_is_the_same_one_line_error_in_filter_and_filterbatch(
    live: LiveServer, digits: int, caplog: pytest.LogCaptureFixture
) -> None:
    client = live.client()
    request = BidRequest(hour="9" * digits)
    with pytest.raises(TApplicationException) as single:
        client.filter(request)
    with pytest.raises(TApplicationException) as batch:
        client.filterBatch([BidRequest(hour="3"), request])
    assert single.value.message == batch.value.message
    assert single.value.message.startswith("invalid request: hour ")
    assert "\n" not in single.value.message
    assert not [r for r in caplog.records if r.exc_info]  # no traceback logged
    assert client.filter(BidRequest(hour="3")).likelihoodToBid >= 0.0


# -- logging ---------------------------------------------------------------------------------------


def test_the_limiter_logs_a_burst_then_one_summary_per_interval(caplog: pytest.LogCaptureFixture) -> None:
    now = [0.0]
    limiter = LogLimiter(logging.getLogger("t"), burst=3, interval=60.0, clock=lambda: now[0])
    caplog.set_level(logging.WARNING, logger="t")
    for _ in range(100):
        limiter.warning("bad", "bad frame")
    assert [r.getMessage() for r in caplog.records] == ["bad frame"] * 3
    now[0] = 61.0
    limiter.flush()
    assert caplog.records[-1].getMessage() == "97 more 'bad' message(s) suppressed in the last 61 s"
    limiter.warning("bad", "bad frame")
    assert caplog.records[-1].getMessage() == "bad frame"


def test_garbage_from_many_connections_cannot_flood_the_log(
    numeric_artifacts: Artifacts, numeric_model: ServedModel, caplog: pytest.LogCaptureFixture
) -> None:
    config = ServerConfig(host="127.0.0.1", port=0, log_burst=5, linger=0.0)
    caplog.set_level(logging.WARNING, logger="filtering_server.server")
    with run_server(numeric_artifacts, config=config, model=numeric_model) as live:
        for _ in range(60):
            with raw_socket(live) as sock:
                sock.sendall(b"GET / HTTP/1.1\r\n\r\n")
                tb.read_reply(sock)
    warnings = [r for r in caplog.records if r.name == "filtering_server.server"]
    assert 1 <= len(warnings) <= 5


def test_out_of_file_handles_is_one_line_per_interval_not_a_traceback_per_poll(
    numeric_artifacts: Artifacts, numeric_model: ServedModel, caplog: pytest.LogCaptureFixture
) -> None:
    config = ServerConfig(host="127.0.0.1", port=0, log_burst=1)
    caplog.set_level(logging.WARNING, logger="filtering_server.server")
    with run_server(numeric_artifacts, config=config, model=numeric_model) as live:
        calls = []

        class Exhausted:
            """The listening socket, except that accepting fails as when out of file handles."""

            def __init__(self, real: socket.socket) -> None:
                self.real = real

            def accept(self) -> None:
                calls.append(1)
                raise OSError(24, "Too many open files")

            def fileno(self) -> int:  # the event loop waits on the real socket
                return self.real.fileno()

            def setblocking(self, flag: bool) -> None:
                self.real.setblocking(flag)

        server = live.server
        server._stopping.set()
        assert server._accept_thread is not None
        server._accept_thread.join(timeout=10)
        server._stopping.clear()
        real = server._listener
        assert real is not None
        server._listener = Exhausted(real)  # type: ignore[assignment]
        worker = threading.Thread(target=server.serve_forever, daemon=True)
        worker.start()
        waiting = socket.create_connection(real.getsockname(), timeout=10)  # a client to accept
        deadline = time.monotonic() + 30
        while len(calls) < 3 and time.monotonic() < deadline:
            time.sleep(0.05)
        server._stopping.set()
        worker.join(timeout=10)
        waiting.close()
        server._listener = real
    failures = [r for r in caplog.records if "accept failed" in r.getMessage()]
    assert len(calls) >= 3
    assert len(failures) == 1
    assert not failures[0].exc_info
