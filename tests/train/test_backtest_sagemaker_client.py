"""The client side of `aik backtest --on sagemaker`: job names, where the jobs run, stopping on failure."""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable
from pathlib import Path

import boto3
import pytest
from botocore.stub import ANY, Stubber

from aik import params as P
from aik.backtest import sagemaker as S
from aik.backtest import tracking
from aik.backtest.runner import Job, SplitUris
from aik.backtest.spec import Candidate, parse
from aik.cli import main
from aik.errors import AikError
from aik.params import LocalParameterStore

NAME = re.compile(r"^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}$")  # CreateTrainingJob's TrainingJobName pattern
URIS = SplitUris(
    train="s3://data/processed/sample/train",
    valid="s3://data/processed/sample/valid/",
    test="s3://data/processed/sample/test",
    pipeline_model="s3://data/pipeline-model/model.zip",
)
ENV = S.JobsEnvironment(
    image_uri="123456789012.dkr.ecr.us-east-1.amazonaws.com/kit:1",
    role_arn="arn:aws:iam::123456789012:role/job",
)


def _jobs(*names: str) -> list[Job]:
    doc = {"candidates": [{"name": n, "model": "xgboost"} for n in names]}
    return [Job(c, URIS, "s3://data/backtests/b1", 0, None, None) for c in parse(doc).candidates]


@pytest.mark.parametrize("candidate", ["xgb", "wide-deep / no geo", "x" * 80, "---", "über"])
def test_job_names_fit_sagemakers_pattern_and_start_with_the_prefix(candidate: str) -> None:
    name = S.job_name("20261130T214500Z-1a2b3c", 12, candidate)
    assert NAME.match(name) and name.startswith("aik-backtest-20261130T214500Z-1a2b3c-12")


def test_the_request_reads_the_splits_as_file_channels_and_writes_under_the_backtest() -> None:
    (job,) = _jobs("xgb")
    request = S.training_job_request(
        job, "aik-backtest-b1-1-xgb", ENV, S.SageMakerBacktest(), "s3://data/backtests/b1/jobs", "b1"
    )
    channels = {
        c["ChannelName"]: c["DataSource"]["S3DataSource"]["S3Uri"] for c in request["InputDataConfig"]
    }
    assert channels == {
        "train": "s3://data/processed/sample/train/",
        "validation": "s3://data/processed/sample/valid/",
        "test": "s3://data/processed/sample/test/",
        "pipeline": "s3://data/pipeline-model/model.zip",
    }
    assert {c["InputMode"] for c in request["InputDataConfig"]} == {"File"}
    assert request["AlgorithmSpecification"]["ContainerEntrypoint"] == ["python", "-m", "aik.backtest.job"]
    assert request["OutputDataConfig"] == {"S3OutputPath": "s3://data/backtests/b1/jobs/"}
    assert json.loads(request["HyperParameters"]["candidate"])["name"] == "xgb"
    assert "threads" not in request["HyperParameters"]  # every vCPU of the instance
    assert "VpcConfig" not in request


def test_a_job_environment_with_subnets_runs_the_jobs_in_the_vpc() -> None:
    (job,) = _jobs("xgb")
    env = S.JobsEnvironment(ENV.image_uri, ENV.role_arn, subnets=("subnet-1",), security_group_ids=("sg-1",))
    request = S.training_job_request(job, "n", env, S.SageMakerBacktest(), "s3://data/x", "b1")
    assert request["VpcConfig"] == {"Subnets": ["subnet-1"], "SecurityGroupIds": ["sg-1"]}


def test_without_the_parameter_it_says_what_to_deploy(tmp_path: Path) -> None:
    store = LocalParameterStore(tmp_path / "parameters.json")
    with pytest.raises(AikError, match=r"/aik/backtest/sagemaker is not set: deploy the aik/loop stack"):
        S.environment(store, S.SageMakerBacktest())


def test_a_malformed_parameter_names_itself(tmp_path: Path) -> None:
    store = LocalParameterStore(tmp_path / "parameters.json")
    store.put(P.BACKTEST_JOBS, '{"image_uri": "x"}')
    with pytest.raises(AikError, match=r"^/aik/backtest/sagemaker is not the JSON the aik/loop stack writes"):
        S.environment(store, S.SageMakerBacktest())


def test_the_command_line_overrides_the_parameter(tmp_path: Path) -> None:
    store = LocalParameterStore(tmp_path / "parameters.json")
    store.put(
        P.BACKTEST_JOBS, json.dumps({"image_uri": ENV.image_uri, "role_arn": ENV.role_arn, "subnets": ["s"]})
    )
    env = S.environment(store, S.SageMakerBacktest(role="arn:aws:iam::1:role/other"))
    assert (env.image_uri, env.role_arn, env.subnets) == (ENV.image_uri, "arn:aws:iam::1:role/other", ("s",))


def test_a_job_that_cannot_be_created_stops_the_ones_already_started() -> None:
    sm = boto3.client("sagemaker", region_name="us-east-1")
    jobs = _jobs("first", "second")
    with Stubber(sm) as stub:
        stub.add_response(
            "create_training_job",
            {"TrainingJobArn": "arn:aws:sagemaker:us-east-1:1:training-job/a"},
            {
                k: ANY
                for k in (
                    "TrainingJobName",
                    "RoleArn",
                    "AlgorithmSpecification",
                    "HyperParameters",
                    "InputDataConfig",
                    "OutputDataConfig",
                    "ResourceConfig",
                    "StoppingCondition",
                    "Tags",
                )
            },
        )
        stub.add_client_error(
            "create_training_job", "ResourceLimitExceeded", "no more ml.m5.xlarge training instances"
        )
        stub.add_response("stop_training_job", {}, {"TrainingJobName": "aik-backtest-b1-1-first"})
        with pytest.raises(sm.exceptions.ResourceLimitExceeded):
            S.run_jobs(
                sm,
                jobs,
                backtest_id="b1",
                directory="s3://data/backtests/b1",
                env=ENV,
                settings=S.SageMakerBacktest(),
            )
        stub.assert_no_pending_responses()


def test_on_sagemaker_needs_the_aws_backend(
    make_ws: Callable[..., Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "experiments.yaml"
    path.write_text("candidates:\n  - model: xgboost\n")
    assert main(["--workspace", str(make_ws()), "backtest", str(path), "--on", "sagemaker"]) != 0
    err = capsys.readouterr().err.strip()
    assert "--on sagemaker needs the aws backend" in err and len(err.splitlines()) == 1


def test_the_stacks_tracking_server_is_the_default_after_the_file_and_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    arn = "arn:aws:sagemaker:us-east-1:123456789012:mlflow-tracking-server/aik-mlflow"
    assert tracking.default_tracking_uri(tmp_path, None, arn) == arn
    assert tracking.default_tracking_uri(tmp_path, "sqlite:///x.db", arn) == "sqlite:///x.db"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://elsewhere:5000")
    assert tracking.default_tracking_uri(tmp_path, None, arn) == "http://elsewhere:5000"
    monkeypatch.delenv("MLFLOW_TRACKING_URI")
    assert tracking.default_tracking_uri(tmp_path, None, None).startswith("sqlite:///")


def test_a_tracking_server_arn_without_the_plugin_says_what_to_install(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.setattr(tracking, "arn_plugin_installed", lambda: False)
    with pytest.raises(AikError, match=r"install it \(the tracking extra\)"):
        tracking.default_tracking_uri(
            tmp_path, None, "arn:aws:sagemaker:us-east-1:1:mlflow-tracking-server/x"
        )


def test_the_sagemaker_mlflow_plugin_is_installed_for_arn_uris() -> None:
    assert tracking.arn_plugin_installed()


def test_spark_ml_candidates_are_refused_on_sagemaker_before_anything_starts(
    aws: None, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "experiments.yaml"
    path.write_text("candidates:\n  - model: xgboost\n  - model: spark-logreg\n")
    assert main(["--backend", "aws", "backtest", str(path), "--on", "sagemaker"]) != 0
    err = capsys.readouterr().err.strip()
    assert "spark-logreg: Spark ML candidates train in a Spark session" in err and len(err.splitlines()) == 1


def test_recording_a_backtest_leaves_the_processs_tracking_uri_as_it_was(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # mlflow.set_tracking_uri also sets MLFLOW_TRACKING_URI: a notebook's later backtests would follow it
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("MLFLOW_EXPERIMENT_ID", raising=False)
    candidate = Candidate("c", "logreg")
    row = {"ok": True, "auc": 0.7}
    tracking.record(
        f"sqlite:///{tmp_path / 'mlflow.db'}",
        "aik-test",
        tmp_path / "artifacts",
        "r",
        {},
        [candidate],
        [row],
        {},
    )
    assert "MLFLOW_TRACKING_URI" not in os.environ and "MLFLOW_EXPERIMENT_ID" not in os.environ
