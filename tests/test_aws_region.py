"""The aws backend's region: --region, then AWS_REGION, then boto3's default, then the instance's (IMDSv2)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from aik import aws, storage
from aik.context import Context
from aik.errors import AikError
from aik.params import SsmParameterStore
from aik.settings import Settings

TOKEN = "imds-test-token"


class _Imds(BaseHTTPRequestHandler):
    """The two IMDSv2 calls botocore makes: PUT a session token, GET the availability zone with it."""

    zone = "eu-west-3b"

    def do_PUT(self) -> None:
        if self.path == "/latest/api/token" and self.headers.get("X-aws-ec2-metadata-token-ttl-seconds"):
            self._reply(200, TOKEN)
        else:
            self._reply(400, "")

    def do_GET(self) -> None:
        if self.headers.get("X-aws-ec2-metadata-token") != TOKEN:
            self._reply(401, "")  # IMDSv2 only: no token, no answer
        elif self.path.rstrip("/") == "/latest/meta-data/placement/availability-zone":
            self._reply(200, self.zone)
        else:
            self._reply(404, "")

    def _reply(self, status: int, body: str) -> None:
        data = body.encode()
        self.send_response(status)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def no_configured_region(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """An EMR node's situation: no region in the environment or in a config file."""
    for var in ("AWS_REGION", "AWS_DEFAULT_REGION"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", f"{tmp_path}/no-config")


@pytest.fixture
def imds(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A metadata service on a local port, where botocore looks for it (AWS_EC2_METADATA_SERVICE_ENDPOINT)."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Imds)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    monkeypatch.setenv("AWS_EC2_METADATA_SERVICE_ENDPOINT", f"http://127.0.0.1:{server.server_port}/")
    monkeypatch.delenv("AWS_EC2_METADATA_DISABLED", raising=False)
    yield "eu-west-3"
    server.shutdown()
    server.server_close()


def test_without_any_configured_region_the_instance_metadata_gives_it(
    no_configured_region: None, imds: str
) -> None:
    assert aws.region() == imds


def test_the_ssm_client_of_an_emr_node_gets_the_instance_region(
    no_configured_region: None, imds: str
) -> None:
    store = SsmParameterStore()
    assert store._ssm.meta.region_name == imds


def test_aws_region_wins_over_boto3s_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_REGION", "ap-south-1")
    assert aws.region() == "ap-south-1"


def test_an_explicit_region_wins_over_the_environment_and_the_instance(
    monkeypatch: pytest.MonkeyPatch, imds: str
) -> None:
    monkeypatch.setenv("AWS_REGION", "ap-south-1")
    assert aws.region("eu-central-1") == "eu-central-1"


def test_no_region_anywhere_is_a_clear_error(
    no_configured_region: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    with pytest.raises(AikError, match="no AWS region: pass --region"):
        aws.region()


def test_a_context_with_a_region_puts_the_storage_s3_client_in_it() -> None:
    assert storage._s3_client().meta.region_name == "us-east-1"  # conftest's AWS_DEFAULT_REGION
    Context(Settings(backend="aws", region="eu-west-1"))
    assert storage._s3_client().meta.region_name == "eu-west-1"
