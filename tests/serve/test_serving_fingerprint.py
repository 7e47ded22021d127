"""`storage.fingerprint`: a change marker for polling watchers, locally and on S3."""

from __future__ import annotations

import os
from pathlib import Path

import boto3
import pytest

from aik import storage
from aik.errors import ArtifactNotFound


def test_local_fingerprint_changes_on_an_atomic_replace_even_with_the_same_size(tmp_path: Path) -> None:
    uri = str(tmp_path / "model.bin")
    storage.write_bytes(uri, b"aaaa")
    first = storage.fingerprint(uri)
    assert storage.fingerprint(uri) == first
    stat = os.stat(uri)
    storage.write_bytes(uri, b"bbbb")
    os.utime(uri, ns=(stat.st_atime_ns, stat.st_mtime_ns))  # same size, same mtime: only the inode differs
    assert storage.fingerprint(uri) != first
    assert storage.fingerprint(f"file://{uri}") == storage.fingerprint(uri)


def test_s3_fingerprint_follows_the_etag(aws: None) -> None:
    boto3.client("s3").create_bucket(Bucket="aik-test")
    uri = "s3://aik-test/binary-model/xgboost.bin"
    storage.write_bytes(uri, b"one")
    first = storage.fingerprint(uri)
    assert first.startswith("etag:")
    storage.write_bytes(uri, b"two")
    assert storage.fingerprint(uri) != first


@pytest.mark.parametrize("kind", ["local", "s3"])
def test_fingerprint_of_a_missing_object_names_it(kind: str, tmp_path: Path, aws: None) -> None:
    boto3.client("s3").create_bucket(Bucket="aik-test")
    uri = str(tmp_path / "nope.bin") if kind == "local" else "s3://aik-test/nope.bin"
    with pytest.raises(ArtifactNotFound, match=uri):
        storage.fingerprint(uri)
