"""Shared fixtures: no test may reach AWS (fake credentials, moto for the AWS side)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest

# xgboost's and scikit-learn's OpenMP threads spin while idle by default, which slows them 30-50x when
# the CPU is shared (see aik/train/__init__.py); set before any test module loads libgomp
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

#: The real iPinYou samples: $AIK_IPINYOU_SAMPLES (for a clone elsewhere), else ../shared/data/ipinyou.
_BESIDE_THE_CLONE = Path(__file__).resolve().parents[2] / "shared" / "data" / "ipinyou"
SHARED_DATA = Path(os.environ.get("AIK_IPINYOU_SAMPLES") or _BESIDE_THE_CLONE)


@pytest.fixture(autouse=True)
def _no_real_aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Fake credentials and a fixed region, so a stray call can never reach a real account.

    No metadata service either (a test that wants one serves its own), and the process-wide region
    of `aik.aws` is reset around each test.
    """
    from aik import aws

    for var in (
        "AWS_PROFILE",
        "AWS_SESSION_TOKEN",
        "AWS_ENDPOINT_URL",
        "AWS_REGION",
        "AIK_BACKEND",
        "AIK_WORKSPACE",
    ):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION", "1")
    aws.use_region(None)
    aws.instance_region.cache_clear()
    yield
    aws.use_region(None)
    aws.instance_region.cache_clear()


@pytest.fixture
def aws() -> Iterator[None]:
    """moto's in-memory AWS for the duration of a test."""
    from moto import mock_aws

    with mock_aws():
        yield


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    """An empty local workspace directory."""
    ws = tmp_path / "ws"
    ws.mkdir()
    return ws


@pytest.fixture
def ipinyou_season2() -> Path:
    """The real iPinYou season-2 sample in ../shared/data (skips when absent; never copied into the repo)."""
    path = SHARED_DATA / "season2"
    if not path.is_dir():
        pytest.skip(f"real iPinYou sample not found at {path} (set AIK_IPINYOU_SAMPLES to its parent)")
    return path


@pytest.fixture(params=["local", "file", "s3"])
def storage_root(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A storage root of each kind aik.storage takes: a path, a file:// URI, a moto S3 bucket."""
    if request.param == "local":
        yield str(tmp_path / "root")
    elif request.param == "file":
        yield f"file://{tmp_path}/root"
    else:
        from moto import mock_aws

        with mock_aws():
            boto3.client("s3").create_bucket(Bucket="aik-test")
            yield "s3://aik-test/root"
