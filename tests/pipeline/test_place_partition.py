"""The splits' files moved from the partitioned write's staging directory to each split's URI, on disk
and on S3 (moto)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest

from aik import storage
from aik.features.job import place_partition


@pytest.fixture(params=["local", "s3"])
def root(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A storage root on disk or in a moto S3 bucket."""
    if request.param == "local":
        yield str(tmp_path / "bucket")
    else:
        from moto import mock_aws

        with mock_aws():
            boto3.client("s3").create_bucket(Bucket="aik-test")
            yield "s3://aik-test"


def test_a_partitions_files_replace_what_the_split_uri_held(root: str) -> None:
    staging = storage.join(root, "processed/_aik-splits-1")
    for name in ("split=0/part-0.parquet", "split=0/part-1.parquet", "split=1/part-0.parquet"):
        storage.write_text(storage.join(staging, name), name)
    train = storage.join(root, "processed/train/")
    storage.write_text(storage.join(train, "part-old.parquet"), "an earlier run's rows")
    place_partition(storage.join(staging, "split=0"), train)
    assert storage.list_uris(train) == [
        storage.join(train, name) for name in ("_SUCCESS", "part-0.parquet", "part-1.parquet")
    ]
    assert storage.read_text(storage.join(train, "part-1.parquet")) == "split=0/part-1.parquet"
    assert storage.list_uris(staging) == [storage.join(staging, "split=1/part-0.parquet")]
