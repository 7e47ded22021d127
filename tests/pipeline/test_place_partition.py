"""The splits' files moved from the partitioned write's staging directory to each split's URI, on disk
and on S3 (moto)."""

from __future__ import annotations

from aik import storage
from aik.features.job import place_partition


def test_a_partitions_files_replace_what_the_split_uri_held(storage_root: str) -> None:
    staging = storage.join(storage_root, "processed/_aik-splits-1")
    for name in ("split=0/part-0.parquet", "split=0/part-1.parquet", "split=1/part-0.parquet"):
        storage.write_text(storage.join(staging, name), name)
    train = storage.join(storage_root, "processed/train/")
    storage.write_text(storage.join(train, "part-old.parquet"), "an earlier run's rows")
    place_partition(storage.join(staging, "split=0"), train)
    assert storage.list_uris(train) == [
        storage.join(train, name) for name in ("_SUCCESS", "part-0.parquet", "part-1.parquet")
    ]
    assert storage.read_text(storage.join(train, "part-1.parquet")) == "split=0/part-1.parquet"
    assert storage.list_uris(staging) == [storage.join(staging, "split=1/part-0.parquet")]
