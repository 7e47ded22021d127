"""Artifact storage by URI: `s3://bucket/key` through boto3, local paths and `file://` URIs on disk.

Streaming reads and writes go through smart_open (multipart uploads, ranged reads) so large files
never have to fit in memory; listing, existence and copies use boto3 or the filesystem directly.
Local writes are atomic (temporary file, then rename) so a reader never sees half an artifact.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any
from urllib.parse import unquote, urlparse

from aik.errors import ArtifactError, ArtifactNotFound

_CHUNK = 8 * 1024 * 1024


def is_s3(uri: str) -> bool:
    """True for `s3://` (and `s3a://`, as Spark spells it) URIs."""
    return uri.startswith(("s3://", "s3a://"))


def split_s3(uri: str) -> tuple[str, str]:
    """(bucket, key) of an S3 URI."""
    parsed = urlparse(uri)
    if not parsed.netloc:
        raise ArtifactError(uri, "an S3 URI needs a bucket: s3://bucket/key")
    return parsed.netloc, parsed.path.lstrip("/")


def local_path(uri: str | os.PathLike[str]) -> Path:
    """The filesystem path of a local path or `file://` URI."""
    text = os.fspath(uri)
    if text.startswith("file://"):
        return Path(unquote(urlparse(text).path))
    if "://" in text:
        raise ArtifactError(text, "not a local path or file:// URI")
    return Path(text)


def join(base: str, *parts: str) -> str:
    """Join path parts onto a URI or local path with exactly one `/` between them."""
    out = base
    for part in parts:
        out = out.rstrip("/") + "/" + part.lstrip("/")
    return out


def _s3_client() -> Any:
    from aik import aws

    return aws.client("s3")


def _transport_params() -> dict[str, Any]:
    return {"client": _s3_client()}


@contextlib.contextmanager
def open_uri(uri: str, mode: str = "rb", *, encoding: str | None = None) -> Iterator[IO[Any]]:
    """Open a URI for streaming reads (`rb`/`r`) or writes (`wb`/`w`); compression is never guessed."""
    if mode not in ("rb", "r", "wb", "w"):
        raise ValueError(f"unsupported mode {mode!r}")
    if is_s3(uri):
        import smart_open

        if mode.startswith("r") and not exists(uri):
            raise ArtifactNotFound(uri)
        with smart_open.open(
            uri.replace("s3a://", "s3://", 1),
            mode,
            encoding=encoding if "b" not in mode else None,
            compression="disable",
            transport_params=_transport_params(),
        ) as f:
            yield f
        return
    path = local_path(uri)
    if mode.startswith("r"):
        try:
            f = open(path, mode, encoding=encoding if "b" not in mode else None)  # noqa: SIM115
        except FileNotFoundError as exc:
            raise ArtifactNotFound(uri) from exc
        except IsADirectoryError as exc:
            raise ArtifactError(uri, "is a directory, expected a file") from exc
        with f:
            yield f
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        # mkstemp creates 0600; artifacts are read by other users (the server runs as user 8000)
        os.fchmod(fd, 0o644)
        with os.fdopen(fd, mode, encoding=encoding if "b" not in mode else None) as f:
            yield f
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def read_bytes(uri: str) -> bytes:
    """The whole object (for small artifacts: models, schemas, parameters)."""
    with open_uri(uri, "rb") as f:
        return f.read()


def read_text(uri: str, encoding: str = "utf-8") -> str:
    """The whole object decoded as text."""
    return read_bytes(uri).decode(encoding)


def write_bytes(uri: str, data: bytes) -> None:
    """Write (or replace) an object; locally the replacement is atomic."""
    with open_uri(uri, "wb") as f:
        f.write(data)


def write_text(uri: str, text: str, encoding: str = "utf-8") -> None:
    """Write text (UTF-8 by default)."""
    write_bytes(uri, text.encode(encoding))


def exists(uri: str) -> bool:
    """True when the URI names an existing object/file, or a non-empty prefix/directory."""
    if is_s3(uri):
        bucket, key = split_s3(uri)
        client = _s3_client()
        if key and not key.endswith("/"):
            try:
                client.head_object(Bucket=bucket, Key=key)
                return True
            except client.exceptions.ClientError as exc:
                if exc.response.get("Error", {}).get("Code") not in ("404", "NoSuchKey", "NotFound"):
                    raise
        prefix = key if not key or key.endswith("/") else key + "/"
        resp = client.list_objects_v2(Bucket=bucket, Prefix=prefix, MaxKeys=1)
        return resp.get("KeyCount", 0) > 0
    return local_path(uri).exists()


def list_uris(uri: str, suffix: str = "") -> list[str]:
    """Every object/file under a prefix or directory (recursively), sorted; a single file lists itself."""
    if is_s3(uri):
        bucket, key = split_s3(uri)
        scheme = uri.split("://", 1)[0]
        client = _s3_client()
        out = []
        for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=key):
            for obj in page.get("Contents", []):
                k = obj["Key"]
                rest = k[len(key) :]
                # a prefix without a trailing slash must match a whole path component
                if key and not key.endswith("/") and rest and not rest.startswith("/"):
                    continue
                if not k.endswith("/") and k.endswith(suffix):
                    out.append(f"{scheme}://{bucket}/{k}")
        return sorted(out)
    path = local_path(uri)
    if path.is_file():
        return [os.fspath(uri)] if os.fspath(uri).endswith(suffix) else []
    if not path.exists():
        return []
    prefix = os.fspath(uri).rstrip("/")
    return sorted(
        prefix + "/" + p.relative_to(path).as_posix()
        for p in path.rglob("*")
        if p.is_file() and p.name.endswith(suffix)
    )


def copy(src: str, dst: str) -> None:
    """Copy one object between any two URIs (server-side within S3, streamed otherwise)."""
    if is_s3(src) and is_s3(dst):
        sb, sk = split_s3(src)
        db, dk = split_s3(dst)
        client = _s3_client()
        if not exists(src):
            raise ArtifactNotFound(src)
        client.copy({"Bucket": sb, "Key": sk}, db, dk)
        return
    with open_uri(src, "rb") as fin, open_uri(dst, "wb") as fout:
        shutil.copyfileobj(fin, fout, _CHUNK)


def download(uri: str, dest: str | os.PathLike[str]) -> Path:
    """Copy a URI to a local file (atomically) and return its path."""
    dest_path = Path(dest)
    copy(uri, os.fspath(dest_path))
    return dest_path


def upload(src: str | os.PathLike[str], uri: str) -> None:
    """Copy a local file to a URI."""
    copy(os.fspath(src), uri)


def delete(uri: str) -> None:
    """Remove an object or local file (a missing one is not an error)."""
    if is_s3(uri):
        bucket, key = split_s3(uri)
        _s3_client().delete_object(Bucket=bucket, Key=key)
        return
    with contextlib.suppress(FileNotFoundError):
        local_path(uri).unlink()


def move(src: str, dst: str) -> None:
    """Move one object/file to another URI of the same kind (a rename locally; copy then delete on S3)."""
    if is_s3(src) != is_s3(dst):
        raise ArtifactError(dst, f"cannot move {src} across storage kinds")
    if is_s3(src):
        copy(src, dst)
        delete(src)
        return
    target = local_path(dst)
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.replace(local_path(src), target)
    except FileNotFoundError as exc:
        raise ArtifactNotFound(src) from exc


def delete_tree(uri: str) -> None:
    """Remove every object/file under a prefix or directory, or one object/file (missing: not an error)."""
    if is_s3(uri):
        bucket, _ = split_s3(uri)
        client = _s3_client()
        keys = [split_s3(u)[1] for u in list_uris(uri)]
        for start in range(0, len(keys), 1000):  # delete_objects takes at most 1,000 keys
            batch = [{"Key": k} for k in keys[start : start + 1000]]
            client.delete_objects(Bucket=bucket, Delete={"Objects": batch, "Quiet": True})
        return
    path = local_path(uri)
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    else:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


def size(uri: str) -> int:
    """Bytes of one object/file (ArtifactNotFound when missing)."""
    if is_s3(uri):
        bucket, key = split_s3(uri)
        client = _s3_client()
        try:
            return int(client.head_object(Bucket=bucket, Key=key)["ContentLength"])
        except client.exceptions.ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
                raise ArtifactNotFound(uri) from exc
            raise
    try:
        return local_path(uri).stat().st_size
    except FileNotFoundError as exc:
        raise ArtifactNotFound(uri) from exc


def fingerprint(uri: str) -> str:
    """A cheap change marker of one object (S3 ETag; local inode, mtime_ns and size), for polling watchers.

    The inode makes an atomic replace (write a temporary file, rename it over) visible even when the
    new file has the same size and the clock did not move.
    """
    if is_s3(uri):
        bucket, key = split_s3(uri)
        client = _s3_client()
        try:
            head = client.head_object(Bucket=bucket, Key=key)
        except client.exceptions.ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
                raise ArtifactNotFound(uri) from exc
            raise
        return f"etag:{head['ETag'].strip(chr(34))}:{head.get('ContentLength', '')}"
    try:
        st = local_path(uri).stat()
    except FileNotFoundError as exc:
        raise ArtifactNotFound(uri) from exc
    return f"stat:{st.st_ino}:{st.st_mtime_ns}:{st.st_size}"
