"""The feature job's DataFrame -> DataFrame steps on tiny frames (no I/O)."""

from __future__ import annotations

from collections import Counter
from typing import TYPE_CHECKING

from aik.bundle import indexer_from_specs, specs_from_pipeline
from aik.device import device_type_id
from aik.features.transforms import (
    REQUEST_FIELDS,
    SPLIT,
    bid_filtering_rows,
    ctr_rows,
    device_types,
    first_per_bid,
    fit_indexers,
    frequency_labels,
    indexer_labels,
    prepare,
    raw_schema_rows,
    split_features,
    with_device_type,
    with_split,
    with_time_features,
)
from aik.ipinyou import spark_dayofweek
from aik.schema import INDEXED_COLUMNS, RAW_SCHEMA, SPLIT_COLUMNS

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

REQUEST = (
    "BidID string, Timestamp string, RegionID string, CityID string, Domain string, AdvertiserID string, "
)
BIDS = REQUEST + "BiddingPrice string, UserAgent string"
IMPS = BIDS + ", PayingPrice string"
PHONE = "Mozilla/5.0 (iPhone; CPU iPhone OS 6_1_3 like Mac OS X) AppleWebKit/536.26 Mobile/10B329"
PC = "Mozilla/4.0 (compatible; MSIE 8.0; Windows NT 5.1; Trident/4.0)"


def _bids(spark: SparkSession) -> DataFrame:
    return spark.createDataFrame(
        [
            ("a", "20130606101010000", "1", "2", "d1", "1458", "300", PHONE),
            ("b", "20130609230000000", "1", "3", "d2", "3358", "238", PC),
            ("c", "20130608000000000", "5", "6", "d1", "1458", "300", None),
            ("c", "20130608000000001", "9", "9", "d9", "9999", "1", PC),  # a later duplicate: dropped
        ],
        BIDS,
    )


def test_bid_filtering_labels_requests_by_impressions_keeping_the_bids_user_agent(
    spark: SparkSession,
) -> None:
    imps = spark.createDataFrame(
        [
            ("a", "20130606101010100", "1", "2", "d1", "1458", "300", None, "77"),
            ("a", "20130606101010200", "1", "2", "d1", "1458", "300", None, "80"),  # a duplicate impression
            ("c", "20130608000000100", "5", "6", "d1", "1458", "300", PC, None),  # no price: no impression
            ("z", "20130608000000100", "5", "6", "d1", "1458", "300", PC, "5"),  # no bid: ignored
        ],
        IMPS,
    )
    rows = {r["BidID"]: r for r in bid_filtering_rows(_bids(spark), imps).collect()}
    assert set(rows) == {"a", "b", "c"}
    assert (rows["a"]["label"], rows["a"]["PayingPrice"], rows["a"]["UserAgent"]) == (1, 77, PHONE)
    assert (rows["b"]["label"], rows["b"]["PayingPrice"], rows["b"]["UserAgent"]) == (0, None, PC)
    assert (rows["c"]["label"], rows["c"]["Timestamp"], rows["c"]["Domain"]) == (0, "20130608000000000", "d1")
    assert rows["b"]["BiddingPrice"] == 238


def test_first_per_bid_aggregates_only_repeated_bids_with_the_same_result(spark: SparkSession) -> None:
    rows = [(f"u{i}", f"2013060610101{i:04d}", "1", "2", "d1", "1458", "300", PC) for i in range(50)]
    rows += [  # repeated BidIDs: a later copy, a tie on Timestamp (the smaller fields win), a null field
        ("r1", "20130606101010000", "1", "2", "d1", "1458", "300", PC),
        ("r1", "20130606101010001", "0", "0", "d0", "0000", "1", PHONE),
        ("r2", "20130607000000000", "9", "2", "d2", "1458", "300", PC),
        ("r2", "20130607000000000", "1", "2", "d2", "1458", "300", None),
        ("r2", "20130607000000000", "1", "2", "d2", "1458", "300", PHONE),
    ]
    bids = spark.createDataFrame(rows, BIDS)
    apart = first_per_bid(bids, REQUEST_FIELDS)
    aggregated = first_per_bid(bids, REQUEST_FIELDS, apart=0)  # more repeated hashes than 0: all rows
    assert sorted(apart.collect()) == sorted(aggregated.collect())
    assert len(apart.collect()) == 52
    assert {r["BidID"]: r["UserAgent"] for r in apart.collect()}["r2"] is None


def test_first_per_bid_does_not_aggregate_bids_seen_once(spark: SparkSession) -> None:
    rows = [(f"u{i}", "20130606101010000", "1", "2", "d1", "1458", "300", PC) for i in range(20)]
    firsts = first_per_bid(spark.createDataFrame(rows, BIDS), REQUEST_FIELDS)
    plan = firsts._jdf.queryExecution().optimizedPlan().toString()
    assert "Aggregate" not in plan, plan
    assert sorted(firsts.collect()) == sorted(rows)


def test_ctr_labels_impressions_by_clicks(spark: SparkSession) -> None:
    imps = spark.createDataFrame(
        [
            ("a", "20130606101010100", "1", "2", "d1", "1458", "300", PHONE, "77"),
            ("b", "20130606111010100", "1", "2", "d1", "1458", "300", PC, "70"),
        ],
        IMPS,
    )
    clks = spark.createDataFrame([("a",), ("a",), ("q",)], "BidID string")
    rows = {r["BidID"]: r["label"] for r in ctr_rows(imps, clks).collect()}
    assert rows == {"a": 1, "b": 0}


def test_time_features_are_spark_dayofweek_and_the_hour_string(spark: SparkSession) -> None:
    stamps = ["20130606101010000", "20130609230000000", "20131019000000000", "20120229120000000"]
    df = spark.createDataFrame([(s,) for s in stamps], "Timestamp string")
    rows = with_time_features(df).collect()
    assert [(r["dow"], r["hour"]) for r in rows] == [(spark_dayofweek(s), s[8:10]) for s in stamps]
    assert [r["dow"] for r in rows][:2] == [5, 1]  # Thursday, Sunday


def test_device_type_is_the_shared_function_including_missing_agents(spark: SparkSession) -> None:
    agents = [PHONE, PC, None, "", "Wget/1.12 (linux-gnu)", "DoCoMo/2.0 P903i(c100;TB;W24H12)", "zzz", PC]
    df = spark.createDataFrame([(i, a) for i, a in enumerate(agents)], "i int, UserAgent string")
    out = with_device_type(df)
    rows = out.orderBy("i").collect()
    assert [r["device_type_id"] for r in rows] == [device_type_id(a) for a in agents]
    assert [r["UserAgent"] for r in rows] == agents
    assert out.columns == ["i", "UserAgent", "device_type_id"]


def test_device_types_map_each_distinct_agent_of_the_agents_frame_once(spark: SparkSession) -> None:
    agents = spark.createDataFrame([(a,) for a in [PC, PC, None, PHONE, None, PC]], "UserAgent string")
    devices = {r["_agent"]: r["device_type_id"] for r in device_types(agents).collect()}
    assert devices == {a: device_type_id(a) for a in (PC, None, PHONE)}
    rows = spark.createDataFrame([(1, PHONE), (2, None)], "i int, UserAgent string")
    out = with_device_type(rows, agents=agents).orderBy("i").collect()
    assert [r["device_type_id"] for r in out] == [device_type_id(PHONE), device_type_id(None)]


def test_device_types_from_the_distinct_agents_as_values(spark: SparkSession) -> None:
    rows = spark.createDataFrame([(1, PHONE), (2, None), (3, PC)], "i int, UserAgent string")
    out = with_device_type(rows, agents=[PC, None, PHONE]).orderBy("i").collect()
    assert [r["device_type_id"] for r in out] == [device_type_id(a) for a in (PHONE, None, PC)]


def test_device_types_send_no_python_rows_to_the_jvm(spark: SparkSession) -> None:
    # a frame of Python rows (createDataFrame of a list) is a scan of an RDD that a Python worker feeds
    odd = 'quote " backslash \\ tab \t é'
    agents = spark.createDataFrame([(a,) for a in [PC, None, odd]], "UserAgent string")
    devices = device_types(agents)
    plan = devices._jdf.queryExecution().optimizedPlan().toString()
    assert "LogicalRDD" not in plan and "ExistingRDD" not in plan, plan
    got = {r["_agent"]: r["device_type_id"] for r in devices.collect()}
    assert got == {a: device_type_id(a) for a in [PC, None, odd]}


def test_split_is_80_10_10_seeded_and_independent_of_partitioning(spark: SparkSession) -> None:
    ids = spark.range(20_000).selectExpr("md5(cast(id as string)) as BidID")
    first = {r["BidID"]: r[SPLIT] for r in with_split(ids, 42).collect()}
    again = {r["BidID"]: r[SPLIT] for r in with_split(ids.repartition(7), 42).collect()}
    other = {r["BidID"]: r[SPLIT] for r in with_split(ids, 7).collect()}
    assert first == again
    assert first != other
    shares = Counter(first.values())
    assert abs(shares[0] / 20_000 - 0.8) < 0.01 and abs(shares[1] / 20_000 - 0.1) < 0.01


def _indexable(spark: SparkSession) -> DataFrame:
    rows = [
        ("1458", "d1", "1", "2"),
        ("1458", "d2", "1", "2"),
        ("3358", "d2", "1", "3"),
        ("3358", "d3", None, "3"),
        ("2821", "d2", "5", None),
        ("1458", "d1", "5", "3"),
    ]
    return spark.createDataFrame(rows, "AdvertiserID string, Domain string, RegionID string, CityID string")


def test_indexers_order_labels_by_descending_frequency_ties_alphabetically(spark: SparkSession) -> None:
    labels = indexer_labels(fit_indexers(_indexable(spark)))
    assert list(labels) == list(INDEXED_COLUMNS)
    assert labels["AdvertiserID"] == ["1458", "3358", "2821"]
    assert labels["Domain"] == ["d2", "d1", "d3"]
    assert labels["RegionID"] == ["1", "5"]  # nulls are not labels
    assert labels["CityID"] == ["3", "2"]


def test_frequency_labels_are_string_indexers_labels(spark: SparkSession) -> None:
    from pyspark.ml.feature import StringIndexer

    # ties, nulls, and two values whose order differs between code points and UTF-16 units (Java's)
    values = ["b", "a", "b", "a", "c", None, "\uffff", "\U00010000", "\uffff", "\U00010000", "", ""]
    df = spark.createDataFrame([(v, v if v != "c" else None) for v in values], "x string, y string")
    fitted = StringIndexer(
        inputCols=["x", "y"], outputCols=["ix", "iy"], handleInvalid="keep", stringOrderType="frequencyDesc"
    ).fit(df)
    assert frequency_labels(df, ["x", "y"]) == {
        "x": list(fitted.labelsArray[0]),
        "y": list(fitted.labelsArray[1]),
    }


def test_bundle_reader_indices_equal_sparks_transform_for_every_row(spark: SparkSession) -> None:
    fitted = _indexable(spark)
    model = fit_indexers(fitted)
    reader = indexer_from_specs(specs_from_pipeline(model))
    unseen = spark.createDataFrame(
        [("7777", "new", "99", "98"), (None, None, None, None), ("1458", "d3", "5", "2")],
        fitted.schema,
    )
    for frame in (fitted, unseen):
        for row in model.transform(frame).collect():
            raw = {c: row[c] for c in INDEXED_COLUMNS}
            assert reader.transform(raw) == {out: int(row[out]) for out in INDEXED_COLUMNS.values()}, raw
    assert reader.index("AdvertiserID", "7777") == 3  # handleInvalid=keep: the number of labels


def test_prepared_rows_give_the_contracts_columns_and_types(spark: SparkSession) -> None:
    imps = spark.createDataFrame(
        [("a", "20130606101010100", "1", "2", "d1", "1458", "300", None, "77")], IMPS
    )
    prepared = prepare(bid_filtering_rows(_bids(spark), imps))
    features = split_features(prepared, fit_indexers(prepared))
    assert features.columns == [*SPLIT_COLUMNS, SPLIT]
    assert {f.dataType.simpleString() for f in features.schema.fields} == {"int"}
    by_hour = {r["hour"]: r for r in features.collect()}
    assert by_hour[10]["label"] == 1 and by_hour[10]["dow"] == 5 and by_hour[10]["device_type_id"] == 0
    raw = raw_schema_rows(prepared, with_label=True)
    assert raw.columns == [*RAW_SCHEMA, "label"]
    assert [f.dataType.simpleString() for f in raw.schema.fields][:3] == ["string", "int", "string"]
    assert dict(raw_schema_rows(prepared).dtypes)["BiddingPrice"] == "bigint"
