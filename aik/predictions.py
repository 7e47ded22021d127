"""The prediction log: what the filtering server answered, one JSON line per sampled request.

A record is `{"bid_id", "ts_ms", "experiment", "arm", "release", "likelihood"}` (`ts_ms`: epoch
milliseconds, UTC; `experiment`: null outside an experiment). Files follow Kinesis Data Firehose's UTC
hour prefixes: locally `<workspace>/predictions/YYYY/MM/DD/HH/<writer>.jsonl`, in AWS the delivery
stream writes objects under `s3://<data bucket>/predictions/YYYY/MM/DD/HH/` (gzip-compressed). The
reader takes either, plain or gzip, local or S3; `aik monitor` joins it with the impression log.
"""

from __future__ import annotations

import gzip
import json
import logging
import math
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from aik import storage
from aik.errors import ArtifactError
from aik.params import DATA_BUCKET, ParameterStore, bucket_root
from aik.settings import Settings

if TYPE_CHECKING:
    import pandas as pd

log = logging.getLogger(__name__)

PREFIX = "predictions"
SUFFIX = ".jsonl"
#: The record's fields in order (the DataFrame's columns).
FIELDS = ("bid_id", "ts_ms", "experiment", "arm", "release", "likelihood")
_HOUR = re.compile(r"(?:^|/)(\d{4})/(\d{2})/(\d{2})/(\d{2})/[^/]+$")
_GZIP_MAGIC = b"\x1f\x8b"
_HOUR_MS = 3_600_000
_text = json.JSONEncoder(ensure_ascii=True).encode


@dataclass(frozen=True, slots=True)
class Prediction:
    """One answered request: BidID, time (epoch ms UTC), experiment and arm, release, likelihood."""

    bid_id: str
    ts_ms: int
    experiment: str | None
    arm: str
    release: str
    likelihood: float

    def to_line(self) -> str:
        """The JSON line (with its newline: Firehose concatenates records as they are sent).

        Formatted field by field rather than through `asdict` + `json.dumps` of a dict: the server's log
        writer formats every sampled answer, and this is several times cheaper (same JSON).
        """
        if not math.isfinite(self.likelihood):
            raise ValueError(f"likelihood {self.likelihood} is not finite")
        return (
            f'{{"bid_id":{_text(self.bid_id)},"ts_ms":{int(self.ts_ms)},'
            f'"experiment":{"null" if self.experiment is None else _text(self.experiment)},'
            f'"arm":{_text(self.arm)},"release":{_text(self.release)},"likelihood":{float(self.likelihood)!r}}}\n'
        )

    @classmethod
    def from_dict(cls, doc: Any) -> Prediction:
        """A record from a parsed line (ValueError saying what is wrong)."""
        if not isinstance(doc, dict):
            raise ValueError("not a JSON object")
        try:
            experiment = doc["experiment"]
            record = cls(
                bid_id=str(doc["bid_id"]),
                ts_ms=int(doc["ts_ms"]),
                experiment=None if experiment is None else str(experiment),
                arm=str(doc["arm"]),
                release=str(doc["release"]),
                likelihood=float(doc["likelihood"]),
            )
        except KeyError as exc:
            raise ValueError(f"no field {exc}") from exc
        except (TypeError, ValueError) as exc:
            raise ValueError(f"bad value ({exc})") from exc
        if not math.isfinite(record.likelihood):
            raise ValueError(f"likelihood {record.likelihood} is not finite")
        return record


def hour_prefix(ts_ms: int) -> str:
    """`YYYY/MM/DD/HH` of a time (UTC), Firehose's default object prefix."""
    return datetime.fromtimestamp(ts_ms / 1000, UTC).strftime("%Y/%m/%d/%H")


def file_uri(root: str, ts_ms: int, writer: str) -> str:
    """The file one writer appends to in the hour of `ts_ms`: `<root>/YYYY/MM/DD/HH/<writer>.jsonl`."""
    return storage.join(root, hour_prefix(ts_ms), writer + SUFFIX)


def local_root(settings: Settings) -> str:
    """`<workspace>/predictions/`: where a local server writes and a local `aik monitor` reads."""
    return str(settings.workspace / PREFIX) + "/"


def s3_root(store: ParameterStore) -> str:
    """`s3://<data bucket>/predictions/`: where the Firehose delivery stream writes in AWS."""
    return storage.join(bucket_root(store.get(DATA_BUCKET)), PREFIX) + "/"


def root_for(settings: Settings, store: ParameterStore) -> str:
    """The prediction log's root for the backend."""
    return s3_root(store) if settings.backend == "aws" else local_root(settings)


def _hour_of(uri: str) -> datetime | None:
    match = _HOUR.search(uri)
    if not match:
        return None
    year, month, day, hour = (int(g) for g in match.groups())
    try:
        return datetime(year, month, day, hour, tzinfo=UTC)
    except ValueError:
        return None


def log_files(root: str, *, start: datetime | None = None, end: datetime | None = None) -> list[str]:
    """The log's files under `root`, sorted; with `start`/`end`, only the hour prefixes that can overlap."""
    out = []
    for uri in storage.list_uris(root):
        name = uri.rsplit("/", 1)[-1]
        if name.startswith("."):  # a local write in progress, or a temporary file
            continue
        hour = _hour_of(uri)
        if hour is not None:
            if start is not None and hour.timestamp() + 3600 <= start.timestamp():
                continue
            if end is not None and hour.timestamp() >= end.timestamp():
                continue
        out.append(uri)
    return out


def _lines(uri: str) -> Iterator[str]:
    data = storage.read_bytes(uri)
    if data[:2] == _GZIP_MAGIC:
        try:
            data = gzip.decompress(data)
        except (OSError, EOFError) as exc:
            raise ArtifactError(uri, f"a damaged gzip file ({exc})") from exc
    yield from data.decode("utf-8", errors="replace").splitlines()


def iter_predictions(
    root: str, *, start: datetime | None = None, end: datetime | None = None
) -> Iterator[Prediction]:
    """Every record under `root` (local directory or S3 prefix), file by file.

    A line that is not a record (a writer killed mid-line leaves a torn last line) is skipped and
    counted in one warning per file; `start`/`end` (UTC) also filter the records' own times.
    """
    lo = None if start is None else int(start.timestamp() * 1000)
    hi = None if end is None else int(end.timestamp() * 1000)
    for uri in log_files(root, start=start, end=end):
        bad, first = 0, ""
        for line in _lines(uri):
            if not line.strip():
                continue
            try:
                record = Prediction.from_dict(json.loads(line))
            except ValueError as exc:  # json.JSONDecodeError is a ValueError
                bad += 1
                first = first or str(exc)
                continue
            if (lo is not None and record.ts_ms < lo) or (hi is not None and record.ts_ms >= hi):
                continue
            yield record
        if bad:
            log.warning("%s: skipped %d line(s) that are not prediction records (first: %s)", uri, bad, first)


def read_predictions(
    root: str, *, start: datetime | None = None, end: datetime | None = None
) -> pd.DataFrame:
    """The log as a DataFrame with the columns of FIELDS (empty, with those columns, when there is none)."""
    import pandas as pd

    frame = pd.DataFrame.from_records(
        (tuple(getattr(r, name) for name in FIELDS) for r in iter_predictions(root, start=start, end=end)),
        columns=list(FIELDS),
    )
    return frame.astype(
        {
            "bid_id": "string",
            "ts_ms": "int64",
            "experiment": "string",
            "arm": "string",
            "release": "string",
            "likelihood": "float64",
        }
    )


def write_local(root: str, records: list[Prediction], writer: str) -> list[Path]:
    """Append records to their hour's file of `writer` under a local root; the files written.

    Appends (one write per hour file) rather than atomic replaces: a log grows for the hour, and a
    reader skips a torn last line.
    """
    by_hour: dict[int, list[str]] = {}
    for record in records:  # the file's name once per hour, not per record (a datetime format each)
        by_hour.setdefault(record.ts_ms // _HOUR_MS, []).append(record.to_line())
    written = []
    for hour, lines in by_hour.items():
        path = storage.local_path(file_uri(root, hour * _HOUR_MS, writer))
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "a", encoding="utf-8") as f:
            f.write("".join(lines))
        written.append(path)
    return written
