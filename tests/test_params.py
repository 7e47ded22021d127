"""Both parameter-store backends: the local file store and SSM (against moto)."""

from __future__ import annotations

import json
import multiprocessing
from pathlib import Path

import boto3
import pytest

from aik import params
from aik.errors import AikError, ParameterNotFound
from aik.params import LocalParameterStore, SsmParameterStore, configure, derive_parameters
from aik.settings import Settings

#: Every parameter notebook 0 writes (DESIGN.md), plus the data bucket.
CONFIGURED = {
    "/aik/data-bucket",
    "/aik/download_url",
    "/aik/raw_data",
    "/aik/bid_source",
    "/aik/imp_source",
    "/aik/output_train",
    "/aik/output_verify",
    "/aik/output_test",
    "/aik/output_transformed",
    "/aik/pipelineModelArtifactPath",
    "/aik/pipelineModelArtifactSchemaPath",
    "/aik/inference_data",
    "/aik/xgboost/path",
}


def test_local_store_round_trip_and_overwrite(tmp_path: Path) -> None:
    store = LocalParameterStore(tmp_path / "p.json")
    store.put("/aik/raw_data", "/a")
    store.put("/aik/raw_data", "/b")
    assert store.get("/aik/raw_data") == "/b"
    assert store.get_all() == {"/aik/raw_data": "/b"}


def test_local_store_missing_parameter_names_it_and_the_fix(tmp_path: Path) -> None:
    store = LocalParameterStore(tmp_path / "p.json")
    with pytest.raises(ParameterNotFound) as err:
        store.get("/aik/xgboost/path")
    assert "/aik/xgboost/path" in str(err.value)
    assert "local" in str(err.value)
    assert "aik configure" in str(err.value)


def test_local_store_rejects_names_outside_the_prefix(tmp_path: Path) -> None:
    with pytest.raises(AikError, match="invalid parameter name"):
        LocalParameterStore(tmp_path / "p.json").put("raw_data", "x")


def test_local_store_reports_a_corrupt_file(tmp_path: Path) -> None:
    path = tmp_path / "p.json"
    path.write_text("{not json")
    with pytest.raises(AikError, match="corrupt"):
        LocalParameterStore(path).get("/aik/raw_data")


def _writer(path: str, worker: int, count: int) -> None:
    store = LocalParameterStore(Path(path))
    for i in range(count):
        store.put(f"/aik/test/w{worker}/p{i}", f"{worker}-{i}")


def test_local_store_concurrent_writers_lose_nothing(tmp_path: Path) -> None:
    path = tmp_path / "p.json"
    workers, count = 4, 40
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_writer, args=(str(path), w, count)) for w in range(workers)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    values = LocalParameterStore(path).get_all()
    assert len(values) == workers * count
    assert values["/aik/test/w3/p39"] == "3-39"
    json.loads(path.read_text())  # still one valid document
    assert not list(tmp_path.glob(".parameters.*")), "temporary files left behind"


def test_derive_parameters_for_an_s3_bucket() -> None:
    values = derive_parameters("my-bucket")
    assert values["/aik/pipelineModelArtifactPath"] == "s3://my-bucket/pipeline-model/model.zip"
    assert values["/aik/xgboost/path"] == "s3://my-bucket/binary-model/xgboost.bin"
    assert values["/aik/output_test"] == "s3://my-bucket/processed/sample/test/"
    assert values["/aik/download_url"].startswith("https://")


def test_configure_locally_creates_the_bucket_directory_and_every_parameter(tmp_path: Path) -> None:
    settings = Settings(backend="local", workspace=tmp_path / "ws")
    store = params.open_store(settings)
    written = configure(store, settings)
    assert set(written) == CONFIGURED
    assert Path(written["/aik/data-bucket"]).is_dir()
    assert written["/aik/raw_data"].startswith(str(tmp_path / "ws" / "bucket"))
    assert store.get_all() == dict(sorted(written.items()))


def test_configure_keeps_an_existing_local_bucket(tmp_path: Path) -> None:
    settings = Settings(backend="local", workspace=tmp_path / "ws")
    store = params.open_store(settings)
    store.put("/aik/data-bucket", str(tmp_path / "elsewhere"))
    assert configure(store, settings)["/aik/raw_data"] == str(tmp_path / "elsewhere") + "/raw/ipinyou-data/"


def test_ssm_store_round_trip_overwrite_and_listing(aws: None) -> None:
    store = SsmParameterStore(region="us-east-1")
    store.put("/aik/raw_data", "s3://b/raw/")
    store.put("/aik/raw_data", "s3://b/raw2/")
    store.put("/aik/xgboost/path", "s3://b/x.bin")
    assert store.get("/aik/raw_data") == "s3://b/raw2/"
    assert store.get_all() == {"/aik/raw_data": "s3://b/raw2/", "/aik/xgboost/path": "s3://b/x.bin"}
    tier = boto3.client("ssm").describe_parameters()["Parameters"][0]["Tier"]
    assert tier == "Standard"


def test_ssm_store_missing_parameter_says_how_to_create_it(aws: None) -> None:
    store = SsmParameterStore(region="us-east-1")
    with pytest.raises(ParameterNotFound, match=r"/aik/data-bucket.*aws.*aik/sagemaker-emr"):
        store.get("/aik/data-bucket")
    with pytest.raises(ParameterNotFound, match="notebook 0_store_configuration"):
        store.get("/aik/raw_data")


def test_configure_on_aws_derives_from_the_stack_bucket(aws: None, tmp_path: Path) -> None:
    settings = Settings(backend="aws", workspace=tmp_path, region="us-east-1")
    store = params.open_store(settings)
    with pytest.raises(ParameterNotFound):
        configure(store, settings)  # the stack has not created /aik/data-bucket
    store.put("/aik/data-bucket", "aik-data-123")
    written = configure(store, settings)
    assert set(written) == CONFIGURED
    assert store.get("/aik/inference_data") == "s3://aik-data-123/pipeline-model/inference-data/"
