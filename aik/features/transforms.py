"""The feature job's DataFrame -> DataFrame steps (no I/O, so each is tested on tiny frames).

Flow: parsed logs -> `bid_filtering_rows` or `ctr_rows` (one row per BidID with its label) ->
`with_time_features` + `with_device_type` + `with_split` -> `fit_indexers` -> `split_features`.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, cast

import pyarrow as pa
import pyarrow.compute as pc

from aik.device import device_type_id
from aik.schema import INDEXED_COLUMNS, LABEL, RAW_SCHEMA, SPLIT_COLUMNS

if TYPE_CHECKING:
    from collections.abc import Sequence

    from pyspark.ml import PipelineModel, Transformer
    from pyspark.ml.feature import StringIndexerModel
    from pyspark.sql import DataFrame, SparkSession

BID_FILTERING, CTR = "bid-filtering", "ctr"
USE_CASES: tuple[str, ...] = (BID_FILTERING, CTR)

#: The split column: 0 train, 1 valid, 2 test (80/10/10 by a seeded hash of BidID).
SPLIT = "split"
TRAIN, VALID, TEST = 0, 1, 2
DEFAULT_SPLIT_SEED = 42

#: Fields of a request the job keeps from the log that carries them.
REQUEST_FIELDS: tuple[str, ...] = (
    "Timestamp",
    "RegionID",
    "CityID",
    "Domain",
    "AdvertiserID",
    "BiddingPrice",
    "UserAgent",
)

#: Spark type of each RAW_SCHEMA type name.
_SPARK_TYPES = {"String": "string", "Integer": "int", "Long": "bigint"}


def accepted(parsed: DataFrame) -> DataFrame:
    """The accepted lines of a parsed log (see `aik.features.logs.parse_lines`)."""
    from pyspark.sql import functions as F

    return parsed.where(F.col("reason").isNull())


#: At most this many repeated BidID hashes are resolved apart from the other rows (a literal set in the
#: plan); with more, every row goes through the aggregation.
REPEATED_APART = 100_000


def _min_per_bid(df: DataFrame, fields: tuple[str, ...]) -> DataFrame:
    """One row per BidID: the earliest (then smallest) one, so duplicates resolve the same way every run."""
    from pyspark.sql import functions as F

    first = F.min(F.struct(*[F.col(c) for c in fields])).alias("_first")
    return df.groupBy("BidID").agg(first).select("BidID", *[F.col(f"_first.{c}").alias(c) for c in fields])


def first_per_bid(df: DataFrame, fields: tuple[str, ...], apart: int = REPEATED_APART) -> DataFrame:
    """`_min_per_bid`, aggregating only the rows whose BidID may repeat.

    The aggregation shuffles and sorts every row with all its fields, while a BidID seen once is its own
    first row. So the hashes of the BidIDs are counted first (a shuffle of 8-byte hashes), and only the
    rows of a hash seen more than once (the duplicates, and the rare hash collision) are aggregated; the
    others pass through as they are. Over `apart` such hashes, every row is aggregated.
    """
    from pyspark.sql import functions as F

    bid_hash = F.xxhash64(F.col("BidID"))
    counts = df.select(bid_hash.alias("_hash")).groupBy("_hash").count()
    repeated = [row[0] for row in counts.where(F.col("count") > 1).select("_hash").limit(apart + 1).collect()]
    if len(repeated) > apart:
        return _min_per_bid(df, fields)
    once = df.select("BidID", *fields)
    if not repeated:
        return once
    seen_once = once.where(~bid_hash.isin(repeated))
    return seen_once.unionByName(_min_per_bid(df.where(bid_hash.isin(repeated)), fields))


def bid_filtering_rows(bids: DataFrame, imps: DataFrame) -> DataFrame:
    """Bid requests left-joined with impressions: label 1 when the BidID has an impression with a price.

    Request fields (user agent included) come from the bid log, so a lost bid keeps its device type
    (taken from the impression, every label-0 row would lack one: a label leak).
    """
    from pyspark.sql import functions as F

    requests = first_per_bid(bids, REQUEST_FIELDS)
    prices = imps.groupBy("BidID").agg(F.min(F.col("PayingPrice").cast("bigint")).alias("PayingPrice"))
    joined = requests.join(prices, "BidID", "left")
    return joined.select(
        "BidID",
        *REQUEST_FIELDS,
        "PayingPrice",
        F.col("PayingPrice").isNotNull().cast("int").alias(LABEL),
    ).withColumn("BiddingPrice", F.col("BiddingPrice").cast("bigint"))


def ctr_rows(imps: DataFrame, clks: DataFrame) -> DataFrame:
    """Impressions left-joined with clicks: label 1 when the impression's BidID was clicked."""
    from pyspark.sql import functions as F

    impressions = first_per_bid(imps, (*REQUEST_FIELDS, "PayingPrice"))
    clicked = clks.select("BidID").distinct().withColumn("_clicked", F.lit(1))
    joined = impressions.join(clicked, "BidID", "left")
    return joined.select(
        "BidID",
        *REQUEST_FIELDS,
        F.col("PayingPrice").cast("bigint").alias("PayingPrice"),
        F.col("_clicked").isNotNull().cast("int").alias(LABEL),
    ).withColumn("BiddingPrice", F.col("BiddingPrice").cast("bigint"))


def with_time_features(df: DataFrame) -> DataFrame:
    """`dow` (Spark dayofweek of the Timestamp's date, 1 = Sunday) and `hour` ("HH", as in the schema)."""
    from pyspark.sql import functions as F

    timestamp = F.col("Timestamp")
    return df.withColumn("dow", F.dayofweek(F.to_date(F.substring(timestamp, 1, 8), "yyyyMMdd"))).withColumn(
        "hour", F.substring(timestamp, 9, 2)
    )


def device_type_array(agents: pa.Array) -> pa.Array:
    """Arrow array of user agents -> int32 device_type_ids, one `aik.device` call per distinct agent."""
    encoded = pc.dictionary_encode(agents, null_encoding="encode")
    ids = pa.array([device_type_id(agent) for agent in encoded.dictionary.to_pylist()], pa.int32())
    return pc.take(ids, encoded.indices)


#: The distinct-agents frame's column (kept apart from the rows' own columns in the join).
_AGENT = "_agent"


def device_table(spark: SparkSession, agents: Sequence[str | None]) -> DataFrame:
    """One row per user agent of `agents` (`_agent`; distinct, missing included) with its `device_type_id`.

    The agents are mapped in the driver by `aik.device.device_type_id`, the server's function, and the
    table goes to the JVM as one JSON literal that it expands: no Python rows are sent, so no Python
    worker starts and no row leaves the JVM, on every Spark version (`createDataFrame` of Python rows
    starts a worker).
    """
    from pyspark.sql import functions as F

    values = list(agents)
    ids = device_type_array(pa.array(values, pa.string())).to_pylist()
    table = json.dumps([{_AGENT: agent, "device_type_id": i} for agent, i in zip(values, ids, strict=True)])
    schema = f"array<struct<{_AGENT}: string, device_type_id: int>>"
    rows = spark.range(1, numPartitions=1).select(F.inline(F.from_json(F.lit(table), schema)))
    return rows.select(_AGENT, "device_type_id")


def device_types(agents: DataFrame, user_agent: str = "UserAgent") -> DataFrame:
    """`device_table` of the distinct user agents of `agents` (the traffic's user-agent vocabulary,
    collected like the indexers' labels)."""
    values = [row[0] for row in agents.select(user_agent).distinct().collect()]
    return device_table(agents.sparkSession, values)


def with_device_type(
    df: DataFrame,
    user_agent: str = "UserAgent",
    *,
    agents: DataFrame | Sequence[str | None] | None = None,
) -> DataFrame:
    """`device_type_id` from the user agent: computed once per distinct agent, broadcast-joined to the rows.

    `agents`: a frame whose `user_agent` column holds every agent of `df` (a cached source of it,
    cheaper to scan than `df`'s lineage), or the distinct agents themselves (missing included, as
    `None`); default `df` itself.
    """
    from pyspark.sql import DataFrame as SparkFrame
    from pyspark.sql import functions as F

    if agents is None or isinstance(agents, SparkFrame):
        devices = device_types(df if agents is None else agents, user_agent)
    else:
        devices = device_table(df.sparkSession, agents)
    joined = df.join(F.broadcast(devices), df[user_agent].eqNullSafe(devices[_AGENT]), "left")
    return joined.drop(_AGENT)


def with_split(df: DataFrame, seed: int = DEFAULT_SPLIT_SEED) -> DataFrame:
    """`split`: 0 train (80 %), 1 valid (10 %), 2 test (10 %) from a seeded hash of BidID.

    A hash rather than `randomSplit`: the same BidID lands in the same split whatever the partitioning,
    cluster size or data around it, and no shuffle or sort is needed.
    """
    from pyspark.sql import functions as F

    bucket = F.pmod(F.xxhash64(F.col("BidID"), F.lit(seed)), F.lit(10))
    return df.withColumn(SPLIT, F.when(bucket < 8, TRAIN).when(bucket == 8, VALID).otherwise(TEST))


def with_temporal_split(df: DataFrame, first_test_day: str, seed: int = DEFAULT_SPLIT_SEED) -> DataFrame:
    """`split` by time: rows from `first_test_day` (yyyyMMdd) on are test; earlier ones train (90 %) or
    valid (10 %, the same seeded hash of BidID as `with_split`)."""
    from pyspark.sql import functions as F

    day = F.substring(F.col("Timestamp"), 1, 8)
    bucket = F.pmod(F.xxhash64(F.col("BidID"), F.lit(seed)), F.lit(10))
    return df.withColumn(
        SPLIT, F.when(day >= F.lit(first_test_day), TEST).when(bucket == 9, VALID).otherwise(TRAIN)
    )


def prepare(
    rows: DataFrame,
    seed: int = DEFAULT_SPLIT_SEED,
    first_test_day: str | None = None,
    *,
    agents: DataFrame | Sequence[str | None] | None = None,
) -> DataFrame:
    """Labelled rows -> rows with dow, hour, device_type_id and split (everything but the indices).

    The split is the random 80/10/10 one, or temporal from `first_test_day` on; `agents` as in
    `with_device_type`.
    """
    features = with_device_type(with_time_features(rows), agents=agents)
    if first_test_day is None:
        return with_split(features, seed)
    return with_temporal_split(features, first_test_day, seed)


def raw_schema_rows(df: DataFrame, *, with_label: bool = False) -> DataFrame:
    """The schema's fields (pipeline-schema.json) in its order and types, optionally plus `label`."""
    from pyspark.sql import functions as F

    cols = [F.col(name).cast(_SPARK_TYPES[kind]).alias(name) for name, kind in RAW_SCHEMA.items()]
    if with_label:
        cols.append(F.col(LABEL).cast("int").alias(LABEL))
    return df.select(*cols)


def frequency_labels(df: DataFrame, columns: Sequence[str]) -> dict[str, list[str]]:
    """Each column's labels as StringIndexer (frequencyDesc) orders them: the distinct non-null values by
    descending count, ties in StringIndexer's string order: Spark's (code points) from Spark 4, Java's
    (UTF-16 code units) before; they differ only between characters above U+FFFF and U+E000..U+FFFF.

    One hash aggregation over (column, value) pairs: StringIndexer's fit runs a typed aggregator that
    turns every value into a Java string and updates a hash map per column and row.
    """
    from pyspark.sql import functions as F

    pairs = ", ".join(f"{i}, CAST(`{c}` AS STRING)" for i, c in enumerate(columns))
    counts = (
        df.select(F.expr(f"stack({len(columns)}, {pairs}) AS (_column, _value)"))
        .where(F.col("_value").isNotNull())
        .groupBy("_column", "_value")
        .count()
        .collect()
    )
    found: list[list[tuple[int, str]]] = [[] for _ in columns]
    for column, value, count in counts:
        found[column].append((count, value))
    java_order = int(df.sparkSession.version.split(".", 1)[0]) < 4

    def order(count_value: tuple[int, str]) -> tuple[int, str | bytes]:
        count, value = count_value
        return -count, value.encode("utf-16-be") if java_order else value

    return {
        column: [v for _, v in sorted(values, key=order)]
        for column, values in zip(columns, found, strict=True)
    }


def fit_indexers(df: DataFrame) -> PipelineModel:
    """StringIndexers for AdvertiserID, Domain, RegionID, CityID: descending frequency, handleInvalid=keep.

    The labels of all four come from one aggregation (`frequency_labels`), each column's then a
    single-column StringIndexerModel, the pipeline shape the bundle uses.
    """
    from pyspark.ml import PipelineModel
    from pyspark.ml.feature import StringIndexerModel

    labels = frequency_labels(df, list(INDEXED_COLUMNS))
    stages: list[Transformer] = [
        StringIndexerModel.from_labels(
            values, inputCol=column, outputCol=INDEXED_COLUMNS[column], handleInvalid="keep"
        )
        for column, values in labels.items()
    ]
    return PipelineModel(stages=stages)


def indexer_labels(model: PipelineModel) -> dict[str, list[str]]:
    """input column -> labels in index order, from a fitted `fit_indexers` pipeline."""
    indexers = cast("list[StringIndexerModel]", model.stages)  # what fit_indexers builds
    return {stage.getInputCol(): list(stage.labels) for stage in indexers}


def split_features(prepared: DataFrame, model: PipelineModel) -> DataFrame:
    """The splits' columns (`label, dow, hour, Index*, device_type_id`, all int) plus `split`."""
    from pyspark.sql import functions as F

    indexed = model.transform(prepared)
    return indexed.select(*[F.col(c).cast("int").alias(c) for c in SPLIT_COLUMNS], F.col(SPLIT))
