"""Reading the parquet splits: Spark's layout, sampling, bad rows and bad files, local and S3."""

from __future__ import annotations

import logging
from pathlib import Path

import boto3
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from aik.errors import AikError, ArtifactError, ArtifactNotFound
from aik.schema import FEATURE_COLUMNS, SPLIT_COLUMNS
from aik.train.data import check_codes, count_rows, read_split


def _frame(n: int, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "label": rng.integers(0, 2, n),
            "dow": rng.integers(1, 8, n),
            "hour": rng.integers(0, 24, n),
            "IndexAdvertiserID": rng.integers(0, 5, n).astype(float),
            "IndexDomain": rng.integers(0, 50, n).astype(float),
            "IndexRegionID": rng.integers(0, 9, n).astype(float),
            "IndexCityID": rng.integers(0, 30, n).astype(float),
            "device_type_id": rng.integers(0, 7, n),
        }
    )


def _chunks(df: pd.DataFrame, parts: int) -> list[pd.DataFrame]:
    return [df.iloc[rows] for rows in np.array_split(np.arange(len(df)), parts)]


def _write_spark_dir(directory: Path, df: pd.DataFrame, parts: int = 3) -> None:
    directory.mkdir(parents=True)
    for i, chunk in enumerate(_chunks(df, parts)):
        chunk.to_parquet(directory / f"part-{i:05d}-abc.snappy.parquet", index=False)
    (directory / "_SUCCESS").write_bytes(b"")
    (directory / "._SUCCESS.crc").write_bytes(b"crc")
    temporary = directory / "_temporary" / "0"
    temporary.mkdir(parents=True)
    df.head(5).to_parquet(temporary / "part-99999-unfinished.parquet", index=False)


def test_reads_every_part_in_feature_order_and_skips_spark_markers(tmp_path: Path) -> None:
    df = _frame(1000)
    _write_spark_dir(tmp_path / "train", df)
    split = read_split(str(tmp_path / "train"))
    assert split.rows == split.total_rows == 1000
    np.testing.assert_array_equal(split.y, df["label"].to_numpy())
    np.testing.assert_array_equal(split.X, df[list(FEATURE_COLUMNS)].to_numpy(np.float32))
    assert split.columns == FEATURE_COLUMNS
    assert not split.sampled


def test_max_rows_samples_a_seeded_uniform_subset(tmp_path: Path) -> None:
    _write_spark_dir(tmp_path / "s", _frame(20_000))
    a = read_split(str(tmp_path / "s"), max_rows=2000, seed=4)
    b = read_split(str(tmp_path / "s"), max_rows=2000, seed=4)
    assert a.sampled and 1800 <= a.rows <= 2000
    np.testing.assert_array_equal(a.X, b.X)
    assert abs(a.y.mean() - 0.5) < 0.05


def test_rows_without_label_are_set_aside_and_counted(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    df = _frame(100).astype({"label": "float64"})
    df.loc[[3, 7], "label"] = np.nan
    _write_spark_dir(tmp_path / "s", df, parts=1)
    with caplog.at_level(logging.WARNING):
        split = read_split(str(tmp_path / "s"))
    assert (split.rows, split.dropped_rows) == (98, 2)
    assert "2 rows without a label set aside" in caplog.text


def test_numbers_stored_as_strings_are_read_as_numbers(tmp_path: Path) -> None:
    df = _frame(50)
    df["hour"] = df["hour"].map(lambda h: f"{h:02d}")
    _write_spark_dir(tmp_path / "s", df, parts=1)
    split = read_split(str(tmp_path / "s"))
    np.testing.assert_array_equal(split.X[:, 1], df["hour"].astype(int).to_numpy())


def test_text_that_is_not_a_number_is_a_corrupt_artifact(tmp_path: Path) -> None:
    df = _frame(50)
    df["hour"] = "morning"
    _write_spark_dir(tmp_path / "s", df, parts=1)
    with pytest.raises(ArtifactError, match=r"column hour has type \w*string, expected numbers"):
        read_split(str(tmp_path / "s"))


def test_labels_other_than_0_and_1_are_refused(tmp_path: Path) -> None:
    df = _frame(50)
    df.loc[0, "label"] = 2
    _write_spark_dir(tmp_path / "s", df, parts=1)
    with pytest.raises(ArtifactError, match="not 0 or 1"):
        read_split(str(tmp_path / "s"))


def test_missing_column_names_the_part_file(tmp_path: Path) -> None:
    _write_spark_dir(tmp_path / "s", _frame(50).drop(columns=["IndexCityID"]), parts=1)
    with pytest.raises(ArtifactError, match=r"part-00000-abc.snappy.parquet.*missing columns IndexCityID"):
        count_rows(str(tmp_path / "s"))


def test_a_file_that_is_not_parquet_is_reported_with_its_uri(tmp_path: Path) -> None:
    (tmp_path / "s").mkdir()
    (tmp_path / "s" / "part-00000.parquet").write_bytes(b"not parquet at all")
    with pytest.raises(ArtifactError, match=r"part-00000\.parquet: not a readable parquet file"):
        read_split(str(tmp_path / "s"))


def test_missing_split_says_to_run_the_feature_job(tmp_path: Path) -> None:
    with pytest.raises(ArtifactNotFound, match="aik features"):
        read_split(str(tmp_path / "nothing"))


def test_split_above_the_memory_budget_asks_for_max_rows(tmp_path: Path) -> None:
    _write_spark_dir(tmp_path / "s", _frame(1000), parts=1)
    with pytest.raises(AikError, match="--max-rows"):
        read_split(str(tmp_path / "s"), memory_budget=10_000)
    assert read_split(str(tmp_path / "s"), max_rows=30, memory_budget=10_000).rows <= 30


def test_extra_pipeline_columns_are_reported_as_the_pipelines_features(tmp_path: Path) -> None:
    df = _frame(20)
    df["AdSlotWidth"] = 300
    _write_spark_dir(tmp_path / "s", df, parts=1)
    split = read_split(str(tmp_path / "s"))
    assert split.columns == (*FEATURE_COLUMNS, "AdSlotWidth")
    assert split.X.shape == (20, len(FEATURE_COLUMNS))


def test_index_codes_must_be_whole_non_negative_numbers(tmp_path: Path) -> None:
    df = _frame(20)
    df.loc[4, "IndexDomain"] = 2.5
    _write_spark_dir(tmp_path / "s", df, parts=1)
    with pytest.raises(ArtifactError, match=r"IndexDomain holds 2\.5"):
        check_codes(read_split(str(tmp_path / "s")), ("IndexDomain",))


def test_reads_a_split_from_s3(aws: None, tmp_path: Path) -> None:
    s3 = boto3.client("s3")
    s3.create_bucket(Bucket="aik-data")
    df = _frame(3000)
    for i, chunk in enumerate(_chunks(df, 2)):
        buf = pa.BufferOutputStream()
        pq.write_table(pa.Table.from_pandas(chunk[list(SPLIT_COLUMNS)], preserve_index=False), buf)
        s3.put_object(
            Bucket="aik-data",
            Key=f"processed/sample/train/part-{i}.parquet",
            Body=buf.getvalue().to_pybytes(),
        )
    s3.put_object(Bucket="aik-data", Key="processed/sample/train/_SUCCESS", Body=b"")
    split = read_split("s3://aik-data/processed/sample/train/")
    assert split.rows == 3000
    np.testing.assert_array_equal(split.y, df["label"].to_numpy())
