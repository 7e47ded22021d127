"""An emulated AWS endpoint (moto in server mode) that whole commands and servers reach over HTTP."""

from __future__ import annotations

import os
import subprocess
import sys
import urllib.request
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from aik.params import DATA_BUCKET as DATA_BUCKET_PARAMETER
from aik.params import DERIVED_KEYS, LocalParameterStore

REGION = "us-east-1"
DATA_BUCKET = "aik-data-e2e"
ROOT = f"s3://{DATA_BUCKET}/"


@dataclass(frozen=True)
class MotoEndpoint:
    """The running moto server: its URL, the environment that points real clients at it, boto3 clients."""

    url: str

    @property
    def env(self) -> dict[str, str]:
        """The environment of a process that must talk to this endpoint only (fake credentials)."""
        env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "AIK_"))}
        env.update(
            AWS_ENDPOINT_URL=self.url,
            AWS_ACCESS_KEY_ID="testing",
            AWS_SECRET_ACCESS_KEY="testing",
            AWS_DEFAULT_REGION=REGION,
            AWS_EC2_METADATA_DISABLED="true",
            OMP_WAIT_POLICY="PASSIVE",
        )
        return env

    def client(self, service: str, region: str = REGION) -> Any:
        """A boto3 client of the endpoint (what the test checks with)."""
        import boto3

        return boto3.client(
            service,
            endpoint_url=self.url,
            region_name=region,
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        )

    def run(
        self, args: Sequence[str], *, env: Mapping[str, str] | None = None, timeout: float = 600
    ) -> subprocess.CompletedProcess[str]:
        """`python -m <args>` against the endpoint; fails the test with its output on a non-zero exit."""
        done = subprocess.run(
            [sys.executable, "-m", *args],
            env={**self.env, **(env or {})},
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        if done.returncode != 0:
            pytest.fail(f"{' '.join(args)} exited {done.returncode}:\n{done.stdout}\n{done.stderr}")
        return done


@pytest.fixture(scope="module")
def moto_endpoint() -> Iterator[MotoEndpoint]:
    """moto's ThreadedMotoServer on a free local port, with the data bucket and `/aik/data-bucket` the
    `aik/sagemaker-emr` stack would have created."""
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = MotoEndpoint(f"http://{host}:{port}")
    # moto's backends are global to the process: a second module's server would see the first's state
    urllib.request.urlopen(urllib.request.Request(f"{endpoint.url}/moto-api/reset", method="POST")).close()
    endpoint.client("s3").create_bucket(Bucket=DATA_BUCKET)
    endpoint.client("ssm").put_parameter(Name="/aik/data-bucket", Value=DATA_BUCKET, Type="String")
    yield endpoint
    server.stop()


def ssm_parameters(endpoint: MotoEndpoint, region: str = REGION) -> dict[str, str]:
    """Every `/aik/...` parameter in the endpoint's SSM."""
    pages = endpoint.client("ssm", region).get_paginator("get_parameters_by_path")
    pages = pages.paginate(Path="/aik", Recursive=True)
    return {p["Name"]: p["Value"] for page in pages for p in page["Parameters"]}


def s3_keys(endpoint: MotoEndpoint, prefix: str) -> list[str]:
    """Every key of the data bucket under `prefix`."""
    pages = endpoint.client("s3").get_paginator("list_objects_v2").paginate(Bucket=DATA_BUCKET, Prefix=prefix)
    return sorted(o["Key"] for page in pages for o in page.get("Contents", []))


def features_to_s3(endpoint: MotoEndpoint, workspace: Path) -> None:
    """Notebook 2's outputs at the S3 URIs of the parameters, made by the feature job in local mode.

    Spark here has no hadoop-aws, so it can neither read nor write `s3://`: the raw logs ingested to
    S3 are copied into a local workspace (with the source parameters pointing at the copy), the job
    runs there (`aik features`), and every file it wrote is uploaded under the same key.
    """
    local_env = {"AIK_WORKSPACE": str(workspace)}
    endpoint.run(["aik", "configure"], env=local_env)
    store = LocalParameterStore(workspace / "parameters.json")
    local_root = store.get(DATA_BUCKET_PARAMETER).rstrip("/") + "/"
    s3 = endpoint.client("s3")
    for key in s3_keys(endpoint, "raw/"):
        target = Path(local_root + key)
        target.parent.mkdir(parents=True, exist_ok=True)
        s3.download_file(DATA_BUCKET, key, str(target))
    aws_params = ssm_parameters(endpoint)
    store.put_many(
        {n: local_root + v.removeprefix(ROOT) for n, v in aws_params.items() if v.startswith(ROOT)}
    )
    endpoint.run(["aik", "features"], env=local_env)
    for top in {key.split("/", 1)[0] for key in DERIVED_KEYS.values()} - {"raw", "binary-model"}:
        for path in sorted(Path(local_root, top).rglob("*")):
            if path.is_file():
                s3.upload_file(str(path), DATA_BUCKET, path.relative_to(local_root).as_posix())
