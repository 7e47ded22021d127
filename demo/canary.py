"""A paced client that keeps requests flowing across the model swap and checks every answer."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Any

from demo.state import Record


@dataclass(frozen=True)
class CanaryReport(Record):
    """What the canary saw: requests answered, failures (the first five in words), model versions in order."""

    requests: int
    errors: int
    error_messages: list[str]
    versions: list[str]


class Canary:
    """Sends small `filterBatch` calls from the server's start until stopped, so the swap happens under load.

    The emulator measures throughput as fast as it can and may finish before a new model has loaded; the
    canary's answers name the model version, so it checks that no request fails, every likelihood is a
    probability, and versions only ever move forward (old, then new, never back).
    """

    def __init__(self, port: int, rows: list[dict[str, Any]], batch: int = 4, pause_s: float = 0.002) -> None:
        from ad_server_emulator.emulator import bid_request

        self.port = port
        self.batches = [
            [bid_request(r) for r in rows[i : i + batch]] for i in range(0, len(rows) - batch + 1, batch)
        ]
        self.pause_s = pause_s
        self.requests = 0
        self.errors: list[str] = []
        self.versions: list[str] = []  # each version in the order first seen
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="canary", daemon=True)

    def start(self) -> Canary:
        """Start sending."""
        self._thread.start()
        return self

    def _run(self) -> None:
        from filtering_api.client import connect

        client = connect("127.0.0.1", self.port)
        try:
            i = 0
            while not self._stop.is_set():
                batch = self.batches[i % len(self.batches)]
                i += 1
                try:
                    answer = client.filterBatch(batch)
                except Exception as exc:  # counted: the point is that none happen
                    self.errors.append(f"{type(exc).__name__}: {exc}")
                    client.close()
                    client = connect("127.0.0.1", self.port)
                    continue
                self.requests += len(batch)
                if len(answer.likelihoodToBid) != len(batch) or not all(
                    0.0 <= p <= 1.0 for p in answer.likelihoodToBid
                ):
                    self.errors.append(f"bad answer from model {answer.modelVersion}")
                if not self.versions or self.versions[-1] != answer.modelVersion:
                    self.versions.append(answer.modelVersion)
                time.sleep(self.pause_s)
        finally:
            client.close()

    def stop(self) -> CanaryReport:
        """Stop and return what it saw."""
        self._stop.set()
        self._thread.join(30)
        return CanaryReport(self.requests, len(self.errors), self.errors[:5], list(self.versions))
