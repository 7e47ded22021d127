"""The parameter store: SSM in AWS, an embedded file-backed store locally, with the same `/aik/...` names."""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, Protocol

from aik.errors import AikError, ParameterNotFound
from aik.settings import Settings

PREFIX = "/aik/"
DATA_BUCKET = "/aik/data-bucket"
DOWNLOAD_URL = "/aik/download_url"
RAW_DATA = "/aik/raw_data"
BID_SOURCE = "/aik/bid_source"
IMP_SOURCE = "/aik/imp_source"
OUTPUT_TRAIN = "/aik/output_train"
OUTPUT_VALID = "/aik/output_verify"  # the validation split; the parameter keeps its name (a contract)
OUTPUT_TEST = "/aik/output_test"
OUTPUT_TRANSFORMED = "/aik/output_transformed"
PIPELINE_MODEL = "/aik/pipelineModelArtifactPath"
PIPELINE_SCHEMA = "/aik/pipelineModelArtifactSchemaPath"
INFERENCE_DATA = "/aik/inference_data"
XGBOOST_PATH = "/aik/xgboost/path"
MONITORING_CONFIG = "/aik/monitoring/config"
CURRENT_REGION = "/aik/current-region"
#: The pointer: URI of the live release's manifest (`aik promote` and `aik train` switch it).
RELEASE_LIVE = "/aik/release/live"
#: The running A/B experiment (JSON: name, salt, arms of release and share); aik.experiments owns it.
EXPERIMENT = "/aik/experiment"
#: The SageMaker managed MLflow tracking server's ARN (the sagemaker-emr stack, with `aik:mlflow`).
MLFLOW_TRACKING_SERVER = "/aik/mlflow/tracking-server-arn"
#: Image and role of `aik backtest --on sagemaker`'s training jobs (JSON; the loop stack writes it).
BACKTEST_JOBS = "/aik/backtest/sagemaker"
#: The name prefix of those jobs (the stacks scope their IAM to it).
BACKTEST_JOB_PREFIX = "aik-backtest"

#: The iPinYou dataset on Kaggle (notebook 1 downloads it with the user's Kaggle credentials).
DEFAULT_DOWNLOAD_URL = "https://www.kaggle.com/datasets/lastsummer/ipinyou"

#: Parameters `aik configure` (notebook 0) derives from the data bucket, relative to its root.
#: The two stacks create `/aik/data-bucket`, `/aik/monitoring/config` and `/aik/current-region`.
DERIVED_KEYS: Mapping[str, str] = {
    RAW_DATA: "raw/ipinyou-data/",
    BID_SOURCE: "raw/ipinyou-data/bid/",
    IMP_SOURCE: "raw/ipinyou-data/imp/",
    OUTPUT_TRAIN: "processed/sample/train/",
    OUTPUT_VALID: "processed/sample/valid/",
    OUTPUT_TEST: "processed/sample/test/",
    OUTPUT_TRANSFORMED: "processed/sample/transformed/",
    PIPELINE_MODEL: "pipeline-model/model.zip",
    PIPELINE_SCHEMA: "pipeline-model/pipeline-schema.json",
    INFERENCE_DATA: "pipeline-model/inference-data/",
    XGBOOST_PATH: "binary-model/xgboost.bin",
}


class ParameterStore(Protocol):
    """Get and put string parameters by their `/aik/...` names: what every consumer of a store is typed with.

    `LocalParameterStore` and `SsmParameterStore` implement it (checked by mypy where `open_store` returns
    them as one); tests and callers may pass any object with these methods.
    """

    backend: str

    def get(self, name: str) -> str:
        """Return the value, or raise `ParameterNotFound` naming the parameter and backend."""
        ...

    def put(self, name: str, value: str) -> None:
        """Create or overwrite a parameter."""
        ...

    def put_many(self, values: Mapping[str, str]) -> None:
        """Create or overwrite several parameters."""
        ...

    def get_all(self, prefix: str = PREFIX) -> dict[str, str]:
        """Every parameter under `prefix`, by name."""
        ...


def _check_name(name: str) -> None:
    if not name.startswith(PREFIX) or name.endswith("/") or "//" in name:
        raise AikError(f"invalid parameter name {name!r}: names look like {PREFIX}raw_data")


class LocalParameterStore:
    """Parameters in one JSON file in the workspace: atomic replace, and an exclusive lock around updates.

    The lock file makes read-modify-write safe when several processes (the CLI, the server's watcher,
    a notebook) write at once; readers never see a half-written file because writes go to a
    temporary file that replaces the store in one rename.
    """

    backend = "local"

    def __init__(self, path: Path) -> None:
        self.path = Path(path)

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path.with_suffix(self.path.suffix + ".lock"), "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def _load(self) -> dict[str, str]:
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return {}
        except UnicodeDecodeError as exc:
            raise AikError(f"local parameter store {self.path} is corrupt: not UTF-8 ({exc.reason})") from exc
        except OSError as exc:
            raise AikError(
                f"cannot read the local parameter store {self.path}: {exc.strerror or exc}"
            ) from exc
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise AikError(f"local parameter store {self.path} is corrupt: {exc}") from exc
        if not isinstance(data, dict):
            raise AikError(f"local parameter store {self.path} is corrupt: not a JSON object")
        return {str(k): str(v) for k, v in data.items()}

    def _save(self, data: Mapping[str, str]) -> None:
        fd, tmp = tempfile.mkstemp(prefix=".parameters.", dir=self.path.parent)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                json.dump(dict(sorted(data.items())), f, indent=2)
                f.write("\n")
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, self.path)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            raise

    def get(self, name: str) -> str:
        """Return the value, or raise `ParameterNotFound`."""
        _check_name(name)
        data = self._load()
        if name not in data:
            raise ParameterNotFound(name, "local", location=str(self.path))
        return data[name]

    def put(self, name: str, value: str) -> None:
        """Create or overwrite a parameter under the store's lock."""
        self.put_many({name: value})

    def put_many(self, values: Mapping[str, str]) -> None:
        """Write several parameters in one atomic update."""
        for name in values:
            _check_name(name)
        try:
            with self._locked():
                data = self._load()
                data.update({k: str(v) for k, v in values.items()})
                self._save(data)
        except OSError as exc:
            raise AikError(
                f"cannot write the local parameter store {self.path}: {exc.strerror or exc}"
            ) from exc

    def get_all(self, prefix: str = PREFIX) -> dict[str, str]:
        """Every parameter whose name starts with `prefix`."""
        return {k: v for k, v in sorted(self._load().items()) if k.startswith(prefix)}


class SsmParameterStore:
    """AWS Systems Manager Parameter Store (String, Standard tier) through boto3."""

    backend = "aws"

    def __init__(self, client: Any | None = None, region: str | None = None) -> None:
        if client is None:
            from aik import aws

            client = aws.client("ssm", region)
        self._ssm: Any = client  # a boto3 client (untyped: the kit does not install boto3-stubs)

    def get(self, name: str) -> str:
        """Return the value, or raise `ParameterNotFound` with how to create it."""
        _check_name(name)
        try:
            return self._ssm.get_parameter(Name=name)["Parameter"]["Value"]
        except self._ssm.exceptions.ParameterNotFound as exc:
            hint = (
                "deploy the aik/sagemaker-emr stack"
                if name == DATA_BUCKET
                else "deploy the aik/filtering stack"
                if name in (MONITORING_CONFIG, CURRENT_REGION)
                else "run notebook 0_store_configuration or `aik --backend aws configure`"
            )
            raise ParameterNotFound(name, "aws (SSM)", hint) from exc

    def put(self, name: str, value: str) -> None:
        """Create or overwrite a String parameter in the Standard tier."""
        _check_name(name)
        self._ssm.put_parameter(Name=name, Value=value, Type="String", Overwrite=True, Tier="Standard")

    def put_many(self, values: Mapping[str, str]) -> None:
        """Write several parameters (SSM has no batch put)."""
        for name, value in values.items():
            self.put(name, value)

    def get_all(self, prefix: str = PREFIX) -> dict[str, str]:
        """Every parameter under `prefix`, recursively."""
        paginator = self._ssm.get_paginator("get_parameters_by_path")
        out: dict[str, str] = {}
        for page in paginator.paginate(Path=prefix.rstrip("/") or "/", Recursive=True):
            for p in page["Parameters"]:
                out[p["Name"]] = p["Value"]
        return dict(sorted(out.items()))


def open_store(settings: Settings) -> ParameterStore:
    """The parameter store for the chosen backend."""
    if settings.backend == "aws":
        return SsmParameterStore(region=settings.region)
    return LocalParameterStore(settings.workspace / "parameters.json")


def bucket_root(data_bucket: str) -> str:
    """The URI root of the data bucket: `s3://name/` in AWS, an absolute local directory otherwise."""
    if data_bucket.startswith("s3://"):
        return data_bucket.rstrip("/") + "/"
    if data_bucket.startswith("file://") or data_bucket.startswith("/"):
        return data_bucket.rstrip("/") + "/"
    return f"s3://{data_bucket}/"


def derive_parameters(data_bucket: str, download_url: str = DEFAULT_DOWNLOAD_URL) -> dict[str, str]:
    """Every parameter notebook 0 writes, derived from the data bucket (name or local directory)."""
    root = bucket_root(data_bucket)
    values = {name: root + key for name, key in DERIVED_KEYS.items()}
    values[DOWNLOAD_URL] = download_url
    return values


def configure(store: ParameterStore, settings: Settings) -> dict[str, str]:
    """Notebook 0: write every derived parameter; locally, create `/aik/data-bucket` on first use."""
    try:
        bucket = store.get(DATA_BUCKET)
    except ParameterNotFound:
        if settings.backend == "aws":
            raise
        local_bucket = settings.workspace / "bucket"
        local_bucket.mkdir(parents=True, exist_ok=True)
        bucket = str(local_bucket)
        store.put(DATA_BUCKET, bucket)
    values = derive_parameters(bucket)
    store.put_many(values)
    return {DATA_BUCKET: bucket, **values}
