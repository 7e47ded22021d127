"""Storage by URI: local paths, file:// URIs and S3 (against moto) behave the same."""

from __future__ import annotations

from pathlib import Path

import pytest

from aik import storage
from aik.errors import ArtifactError, ArtifactNotFound


def test_write_read_exists_round_trip(storage_root: str) -> None:
    uri = storage.join(storage_root, "a/b.txt")
    assert not storage.exists(uri)
    storage.write_text(uri, "héllo")
    assert storage.exists(uri)
    assert storage.read_text(uri) == "héllo"
    assert storage.exists(storage.join(storage_root, "a"))  # a non-empty prefix/directory exists


def test_missing_artifact_error_names_the_uri(storage_root: str) -> None:
    uri = storage.join(storage_root, "missing/model.zip")
    with pytest.raises(ArtifactNotFound, match=r"missing/model\.zip"):
        storage.read_bytes(uri)


def test_list_is_recursive_sorted_and_filters_by_suffix(storage_root: str) -> None:
    for name in ("d/x.json", "d/sub/y.json", "d/z.txt", "dx/other.json"):
        storage.write_text(storage.join(storage_root, name), name)
    listed = storage.list_uris(storage.join(storage_root, "d"), suffix=".json")
    assert listed == [storage.join(storage_root, "d/sub/y.json"), storage.join(storage_root, "d/x.json")]
    assert storage.list_uris(storage.join(storage_root, "nothing")) == []


def test_streaming_write_and_read_of_a_large_object(storage_root: str) -> None:
    uri = storage.join(storage_root, "big.bin")
    chunk = bytes(range(256)) * 4096  # 1 MiB
    with storage.open_uri(uri, "wb") as f:
        for _ in range(12):  # 12 MiB: several multipart parts on S3
            f.write(chunk)
    total = 0
    with storage.open_uri(uri, "rb") as f:
        while block := f.read(1 << 20):
            total += len(block)
    assert total == 12 * len(chunk)


def test_copy_between_backends(storage_root: str, tmp_path: Path) -> None:
    src = tmp_path / "src.txt"
    src.write_text("payload")
    dst = storage.join(storage_root, "copied/dst.txt")
    storage.upload(src, dst)
    storage.copy(dst, storage.join(storage_root, "copied/again.txt"))
    out = storage.download(storage.join(storage_root, "copied/again.txt"), tmp_path / "back" / "out.txt")
    assert out.read_text() == "payload"


def test_delete_is_idempotent(storage_root: str) -> None:
    uri = storage.join(storage_root, "gone.txt")
    storage.write_text(uri, "x")
    storage.delete(uri)
    storage.delete(uri)
    assert not storage.exists(uri)


def test_local_write_is_atomic_on_failure(tmp_path: Path) -> None:
    target = tmp_path / "model.bin"
    target.write_bytes(b"old")
    with pytest.raises(RuntimeError), storage.open_uri(str(target), "wb") as f:
        f.write(b"half")
        raise RuntimeError("crash mid-write")
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["model.bin"]


def test_local_writes_are_readable_by_other_users(tmp_path: Path) -> None:
    target = tmp_path / "xgboost.bin"
    storage.write_bytes(str(target), b"model")
    assert target.stat().st_mode & 0o777 == 0o644


def test_reading_a_directory_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ArtifactError, match="directory"):
        storage.read_bytes(str(tmp_path))


def test_s3_uri_without_bucket_is_rejected() -> None:
    with pytest.raises(ArtifactError, match="bucket"):
        storage.split_s3("s3:///key")


def test_move_renames_and_removes_the_source(storage_root: str) -> None:
    src, dst = (
        storage.join(storage_root, "staging/part-0.parquet"),
        storage.join(storage_root, "out/train/part-0.parquet"),
    )
    storage.write_text(src, "rows")
    storage.move(src, dst)
    assert storage.read_text(dst) == "rows"
    assert not storage.exists(src)


def test_delete_tree_removes_everything_under_a_prefix_and_nothing_beside_it(storage_root: str) -> None:
    for name in ("out/train/a.parquet", "out/train/sub/b.parquet", "out/train-old/c.parquet"):
        storage.write_text(storage.join(storage_root, name), name)
    storage.delete_tree(storage.join(storage_root, "out/train"))
    storage.delete_tree(storage.join(storage_root, "out/missing"))
    assert storage.list_uris(storage.join(storage_root, "out")) == [
        storage.join(storage_root, "out/train-old/c.parquet")
    ]
