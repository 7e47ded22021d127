"""`aik monitor`'s join as a Spark job: the prediction log and the exchange's logs -> the joined table.

The same join as `aik.monitor.join.join` (same rows, same counts), at a volume one Python process does
not hold: it reads the prediction log (JSON Lines, plain or `.gz`, Firehose's hour layout under a root)
and the bid, impression and click logs with the feature job's own line rules (`aik.features.logs`),
joins them by BidID and writes the table `aik.monitor.table` describes. `aik monitor --joined URI`
judges that table through the same report code as the in-process path.

Runs the same way everywhere:
- locally: `aik monitor --engine spark` (Spark local mode), or `run_join(spark, job)` from Python;
- on EMR as a step: `spark-submit <path of this file> --predictions URI --logs URI --out URI`
  (`aik --backend aws monitor --on emr` adds that step; see docs/monitoring.md).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from aik import storage
from aik.errors import AikError
from aik.ipinyou import BID, CLK, IMP
from aik.monitor.join import DEVICE_NAMES, UNKNOWN, JoinCounts, log_files
from aik.monitor.table import COLUMNS, COUNTS_FILE, counts_document

if TYPE_CHECKING:
    from pyspark.sql import Column, DataFrame, SparkSession

log = logging.getLogger("aik.monitor")

#: The prediction record's JSON fields as Spark reads them (`aik.predictions.FIELDS`).
RECORD_SCHEMA = (
    "bid_id STRING, ts_ms BIGINT, experiment STRING, arm STRING, release STRING, likelihood DOUBLE"
)
#: Read order of a record (file, then position in it): the tie-break where the in-process path keeps
#: the record it read first.
_FILE, _POS = "_file", "_pos"


@dataclass(frozen=True)
class JoinJob:
    """What to join and where to write it; `experiment` None: the experiment of the newest record."""

    predictions: str
    logs: str
    out: str
    experiment: str | None = None
    start: datetime | None = None
    end: datetime | None = None


@dataclass(frozen=True)
class JoinResult:
    """What the job wrote: the table's URI, the counts and the experiment it judged."""

    out: str
    counts: JoinCounts
    experiment: str | None
    seconds: float


def parse_records(lines: DataFrame, start: datetime | None = None, end: datetime | None = None) -> DataFrame:
    """Lines (`value`, `_file`, `_pos`) -> the valid prediction records within [start, end).

    A line that is not a record (not JSON, a field missing or of the wrong type, a likelihood that is
    not finite) is dropped, as `aik.predictions.iter_predictions` skips it. Pure: no I/O.
    """
    from pyspark.sql import functions as F

    doc = F.from_json(F.col("value"), RECORD_SCHEMA)
    records = lines.select(doc.alias("r"), _FILE, _POS).select("r.*", _FILE, _POS)
    likelihood = F.col("likelihood")
    valid = (
        F.col("bid_id").isNotNull()
        & F.col("ts_ms").isNotNull()
        & F.col("arm").isNotNull()
        & F.col("release").isNotNull()
        & likelihood.isNotNull()
        & ~F.isnan(likelihood)
        & (F.abs(likelihood) < float("inf"))
    )
    if start is not None:
        valid &= F.col("ts_ms") >= int(start.timestamp() * 1000)
    if end is not None:
        valid &= F.col("ts_ms") < int(end.timestamp() * 1000)
    return records.where(valid)


def read_records(
    spark: SparkSession, files: list[str], start: datetime | None, end: datetime | None
) -> DataFrame:
    """The prediction log's files (plain, or gzip named `.gz` as Firehose names them) as valid records."""
    from pyspark.sql import functions as F

    lines = spark.read.text(files).select(
        "value", F.input_file_name().alias(_FILE), F.monotonically_increasing_id().alias(_POS)
    )
    return parse_records(lines, start, end)


def newest_experiment(records: DataFrame) -> tuple[bool, str | None]:
    """(any records, the experiment of the newest record, the first read of equal times).

    Two aggregations rather than a sort: neither moves the records between partitions.
    """
    from pyspark.sql import functions as F

    newest = records.agg(F.max("ts_ms")).first()
    if newest is None or newest[0] is None:
        return False, None
    first = F.min(F.struct(F.col(_FILE), F.col(_POS), F.col("experiment"))).alias("first")
    row = records.where(F.col("ts_ms") == newest[0]).agg(first).first()
    assert row is not None  # an aggregation without grouping has exactly one row
    return True, row["first"]["experiment"]


def of_experiment(records: DataFrame, experiment: str | None) -> DataFrame:
    """The records of one experiment (None: those outside any experiment)."""
    from pyspark.sql import functions as F

    column = F.col("experiment")
    return records.where(column.isNull() if experiment is None else column == experiment)


def first_answers(records: DataFrame) -> DataFrame:
    """One record per BidID: its earliest, the first read of equal times (a client retry counts once)."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    order = Window.partitionBy("bid_id").orderBy(F.col("ts_ms"), F.col(_FILE), F.col(_POS))
    return (
        records.withColumn("_n", F.row_number().over(order)).where(F.col("_n") == 1).drop("_n", _FILE, _POS)
    )


def _device_name(device_type_id: Column) -> Column:
    from pyspark.sql import functions as F

    names = F.create_map(*[F.lit(x) for pair in sorted(DEVICE_NAMES.items()) for x in pair])
    return F.coalesce(names[device_type_id], F.lit(UNKNOWN))


def bid_segments(bids: DataFrame, cached: list[DataFrame]) -> DataFrame:
    """Accepted bid lines of the wanted requests -> BidID, advertiser, device_type, hour (one row each).

    A request logged twice takes its first line by the feature job's rule (`first_line_key` in
    `aik.monitor.join`), the device type by the server's function (`with_device_type`). The wanted
    lines are cached, and added to `cached` for the caller to unpersist.
    """
    from pyspark import StorageLevel
    from pyspark.sql import functions as F

    from aik.features.transforms import REQUEST_FIELDS, first_per_bid, with_device_type

    # cached: the repeated BidIDs' count, the device types' vocabulary and the rows read the
    # (decompressed, parsed) lines once
    wanted = bids.persist(StorageLevel.MEMORY_AND_DISK)
    cached.append(wanted)
    return with_device_type(first_per_bid(wanted, REQUEST_FIELDS)).select(
        "BidID",
        F.coalesce(F.col("AdvertiserID"), F.lit(UNKNOWN)).alias("advertiser"),
        _device_name(F.col("device_type_id")).alias("device_type"),
        F.substring(F.col("Timestamp"), 9, 2).cast("int").alias("hour"),
    )


def _accepted(spark: SparkSession, files: list[str], kind: str, wanted: DataFrame, *fields: str) -> DataFrame:
    """The accepted lines (the feature job's rules) of one kind of log: the wanted requests', `fields`."""
    from aik.features.logs import read_logs
    from aik.features.transforms import accepted

    return accepted(read_logs(spark, files, kind)).select("BidID", *fields).join(wanted, "BidID", "left_semi")


def joined_rows(
    spark: SparkSession, answers: DataFrame, files: dict[str, list[str]], cached: list[DataFrame]
) -> DataFrame:
    """One row per answered request with a bid line (every answered request without a bid log): the
    table's columns, as `aik.monitor.join.join` makes them; the frames it caches go to `cached`."""
    from pyspark.sql import functions as F

    from aik.features.transforms import REQUEST_FIELDS

    wanted = answers.select(F.col("bid_id").alias("BidID"))
    if files[BID]:
        segments = bid_segments(_accepted(spark, files[BID], BID, wanted, *REQUEST_FIELDS), cached)
        rows = answers.join(segments.withColumnRenamed("BidID", "bid_id"), "bid_id", "inner")
    else:
        hour = F.pmod(F.floor(F.col("ts_ms") / 3_600_000), 24).cast("int")
        rows = answers.select(
            "*",
            F.lit(UNKNOWN).alias("advertiser"),
            F.lit(UNKNOWN).alias("device_type"),
            hour.alias("hour"),
        )
    impressions = _accepted(spark, files[IMP], IMP, wanted).distinct()
    if files[CLK]:
        clicks = _accepted(spark, files[CLK], CLK, wanted).distinct().join(impressions, "BidID", "left_semi")
    else:
        clicks = impressions.limit(0)
    for name, ids in (("impression", impressions), ("click", clicks)):
        flagged = ids.select(F.col("BidID").alias("bid_id"), F.lit(1).alias(name))
        rows = rows.join(flagged, "bid_id", "left")
    return rows.select(
        *[
            F.coalesce(F.col(c), F.lit(0)).cast("tinyint").alias(c)
            if c in ("impression", "click")
            else F.col(c)
            for c in COLUMNS
        ]
    )


def run_join(spark: SparkSession, job: JoinJob) -> JoinResult:
    """Run the join and write the table (parquet under `job.out`, then its counts file)."""
    from pyspark import StorageLevel

    from aik.features.spark import StageProgress
    from aik.predictions import log_files as prediction_files

    started = time.monotonic()
    files = prediction_files(job.predictions, start=job.start, end=job.end)
    if not files:
        raise AikError(f"no prediction records under {job.predictions}")
    logs = log_files(job.logs)
    if not logs[IMP]:
        raise AikError(f"no impression logs (imp.YYYYMMDD.txt…) under {job.logs}")
    describe = spark.sparkContext.setJobDescription
    cached: list[DataFrame] = []
    with StageProgress(spark, "monitor"):
        try:
            describe("aik monitor: read the prediction log")
            records = read_records(spark, files, job.start, job.end).persist(StorageLevel.MEMORY_AND_DISK)
            cached.append(records)
            found, newest = newest_experiment(records)
            if not found:
                raise AikError(f"no prediction records under {job.predictions}")
            experiment = newest if job.experiment is None else job.experiment
            chosen = of_experiment(records, experiment)
            counts = JoinCounts(prediction_records=chosen.count(), files=logs)
            if counts.prediction_records == 0:
                raise AikError(f"no prediction records of experiment {experiment} under {job.predictions}")
            answers = first_answers(chosen).persist(StorageLevel.MEMORY_AND_DISK)
            cached.append(answers)
            answered = answers.count()
            counts.duplicate_records = counts.prediction_records - answered
            log.info(
                "monitor: %s prediction records of experiment %s, %s requests",
                f"{counts.prediction_records:,}",
                experiment,
                f"{answered:,}",
            )
            describe("aik monitor: join with the bid, impression and click logs; write the table")
            joined_rows(spark, answers, logs, cached).write.mode("overwrite").parquet(job.out)
            counts.requests = spark.read.parquet(job.out).count()
            counts.without_bid_line = answered - counts.requests
        finally:
            describe(None)  # type: ignore[arg-type]  # None clears it (pyspark's stub says str)
            for frame in cached:  # a notebook's session lives on: free the cache
                frame.unpersist()
    storage.write_text(
        storage.join(job.out, COUNTS_FILE),
        counts_document(counts, experiment=experiment, predictions=job.predictions, logs=job.logs),
    )
    seconds = time.monotonic() - started
    log.info(
        "monitor: %s requests joined in %.1f s, table written to %s", f"{counts.requests:,}", seconds, job.out
    )
    return JoinResult(job.out, counts, experiment, seconds)


def _utc(text: str) -> datetime:
    value = datetime.fromisoformat(text)
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point for spark-submit (an EMR step) and `python -m aik.monitor.spark_job`."""
    from aik import aws
    from aik.features.spark import get_session
    from aik.logsetup import setup_logging

    parser = argparse.ArgumentParser(
        prog="aik-monitor-job",
        description="Join the prediction log with the bid, impression and click logs by BidID and write the "
        "table `aik monitor --joined URI` judges.",
    )
    parser.add_argument("--predictions", required=True, metavar="URI", help="prediction log root")
    parser.add_argument("--logs", required=True, metavar="URI", help="root of the bid/imp/clk logs")
    parser.add_argument("--out", required=True, metavar="URI", help="where to write the joined table")
    parser.add_argument("--experiment", help="only this experiment's records (default: the newest record's)")
    parser.add_argument("--start", type=_utc, help="only records from this UTC time")
    parser.add_argument("--end", type=_utc, help="only records before this UTC time")
    parser.add_argument("--region", help="AWS region of the buckets (on EMR: the cluster's)")
    args = parser.parse_args(argv)
    setup_logging()
    if args.region:
        aws.use_region(args.region)
    job = JoinJob(args.predictions, args.logs, args.out, args.experiment, args.start, args.end)
    try:
        result = run_join(get_session("aik-monitor"), job)
    except AikError as exc:
        print(f"aik-monitor-job: {exc}", file=sys.stderr)
        return 1
    print(
        json.dumps({"out": result.out, "experiment": result.experiment, **result.counts.to_dict()}, indent=2)
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
