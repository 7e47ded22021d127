"""The sampled prediction log, off the request path: a bounded queue, a writer thread and a sink.

A request pays for a sampling draw and one `deque.append` (atomic in CPython, no lock); when the queue
holds `capacity` records the record is dropped and counted, never waited for. A columnar call draws its
rows' sample with numpy and queues the chosen rows with one `deque.extend`. The writer thread takes
what is queued every `flush_interval` seconds and hands it to the sink: `FileSink` appends to
`<root>/YYYY/MM/DD/HH/<writer>.jsonl` (aik.predictions' layout), `FirehoseSink` sends it to a Kinesis
Data Firehose delivery stream (`put_record_batch`), which writes the same hour prefixes to S3. A sink
failure counts the records as failed and is logged (rate-limited); serving carries on.
"""

from __future__ import annotations

import logging
import os
import random
import socket
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from itertools import repeat
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from aik.predictions import Prediction, write_local
from filtering_server.log_limit import LogLimiter

if TYPE_CHECKING:
    from filtering_server.serving import ArmModel

log = logging.getLogger(__name__)

DEFAULT_CAPACITY = 200_000
DEFAULT_FLUSH_INTERVAL = 0.5
#: Firehose's PutRecordBatch limits: 500 records and 4 MiB per call, 1,000 KiB per record.
FIREHOSE_CALL_RECORDS = 500
FIREHOSE_CALL_BYTES = 4 * 1024 * 1024
FIREHOSE_RECORD_BYTES = 1000 * 1024
#: Lines are packed into records of up to this size: Firehose bills each record in 5 KB steps and
#: concatenates records in order, so one record may carry many newline-ended lines.
PACK_BYTES = 256 * 1024
FIREHOSE_ATTEMPTS = 3
#: Records the writer formats and hands to the sink at a time, giving the GIL back in between: each
#: chunk holds the GIL while a request thread may be waiting for it.
CHUNK = 64
#: Lines the Firehose sink gathers before it packs and sends them (fewer, fuller calls than one per chunk).
FIREHOSE_SEND_LINES = 2048


class PredictionSink(Protocol):
    """Where the writer thread puts records."""

    def write(self, records: list[Prediction]) -> int:
        """Write the records (or buffer them); return how many could not be written (and are lost)."""
        ...

    def flush(self) -> int:
        """Write what is buffered; return how many records could not be written."""
        ...

    def describe(self) -> str:
        """Where the records go (for the log)."""
        ...


def writer_name() -> str:
    """This process's writer name: `<host>-<pid>` (one file per writer per hour, no two appenders)."""
    return f"{socket.gethostname()}-{os.getpid()}"


class FileSink:
    """Append records to the hour files of one writer under a local root (aik.predictions' layout)."""

    def __init__(self, root: str, writer: str | None = None) -> None:
        self.root = root
        self.writer = writer or writer_name()

    def write(self, records: list[Prediction]) -> int:
        """Append to the hour files (0 lost; an OSError propagates to the writer thread)."""
        write_local(self.root, records, self.writer)
        return 0

    def flush(self) -> int:
        """Nothing is buffered: every write appended."""
        return 0

    def describe(self) -> str:
        """The root and writer name."""
        return f"files {self.root.rstrip('/')}/YYYY/MM/DD/HH/{self.writer}.jsonl"


def pack(lines: list[bytes], limit: int = PACK_BYTES) -> list[bytes]:
    """Whole lines joined into records of at most `limit` bytes (a longer line is a record of its own)."""
    out: list[bytes] = []
    current: list[bytes] = []
    size = 0
    for line in lines:
        if current and size + len(line) > limit:
            out.append(b"".join(current))
            current, size = [], 0
        current.append(line)
        size += len(line)
    if current:
        out.append(b"".join(current))
    return out


def calls(records: list[bytes]) -> list[list[bytes]]:
    """Records grouped into PutRecordBatch calls within the call limits."""
    out: list[list[bytes]] = []
    current: list[bytes] = []
    size = 0
    for record in records:
        if current and (len(current) == FIREHOSE_CALL_RECORDS or size + len(record) > FIREHOSE_CALL_BYTES):
            out.append(current)
            current, size = [], 0
        current.append(record)
        size += len(record)
    if current:
        out.append(current)
    return out


class FirehoseSink:
    """Send records to a Kinesis Data Firehose delivery stream (which writes them to S3 by the hour)."""

    def __init__(
        self, stream: str, client: Any | None = None, *, sleep: Callable[[float], None] = time.sleep
    ) -> None:
        if client is None:
            from aik import aws

            client = aws.client("firehose")
        self.stream = stream
        self.client = client
        self._sleep = sleep
        self._lines: list[bytes] = []
        self._limited = LogLimiter(log, burst=3, interval=60.0)

    def write(self, records: list[Prediction]) -> int:
        """Format the records; send once `FIREHOSE_SEND_LINES` lines are gathered; return the lines lost."""
        self._lines.extend(r.to_line().encode() for r in records)
        return self.flush() if len(self._lines) >= FIREHOSE_SEND_LINES else 0

    def flush(self) -> int:
        """Send the gathered lines in packed records; retry the records Firehose reports failed; return
        the lines lost."""
        lines, self._lines = self._lines, []
        lost = 0
        for batch in calls(pack(lines)):
            try:
                lost += self._put(batch)
            except Exception as exc:  # an unreachable stream or missing credentials: these lines are lost
                lost += sum(data.count(b"\n") for data in batch)
                self._limited.log("firehose", logging.ERROR, "prediction log: Firehose failed: %s", exc)
        return lost

    def _put(self, batch: list[bytes]) -> int:
        pending = batch
        for attempt in range(FIREHOSE_ATTEMPTS):
            response = self.client.put_record_batch(
                DeliveryStreamName=self.stream, Records=[{"Data": data} for data in pending]
            )
            if not response.get("FailedPutCount"):
                return 0
            pending = [
                data
                for data, result in zip(pending, response["RequestResponses"], strict=True)
                if result.get("ErrorCode")
            ]
            if attempt + 1 < FIREHOSE_ATTEMPTS:
                self._sleep(0.1 * 2**attempt)
        return sum(data.count(b"\n") for data in pending)

    def describe(self) -> str:
        """The delivery stream."""
        return f"Firehose delivery stream {self.stream}"


class PredictionLog:
    """Sample answers into a bounded queue; a writer thread drains it into a sink."""

    def __init__(
        self,
        sink: PredictionSink,
        *,
        rate: float = 1.0,
        capacity: int = DEFAULT_CAPACITY,
        flush_interval: float = DEFAULT_FLUSH_INTERVAL,
    ) -> None:
        if not 0.0 <= rate <= 1.0:
            raise ValueError(f"the prediction log's sample rate must be in [0, 1], got {rate}")
        self.sink = sink
        self.rate = rate
        self.capacity = capacity
        self.flush_interval = flush_interval
        self._queue: deque[tuple[Any, float, str | None, str, str, float]] = deque()
        self._drop_lock = threading.Lock()
        #: records dropped because the queue was full, written, and lost by the sink
        self.dropped = 0
        self.written = 0
        self.failed = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._limited = LogLimiter(log, burst=3, interval=60.0)
        self._random = random.random
        self._rng = np.random.default_rng()
        self._time = time.time

    def offer(self, bid_id: Any, experiment: str | None, arm: ArmModel, likelihood: float) -> None:
        """Queue one answer (when sampled); never blocks: a full queue drops it and counts the drop."""
        if self.rate < 1.0 and self._random() >= self.rate:
            return
        queue = self._queue
        if len(queue) >= self.capacity:
            with self._drop_lock:
                self.dropped += 1
            return
        queue.append((bid_id, self._time(), experiment, arm.arm, arm.release, likelihood))

    def offer_rows(
        self,
        bid_ids: Callable[[np.ndarray], list[Any]],
        rows: int,
        experiment: str | None,
        arms: Sequence[ArmModel],
        arm_of_row: np.ndarray | None,
        likelihoods: np.ndarray,
    ) -> None:
        """Queue the sampled rows of a columnar call (drawn with numpy; only those rows' records are
        built): `bid_ids(rows)` gives the chosen rows' BidIDs, `arm_of_row` each row's index into `arms`
        (None: `arms[0]` answered all). A full queue keeps what fits and counts the rest as dropped."""
        whole = self.rate >= 1.0
        chosen = np.arange(rows) if whole else np.flatnonzero(self._rng.random(rows) < self.rate)
        queue = self._queue
        room = max(self.capacity - len(queue), 0)
        if chosen.shape[0] > room:
            with self._drop_lock:
                self.dropped += chosen.shape[0] - room
            chosen = chosen[:room]
        if not chosen.shape[0]:
            return
        n = chosen.shape[0]
        if arm_of_row is None:
            names: Iterable[str] = repeat(arms[0].arm, n)
            releases: Iterable[str] = repeat(arms[0].release, n)
        else:
            picked = arm_of_row[chosen]
            names = np.asarray([a.arm for a in arms], dtype=object)[picked].tolist()
            releases = np.asarray([a.release for a in arms], dtype=object)[picked].tolist()
        queue.extend(
            zip(
                bid_ids(chosen),
                repeat(self._time(), n),
                repeat(experiment, n),
                names,
                releases,
                likelihoods[chosen].tolist(),
                strict=True,
            )
        )

    @property
    def queued(self) -> int:
        """Records waiting for the writer."""
        return len(self._queue)

    def flush(self) -> int:
        """Write everything queued so far (the writer thread's step); the number of records taken.

        In chunks of `CHUNK` records with a `sleep(0)` between them: the writer gives the GIL back
        every chunk instead of holding it until the interpreter's switch interval forces it, so a
        request waiting for the GIL waits for one chunk at most.
        """
        queue = self._queue
        n = len(queue)
        done = 0
        while done < n:
            size = min(CHUNK, n - done)
            records = []
            for _ in range(size):
                bid_id, ts, experiment, arm, release, likelihood = queue.popleft()
                records.append(
                    Prediction(
                        bid_id="" if bid_id is None else str(bid_id),
                        ts_ms=int(ts * 1000),
                        experiment=experiment,
                        arm=arm,
                        release=release,
                        likelihood=float(likelihood),
                    )
                )
            try:
                lost = self.sink.write(records)
            except Exception as exc:  # a full disk or an unreachable stream must not stop serving
                lost = size
                self._limited.log("sink", logging.ERROR, "prediction log: %d record(s) lost: %s", size, exc)
            self.written += size - lost
            self.failed += lost
            done += size
            time.sleep(0)
        lost = self.sink.flush()  # what a buffering sink still held (its failures are counted, not raised)
        self.written -= lost
        self.failed += lost
        return n

    def _run(self) -> None:
        while not self._stop.wait(self.flush_interval):
            self.flush()

    def start(self) -> PredictionLog:
        """Start the writer thread."""
        self._thread = threading.Thread(target=self._run, name="prediction-log", daemon=True)
        self._thread.start()
        log.info("prediction log: %.0f %% of requests to %s", self.rate * 100, self.sink.describe())
        return self

    def stop(self) -> None:
        """Stop the writer after writing what is queued."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        self.flush()
        log.info(
            "prediction log: %d written, %d dropped (queue full), %d lost by the sink",
            self.written,
            self.dropped,
            self.failed,
        )
