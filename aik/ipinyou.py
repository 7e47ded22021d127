"""iPinYou RTB logs: file naming, the line rules every reader applies, and a streaming reader with rejects.

The same rules run in two places: here, in plain Python (`check_line`, used by `aik ingest` to report and
set aside malformed lines while it copies the files), and in the Spark feature job
(`aik.features.logs.parse_lines`, Spark SQL expressions). A test runs both over the same lines and
requires the same verdicts and reasons, so the job drops exactly the lines ingest reported.

Rules, first failure wins (the reason is what the rejects files say):
- an empty line is rejected (`empty line`);
- a line must have the log's field count (21 for bid logs, 24 for imp/clk/conv logs). Two harmless
  variants are accepted: extra trailing empty fields (a trailing tab) are dropped, and a line one field
  short is taken as missing its last field, UserProfileIDs (writers that strip trailing whitespace);
- BidID must be present; Timestamp must be a valid `yyyyMMddHHmmssSSS`; an event log's LogType must
  match the file (1 imp, 2 clk, 3 conv); BiddingPrice and PayingPrice must be non-negative integers
  when present.
Everything else is kept as text: seasons disagree on AdSlotVisibility/AdSlotFormat (numeric codes or
words), so the reader does not interpret them. The string `null` and the empty string mean missing.
Line ends: `\\n`, `\\r\\n` and a lone `\\r` all end a line, as in Hadoop's line reader that Spark uses.
"""

from __future__ import annotations

import bz2
import contextlib
import gzip
import io
import re
from collections import Counter
from collections.abc import Container, Iterator
from dataclasses import dataclass, field
from typing import IO, Any

from aik import storage
from aik.errors import ArtifactError
from aik.schema import BID_LOG_COLUMNS, EVENT_LOG_COLUMNS

BID, IMP, CLK, CONV = "bid", "imp", "clk", "conv"
KINDS: tuple[str, ...] = (BID, IMP, CLK, CONV)

#: Columns of each kind of log, in file order.
COLUMNS: dict[str, tuple[str, ...]] = {
    BID: BID_LOG_COLUMNS,
    IMP: EVENT_LOG_COLUMNS,
    CLK: EVENT_LOG_COLUMNS,
    CONV: EVENT_LOG_COLUMNS,
}

#: LogType an event log's lines carry.
LOG_TYPES: dict[str, str] = {IMP: "1", CLK: "2", CONV: "3"}

#: Fields checked as non-negative integers (Spark reads them as longs).
INTEGER_FIELDS: tuple[str, ...] = ("BiddingPrice", "PayingPrice")

#: Values that mean "missing" in every season.
MISSING: tuple[str, ...] = ("null", "")

#: Classes of reasons (for counts): class -> the text every reason of the class contains.
REASON_CLASSES: dict[str, str] = {
    "empty line": "empty line",
    "wrong field count": " fields (expected ",
    "missing BidID": "missing BidID",
    "bad Timestamp": "bad Timestamp",
    "wrong LogType": "LogType '",
    "bad BiddingPrice": "bad BiddingPrice",
    "bad PayingPrice": "bad PayingPrice",
}

#: Where `aik ingest` points the click logs (the CTR use case's labels).
CLK_SOURCE = "/aik/clk_source"

#: The dataset's file names: `bid.20130606.txt.bz2`, `imp.20131019.txt`, and with extra tags between
#: the day and `.txt`, as per-advertiser samples are published: `imp.20131021.adv2821.txt`.
FILE_NAME = re.compile(r"^(bid|imp|clk|conv)\.([0-9]{8})((?:\.[A-Za-z0-9_-]+)*?)\.txt(?:\.(bz2|gz))?$")

#: A Timestamp: yyyyMMddHHmmssSSS with month, hour, minute and second in range (days checked apart).
TIMESTAMP = re.compile(
    r"^[0-9]{4}(0[1-9]|1[0-2])(0[1-9]|[12][0-9]|3[01])([01][0-9]|2[0-3])[0-5][0-9][0-5][0-9][0-9]{3}$"
)
INTEGER = re.compile(r"^[0-9]{1,18}$")

_DAYS_IN_MONTH = (31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)


def log_kind(name: str) -> str | None:
    """The kind (bid/imp/clk/conv) of an iPinYou log file from its name, or None if it is not one."""
    match = FILE_NAME.match(name.rsplit("/", 1)[-1])
    return match.group(1) if match else None


def is_leap(year: int) -> bool:
    """Gregorian leap year."""
    return year % 4 == 0 and (year % 100 != 0 or year % 400 == 0)


def valid_timestamp(value: str) -> bool:
    """True for a real calendar time written as yyyyMMddHHmmssSSS."""
    if not TIMESTAMP.match(value):
        return False
    year, month, day = int(value[0:4]), int(value[4:6]), int(value[6:8])
    days = 29 if month == 2 and is_leap(year) else _DAYS_IN_MONTH[month - 1]
    return day <= days


def spark_dayofweek(timestamp: str) -> int:
    """Spark's `dayofweek` of a valid Timestamp's date: 1 = Sunday ... 7 = Saturday."""
    import datetime

    day = datetime.date(int(timestamp[0:4]), int(timestamp[4:6]), int(timestamp[6:8]))
    return day.isoweekday() % 7 + 1


def normalise_fields(fields: list[str], kind: str) -> list[str] | None:
    """The fields cut or padded to the log's width under the accepted variants, or None if malformed."""
    width = len(COLUMNS[kind])
    n = len(fields)
    if n == width:
        return fields
    if n > width and not any(fields[width:]):
        return fields[:width]
    if n == width - 1:
        return [*fields, ""]
    return None


def check_line(line: str, kind: str) -> str | None:
    """Why a log line (without its line end) is malformed, or None if it is accepted."""
    if not line:
        return "empty line"
    columns = COLUMNS[kind]
    raw = line.split("\t")
    fields = normalise_fields(raw, kind)
    if fields is None:
        return f"{len(raw)} fields (expected {len(columns)})"
    if fields[0] in MISSING:
        return "missing BidID"
    timestamp = fields[1]
    if not valid_timestamp(timestamp):
        return f"bad Timestamp '{timestamp}'"
    if kind in LOG_TYPES and fields[2] != LOG_TYPES[kind]:
        return f"LogType '{fields[2]}' in a {kind} log"
    for name in INTEGER_FIELDS:
        if name in columns:
            value = fields[columns.index(name)]
            if value not in MISSING and not INTEGER.match(value):
                return f"bad {name} '{value}'"
    return None


def parse_line(line: str, kind: str) -> dict[str, str | None]:
    """An accepted line as column -> value (None where missing); raises ValueError with the reason."""
    reason = check_line(line, kind)
    if reason is not None:
        raise ValueError(reason)
    fields = normalise_fields(line.split("\t"), kind)
    assert fields is not None
    return {c: (None if v in MISSING else v) for c, v in zip(COLUMNS[kind], fields, strict=True)}


class _Tee(io.RawIOBase):
    """A readable stream that copies every byte it reads to a second, writable stream."""

    def __init__(self, source: IO[bytes], copy_to: IO[bytes] | None) -> None:
        self._source = source
        self._copy_to = copy_to

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        data = self._source.read(len(buffer))
        n = len(data)
        buffer[:n] = data
        if self._copy_to is not None and n:
            self._copy_to.write(data)
        return n


def _decompressed(raw: IO[bytes], name: str) -> IO[bytes]:
    if name.endswith(".bz2"):
        return bz2.open(raw, "rb")
    if name.endswith(".gz"):
        return gzip.open(raw, "rb")  # type: ignore[return-value]  # a GzipFile is read as IO[bytes]
    return raw


def iter_lines(stream: IO[bytes]) -> Iterator[str]:
    """Text lines of a byte stream without their line ends (`\\n`, `\\r\\n` or `\\r`, as Hadoop splits)."""
    # Universal newlines (newline=None) split exactly where Hadoop's LineReader does; undecodable bytes
    # become U+FFFD, as in Spark's text source, so a bad byte never stops a run.
    text = io.TextIOWrapper(stream, encoding="utf-8", errors="replace", newline=None)
    try:
        for line in text:
            yield line[:-1] if line.endswith("\n") else line
    finally:
        text.detach()  # the caller owns (and closes) the byte stream


@dataclass
class LogReport:
    """What reading one log file found: accepted and rejected line counts, rejects by reason."""

    uri: str
    kind: str
    accepted: int = 0
    rejected: int = 0
    reasons: Counter[str] = field(default_factory=Counter)
    rejects_uri: str | None = None
    copied_to: str | None = None

    @property
    def lines(self) -> int:
        """Every line read."""
        return self.accepted + self.rejected

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (for the ingest report)."""
        return {
            "uri": self.uri,
            "kind": self.kind,
            "lines": self.lines,
            "accepted": self.accepted,
            "rejected": self.rejected,
            "reasons": dict(self.reasons.most_common()),
            "rejects_uri": self.rejects_uri,
            "copied_to": self.copied_to,
        }


def reason_class(reason: str) -> str:
    """The class of a reason (REASON_CLASSES), so reports count alike lines together."""
    return next((name for name, text in REASON_CLASSES.items() if text in reason), reason)


def scan_log(
    uri: str,
    kind: str | None = None,
    *,
    rejects_uri: str | None = None,
    copy_to: str | None = None,
    progress: Any = None,
) -> LogReport:
    """Read one log file (plain, .bz2 or .gz), check every line, write rejects aside, optionally copy it.

    The rejects file is tab-separated: line number, reason, the line as read. The copy (if asked) is the
    file byte for byte, made in the same pass, so the raw data stays exactly as delivered.
    """
    kind = kind or log_kind(uri)
    if kind not in COLUMNS:
        raise ValueError(f"cannot tell the log kind of {uri}; name it like bid.20130606.txt.bz2")
    report = LogReport(uri=uri, kind=kind, rejects_uri=rejects_uri, copied_to=copy_to)
    with contextlib.ExitStack() as stack:
        raw = stack.enter_context(storage.open_uri(uri, "rb"))
        copy = stack.enter_context(storage.open_uri(copy_to, "wb")) if copy_to else None
        rejects = (
            stack.enter_context(storage.open_uri(rejects_uri, "w", encoding="utf-8")) if rejects_uri else None
        )
        tee = _Tee(raw, copy)
        buffered = io.BufferedReader(tee, buffer_size=1 << 20)
        stream = _decompressed(buffered, uri)
        try:
            for number, line in enumerate(iter_lines(stream), start=1):
                reason = check_line(line, kind)
                if reason is None:
                    report.accepted += 1
                else:
                    report.rejected += 1
                    report.reasons[reason_class(reason)] += 1
                    if rejects is not None:
                        rejects.write(f"{number}\t{reason}\t{line}\n")
                if progress is not None and number % 65536 == 0:
                    progress.update(65536)
        except (OSError, EOFError) as exc:  # a truncated or corrupt compressed file, or a failed copy
            raise ArtifactError(uri, f"stopped after {report.lines:,} lines: {exc}") from exc
        if progress is not None:
            progress.update(report.lines % 65536)
        buffered.read()  # through the tee: the copy gets any bytes the decompressor left unread
    return report


def read_log(
    uri: str, kind: str | None = None, *, bid_ids: Container[str] | None = None
) -> Iterator[dict[str, str | None]]:
    """Accepted records of one log file as column -> value dicts (malformed lines are skipped).

    `bid_ids`: only the lines of these requests (the others are neither checked nor parsed).
    """
    kind = kind or log_kind(uri)
    if kind not in COLUMNS:
        raise ValueError(f"cannot tell the log kind of {uri}; name it like bid.20130606.txt.bz2")
    with storage.open_uri(uri, "rb") as raw:
        stream = _decompressed(io.BufferedReader(_Tee(raw, None), buffer_size=1 << 20), uri)
        for line in iter_lines(stream):
            if bid_ids is not None and line.split("\t", 1)[0] not in bid_ids:
                continue
            if check_line(line, kind) is None:
                yield parse_line(line, kind)
