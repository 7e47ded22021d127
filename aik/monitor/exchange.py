"""The synthetic exchange: a world whose truth is known answers the requests the server scored.

The closed loop's other half. A real exchange runs an auction for each bid request and logs what was
won (the impression log) and clicked (the click log). Here the synthetic world's truth model
(`aik.truth`, saved beside the generated logs) decides: each request is won with its true win
probability and each impression clicked with its true click probability, and the exchange writes the
bid, impression and click logs in the iPinYou format the kit ingests. Every request is bid on: the
closed loop scores requests in shadow, so the arms' outcome rates share one truth and their calibration
and log loss are measured on all of their traffic.

The draw is a function of the request's BidID and a seed (two uniforms from a keyed hash), not of the
order requests arrive in: a request served twice, or by another arm, realizes the same outcome.
`fresh_auctions` makes requests with new BidIDs from the world's traffic (the inference rows), as an
exchange issues a new BidID per auction.
"""

from __future__ import annotations

import datetime
import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from aik import storage
from aik.device import device_type_id
from aik.schema import BID_LOG_COLUMNS, EVENT_LOG_COLUMNS
from aik.truth import TruthModel

#: Where the exchange keeps what it realized (BidID, p_win, p_click, win, click) under its log root.
TRUTH_FILE = "truth/auctions.parquet"
#: A Monday: auctions are dated in the week starting here, on the day their `dow` names.
WEEK_START = datetime.date(2013, 6, 10)


def fresh_auctions(rows: Sequence[Mapping[str, Any]], n: int, seed: int) -> list[dict[str, Any]]:
    """`n` requests drawn at random from the world's traffic `rows`, each with a new 32-hex BidID."""
    if not rows:
        raise ValueError("no rows to draw auctions from")
    rng = np.random.default_rng([seed, 11])
    picks = rng.integers(0, len(rows), n)
    ids = rng.bytes(16 * n).hex()
    return [{**rows[p], "BidID": ids[32 * i : 32 * (i + 1)]} for i, p in enumerate(picks.tolist())]


def truth_columns(rows: Sequence[Mapping[str, Any]]) -> dict[str, list[Any]]:
    """The fields the truth reads, as it keys them: raw ids, device type from the agent, int hour and dow."""
    return {
        "AdvertiserID": [r.get("AdvertiserID") for r in rows],
        "Domain": [r.get("Domain") for r in rows],
        "RegionID": [r.get("RegionID") for r in rows],
        "CityID": [r.get("CityID") for r in rows],
        "device_type_id": [device_type_id(r.get("UserAgent")) for r in rows],
        "hour": [int(r["hour"]) for r in rows],
        "dow": [int(r["dow"]) for r in rows],
    }


def _uniforms(bid_ids: Sequence[str], seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Two independent uniforms in [0, 1) per BidID, from blake2b keyed by the seed."""
    key = str(seed).encode()
    raw = b"".join(hashlib.blake2b(b.encode(), digest_size=16, key=key).digest() for b in bid_ids)
    words = np.frombuffer(raw, dtype=">u8").reshape(-1, 2).astype(np.float64)
    return words[:, 0] / 2.0**64, words[:, 1] / 2.0**64


@dataclass(frozen=True)
class Outcomes:
    """What the exchange realized for each request (same order as the requests)."""

    bid_ids: list[str]
    p_win: np.ndarray
    p_click: np.ndarray
    win: np.ndarray
    click: np.ndarray


def realize(rows: Sequence[Mapping[str, Any]], truth: TruthModel, seed: int) -> Outcomes:
    """Win each request with its true probability, click each impression with its true click probability."""
    columns = truth_columns(rows)
    p_win = truth.win.probability(columns)
    p_click = truth.click.probability(columns)
    bid_ids = [str(r["BidID"]) for r in rows]
    u_win, u_click = _uniforms(bid_ids, seed)
    win = u_win < p_win
    return Outcomes(bid_ids, p_win, p_click, win, win & (u_click < p_click))


def _day_of(dow: int) -> datetime.date:
    """The date of WEEK_START's week with Spark's dayofweek `dow` (1 = Sunday ... 7 = Saturday)."""
    monday_based = (dow - 2) % 7
    return WEEK_START + datetime.timedelta(days=monday_based)


def timestamps(rows: Sequence[Mapping[str, Any]], seed: int) -> list[str]:
    """A `yyyyMMddHHmmssSSS` per request: on the day its dow names, in its hour, at a random instant."""
    rng = np.random.default_rng([seed, 12])
    ms = rng.integers(0, 3_600_000, len(rows)).tolist()
    out = []
    for r, t in zip(rows, ms, strict=True):
        minute, rest = divmod(t, 60_000)
        second, milli = divmod(rest, 1000)
        out.append(f"{_day_of(int(r['dow'])):%Y%m%d}{int(r['hour']):02d}{minute:02d}{second:02d}{milli:03d}")
    return out


def _table(rows: Sequence[Mapping[str, Any]], stamps: Sequence[str], kind: str) -> Any:
    import pyarrow as pa

    def text(name: str) -> list[str]:
        return ["null" if r.get(name) is None else str(r[name]) for r in rows]

    n = len(rows)
    known = {
        "BidID": text("BidID"),
        "Timestamp": list(stamps),
        "LogType": [{"imp": "1", "clk": "2"}.get(kind, "")] * n,
        "UserAgent": text("UserAgent"),
        "RegionID": text("RegionID"),
        "CityID": text("CityID"),
        "Domain": text("Domain"),
        "BiddingPrice": text("BiddingPrice"),
        "PayingPrice": text("PayingPrice") if kind == "imp" else ["0"] * n,
        "AdvertiserID": text("AdvertiserID"),
    }
    names = BID_LOG_COLUMNS if kind == "bid" else EVENT_LOG_COLUMNS
    return pa.table({c: pa.array(known.get(c, ["null"] * n), pa.string()) for c in names})


def write_logs(
    root: str, rows: Sequence[Mapping[str, Any]], outcomes: Outcomes, stamps: Sequence[str]
) -> list[str]:
    """The bid, imp and clk logs of the auctions under `root` (`<kind>/<kind>.YYYYMMDD.txt.bz2` per day),
    and what was realized (TRUTH_FILE); the URIs written."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from aik.synthetic import file_name, write_log

    days = np.array([s[:8] for s in stamps])
    written = []
    for day in sorted(set(days.tolist())):
        date = datetime.date(int(day[:4]), int(day[4:6]), int(day[6:8]))
        for kind, mask in (
            ("bid", days == day),
            ("imp", (days == day) & outcomes.win),
            ("clk", (days == day) & outcomes.click),
        ):
            index = np.flatnonzero(mask)
            order = index[np.argsort(np.array(stamps)[index], kind="stable")]
            uri = storage.join(root, kind, file_name(kind, date))
            write_log(uri, _table([rows[i] for i in order], [stamps[i] for i in order], kind))
            written.append(uri)
    truth_uri = storage.join(root, TRUTH_FILE)
    table = pa.table(
        {
            "BidID": pa.array(outcomes.bid_ids, pa.string()),
            "p_win": outcomes.p_win,
            "p_click": outcomes.p_click,
            "win": outcomes.win,
            "click": outcomes.click,
        }
    )
    with storage.open_uri(truth_uri, "wb") as f:
        pq.write_table(table, f)
    written.append(truth_uri)
    return written


def read_truth(uri: str) -> Any:
    """What `write_logs` realized, as a DataFrame indexed by BidID (columns p_win, p_click, win, click)."""
    import pyarrow.parquet as pq

    with storage.open_uri(uri, "rb") as f:
        frame = pq.read_table(f).to_pandas()
    return frame.drop_duplicates("BidID").set_index("BidID")
