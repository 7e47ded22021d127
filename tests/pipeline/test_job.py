"""The feature job end to end on a small synthetic dataset: every artifact docs/pipeline.md names, exactly."""

from __future__ import annotations

import bz2
import json
import zipfile
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
import pyarrow.dataset as ds
import pyarrow.parquet as pq
import pytest

from ad_server_emulator.emulator import bid_request
from aik import bundle, storage
from aik.bundle import read_bundle, write_spark_bundle
from aik.context import Context
from aik.errors import AikError, ArtifactError
from aik.features import job
from aik.features.job import JOB_SETTINGS, outputs_from_params, run_features
from aik.features.report import FeaturesReport, LineCounts
from aik.features.transforms import (
    SPLIT,
    TRAIN,
    bid_filtering_rows,
    fit_indexers,
    indexer_labels,
    prepare,
)
from aik.ingest import ingest_synthetic
from aik.params import BID_SOURCE, RAW_DATA
from aik.request_features import request_features
from aik.schema import FEATURE_COLUMNS, INDEXED_COLUMNS, LABEL, RAW_SCHEMA, SPLIT_COLUMNS
from aik.synthetic import rank_auc
from aik.truth import TruthModel, truth_uri

from .conftest import make_context
from .test_ipinyou import bid_line

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

ROWS = 3_000
MALFORMED = [bid_line(Timestamp="2013"), "garbage", bid_line(BidID="null")]


def _table(uri: str) -> Any:
    return ds.dataset(storage.local_path(uri), format="parquet").to_table()


def _json_rows(uri: str) -> list[dict[str, Any]]:
    return [json.loads(line) for path in sorted(Path(uri).glob("part-*.json")) for line in path.open()]


@pytest.fixture(scope="module")
def synthetic_run(spark: SparkSession, module_workspace: Path) -> tuple[Context, FeaturesReport]:
    """Ingest 3,000 synthetic bid requests plus a file of malformed lines, then run the job once."""
    ctx = make_context(module_workspace)
    ingest_synthetic(ctx, rows=ROWS, seed=21, days=3)
    bad = Path(ctx.params.get(BID_SOURCE)) / "bid.20130609.txt.bz2"
    bad.write_bytes(bz2.compress(("\n".join(MALFORMED) + "\n").encode()))
    return ctx, run_features(ctx, "bid-filtering", spark=spark)


def test_every_artifact_is_written_where_the_parameters_say(
    synthetic_run: tuple[Context, FeaturesReport],
) -> None:
    ctx, report = synthetic_run
    out = outputs_from_params(ctx.params)
    for uri in (out.transformed, out.inference, out.train, out.valid, out.test):
        assert (Path(uri) / "_SUCCESS").is_file(), uri
        assert not list(Path(uri).glob(".*.crc")), uri  # only data beside the data
    assert json.loads(Path(out.schema).read_text()) == RAW_SCHEMA
    assert zipfile.is_zipfile(out.bundle)
    assert json.loads(Path(out.report).read_text()) == json.loads(json.dumps(report.to_dict()))


def test_the_job_leaves_the_sessions_settings_as_they_were(
    spark: SparkSession, synthetic_run: tuple[Context, FeaturesReport]
) -> None:
    # the job builds its caches uncompressed and writes the splits with one writer per split while it
    # runs; the session had set neither option
    assert {key: spark.conf.get(key, None) for key in JOB_SETTINGS} == dict.fromkeys(JOB_SETTINGS)


def test_the_splits_staging_directory_is_removed(synthetic_run: tuple[Context, FeaturesReport]) -> None:
    ctx, _ = synthetic_run
    processed = Path(outputs_from_params(ctx.params).train).parent
    assert not list(processed.glob("_aik-splits-*"))


def test_a_split_without_rows_is_written_with_the_splits_schema(spark: SparkSession, tmp_path: Path) -> None:
    from pyspark.sql import functions as F

    bids = spark.createDataFrame(
        [("a", "20130606101010000", "1", "2", "d1", "1458", "300", None)],
        "BidID string, Timestamp string, RegionID string, CityID string, Domain string, "
        "AdvertiserID string, BiddingPrice string, UserAgent string",
    )
    imps = spark.createDataFrame([("b", "7")], "BidID string, PayingPrice string")
    prepared = prepare(bid_filtering_rows(bids, imps)).withColumn(SPLIT, F.lit(TRAIN))
    uris = {name: str(tmp_path / name) for name in ("train", "valid", "test")}
    outputs = job.Outputs(transformed="", inference="", bundle="", schema="", rejects="", report="", **uris)
    counts = job.write_splits(prepared, fit_indexers(prepared), outputs)
    assert {name: c.rows for name, c in counts.items()} == {"train": 1, "valid": 0, "test": 0}
    valid = _table(uris["valid"])
    assert valid.num_rows == 0 and valid.column_names == list(SPLIT_COLUMNS)


def test_splits_have_the_exact_columns_types_and_80_10_10_sizes(
    synthetic_run: tuple[Context, FeaturesReport],
) -> None:
    ctx, report = synthetic_run
    out = outputs_from_params(ctx.params)
    sizes = {}
    for name, uri in (("train", out.train), ("valid", out.valid), ("test", out.test)):
        table = _table(uri)
        assert table.column_names == list(SPLIT_COLUMNS)
        assert {str(f.type) for f in table.schema} == {"int32"}
        assert table.num_rows == report.splits[name].rows
        sizes[name] = table.num_rows
    assert sum(sizes.values()) == report.rows == ROWS
    assert abs(sizes["train"] / ROWS - 0.8) < 0.03 and abs(sizes["test"] / ROWS - 0.1) < 0.02
    assert report.positive_rate is not None and 0.15 <= report.positive_rate <= 0.25


def test_rejects_are_counted_and_written_with_their_reason(
    synthetic_run: tuple[Context, FeaturesReport],
) -> None:
    ctx, report = synthetic_run
    bids = report.inputs["bid"]
    assert (bids.lines, bids.accepted, bids.rejected) == (ROWS + 3, ROWS, 3)
    assert (
        Path(outputs_from_params(ctx.params).rejects) / "kind=bid" / "source=bid.20130609.txt.bz2"
    ).is_dir()
    assert bids.reasons == {"bad Timestamp": 1, "wrong field count": 1, "missing BidID": 1}
    rejects = outputs_from_params(ctx.params).rejects
    rows = _json_rows(str(Path(rejects) / "kind=bid" / "source=bid.20130609.txt.bz2"))
    assert sorted(r["line"] for r in rows) == sorted(MALFORMED)
    assert {r["reason"] for r in rows} == {"bad Timestamp '2013'", "1 fields (expected 21)", "missing BidID"}


def _server_features(row: dict[str, Any], indexer: Any) -> tuple[int, ...]:
    """The reference features (`aik.request_features`) of the request the emulator builds from a row."""
    return tuple(int(v) for v in request_features(bid_request(row), indexer))


def test_server_features_of_inference_rows_equal_the_splits_rows(
    synthetic_run: tuple[Context, FeaturesReport],
) -> None:
    ctx, _ = synthetic_run
    out = outputs_from_params(ctx.params)
    indexer = read_bundle(out.bundle)
    inference = _json_rows(out.inference)
    assert len(inference) == ROWS
    assert all(list(row) == list(RAW_SCHEMA) for row in inference)
    served = Counter(
        (int(row["PayingPrice"] is not None), *_server_features(row, indexer)) for row in inference
    )
    split_rows: Counter[tuple[int, ...]] = Counter()
    for uri in (out.train, out.valid, out.test):
        split_rows.update(tuple(r.values()) for r in _table(uri).to_pylist())
    assert served == split_rows


def test_the_servers_scores_of_inference_rows_are_the_boosters_on_the_split_rows(
    synthetic_run: tuple[Context, FeaturesReport], tmp_path: Path
) -> None:
    """The contract across the pipeline and serving: a booster trained on the splits, served from the
    job's bundle and schema, scores each inference row (as the emulator sends it) as xgboost scores
    that row's split features."""
    import xgboost

    from filtering_server.model import ModelSources, load_model

    ctx, _ = synthetic_run
    out = outputs_from_params(ctx.params)
    tables = [_table(uri).to_pydict() for uri in (out.train, out.valid, out.test)]
    x = np.array([[v for t in tables for v in t[c]] for c in FEATURE_COLUMNS], dtype=np.float32).T
    y = np.array([v for t in tables for v in t[LABEL]])
    names = list(FEATURE_COLUMNS)
    booster = xgboost.train(
        {"objective": "binary:logistic", "max_depth": 4, "eta": 0.3},
        xgboost.DMatrix(x, y, feature_names=names),
        30,
    )
    model_uri = str(tmp_path / "booster.ubj")
    storage.write_bytes(model_uri, bytes(booster.save_raw("ubj")))
    model = load_model(ModelSources(model_uri, out.bundle, out.schema))
    expected = booster.predict(xgboost.DMatrix(x, feature_names=names))
    rows = _json_rows(out.inference)
    won = np.array([row["PayingPrice"] is not None for row in rows])
    served = np.array([model.score(bid_request(row)) for row in rows])
    for label in (0, 1):  # the rows of each label, as multisets (the splits keep no BidID)
        np.testing.assert_allclose(np.sort(served[won == label]), np.sort(expected[y == label]), atol=1e-6)
    assert expected.std() > 0.01


def test_the_truth_of_the_rows_the_job_wrote_is_the_generators(
    synthetic_run: tuple[Context, FeaturesReport],
) -> None:
    """The trainer's oracle: de-index the splits with the bundle's labels, score with the truth."""
    ctx, _ = synthetic_run
    out = outputs_from_params(ctx.params)
    raw = ctx.params.get(RAW_DATA)
    truth = TruthModel.load(truth_uri(raw))
    labels = read_bundle(out.bundle).labels
    tables = [_table(uri).to_pydict() for uri in (out.train, out.valid, out.test)]
    split = {c: [v for t in tables for v in t[c]] for c in SPLIT_COLUMNS}
    columns = {raw_col: [labels[raw_col][i] for i in split[idx]] for raw_col, idx in INDEXED_COLUMNS.items()}
    columns.update({c: split[c] for c in ("device_type_id", "hour", "dow")})
    oracle = np.sort(truth.win.probability(columns))
    generated = pq.read_table(storage.join(raw, "truth", "bid_truth.parquet")).to_pydict()
    np.testing.assert_allclose(oracle, np.sort(generated["p_win"]), rtol=1e-12)
    assert 0.6 < rank_auc(np.array(split["label"]), truth.win.probability(columns)) < 0.95


def test_ctr_use_case_labels_impressions_by_clicks(spark: SparkSession, tmp_path: Path) -> None:
    ctx = make_context(tmp_path / "ctr")
    generated = ingest_synthetic(ctx, rows=4_000, seed=5, days=2)
    report = run_features(ctx, "ctr", spark=spark)
    assert report.rows == generated["impressions"]
    assert report.positives == generated["clicks"]
    assert set(report.inputs) == {"imp", "clk"}


def test_bid_filtering_without_bid_logs_says_to_use_ctr(spark: SparkSession, ctx: Context) -> None:
    Path(ctx.params.get(BID_SOURCE)).mkdir(parents=True)
    with pytest.raises(AikError, match="use --use-case ctr"):
        run_features(ctx, "bid-filtering", spark=spark)


def test_s3_parameters_with_local_spark_point_to_emr(spark: SparkSession, ctx: Context) -> None:
    ctx.params.put(BID_SOURCE, "s3://bucket/raw/bid/")
    with pytest.raises(AikError, match="run the job on EMR"):
        run_features(ctx, "bid-filtering", spark=spark)


def test_unknown_use_case_is_refused(spark: SparkSession, ctx: Context) -> None:
    with pytest.raises(AikError, match="unknown use case"):
        job.run_job(spark, job.sources_from_params(ctx.params), outputs_from_params(ctx.params), "cpc")


class _FakeSerializer:
    """Stands in for mleap-spark's JVM serializer (no Maven here): writes the 0.23.3+ layout it produces."""

    labels: ClassVar[dict[str, list[str]]] = {}

    def serializeToBundle(self, model: Any, path: str, dataset: Any) -> None:
        files = {
            "bundle.json": {"uid": "u", "name": "p", "format": "json", "version": "0.25.3", "timestamp": "t"},
            "root/model.json": {"op": "pipeline", "attributes": {"nodes": {"type": "list", "string": ["s"]}}},
            "root/node.json": {"name": "p", "shape": {}},
            "root/s.node/model.json": {
                "op": "string_indexer",
                "attributes": {
                    "labels_length": {"int": len(self.labels)},
                    **{
                        f"labels_array_{i}": {"type": "list", "string": v}
                        for i, v in enumerate(self.labels.values())
                    },
                    "handle_invalid": {"string": "keep"},
                },
            },
            "root/s.node/node.json": {
                "name": "s",
                "shape": {
                    "inputs": [{"port": f"input{i}", "name": c} for i, c in enumerate(self.labels)],
                    "outputs": [
                        {"port": f"output{i}", "name": INDEXED_COLUMNS[c]} for i, c in enumerate(self.labels)
                    ],
                },
            },
        }
        with zipfile.ZipFile(path.removeprefix("jar:file:"), "w") as zf:
            for name, doc in files.items():
                zf.writestr(name, json.dumps(doc))


def test_with_mleap_spark_its_bundle_is_uploaded_and_checked(
    spark: SparkSession, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mleap.pyspark import spark_support

    frame = spark.createDataFrame(
        [("1458", "d1", "1", "2"), ("3358", "d1", "1", "3")],
        "AdvertiserID string, Domain string, RegionID string, CityID string",
    )
    model = fit_indexers(frame)
    monkeypatch.setattr(bundle, "mleap_spark_available", lambda _spark: True)
    monkeypatch.setattr(spark_support, "SimpleSparkSerializer", _FakeSerializer)
    uri = str(tmp_path / "model.zip")
    _FakeSerializer.labels = {c: list(v) for c, v in indexer_labels(model).items()}
    assert write_spark_bundle(spark, model, frame, uri) == "mleap-spark"
    assert read_bundle(uri).labels["AdvertiserID"] == ("1458", "3358")
    _FakeSerializer.labels = {**_FakeSerializer.labels, "Domain": ["other"]}
    with pytest.raises(ArtifactError, match="labels for Domain differ"):
        write_spark_bundle(spark, model, frame, uri)


class _IncompatibleSerializer:
    """mleap-spark built for another Scala: its classes load, its first call fails inside the JVM."""

    def serializeToBundle(self, transformer: Any, path: str, dataset: Any) -> None:
        from pyspark.sql import SparkSession

        jvm = SparkSession.getActiveSession().sparkContext._jvm  # type: ignore[union-attr]
        jvm.java.lang.Class.forName("scala.collection.immutable.ArraySeq$ofRef$NotOnThisScala")


def test_an_unusable_mleap_spark_falls_back_to_the_aik_writer(
    spark: SparkSession, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from mleap.pyspark import spark_support

    frame = spark.createDataFrame(
        [("1458", "d1", "1", "2"), ("3358", "d1", "1", "3"), ("3358", "d2", "1", "3")],
        "AdvertiserID string, Domain string, RegionID string, CityID string",
    )
    model = fit_indexers(frame)
    monkeypatch.setattr(bundle, "mleap_spark_available", lambda _spark: True)
    monkeypatch.setattr(spark_support, "SimpleSparkSerializer", _IncompatibleSerializer)
    uri = str(tmp_path / "model.zip")
    assert write_spark_bundle(spark, model, frame, uri) == "aik.bundle"
    assert read_bundle(uri).labels["AdvertiserID"] == ("3358", "1458")
    assert "cannot write the bundle (Py4JJavaError" in caplog.text


def test_without_mleap_spark_the_aik_writer_is_used(spark: SparkSession) -> None:
    assert not bundle.mleap_spark_available(spark)


def test_line_counts_count_lines_rejects_and_reason_classes(spark: SparkSession) -> None:
    from aik.features.logs import parse_lines

    frame = spark.createDataFrame([(bid_line(), "f"), ("junk", "f")], "value string, source string")
    observed, observation = job.observe_lines(parse_lines(frame, "bid"), "test-lines")
    observed.collect()
    assert job.line_counts(observation) == LineCounts(
        lines=2, accepted=1, rejected=1, reasons={"wrong field count": 1}
    )


def test_cli_reports_a_spark_failure_in_one_line(
    workspace: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import aik.features
    from aik.cli import main

    def broken(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("Job aborted due to stage failure\n\tat org.apache.spark...")

    monkeypatch.setattr(aik.features, "run_features", broken)
    assert main(["--workspace", str(workspace), "features"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1] == (
        "aik features: the Spark job failed: Job aborted due to stage failure (run with -v for the trace)"
    )
