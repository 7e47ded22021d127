"""iPinYou log lines -> typed columns in Spark, with the reason of every rejected line.

The rules are `aik.ipinyou`'s, written as Spark SQL expressions so they run in the JVM at Spark's
speed on any cluster (a test holds both implementations to the same verdicts and reasons).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from aik.ipinyou import COLUMNS, INTEGER, INTEGER_FIELDS, LOG_TYPES, MISSING, TIMESTAMP

if TYPE_CHECKING:
    from pyspark.sql import Column, DataFrame, SparkSession

#: Columns of `parse_lines`'s output besides the log's own.
SOURCE, LINE, REASON = "source", "line", "reason"


def _days_in_month(year: Column, month: Column) -> Column:
    from pyspark.sql import functions as F

    leap = ((year % 4 == 0) & (year % 100 != 0)) | (year % 400 == 0)
    return F.when(month == 2, F.when(leap, 29).otherwise(28)).when(month.isin(4, 6, 9, 11), 30).otherwise(31)


def parse_lines(lines: DataFrame, kind: str) -> DataFrame:
    """`value` (a line) and `source` -> source, line, reason (null if accepted) and the log's columns.

    Columns of rejected lines are null; missing values (`null`, empty) are null. Pure: no I/O.
    """
    from pyspark.sql import functions as F

    columns = COLUMNS[kind]
    width = len(columns)
    value = F.col("value")
    parts = F.split(value, "\t", -1)
    n = F.size(parts)
    fields = (
        F.when(n == width, parts)
        .when(
            (n > width) & (F.array_join(F.slice(parts, width + 1, n - width), "") == ""),
            F.slice(parts, 1, width),
        )
        .when(n == width - 1, F.concat(parts, F.array(F.lit(""))))
    )
    staged = lines.select(F.col(SOURCE), value.alias(LINE), n.alias("_n"), fields.alias("_f"))
    f = F.col("_f")

    def field(name: str) -> Column:
        return f.getItem(columns.index(name))

    timestamp = field("Timestamp")
    year = F.substring(timestamp, 1, 4).cast("int")
    month = F.substring(timestamp, 5, 2).cast("int")
    day = F.substring(timestamp, 7, 2).cast("int")
    # CASE evaluates its branches lazily, so the casts above only see strings that passed the regex
    # (with ANSI mode on, as in Spark 4, a cast of a non-number would fail the job).
    reason = (
        F.when(F.col(LINE) == "", F.lit("empty line"))
        .when(f.isNull(), F.concat(F.col("_n").cast("string"), F.lit(f" fields (expected {width})")))
        .when(field("BidID").isin(*MISSING), F.lit("missing BidID"))
        .when(~timestamp.rlike(TIMESTAMP.pattern), F.concat(F.lit("bad Timestamp '"), timestamp, F.lit("'")))
        .when(day > _days_in_month(year, month), F.concat(F.lit("bad Timestamp '"), timestamp, F.lit("'")))
    )
    if kind in LOG_TYPES:
        log_type = field("LogType")
        reason = reason.when(
            log_type != LOG_TYPES[kind], F.concat(F.lit("LogType '"), log_type, F.lit(f"' in a {kind} log"))
        )
    for name in INTEGER_FIELDS:
        if name in columns:
            v = field(name)
            reason = reason.when(
                ~v.isin(*MISSING) & ~v.rlike(INTEGER.pattern), F.concat(F.lit(f"bad {name} '"), v, F.lit("'"))
            )
    staged = staged.withColumn(REASON, reason)
    accepted = F.col(REASON).isNull()
    values = [F.when(accepted & ~field(name).isin(*MISSING), field(name)).alias(name) for name in columns]
    return staged.select(F.col(SOURCE), F.col(LINE), F.col(REASON), *values)


def read_lines(spark: SparkSession, uris: list[str]) -> DataFrame:
    """Lines of log files (plain, .bz2 or .gz) with their file name; `\\n`, `\\r\\n` and `\\r` end a line."""
    from pyspark.sql import functions as F

    # the name after the last "/" (substring_index: no regular expression per line)
    return spark.read.text(uris).select(
        F.col("value"), F.substring_index(F.input_file_name(), "/", -1).alias(SOURCE)
    )


def read_logs(spark: SparkSession, uris: list[str], kind: str) -> DataFrame:
    """Read and parse log files of one kind (see `parse_lines` for the columns)."""
    return parse_lines(read_lines(spark, uris), kind)
