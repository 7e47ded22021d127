"""Releases: the immutable {bundle, schema, model, metrics, data window, code version} behind one pointer.

A release is written once under `<data bucket>/releases/<id>/`, its manifest `release.json` last, and
goes live when the pointer parameter `/aik/release/live` is switched to the manifest's URI (always the
last write of a publish). The server follows the pointer and loads whole releases only. docs/releases.md
has the layout and the reasons (and why not MLflow's or SageMaker's registry).

Over 400 lines on purpose: writing, listing, promoting and pruning releases share the manifest
format, which has one owner here.
"""

from __future__ import annotations

import contextlib
import hashlib
import itertools
import json
import logging
import shutil
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from aik import __version__, storage
from aik.bundle import FeatureIndexer, indexer_from_specs, parse_bundle
from aik.errors import AikError, ArtifactError, ArtifactNotFound, ParameterNotFound
from aik.params import DATA_BUCKET, RELEASE_LIVE, XGBOOST_PATH, ParameterStore, bucket_root
from aik.schema import INDEXED_COLUMNS

log = logging.getLogger(__name__)

MANIFEST = "release.json"
REPORTS_DIR = "reports"
RELEASES_DIR = "releases"
SCHEMA_VERSION = 1
#: The xgboost attribute binding a booster to the indexer labels (codes) it was trained on.
BOOSTER_ATTRIBUTE = "aik_indexer_sha256"
#: Release file roles -> file names inside a release.
FILE_NAMES: Mapping[str, str] = {
    "bundle": "model.zip",
    "schema": "pipeline-schema.json",
    "model": "xgboost.bin",
    "metrics": "metrics.json",
}
#: Metrics copied into the manifest's headline (what `aik releases` lists).
HEADLINE = ("auc", "logloss", "base_rate", "mean_prediction", "oracle_auc", "oracle_ratio", "rows")
DEFAULT_KEEP = 10
#: The booster's family; every other family is a PyTorch model served from its ONNX export.
BOOSTER_FAMILY = "xgboost"
#: The file role the server scores a neural release from (its `model` is the `torch.save` file).
ONNX_ROLE = "onnx"


class ReleaseError(AikError):
    """A release that cannot be used: incomplete, altered, or its booster and bundle do not match."""


def sha256(data: bytes) -> str:
    """Hex sha256 of bytes."""
    return hashlib.sha256(data).hexdigest()


def indexer_sha256(indexer: FeatureIndexer) -> str:
    """Digest of the bundle's labels in code order: two bundles with the same digest give the same codes."""
    labels = {column: list(indexer.labels.get(column, ())) for column in INDEXED_COLUMNS}
    return sha256(json.dumps(labels, ensure_ascii=False, separators=(",", ":")).encode("utf-8"))


def bundle_indexer_sha256(bundle: bytes, uri: str = "<bytes>") -> str:
    """`indexer_sha256` of a bundle zip's bytes."""
    return indexer_sha256(indexer_from_specs(parse_bundle(bundle, uri)))


def code_version() -> dict[str, str]:
    """The kit's version, and the git commit of its source tree when it runs from a checkout."""
    out = {"aik_version": __version__}
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        commit = subprocess.run(
            ["git", "-C", str(Path(__file__).resolve().parent), "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            timeout=5,
            check=False,
        ).stdout.strip()
        if len(commit) == 40:
            out["git_commit"] = commit
    return out


@dataclass(frozen=True)
class ReleaseFile:
    """One file of a release: its name inside the release, digest and size."""

    path: str
    sha256: str
    bytes: int


@dataclass(frozen=True)
class Release:
    """A release as its manifest describes it; `uri` is the release's prefix (ends with `/`)."""

    id: str
    uri: str
    created_at: str
    files: dict[str, ReleaseFile]
    indexer_sha256: str
    data: dict[str, Any] = field(default_factory=dict)
    code: dict[str, str] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)
    gates: dict[str, Any] = field(default_factory=dict)
    #: The model family (`aik train --model`): `xgboost`, or a PyTorch family served through ONNX.
    family: str = BOOSTER_FAMILY

    @property
    def served_role(self) -> str:
        """The role of the file the server scores: the booster, or a neural model's ONNX export
        (ReleaseError when the release has none)."""
        if self.family == BOOSTER_FAMILY:
            return "model"
        if ONNX_ROLE not in self.files:
            raise ReleaseError(f"release {self.id} ({self.family}) has no ONNX export to serve")
        return ONNX_ROLE

    @property
    def manifest_uri(self) -> str:
        """The URI the pointer holds when this release is live."""
        return storage.join(self.uri, MANIFEST)

    def file_uri(self, role: str) -> str:
        """The URI of one file (`bundle`, `schema`, `model`, `metrics`)."""
        return storage.join(self.uri, self.files[role].path)

    @property
    def passed(self) -> bool:
        """Whether every gate passed when the release was built."""
        return bool(self.gates.get("passed"))

    def to_dict(self) -> dict[str, Any]:
        """The manifest document."""
        return {
            "schema_version": SCHEMA_VERSION,
            "id": self.id,
            "created_at": self.created_at,
            "family": self.family,
            "files": {role: vars(f) for role, f in self.files.items()},
            "indexer_sha256": self.indexer_sha256,
            "data": self.data,
            "code": self.code,
            "metrics": self.metrics,
            "gates": self.gates,
        }

    @classmethod
    def from_manifest(cls, doc: Mapping[str, Any], manifest_uri: str) -> Release:
        """Parse a manifest (ReleaseError naming the URI when it is not one)."""
        try:
            files = {role: ReleaseFile(**f) for role, f in doc["files"].items()}
            family = str(doc.get("family") or _family_of_old_manifest(files))
            missing = [role for role in FILE_NAMES if role not in files]
            if missing:
                raise ReleaseError(f"release manifest {manifest_uri} lists no {', '.join(missing)}")
            return cls(
                id=str(doc["id"]),
                uri=manifest_uri.rsplit("/", 1)[0] + "/",
                created_at=str(doc["created_at"]),
                files=files,
                indexer_sha256=str(doc["indexer_sha256"]),
                data=dict(doc.get("data") or {}),
                code=dict(doc.get("code") or {}),
                metrics=dict(doc.get("metrics") or {}),
                gates=dict(doc.get("gates") or {}),
                family=family,
            )
        except (KeyError, TypeError, AttributeError) as exc:
            raise ReleaseError(f"{manifest_uri} is not a release manifest (missing or bad {exc})") from exc


def _family_of_old_manifest(files: Mapping[str, ReleaseFile]) -> str:
    """Manifests written before they named the family: a booster, or an unnamed neural model."""
    model = files.get("model")
    return BOOSTER_FAMILY if model is None or model.path == FILE_NAMES["model"] else "neural"


def releases_root(store: ParameterStore) -> str:
    """`<data bucket>/releases/`."""
    return storage.join(bucket_root(store.get(DATA_BUCKET)), RELEASES_DIR) + "/"


def release_id(model: bytes, now: datetime | None = None, root: str | None = None) -> str:
    """Dated and content-addressed: `YYYYMMDDTHHMMSSZ-<first 10 hex of the model's sha256>`.

    Under `root`, the same model released again within the same second (a re-evaluation of its
    file) takes the first free of `-2`, `-3`, ...: ids stay unique and still sort by creation.
    """
    stamp = (now or datetime.now(UTC)).strftime("%Y%m%dT%H%M%SZ")
    base = f"{stamp}-{sha256(model)[:10]}"
    if root is None:
        return base
    candidates = (base if n == 1 else f"{base}-{n}" for n in itertools.count(1))
    return next(rid for rid in candidates if not storage.exists(storage.join(root, rid, MANIFEST)))


def write_release(
    root: str,
    *,
    bundle: bytes,
    schema: bytes,
    model: bytes,
    metrics: Mapping[str, Any],
    family: str = BOOSTER_FAMILY,
    model_name: str | None = None,
    extras: Mapping[str, tuple[str, bytes]] | None = None,
    plots: Mapping[str, bytes] | None = None,
    data: Mapping[str, Any] | None = None,
    gates: Mapping[str, Any] | None = None,
    now: datetime | None = None,
    rid: str | None = None,
) -> Release:
    """Write a release's files, then its manifest (last: a release without one is incomplete).

    `family` is the model's (`xgboost` by default); `model_name` names a model file other than a
    booster (a PyTorch family's `model.pt`). `extras` adds files by role: role -> (file name, bytes);
    a neural family's release is served from its ONNX export, role `onnx`. `rid` is the id chosen
    when the candidate was made (its model URI names it); by default the first free one.
    """
    created = now or datetime.now(UTC)
    rid = rid or release_id(model, created, root)
    prefix = storage.join(root, rid) + "/"
    if storage.exists(storage.join(prefix, MANIFEST)):
        raise ReleaseError(f"release {rid} already exists at {prefix}")
    contents = {
        "bundle": bundle,
        "schema": schema,
        "model": model,
        "metrics": (json.dumps(metrics, indent=2) + "\n").encode("utf-8"),
    }
    for name, png in (plots or {}).items():
        storage.write_bytes(storage.join(prefix, REPORTS_DIR, name), png)
    files: dict[str, ReleaseFile] = {}
    names = {**FILE_NAMES, "model": model_name or FILE_NAMES["model"]}
    for role, (name, payload) in (extras or {}).items():
        names[role] = name
        contents[role] = payload
    for role, payload in contents.items():
        storage.write_bytes(storage.join(prefix, names[role]), payload)
        files[role] = ReleaseFile(names[role], sha256(payload), len(payload))
    release = Release(
        id=rid,
        uri=prefix,
        created_at=created.isoformat(timespec="seconds"),
        files=files,
        indexer_sha256=bundle_indexer_sha256(bundle, storage.join(prefix, FILE_NAMES["bundle"])),
        data=dict(data or {}),
        code=code_version(),
        metrics={k: metrics.get(k) for k in HEADLINE if k in metrics},
        gates=dict(gates or {}),
        family=family,
    )
    storage.write_text(release.manifest_uri, json.dumps(release.to_dict(), indent=2) + "\n")
    log.info("release %s written to %s", rid, prefix)
    return release


def read_release(manifest_uri: str) -> Release:
    """The release whose manifest is at `manifest_uri`."""
    try:
        doc = json.loads(storage.read_bytes(manifest_uri))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ReleaseError(f"{manifest_uri} is not a release manifest ({exc})") from exc
    if not isinstance(doc, dict):
        raise ReleaseError(f"{manifest_uri} is not a release manifest (not a JSON object)")
    return Release.from_manifest(doc, manifest_uri)


def list_releases(root: str) -> list[Release]:
    """Every complete release under `root`, newest first (ids sort by creation time)."""
    out = []
    for uri in storage.list_uris(root, suffix=MANIFEST):
        if uri.rsplit("/", 1)[-1] != MANIFEST:
            continue
        try:
            out.append(read_release(uri))
        except AikError as exc:
            log.warning("skipping %s: %s", uri, exc)
    return sorted(out, key=lambda r: r.id, reverse=True)


def _release_dirs(root: str) -> set[str]:
    """Ids of every directory under `root`, complete or not."""
    base = root.rstrip("/") + "/"
    return {uri[len(base) :].split("/", 1)[0] for uri in storage.list_uris(root) if uri.startswith(base)}


def live_uri(store: ParameterStore) -> str | None:
    """The pointer's value (the live release's manifest URI), or None when no release was promoted."""
    try:
        return store.get(RELEASE_LIVE)
    except ParameterNotFound:
        return None


def live(store: ParameterStore) -> Release | None:
    """The live release, or None."""
    uri = live_uri(store)
    return read_release(uri) if uri else None


def find(root: str, ref: str) -> Release:
    """A release by id, unique id prefix, or manifest URI."""
    if ref.endswith(MANIFEST):
        return read_release(ref)
    matches = [r for r in list_releases(root) if r.id == ref] or [
        r for r in list_releases(root) if r.id.startswith(ref)
    ]
    if not matches:
        raise ReleaseError(f"no release {ref!r} under {root} (`aik releases` lists them)")
    if len(matches) > 1:
        raise ReleaseError(f"{ref!r} names {len(matches)} releases: {', '.join(r.id for r in matches)}")
    return matches[0]


def booster_binding(model: bytes, uri: str) -> str | None:
    """The booster's `aik_indexer_sha256` attribute (None when it has none)."""
    import xgboost as xgb

    booster = xgb.Booster()
    try:
        booster.load_model(bytearray(model))
    except xgb.core.XGBoostError as exc:
        raise ArtifactError(uri, f"not an xgboost model ({str(exc).strip().splitlines()[0]})") from exc
    return booster.attr(BOOSTER_ATTRIBUTE)


def onnx_binding(data: bytes, uri: str, family: str) -> str | None:
    """The ONNX model's `aik_indexer_sha256` metadata (None when it has none); ReleaseError when its
    metadata names another family than the release's, `OnnxRuntimeMissing` without onnxruntime."""
    from aik import onnx_model

    meta = onnx_model.metadata(onnx_model.session(data, uri))
    named = meta.get(onnx_model.FAMILY_KEY)
    if named is not None and named != family:
        raise ReleaseError(f"the ONNX model {uri} is a {named} model, its release says {family}")
    return meta.get(onnx_model.BINDING_KEY)


def verify(release: Release) -> dict[str, bytes]:
    """Read every file and check it against the manifest and the served model against the bundle; the
    bytes."""
    contents: dict[str, bytes] = {}
    for role, f in release.files.items():
        uri = release.file_uri(role)
        data = storage.read_bytes(uri)
        if sha256(data) != f.sha256:
            raise ReleaseError(
                f"release {release.id}: {uri} does not match its manifest "
                f"(sha256 {sha256(data)[:12]}, manifest {f.sha256[:12]})"
            )
        contents[role] = data
    role = release.served_role
    served_uri = release.file_uri(role)
    if release.family == BOOSTER_FAMILY:
        binding = booster_binding(contents[role], served_uri)
    else:
        binding = onnx_binding(contents[role], served_uri, release.family)
    check_binding(
        bundle_indexer_sha256(contents["bundle"], release.file_uri("bundle")),
        binding,
        bundle_uri=release.file_uri("bundle"),
        model_uri=served_uri,
        required=True,
        kind="booster" if release.family == BOOSTER_FAMILY else "model",
    )
    return contents


def check_binding(
    bundle_digest: str,
    booster_digest: str | None,
    *,
    bundle_uri: str,
    model_uri: str,
    required: bool,
    kind: str = "booster",
) -> None:
    """Refuse a bundle whose codes are not the ones the model was trained on (ReleaseError saying so).

    `kind` names the model in the message: `booster`, or `model` for a neural release's ONNX file
    (whose digest is its metadata property of the same name).
    """
    if booster_digest is None:
        if required:
            raise ReleaseError(
                f"the {kind} {model_uri} does not say which bundle it was trained on "
                f"(no {BOOSTER_ATTRIBUTE} {'attribute' if kind == 'booster' else 'metadata'}; "
                "releases are built by `aik train`)"
            )
        return
    if booster_digest != bundle_digest:
        raise ReleaseError(
            f"the bundle {bundle_uri} does not belong to the {kind} {model_uri}: the {kind} was trained "
            f"on indexer labels {booster_digest[:12]}, the bundle's are {bundle_digest[:12]}"
        )


def promote(
    store: ParameterStore, release: Release, *, mirror: bool = True, warnings: list[str] | None = None
) -> Release:
    """Check a release and switch the pointer to it (the last write); then mirror a booster.

    The mirror at `/aik/xgboost/path` keeps the original's flow (a server reading the three original
    parameters) working; it is one atomic write after the pointer, never read by a pointer-following
    server. Once the pointer is switched the release IS live, so a failed mirror does not raise: it is
    logged and appended to `warnings` (the caller reports it and still succeeds). A neural release is
    not mirrored (that flow serves boosters only): the parameter keeps the last booster.
    """
    if not release.passed:
        failed = [c for c in release.gates.get("checks", []) if not c.get("passed")]
        reasons = "; ".join(f"{c.get('name')}: {c.get('message')}" for c in failed) or "no gate verdicts"
        raise ReleaseError(f"release {release.id} did not pass the gates ({reasons})")
    contents = verify(release)
    store.put(RELEASE_LIVE, release.manifest_uri)
    log.info("release %s (%s) is live (%s)", release.id, release.family, release.manifest_uri)
    if mirror and release.family == BOOSTER_FAMILY:
        try:
            _mirror(store, contents["model"])
        except Exception as exc:  # after the switch: bookkeeping, whatever it raised
            after_publish(
                warnings,
                f"release {release.id} is live, but copying its booster to {XGBOOST_PATH} failed: {exc} "
                "(servers that read the original parameters keep the previous booster)",
            )
    return release


def _mirror(store: ParameterStore, model: bytes) -> None:
    """Write the live booster to `/aik/xgboost/path` (when that parameter exists)."""
    try:
        mirror_uri = store.get(XGBOOST_PATH)
    except ParameterNotFound:
        return
    storage.write_bytes(mirror_uri, model)
    clean_temporaries(mirror_uri.rsplit("/", 1)[0])


def after_publish(warnings: list[str] | None, message: str) -> None:
    """A step after the pointer switch failed: the release is live all the same; log and keep the message."""
    log.warning("%s", message)
    if warnings is not None:
        warnings.append(message)


def rollback(
    store: ParameterStore, root: str, to: str | None = None, *, warnings: list[str] | None = None
) -> tuple[Release | None, Release]:
    """Promote `to`, or the newest release older than the live one that passes the checks."""
    current = live(store)
    if to is not None:
        return current, promote(store, find(root, to), warnings=warnings)
    if current is None:
        raise ReleaseError("no live release to roll back from (`aik promote RELEASE` sets one)")
    problems = []
    for release in list_releases(root):
        if release.id >= current.id:
            continue
        try:
            return current, promote(store, release, warnings=warnings)
        except AikError as exc:
            problems.append(f"{release.id}: {exc}")
            log.warning("rollback: skipping %s: %s", release.id, exc)
    detail = f" ({'; '.join(problems)})" if problems else ""
    raise ReleaseError(f"no usable release older than the live one {current.id}{detail}")


def prune(store: ParameterStore, root: str, keep: int = DEFAULT_KEEP) -> list[str]:
    """Delete all but the newest `keep` releases (and incomplete ones); never the live release."""
    if keep < 1:
        raise AikError(f"keep at least one release (got {keep})")
    current = live_uri(store)
    complete = [r.id for r in list_releases(root)]
    keepers = set(complete[:keep])
    if current:
        keepers.add(current.rstrip("/").rsplit("/", 2)[-2])
    removed = []
    for rid in sorted(_release_dirs(root)):
        if rid in keepers:
            continue
        if rid not in complete and rid >= (complete[0] if complete else ""):
            continue  # newer than every complete release: possibly being written right now
        prefix = storage.join(root, rid) + "/"
        # the manifest first: a half-deleted release is then incomplete, never a broken complete one
        storage.delete(storage.join(prefix, MANIFEST))
        for uri in storage.list_uris(prefix):
            storage.delete(uri)
        if not storage.is_s3(prefix):
            shutil.rmtree(storage.local_path(prefix), ignore_errors=True)
        removed.append(rid)
    if removed:
        log.info("pruned %d release(s): %s", len(removed), ", ".join(removed))
    return removed


def clean_temporaries(directory: str) -> list[Path]:
    """Remove temporary files a killed local write left in a directory (`.<name>.<random>`)."""
    if storage.is_s3(directory):
        return []  # an S3 PUT leaves no partial object
    path = storage.local_path(directory)
    removed = []
    if path.is_dir():
        names = {p.name for p in path.iterdir() if not p.name.startswith(".")}
        for p in path.iterdir():
            if p.is_file() and p.name.startswith(".") and any(p.name.startswith(f".{n}.") for n in names):
                with contextlib.suppress(FileNotFoundError):
                    p.unlink()
                    removed.append(p)
    return removed


def describe_release(release: Release, *, live_id: str | None = None) -> str:
    """One line for `aik releases`."""
    m = release.metrics
    parts = [
        ("*" if release.id == live_id else " ") + " " + release.id,
        f"{release.family:<9}",
        f"auc {m['auc']:.4f}" if isinstance(m.get("auc"), float) else "auc -",
        f"oracle {m['oracle_ratio']:.3f}" if isinstance(m.get("oracle_ratio"), float) else "",
        f"logloss {m['logloss']:.4f}" if isinstance(m.get("logloss"), float) else "",
        "gates passed" if release.passed else "gates FAILED",
    ]
    window = release.data.get("window") or {}
    if window:
        parts.append(f"train {window.get('first_day')}..{window.get('last_day')}")
        if window.get("test_days"):
            parts.append(f"test {window['test_days'][0]}..{window['test_days'][-1]}")
    return "  ".join(p for p in parts if p)


def latest_or_none(root: str) -> Release | None:
    """The newest complete release, or None."""
    releases = list_releases(root)
    return releases[0] if releases else None


def require_live(store: ParameterStore) -> Release:
    """The live release, or a one-line error saying none was promoted."""
    release = live(store)
    if release is None:
        raise ArtifactNotFound(RELEASE_LIVE, "live release pointer")
    return release
