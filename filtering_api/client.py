"""A thriftpy2 client of the filtering server, and a wait until the server reports itself ready."""

from __future__ import annotations

import logging
import time
from typing import Any

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
