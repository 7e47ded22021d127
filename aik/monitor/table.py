"""The joined table: what `aik monitor` judges, one row per logged request, as parquet with its counts.

The Spark job (`aik.monitor.spark_job`) writes it where a laptop can read it back without Spark: the
rows as parquet files under one directory (local or `s3://`), and beside them `_aik_join.json` with
the join's counts, the experiment chosen and the inputs. That file is written last: a directory
without it is not a complete table. Its columns are those of `aik.monitor.join.join`'s frame.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from aik import storage
from aik.errors import AikError
from aik.monitor.join import JoinCounts

if TYPE_CHECKING:
    import pandas as pd

#: The counts file under the table's directory (a leading "_": parquet readers skip it).
COUNTS_FILE = "_aik_join.json"
#: The table's columns and their pandas types (what `aik.monitor.join.join` returns).
COLUMNS: dict[str, str] = {
    "bid_id": "string",
    "ts_ms": "int64",
    "experiment": "string",
    "arm": "string",
    "release": "string",
    "likelihood": "float64",
    "advertiser": "string",
    "device_type": "string",
    "hour": "int64",
    "impression": "int8",
    "click": "int8",
}


@dataclass(frozen=True)
class JoinedTable:
    """A joined table read back: its rows, the join's counts, the experiment and what it was built from."""

    frame: pd.DataFrame
    counts: JoinCounts
    experiment: str | None
    predictions: str
    logs: str


def counts_document(counts: JoinCounts, *, experiment: str | None, predictions: str, logs: str) -> str:
    """The counts file's text."""
    doc = {"experiment": experiment, "predictions": predictions, "logs": logs, "counts": counts.to_dict()}
    return json.dumps(doc, indent=2) + "\n"


def _counts(doc: dict[str, Any]) -> JoinCounts:
    c = doc["counts"]
    return JoinCounts(
        prediction_records=int(c["prediction_records"]),
        duplicate_records=int(c["duplicate_records"]),
        requests=int(c["requests"]),
        without_bid_line=int(c["without_bid_line"]),
        files={str(k): [str(u) for u in v] for k, v in c["files"].items()},
    )


def read_joined(uri: str) -> JoinedTable:
    """Read a table the Spark job wrote (local directory or S3 prefix); a clear error if it is not one."""
    import pandas as pd
    import pyarrow as pa
    import pyarrow.parquet as pq

    counts_uri = storage.join(uri, COUNTS_FILE)
    if not storage.exists(counts_uri):
        raise AikError(f"{uri} is not a joined table of the monitor's Spark job (no {COUNTS_FILE})")
    try:
        doc = json.loads(storage.read_text(counts_uri))
        counts = _counts(doc)
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise AikError(f"{counts_uri} is not the counts of a joined table ({exc})") from exc
    parts = [u for u in storage.list_uris(uri, ".parquet") if not u.rsplit("/", 1)[-1].startswith((".", "_"))]
    tables = []
    for part in parts:
        with storage.open_uri(part, "rb") as f:
            tables.append(pq.read_table(f))
    # Spark writes no part file for an empty result
    frame = pa.concat_tables(tables).to_pandas() if tables else pd.DataFrame({c: [] for c in COLUMNS})
    missing = sorted(set(COLUMNS) - set(frame.columns))
    if missing:
        raise AikError(f"the joined table {uri} has no column(s) {', '.join(missing)}")
    frame = frame[list(COLUMNS)].astype(COLUMNS)
    return JoinedTable(frame, counts, doc.get("experiment"), str(doc["predictions"]), str(doc["logs"]))
