"""The aws backend end to end against an emulated AWS (moto server, reached through AWS_ENDPOINT_URL).

Real commands in their own processes, real boto3/smart_open clients, real HTTP: `aik --backend aws
configure`, `ingest` and `train` (reading the splits from S3, publishing to S3 + SSM), and the filtering
server started with `--backend aws`, answering an original Thrift client and swapping when a new model
is published. One step cannot run against it: Spark here has no hadoop-aws, so it cannot read or write
`s3://`. The feature job runs locally on the raw logs copied from S3, and its outputs are uploaded to
the URIs the SSM parameters name (`features_to_s3`; on EMR, EMRFS gives Spark `s3://` and the job
writes there itself).
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from aik.params import (
    DERIVED_KEYS,
    INFERENCE_DATA,
    OUTPUT_TRAIN,
    XGBOOST_PATH,
)

from .conftest import DATA_BUCKET as BUCKET
from .conftest import ROOT, MotoEndpoint, features_to_s3, s3_keys, ssm_parameters

pytestmark = pytest.mark.slow

ORIGINAL_IDL = Path(__file__).resolve().parents[1] / "serve" / "original_api.thrift"


@pytest.fixture(scope="module")
def configured(moto_endpoint: MotoEndpoint) -> dict[str, str]:
    moto_endpoint.run(["aik", "--backend", "aws", "configure"])
    return ssm_parameters(moto_endpoint)


@pytest.fixture(scope="module")
def ingested(moto_endpoint: MotoEndpoint, configured: dict[str, str]) -> dict[str, str]:
    moto_endpoint.run(["aik", "--backend", "aws", "ingest", "--synthetic", "--rows", "12000", "--seed", "11"])
    return ssm_parameters(moto_endpoint)


@pytest.fixture(scope="module")
def features_in_s3(
    moto_endpoint: MotoEndpoint, ingested: dict[str, str], tmp_path_factory: pytest.TempPathFactory
) -> dict[str, str]:
    features_to_s3(moto_endpoint, tmp_path_factory.mktemp("spark-ws"))
    return ssm_parameters(moto_endpoint)


@pytest.fixture(scope="module")
def trained(moto_endpoint: MotoEndpoint, features_in_s3: dict[str, str]) -> dict[str, str]:
    moto_endpoint.run(["aik", "--backend", "aws", "train", "--no-baselines", "--seed", "0"])
    return ssm_parameters(moto_endpoint)


class Server:
    """`python -m filtering_server --backend aws` in a child process, ready once it wrote its ready file."""

    def __init__(self, endpoint: MotoEndpoint, workspace: Path) -> None:
        self.ready_file = workspace / "ready.json"
        self.log_path = workspace / "server.log"
        self._log = open(self.log_path, "w")  # noqa: SIM115 (closed in stop)
        self.proc = subprocess.Popen(
            [
                *(sys.executable, "-m", "filtering_server", "--backend=aws", "--workspace", str(workspace)),
                *("--host", "127.0.0.1", "--port", "0", "--ready-file", str(self.ready_file)),
                *("--no-metrics", "--watch-interval", "0.5"),
            ],
            env=endpoint.env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 300
        while not self.ready_file.exists():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                pytest.fail(f"the server did not start:\n{self.log()}")
            time.sleep(0.2)
        self.port = int(json.loads(self.ready_file.read_text())["port"])

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()


@pytest.fixture(scope="module")
def server(
    moto_endpoint: MotoEndpoint, trained: dict[str, str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Server]:
    # an empty workspace: whatever it serves can only come from SSM and S3
    running = Server(moto_endpoint, tmp_path_factory.mktemp("server-ws"))
    yield running
    running.stop()


@pytest.fixture(scope="module")
def requests(moto_endpoint: MotoEndpoint, features_in_s3: dict[str, str]) -> list[Any]:
    """Original BidRequests built from the inference data the emulator replays."""
    import thriftpy2

    api = thriftpy2.load(str(ORIGINAL_IDL), module_name="original_e2e_thrift")
    prefix = features_in_s3[INFERENCE_DATA].removeprefix(ROOT)
    key = next(k for k in s3_keys(moto_endpoint, prefix) if k.endswith(".json"))
    body = moto_endpoint.client("s3").get_object(Bucket=BUCKET, Key=key)["Body"].read().decode()
    rows = [json.loads(line) for line in body.splitlines()[:25]]
    return [
        api.BidRequest(
            bidId=r["BidID"],
            dayOfWeek=int(r["dow"]),
            hour=r["hour"],
            regionId=r["RegionID"],
            cityId=r["CityID"],
            domainId=r["Domain"],
            advertiserId=r["AdvertiserID"],
            biddingPrice=int(r["BiddingPrice"]),
            payingPrice=int(r["PayingPrice"] or 0),
            userAgent=r["UserAgent"] or "",
        )
        for r in rows
    ]


def likelihoods(port: int, requests: list[Any]) -> list[float]:
    import thriftpy2
    from thriftpy2.rpc import make_client

    api = thriftpy2.load(str(ORIGINAL_IDL), module_name="original_e2e_thrift")
    client = make_client(api.BidRequestFilter, "127.0.0.1", port, timeout=30_000)
    try:
        return [client.filter(r).likelihoodToBid for r in requests]
    finally:
        client.close()


def test_configure_writes_every_derived_parameter_to_ssm(configured: dict[str, str]) -> None:
    assert configured[OUTPUT_TRAIN] == f"{ROOT}processed/sample/train/"
    assert {name: configured[name] for name in DERIVED_KEYS} == {n: ROOT + k for n, k in DERIVED_KEYS.items()}


def test_ingest_writes_the_raw_logs_to_s3(moto_endpoint: MotoEndpoint, ingested: dict[str, str]) -> None:
    keys = s3_keys(moto_endpoint, "raw/ipinyou-data/")
    assert any(k.startswith("raw/ipinyou-data/bid/bid.") for k in keys)
    assert any(k.startswith("raw/ipinyou-data/imp/imp.") for k in keys)


def test_train_reads_the_splits_from_s3_and_publishes_the_model_to_s3_and_ssm(
    moto_endpoint: MotoEndpoint, features_in_s3: dict[str, str], trained: dict[str, str]
) -> None:
    changed = {name: value for name, value in trained.items() if features_in_s3.get(name) != value}
    assert changed, "train published no parameter"
    keys = s3_keys(moto_endpoint, "")
    assert trained[XGBOOST_PATH].removeprefix(ROOT) in keys
    metrics_key = next(k for k in keys if k.endswith("metrics.json"))
    body = moto_endpoint.client("s3").get_object(Bucket=BUCKET, Key=metrics_key)["Body"]
    metrics = json.loads(body.read())
    assert metrics["rows"] > 0 and metrics["auc"] > 0.55


def test_the_server_loads_from_s3_and_answers_an_original_thrift_client(
    server: Server, requests: list[Any], trained: dict[str, str]
) -> None:
    scores = likelihoods(server.port, requests)
    assert len(scores) == len(requests) and all(0.0 < s < 1.0 for s in scores)
    assert len(set(scores)) > 1
    assert ROOT in server.log()  # it names where it loaded from: its own workspace is empty


def test_the_server_swaps_when_a_new_model_is_published(
    moto_endpoint: MotoEndpoint, server: Server, requests: list[Any]
) -> None:
    before = likelihoods(server.port, requests)
    moto_endpoint.run(["aik", "--backend", "aws", "train", "--no-baselines", "--seed", "5", "--max-depth=3"])
    deadline = time.monotonic() + 120
    after = before
    while after == before and time.monotonic() < deadline:
        time.sleep(0.5)
        after = likelihoods(server.port, requests)
    assert after != before, f"no swap within 120 s:\n{server.log()}"
    assert "swapped model" in server.log()


def test_every_client_of_the_cli_uses_the_region_given(moto_endpoint: MotoEndpoint) -> None:
    """SSM parameters are per region: in another region the stack's `/aik/data-bucket` does not exist."""
    done = subprocess.run(
        [sys.executable, "-m", "aik", "--backend", "aws", "--region", "eu-west-1", "configure"],
        env=moto_endpoint.env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 1
    assert "/aik/data-bucket" in done.stderr and "aik/sagemaker-emr" in done.stderr
    assert ssm_parameters(moto_endpoint, "eu-west-1") == {}
