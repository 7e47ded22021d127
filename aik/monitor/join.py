"""The prediction log joined with the exchange's logs of the same requests, by BidID.

The bid log gives each request's segments (advertiser, device type from the user agent, hour of the
bid's Timestamp); the impression log says which requests were won, the click log which impressions were
clicked. Logs are iPinYou files (`bid.YYYYMMDD.txt[.bz2|.gz]`, `imp.…`, `clk.…`) anywhere under one
root, local or `s3://`, read through `aik.storage` with the kit's line rules (`aik.ipinyou.read_log`).
Only the lines of predicted requests are kept, so memory follows the (sampled) prediction log, not the
size of the exchange's logs.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from aik import storage
from aik.device import DEVICE_TYPES, UNKNOWN_DEVICE, device_type_id
from aik.errors import AikError
from aik.features.transforms import REQUEST_FIELDS
from aik.ipinyou import BID, CLK, IMP, log_kind, read_log

if TYPE_CHECKING:
    import pandas as pd

log = logging.getLogger(__name__)

#: Outcomes the report can judge: an impression per request (bid filtering), a click per impression (CTR).
OUTCOMES = ("impression", "click")
#: Segments of the report: column of the joined frame -> what it is called.
SEGMENTS = ("advertiser", "device_type", "hour")
UNKNOWN = "unknown"
DEVICE_NAMES = {v: k for k, v in DEVICE_TYPES.items()} | {UNKNOWN_DEVICE: UNKNOWN}


@dataclass
class JoinCounts:
    """What the join found: records read, duplicates dropped, requests kept and the logs' files."""

    prediction_records: int = 0
    duplicate_records: int = 0
    requests: int = 0
    without_bid_line: int = 0
    files: dict[str, list[str]] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready."""
        return {
            "prediction_records": self.prediction_records,
            "duplicate_records": self.duplicate_records,
            "requests": self.requests,
            "without_bid_line": self.without_bid_line,
            "files": self.files,
        }


def log_files(root: str) -> dict[str, list[str]]:
    """The bid, imp and clk log files under `root`, by kind (other files are ignored)."""
    found: dict[str, list[str]] = {BID: [], IMP: [], CLK: []}
    for uri in storage.list_uris(root):
        kind = log_kind(uri)
        if kind in found:
            found[kind].append(uri)
    return found


def _lines(files: Iterable[str], kind: str, wanted: set[str]) -> Iterable[dict[str, str | None]]:
    for uri in files:
        yield from read_log(uri, kind, bid_ids=wanted)


def first_line_key(record: Mapping[str, str | None]) -> tuple[tuple[int, str], ...]:
    """Order of a request's bid lines: the earliest Timestamp, then the smallest fields (missing first).

    The feature job's rule for a BidID logged twice (`aik.features.transforms`, Spark's ordering of a
    struct of REQUEST_FIELDS), so a request's segments do not depend on the order files are read in.
    """
    return tuple((0, "") if record[f] is None else (1, str(record[f])) for f in REQUEST_FIELDS)


def join(predictions: pd.DataFrame, logs_root: str) -> tuple[pd.DataFrame, JoinCounts]:
    """One row per predicted request: the prediction, its segments, `impression` and `click` (0/1).

    A request answered more than once (a client retry) keeps its first record; one with more than one
    bid line takes the segments of its first line by `first_line_key`. With a bid log, requests
    it does not know are dropped (counted in `without_bid_line`): their outcome cannot be told from a
    log that has not arrived; without one, segments are `unknown` and the hour is the prediction's (UTC).
    """
    import pandas as pd

    counts = JoinCounts(prediction_records=len(predictions))
    frame = predictions.sort_values("ts_ms", kind="stable").drop_duplicates("bid_id", keep="first")
    counts.duplicate_records = len(predictions) - len(frame)
    files = log_files(logs_root)
    counts.files = files
    if not files[IMP]:
        raise AikError(f"no impression logs (imp.YYYYMMDD.txt…) under {logs_root}")
    wanted = set(frame["bid_id"].astype(str))
    first: dict[str, tuple[tuple[int, str], ...]] = {}
    chosen: dict[str, dict[str, str | None]] = {}
    for record in _lines(files[BID], BID, wanted):
        bid_id, key = str(record["BidID"]), first_line_key(record)
        if bid_id not in first or key < first[bid_id]:
            first[bid_id], chosen[bid_id] = key, record
    segments = {
        bid_id: (
            record["AdvertiserID"] or UNKNOWN,
            DEVICE_NAMES[device_type_id(record["UserAgent"])],
            int((record["Timestamp"] or "")[8:10]),
        )
        for bid_id, record in chosen.items()
    }
    impressions = {str(r["BidID"]) for r in _lines(files[IMP], IMP, wanted)}
    clicks = {str(r["BidID"]) for r in _lines(files[CLK], CLK, wanted)} & impressions
    ids = frame["bid_id"].astype(str)
    if files[BID]:
        known = ids.isin(segments.keys())
        counts.without_bid_line = int((~known).sum())
        frame, ids = frame[known.to_numpy()], ids[known]
        seg = pd.DataFrame([segments[i] for i in ids], columns=list(SEGMENTS), index=frame.index)
    else:
        hours = pd.to_datetime(frame["ts_ms"], unit="ms", utc=True).dt.hour
        seg = pd.DataFrame(
            {"advertiser": UNKNOWN, "device_type": UNKNOWN, "hour": hours.astype(int)}, index=frame.index
        )
    out = pd.concat([frame.reset_index(drop=True), seg.reset_index(drop=True)], axis=1)
    out["impression"] = ids.isin(impressions).to_numpy().astype("int8")
    out["click"] = ids.isin(clicks).to_numpy().astype("int8")
    counts.requests = len(out)
    return out, counts
