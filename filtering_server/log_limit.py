"""Rate-limited logging: a hostile client must not be able to flood the server's log.

Each kind of message (a key) may be logged `burst` times per `interval` seconds; the rest are counted
and, once the interval is over, summarised in one line ("... N more suppressed in the last 60 s").
Hand-written because the standard `logging` module has no rate limit and the few PyPI filters do not
report what they dropped.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass


@dataclass
class _Window:
    start: float
    level: int
    logged: int = 0
    suppressed: int = 0


class LogLimiter:
    """Log through `logger`, at most `burst` records per key and `interval`, with suppressed counts."""

    def __init__(
        self,
        logger: logging.Logger,
        *,
        burst: int = 10,
        interval: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.logger = logger
        self.burst = burst
        self.interval = interval
        self._clock = clock
        self._lock = threading.Lock()
        self._windows: dict[str, _Window] = {}

    def log(self, key: str, level: int, msg: str, *args: object, exc_info: bool = False) -> bool:
        """Log `msg % args` unless `key` already used its burst in this interval; True when logged."""
        with self._lock:
            now = self._clock()
            window = self._windows.get(key)
            summary = None
            if window is None or now - window.start >= self.interval:
                if window is not None and window.suppressed:
                    summary = (window.level, window.suppressed, now - window.start)
                window = self._windows[key] = _Window(now, level)
            if window.logged < self.burst:
                window.logged += 1
                emit = True
            else:
                window.suppressed += 1
                emit = False
        if summary is not None:
            self._summarise(key, *summary)
        if emit:
            self.logger.log(level, msg, *args, exc_info=exc_info)
        return emit

    def warning(self, key: str, msg: str, *args: object) -> bool:
        """`log` at WARNING."""
        return self.log(key, logging.WARNING, msg, *args)

    def flush(self) -> None:
        """Summarise every key whose interval is over and that suppressed messages (call periodically)."""
        with self._lock:
            now = self._clock()
            due = [
                (key, w.level, w.suppressed, now - w.start)
                for key, w in self._windows.items()
                if w.suppressed and now - w.start >= self.interval
            ]
            for key, *_ in due:
                del self._windows[key]
        for key, level, suppressed, elapsed in due:
            self._summarise(key, level, suppressed, elapsed)

    def _summarise(self, key: str, level: int, suppressed: int, elapsed: float) -> None:
        self.logger.log(
            level, "%d more '%s' message(s) suppressed in the last %.0f s", suppressed, key, elapsed
        )
