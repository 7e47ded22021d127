"""Progress for long work: periodic log lines with counts and rates (works in logs, CI and notebooks)."""

from __future__ import annotations

import logging
import time
from types import TracebackType

log = logging.getLogger("aik.progress")


class Progress:
    """Count units of work and log `label: done/total (pct), rate/s` at most every `every_s` seconds."""

    def __init__(
        self,
        label: str,
        total: int | None = None,
        unit: str = "rows",
        every_s: float = 5.0,
        logger: logging.Logger | None = None,
    ) -> None:
        self.label = label
        self.total = total
        self.unit = unit
        self.every_s = every_s
        self.count = 0
        self._log = logger or log
        self._start = time.monotonic()
        self._last = self._start

    def update(self, n: int = 1) -> None:
        """Add `n` units; log if the period has passed."""
        self.count += n
        now = time.monotonic()
        if now - self._last >= self.every_s:
            self._last = now
            self._emit(now)

    @property
    def elapsed(self) -> float:
        """Seconds since start."""
        return time.monotonic() - self._start

    def _emit(self, now: float, final: bool = False) -> None:
        elapsed = max(now - self._start, 1e-9)
        done = f"{self.count:,}"
        if self.total:
            done += f"/{self.total:,} ({100.0 * self.count / self.total:.0f}%)"
        verb = "done in" if final else "after"
        self._log.info(
            "%s: %s %s %s %.1f s, %s %s/s",
            self.label,
            done,
            self.unit,
            verb,
            elapsed,
            f"{self.count / elapsed:,.0f}",
            self.unit,
        )

    def close(self) -> None:
        """Log the final count, time and rate."""
        self._emit(time.monotonic(), final=True)

    def __enter__(self) -> Progress:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if exc_type is None:
            self.close()
