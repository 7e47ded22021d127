"""An emulated AWS endpoint (moto in server mode) that whole commands and servers reach over HTTP."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pytest

REGION = "us-east-1"
DATA_BUCKET = "aik-data-e2e"


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
    endpoint.client("s3").create_bucket(Bucket=DATA_BUCKET)
    endpoint.client("ssm").put_parameter(Name="/aik/data-bucket", Value=DATA_BUCKET, Type="String")
    yield endpoint
    server.stop()
