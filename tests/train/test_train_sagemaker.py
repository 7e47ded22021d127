"""The SageMaker path: the job configuration it builds, and the whole run against moto.

moto accepts CreateTrainingJob and reports the job Completed, but runs no container: the one stand-in
is the model.tar.gz the built-in algorithm would upload, made here the way its 3.x container does
(xgboost on the parquet matrix, label column dropped, no feature names, `save_model("xgboost-model")`).
"""

from __future__ import annotations

import io
import json
import tarfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import boto3
import numpy as np
import pandas as pd
import pytest
import xgboost as xgb
from sagemaker.core import image_uris
from train_fixture_data import FixtureSpec

from aik import storage
from aik.context import Context
from aik.errors import AikError, ArtifactError
from aik.schema import FEATURE_COLUMNS
from aik.settings import Settings
from aik.train import TrainOptions, resolve, train_and_publish
from aik.train import sagemaker_job as sm

# the SDK imports its own deprecated shim (sagemaker.train.configs) inside ModelTrainer
pytestmark = pytest.mark.filterwarnings("ignore:sagemaker.train.configs has been moved:DeprecationWarning")

REGION = "us-east-1"
TRAIN = "s3://aik-data/processed/sample/train/"
VALID = "s3://aik-data/processed/sample/valid/"


@pytest.fixture
def role(aws: None, monkeypatch: pytest.MonkeyPatch) -> str:
    """An execution role in moto's IAM (moto lacks iam:SimulatePrincipalPolicy, the SDK's role check)."""
    monkeypatch.setenv("SAGEMAKER_VALIDATE_ROLE", "false")
    trust = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {"Service": "sagemaker.amazonaws.com"},
                "Action": "sts:AssumeRole",
            }
        ],
    }
    iam = boto3.client("iam")
    return iam.create_role(RoleName="aik-training", AssumeRolePolicyDocument=json.dumps(trust))["Role"]["Arn"]


def _request(trainer: Any) -> dict[str, Any]:
    # the CreateTrainingJob request exactly as ModelTrainer.train would send it
    return trainer._create_training_job_args(boto3=True)


def test_hyperparameters_use_the_built_in_algorithms_names() -> None:
    hp = sm.hyperparameters(resolve("numeric"))
    assert hp["lambda"] == "10.0" and "reg_lambda" not in hp
    assert (hp["num_round"], hp["early_stopping_rounds"], hp["objective"]) == (
        "3000",
        "50",
        "binary:logistic",
    )
    assert all(isinstance(v, str) for v in hp.values())
    original = sm.hyperparameters(resolve("original"))
    assert {
        k: original[k] for k in ("max_depth", "eta", "gamma", "min_child_weight", "subsample", "num_round")
    } == {
        "max_depth": "5",
        "eta": "0.2",
        "gamma": "4",
        "min_child_weight": "6",
        "subsample": "0.8",
        "num_round": "50",
    }


def test_the_categorical_default_is_refused_for_the_built_in_algorithm() -> None:
    with pytest.raises(AikError, match="--preset numeric"):
        sm.hyperparameters(resolve("default"))


def test_training_job_request(role: str) -> None:
    trainer = sm.build_trainer(
        sm.SageMakerJob(role=role, instance_type="ml.m5.4xlarge", instance_count=2, max_run_s=3600),
        resolve("numeric"),
        train_uri=TRAIN,
        valid_uri=VALID,
        bucket_uri="aik-data",
        region=REGION,
    )
    req = _request(trainer)
    assert req["AlgorithmSpecification"] == {
        "TrainingInputMode": "Pipe",
        "TrainingImage": image_uris.retrieve("xgboost", REGION, "3.0-5"),
    }
    channels = {c["ChannelName"]: c for c in req["InputDataConfig"]}
    assert set(channels) == {"train", "validation"}
    assert channels["train"]["DataSource"]["S3DataSource"] == {
        "S3DataType": "S3Prefix",
        "S3Uri": TRAIN,
        "S3DataDistributionType": "ShardedByS3Key",
    }
    assert channels["validation"]["DataSource"]["S3DataSource"]["S3DataDistributionType"] == "FullyReplicated"
    for channel in channels.values():
        assert (channel["ContentType"], channel["InputMode"]) == ("application/x-parquet", "Pipe")
    assert req["ResourceConfig"] == {
        "InstanceType": "ml.m5.4xlarge",
        "InstanceCount": 2,
        "VolumeSizeInGB": 30,
    }
    assert req["StoppingCondition"] == {"MaxRuntimeInSeconds": 3600}
    assert req["HyperParameters"] == sm.hyperparameters(resolve("numeric"))
    assert req["OutputDataConfig"]["S3OutputPath"] == "s3://aik-data/sagemaker/xgboost/output/"
    assert req["RoleArn"] == role
    assert "CheckpointConfig" not in req and not req.get("EnableManagedSpotTraining")


def test_spot_training_checkpoints_to_s3_and_bounds_the_wait(role: str) -> None:
    job = sm.SageMakerJob(role=role, spot=True, max_run_s=3600, max_wait_s=7200)
    req = _request(
        sm.build_trainer(
            job,
            resolve("original"),
            train_uri=TRAIN,
            valid_uri=VALID,
            bucket_uri="s3://aik-data/",
            region=REGION,
        )
    )
    assert req["EnableManagedSpotTraining"] is True
    assert req["StoppingCondition"] == {"MaxRuntimeInSeconds": 3600, "MaxWaitTimeInSeconds": 7200}
    assert req["CheckpointConfig"]["S3Uri"] == "s3://aik-data/sagemaker/xgboost/checkpoints/aik-xgboost/"
    with pytest.raises(AikError, match="--max-wait"):
        sm.build_trainer(
            sm.SageMakerJob(role=role, spot=True, max_run_s=3600, max_wait_s=60),
            resolve("original"),
            train_uri=TRAIN,
            valid_uri=VALID,
            bucket_uri="aik-data",
            region=REGION,
        )


def test_local_splits_are_refused(role: str) -> None:
    with pytest.raises(AikError, match="reads from S3"):
        sm.input_channels("/tmp/train", VALID)


def _container_model_tar(frame: pd.DataFrame) -> bytes:
    """What the built-in algorithm uploads: xgboost-model (UBJSON, no feature names) in model.tar.gz."""
    data = frame.to_numpy(np.float32)
    booster = xgb.train(
        {"objective": "binary:logistic", "max_depth": 2, "eta": 0.3},
        xgb.DMatrix(data[:, 1:], label=data[:, 0]),
        60,
    )
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        model = bytes(booster.save_raw("ubj"))
        info = tarfile.TarInfo("xgboost-model")
        info.size = len(model)
        tar.addfile(info, io.BytesIO(model))
    return buf.getvalue()


def test_model_tar_becomes_the_contract_model() -> None:
    rng = np.random.default_rng(0)
    frame = pd.DataFrame(rng.integers(0, 5, (300, 8)), columns=["label", *FEATURE_COLUMNS]).clip(
        upper=1, lower=0
    )
    booster = sm.booster_from_model_tar(_container_model_tar(frame), "s3://b/model.tar.gz")
    assert booster.feature_names == list(FEATURE_COLUMNS)
    assert booster.feature_types == ["q"] * 7
    with pytest.raises(ArtifactError, match=r"not a model\.tar\.gz"):
        sm.booster_from_model_tar(b"nope", "s3://b/model.tar.gz")


def test_sagemaker_run_end_to_end_against_moto(
    role: str, make_ws: Callable[..., Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    ws = make_ws(FixtureSpec(rows=8000, seed=4, domains=300, cities=60, regions=12))
    s3 = boto3.client("s3")
    s3.create_bucket(Bucket="aik-data")
    for path in (ws / "bucket").rglob("*"):
        if path.is_file():
            s3.upload_file(str(path), "aik-data", path.relative_to(ws / "bucket").as_posix())
    ctx = Context(Settings(backend="aws", workspace=ws, region=REGION))
    from aik.params import configure

    ctx.params.put("/aik/data-bucket", "aik-data")
    configure(ctx.params, ctx.settings)
    train = pd.concat(
        pd.read_parquet(p) for p in sorted((ws / "bucket/processed/sample/train").glob("*.parquet"))
    )

    submitted: list[str] = []
    real_run = sm.run

    def run_with_container_output(trainer: Any) -> str:
        uri = real_run(trainer)  # ModelTrainer.train against moto: CreateTrainingJob, wait, describe
        submitted.append(uri)
        storage.write_bytes(uri, _container_model_tar(train))
        return uri

    monkeypatch.setattr(sm, "run", run_with_container_output)
    result = train_and_publish(ctx, TrainOptions(sagemaker=sm.SageMakerJob(role=role), baselines=False))
    assert submitted and submitted[0].startswith("s3://aik-data/sagemaker/xgboost/output/aik-xgboost-")
    assert result.published and result.model_uri == "s3://aik-data/binary-model/xgboost.bin"
    training = result.metrics.model.training
    assert training["source"] == "sagemaker" and training["model_artifact"] == submitted[0]
    assert training["hyperparameters"]["max_depth"] == "2"  # the numeric preset
    assert result.metrics.model.config["preset"] == "numeric"
    published = xgb.Booster()
    published.load_model(
        bytearray(s3.get_object(Bucket="aik-data", Key="binary-model/xgboost.bin")["Body"].read())
    )
    assert published.feature_names == list(FEATURE_COLUMNS)
    jobs = boto3.client("sagemaker", region_name=REGION).list_training_jobs()["TrainingJobSummaries"]
    assert len(jobs) == 1 and jobs[0]["TrainingJobStatus"] == "Completed"
