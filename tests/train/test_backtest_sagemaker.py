"""`aik --backend aws backtest --on sagemaker` end to end against moto's server (AWS_ENDPOINT_URL).

The command runs in its own process with real boto3 clients: it reads the parameters from SSM, starts
one training job per candidate, waits, reads the jobs' outputs from S3, writes the report to S3 and
records the runs through the `sagemaker-mlflow` plugin with the tracking server's ARN as the URI.

Two stand-ins, both at the AWS boundary. moto records training jobs but runs no container, so
`SageMakerPlayer` plays SageMaker's part in moto's process: for each CreateTrainingJob it marks the
job InProgress, copies the job's S3 channels into `input/data/<channel>/`, writes the hyperparameters,
runs the job's ContainerEntrypoint (the kit's `python -m aik.backtest.job`) with the toolkit's `SM_*`
variables and no AWS access, uploads `model/` as the job's `model.tar.gz`, and marks the job Completed
(or Failed with `output/failure` as its FailureReason). And the managed MLflow server is a real
`mlflow server` on a local port, which the plugin reaches through SAGEMAKER_MLFLOW_CUSTOM_ENDPOINT
(its own switch for a custom endpoint) instead of the ARN's regional URL; artifacts go to moto's S3.
The kit's image itself and a real SageMaker or MLflow server are not exercised here.
"""

from __future__ import annotations

import io
import json
import os
import socket
import subprocess
import sys
import tarfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from test_backtest_job import keep_sundays_out
from train_fixture_data import FixtureSpec

from aik import params as P
from aik.backtest import job as J
from aik.params import LocalParameterStore

# one module-scoped backtest (jobs in parallel processes, an MLflow server) runs in the first test
pytestmark = [pytest.mark.slow, pytest.mark.timeout(2400)]

REGION = "us-east-1"
BUCKET = "aik-data-backtest"
ACCOUNT = "123456789012"
SERVER_ARN = f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:mlflow-tracking-server/aik-mlflow"
IMAGE = f"{ACCOUNT}.dkr.ecr.{REGION}.amazonaws.com/cdk-assets:kit"
ROLE = f"arn:aws:iam::{ACCOUNT}:role/aik-loop-JobRole"
TINY = FixtureSpec(rows=6_000, seed=4, domains=200, cities=40, regions=8)
PNG = b"\x89PNG\r\n\x1a\n"

EXPERIMENTS = """
name: cloud
candidates:
  - name: xgb
    model: xgboost
    params: {num_round: 30, early_stopping_rounds: 5}
  - name: xgb shallow/subset
    model: xgboost
    params: {num_round: 20, max_depth: 3}
    features: [IndexAdvertiserID, IndexDomain, hour, device_type_id]
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass(frozen=True)
class Endpoint:
    url: str

    def client(self, service: str) -> Any:
        import boto3

        return boto3.client(
            service,
            endpoint_url=self.url,
            region_name=REGION,
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        )

    def env(self, **extra: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "AIK_", "MLFLOW_"))}
        env.update(
            AWS_ENDPOINT_URL=self.url,
            AWS_ACCESS_KEY_ID="testing",
            AWS_SECRET_ACCESS_KEY="testing",
            AWS_DEFAULT_REGION=REGION,
            AWS_EC2_METADATA_DISABLED="true",
            OMP_WAIT_POLICY="PASSIVE",
            **extra,
        )
        return env


class SageMakerPlayer:
    """Plays SageMaker for moto's training jobs: runs each job's container program on its channels."""

    def __init__(self, endpoint: Endpoint, root: Path) -> None:
        self.endpoint = endpoint
        self.root = root
        self.threads: list[threading.Thread] = []
        self.commands: dict[str, list[str]] = {}

    def install(self, patch: pytest.MonkeyPatch) -> None:
        from moto.sagemaker.models import SageMakerModelBackend

        original = SageMakerModelBackend.create_training_job

        def create(backend: Any, **kwargs: Any) -> Any:
            job = original(backend, **kwargs)
            job.training_job_status, job.secondary_status = "InProgress", "Starting"
            thread = threading.Thread(target=self._run, args=(job,), daemon=True)
            self.threads.append(thread)
            thread.start()
            return job

        patch.setattr(SageMakerModelBackend, "create_training_job", create)

    def _download(self, s3: Any, uri: str, target: Path) -> None:
        """An S3Prefix channel as SageMaker copies it: every object under the prefix, below its folder."""
        bucket, prefix = uri.removeprefix("s3://").split("/", 1)
        folder = prefix.rsplit("/", 1)[0] + "/" if "/" in prefix else ""
        pages = s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
        for page in pages:
            for item in page.get("Contents", []):
                path = target / item["Key"][len(folder) :]
                path.parent.mkdir(parents=True, exist_ok=True)
                s3.download_file(bucket, item["Key"], str(path))

    def _run(self, job: Any) -> None:
        s3 = self.endpoint.client("s3")
        root = self.root / job.training_job_name
        data = root / "input" / "data"
        for channel in job.input_data_config:
            source = channel["DataSource"]["S3DataSource"]["S3Uri"]
            self._download(s3, source, data / channel["ChannelName"])
        job.secondary_status = "Training"
        spec = job.algorithm_specification
        command = [*spec["ContainerEntrypoint"], *spec.get("ContainerArguments", [])]
        self.commands[job.training_job_name] = command
        if command[0] == "python":
            command[0] = sys.executable  # the image's python runs the kit; here this venv's does
        env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "AIK_"))}
        env.update(
            {
                f"SM_CHANNEL_{c['ChannelName'].upper()}": str(data / c["ChannelName"])
                for c in job.input_data_config
            }
        )
        env.update(
            SM_MODEL_DIR=str(root / "model"),
            SM_OUTPUT_DIR=str(root / "output"),
            SM_HPS=json.dumps(job.hyper_parameters),
            OMP_WAIT_POLICY="PASSIVE",
            AWS_EC2_METADATA_DISABLED="true",
        )
        with open(root / "container.log", "w") as log:
            done = subprocess.run(command, env=env, stdout=log, stderr=subprocess.STDOUT, timeout=900)
        if done.returncode != 0:
            failure = root / "output" / "failure"
            job.failure_reason = failure.read_text() if failure.exists() else f"exit {done.returncode}"
            job.training_job_status = job.secondary_status = "Failed"
            return
        buffer = io.BytesIO()
        with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
            for path in sorted((root / "model").rglob("*")):
                if path.is_file():
                    tar.add(path, arcname=path.relative_to(root / "model").as_posix())
        bucket, key = job.model_artifacts["S3ModelArtifacts"].removeprefix("s3://").split("/", 1)
        s3.put_object(Bucket=bucket, Key=key, Body=buffer.getvalue())
        job.training_job_status = job.secondary_status = "Completed"


@pytest.fixture(scope="module")
def endpoint(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Endpoint, SageMakerPlayer]]:
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    ep = Endpoint(f"http://{host}:{port}")
    player = SageMakerPlayer(ep, tmp_path_factory.mktemp("sagemaker"))
    with pytest.MonkeyPatch.context() as patch:
        player.install(patch)
        yield ep, player
    server.stop()


@pytest.fixture(scope="module")
def mlflow_server(
    endpoint: tuple[Endpoint, SageMakerPlayer], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """A real MLflow tracking server on a local port, its artifact store in moto's S3 (as the stack's)."""
    ep, _ = endpoint
    root = tmp_path_factory.mktemp("mlflow-server")
    port = _free_port()
    log = open(root / "server.log", "w")  # noqa: SIM115 (closed below)
    proc = subprocess.Popen(
        [
            *(sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1", "--port", str(port)),
            *("--backend-store-uri", f"sqlite:///{root / 'mlflow.db'}"),
            *("--default-artifact-root", f"s3://{BUCKET}/mlflow", "--no-serve-artifacts", "--workers", "1"),
        ],
        env=ep.env(),
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 300
    import urllib.request

    while True:
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=2) as answer:
                if answer.status == 200:
                    break
        except OSError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            log.close()
            pytest.fail(f"mlflow server did not start:\n{(root / 'server.log').read_text()}")
        time.sleep(0.5)
    yield url
    proc.terminate()
    proc.wait(timeout=60)
    log.close()


def _deploy(ep: Endpoint, ws: Path) -> dict[str, str]:
    """What the stacks and notebooks 0-2 leave in AWS: the workspace's data in S3, its parameters in SSM,
    the backtest jobs' parameter (aik/loop) and the tracking server's (aik/sagemaker-emr with aik:mlflow)."""
    s3, ssm = ep.client("s3"), ep.client("ssm")
    s3.create_bucket(Bucket=BUCKET)
    store = LocalParameterStore(ws / "parameters.json")
    local_root = str(ws / "bucket") + "/"
    for path in sorted((ws / "bucket").rglob("*")):
        if path.is_file():
            s3.upload_file(str(path), BUCKET, path.relative_to(ws / "bucket").as_posix())
    values = {
        name: f"s3://{BUCKET}/" + store.get(name).removeprefix(local_root)
        for name in (P.OUTPUT_TRAIN, P.OUTPUT_VALID, P.OUTPUT_TEST, P.PIPELINE_MODEL, P.RAW_DATA)
    }
    values[P.DATA_BUCKET] = BUCKET
    values[P.BACKTEST_JOBS] = json.dumps({"image_uri": IMAGE, "role_arn": ROLE})
    values[P.MLFLOW_TRACKING_SERVER] = SERVER_ARN
    for name, value in values.items():
        ssm.put_parameter(Name=name, Value=value, Type="String", Overwrite=True)
    return values


def _backtest(
    ep: Endpoint, mlflow_url: str, workdir: Path, experiments: str
) -> subprocess.CompletedProcess[str]:
    path = workdir / "experiments.yaml"
    path.write_text(experiments)
    return subprocess.run(
        [
            *(sys.executable, "-m", "aik", "--backend", "aws", "--workspace", str(workdir / "ws")),
            *("backtest", str(path), "--on", "sagemaker", "--poll", "0.5"),
        ],
        env=ep.env(SAGEMAKER_MLFLOW_CUSTOM_ENDPOINT=mlflow_url),
        capture_output=True,
        text=True,
        timeout=1200,
    )


@dataclass(frozen=True)
class Run:
    done: subprocess.CompletedProcess[str]
    lines: dict[str, str]
    parameters: dict[str, str]
    report: dict[str, Any]


def _s3_bytes(ep: Endpoint, uri: str) -> bytes:
    bucket, key = uri.removeprefix("s3://").split("/", 1)
    return bytes(ep.client("s3").get_object(Bucket=bucket, Key=key)["Body"].read())


@pytest.fixture(scope="module")
def run(
    endpoint: tuple[Endpoint, SageMakerPlayer],
    mlflow_server: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> Run:
    from train_fixture_data import make_workspace

    ep, _ = endpoint
    data_ws = tmp_path_factory.mktemp("data") / "ws"
    data_ws.mkdir()
    make_workspace(data_ws, TINY)
    parameters = _deploy(ep, data_ws)
    done = _backtest(ep, mlflow_server, tmp_path_factory.mktemp("client"), EXPERIMENTS)
    assert done.returncode == 0, done.stdout + done.stderr
    lines = dict(line.split("=", 1) for line in done.stdout.splitlines() if "=" in line and "|" not in line)
    report = json.loads(_s3_bytes(ep, lines["report.json"]))
    return Run(done, lines, parameters, report)


def _jobs(ep: Endpoint, backtest_id: str) -> list[dict[str, Any]]:
    """The backtest's training jobs, in the candidates' order."""
    sm = ep.client("sagemaker")
    names = [j["TrainingJobName"] for j in sm.list_training_jobs(MaxResults=100)["TrainingJobSummaries"]]
    ours = sorted(n for n in names if n.startswith(f"aik-backtest-{backtest_id}-"))
    return [sm.describe_training_job(TrainingJobName=n) for n in ours]


def test_each_candidate_trains_as_its_own_job_in_the_kits_image_on_the_same_splits(
    run: Run, endpoint: tuple[Endpoint, SageMakerPlayer]
) -> None:
    ep, player = endpoint
    backtest_id = run.report["backtest_id"]
    jobs = _jobs(ep, backtest_id)
    assert [j["TrainingJobName"] for j in jobs] == [
        f"aik-backtest-{backtest_id}-1-xgb",
        f"aik-backtest-{backtest_id}-2-xgb-shallow-subset",
    ]
    for job in jobs:
        assert job["AlgorithmSpecification"]["TrainingImage"] == IMAGE and job["RoleArn"] == ROLE
        assert player.commands[job["TrainingJobName"]][1:] == list(J.ENTRYPOINT[1:])
        channels = {
            c["ChannelName"]: c["DataSource"]["S3DataSource"]["S3Uri"] for c in job["InputDataConfig"]
        }
        assert channels == {
            "train": run.parameters[P.OUTPUT_TRAIN].rstrip("/") + "/",
            "validation": run.parameters[P.OUTPUT_VALID].rstrip("/") + "/",
            "test": run.parameters[P.OUTPUT_TEST].rstrip("/") + "/",
            "pipeline": run.parameters[P.PIPELINE_MODEL],
        }
        assert job["ModelArtifacts"]["S3ModelArtifacts"].startswith(
            f"s3://{BUCKET}/backtests/{backtest_id}/jobs/{job['TrainingJobName']}/"
        )


def test_the_report_compares_the_candidates_from_the_jobs_outputs(
    run: Run, endpoint: tuple[Endpoint, SageMakerPlayer]
) -> None:
    ep, _ = endpoint
    rows = run.report["candidates"]
    assert [r["name"] for r in rows] == ["xgb", "xgb shallow/subset"] and all(r["ok"] for r in rows)
    assert run.report["on"] == "sagemaker" and run.report["processes"] == 2
    for row, job in zip(rows, _jobs(ep, run.report["backtest_id"]), strict=True):
        with tarfile.open(
            fileobj=io.BytesIO(_s3_bytes(ep, job["ModelArtifacts"]["S3ModelArtifacts"]))
        ) as tar:
            member = tar.extractfile(J.RESULT_FILE)
            assert member is not None
            result = json.loads(member.read())
            model = tar.extractfile(result["model_uri"])
            assert model is not None
            assert _s3_bytes(ep, row["model_uri"]) == model.read()
        assert row["auc"] == result["metrics"]["auc"]
        assert row["oracle_ratio"] == pytest.approx(row["auc"] / run.report["reference"]["oracle_auc"])
    for name in ("roc.png", "calibration.png"):
        assert _s3_bytes(ep, run.lines[name]).startswith(PNG)
    assert "| xgb shallow/subset | xgboost |" in run.done.stdout


def test_the_test_predictions_line_up_with_the_clients_test_rows(
    run: Run, endpoint: tuple[Endpoint, SageMakerPlayer], tmp_path: Path
) -> None:
    """The client draws its oracle and curves from the test rows it reads; a job's predictions must be of
    the same rows in the same order, which their AUC against the client's labels shows."""
    from aik.train.data import read_split
    from aik.train.evaluate import auc

    ep, _ = endpoint
    (first, *_) = _jobs(ep, run.report["backtest_id"])
    with tarfile.open(fileobj=io.BytesIO(_s3_bytes(ep, first["ModelArtifacts"]["S3ModelArtifacts"]))) as tar:
        member = tar.extractfile(J.PREDICTIONS_FILE)
        assert member is not None
        p_test = np.load(io.BytesIO(member.read()))
    s3 = ep.client("s3")
    prefix = run.parameters[P.OUTPUT_TEST].removeprefix(f"s3://{BUCKET}/")
    target = tmp_path / "test"
    for item in s3.list_objects_v2(Bucket=BUCKET, Prefix=prefix)["Contents"]:
        path = target / item["Key"][len(prefix) :].lstrip("/")
        path.parent.mkdir(parents=True, exist_ok=True)
        s3.download_file(BUCKET, item["Key"], str(path))
    test = read_split(str(target), seed=run.report["seed"] + 2, label="test")
    assert len(p_test) == test.rows == run.report["test_rows"]
    # the report rounds AUCs to 6 decimals
    assert auc(test.y, p_test) == pytest.approx(run.report["candidates"][0]["auc"], abs=5e-7)


def test_the_client_reports_each_jobs_progress(run: Run) -> None:
    backtest_id = run.report["backtest_id"]
    for name in (f"aik-backtest-{backtest_id}-1-xgb", f"aik-backtest-{backtest_id}-2-xgb-shallow-subset"):
        assert f"backtest: started {name}" in run.done.stderr
        assert f"backtest: {name} InProgress/" in run.done.stderr
        assert f"backtest: {name} Completed/Completed" in run.done.stderr


def test_the_runs_are_recorded_on_the_tracking_server_the_stack_names(
    run: Run, mlflow_server: str, endpoint: tuple[Endpoint, SageMakerPlayer], monkeypatch: pytest.MonkeyPatch
) -> None:
    from mlflow.tracking import MlflowClient

    monkeypatch.setenv("AWS_ENDPOINT_URL", endpoint[0].url)  # the artifacts are in moto's S3

    assert run.lines["mlflow.tracking_uri"] == SERVER_ARN
    client = MlflowClient(tracking_uri=mlflow_server)
    experiment = client.get_experiment_by_name("aik-backtest")
    assert experiment is not None and experiment.artifact_location.startswith(f"s3://{BUCKET}/mlflow")
    runs = client.search_runs([experiment.experiment_id])
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == run.lines["mlflow.parent_run_id"]]
    assert sorted(r.info.run_name for r in children) == ["xgb", "xgb shallow/subset"]
    assert all(0.5 < r.data.metrics["auc"] < 1 for r in children)
    parent = client.get_run(run.lines["mlflow.parent_run_id"])
    assert parent.data.params["on"] == "sagemaker"
    artifacts = {a.path for a in client.list_artifacts(parent.info.run_id)}
    assert {"report.md", "report.json", "roc.png", "calibration.png"} <= artifacts


def test_a_job_that_fails_is_a_failed_candidate_with_sagemakers_reason(
    endpoint: tuple[Endpoint, SageMakerPlayer],
    mlflow_server: str,
    tmp_path_factory: pytest.TempPathFactory,
    run: Run,
) -> None:
    """A window of a day the training data lacks: the client cannot know, the job finds out."""
    ep, _ = endpoint
    s3 = ep.client("s3")
    prefix = run.parameters[P.OUTPUT_TRAIN].removeprefix(f"s3://{BUCKET}/").rstrip("/") + "/"
    local = tmp_path_factory.mktemp("no-sundays")
    for item in s3.list_objects_v2(Bucket=BUCKET, Prefix=prefix)["Contents"]:
        s3.download_file(BUCKET, item["Key"], str(local / item["Key"].rsplit("/", 1)[-1]))
    keep_sundays_out(local)
    for path in local.glob("*.parquet"):
        s3.upload_file(str(path), BUCKET, prefix + path.name)
    done = _backtest(
        ep,
        mlflow_server,
        tmp_path_factory.mktemp("client-fail"),
        "candidates:\n  - {name: sundays, model: xgboost, params: {num_round: 5}, window: {days: [1]}}\n",
    )
    assert done.returncode == 1, done.stdout + done.stderr
    assert "failed: sundays" in done.stdout
    lines = dict(line.split("=", 1) for line in done.stdout.splitlines() if "=" in line and "|" not in line)
    (row,) = json.loads(_s3_bytes(ep, lines["report.json"]))["candidates"]
    assert not row["ok"]
    assert row["error"].startswith("SageMaker job Failed: AikError: the window ")
    assert "keeps no training rows" in row["error"]
