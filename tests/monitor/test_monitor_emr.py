"""`aik --backend aws monitor --on emr`: the join job's EMR step, submitted to moto's EMR, and the report
built from the table the step leaves in S3.

moto runs no step: its steps stay RUNNING. Where a test needs the step to end, the wait's sleep plays
EMR's part in moto's own state (the step's table written to S3, the step COMPLETED or FAILED).
"""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import boto3
import pytest
from pipeline.test_features_emr import ENV

from aik import storage
from aik.cli import main
from aik.features import emr_job
from aik.monitor import emr as monitor_emr
from aik.monitor.spark_job import JoinJob

from .test_monitor_join import _experiment_data, _logs, _write_predictions
from .test_monitor_spark import upload_table

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

REGION = "us-east-1"
BUCKET = "aik-data-emr"
JOIN = JoinJob(
    predictions=f"s3://{BUCKET}/predictions/",
    logs=f"s3://{BUCKET}/raw/",
    out=f"s3://{BUCKET}/monitor/joined/",
    experiment="exp",
)


def _emr() -> Any:
    return boto3.client("emr", region_name=REGION)


def _running_cluster() -> str:
    """A long-running cluster (as one of the Studio product's), waiting for steps."""
    request = emr_job.run_job_flow_request(ENV, emr_job.ClusterSize(), name="studio", keep_alive=True)
    return str(_emr().run_job_flow(**request)["JobFlowId"])


def test_the_step_runs_the_deployed_job_on_the_logs_and_writes_the_table(aws: None) -> None:
    cluster_id = _running_cluster()
    submitted = monitor_emr.add_to_cluster(_emr(), ENV, JOIN, cluster_id=cluster_id, region=REGION)
    step = _emr().describe_step(ClusterId=cluster_id, StepId=submitted.step_id)["Step"]
    assert step["Name"] == monitor_emr.STEP_NAME
    assert step["Config"]["Args"] == [
        "spark-submit",
        "--deploy-mode",
        "client",
        "s3://aik-bootstrap/bootstrap/aik/monitor/spark_job.py",
        "--predictions",
        JOIN.predictions,
        "--logs",
        JOIN.logs,
        "--out",
        JOIN.out,
        "--region",
        REGION,
        "--experiment",
        "exp",
    ]


def test_a_step_on_a_shared_cluster_leaves_the_cluster_running_when_it_fails(aws: None) -> None:
    cluster_id = _running_cluster()
    submitted = monitor_emr.add_to_cluster(_emr(), ENV, JOIN, cluster_id=cluster_id, region=REGION)
    step = _emr().describe_step(ClusterId=cluster_id, StepId=submitted.step_id)["Step"]
    assert step["ActionOnFailure"] == "CONTINUE"


def test_without_a_cluster_a_transient_one_runs_the_step_and_terminates(aws: None) -> None:
    submitted = monitor_emr.submit_transient(_emr(), ENV, emr_job.ClusterSize(), JOIN, region=REGION)
    cluster = _emr().describe_cluster(ClusterId=submitted.cluster_id)["Cluster"]
    steps = _emr().list_steps(ClusterId=submitted.cluster_id)["Steps"]
    assert [s["Name"] for s in steps] == [monitor_emr.STEP_NAME]
    assert steps[0]["ActionOnFailure"] == "TERMINATE_CLUSTER"
    assert cluster["AutoTerminate"] is True
    assert {t["Key"]: t["Value"] for t in cluster["Tags"]} == dict(
        [emr_job.EMR_MANAGED_TAG, monitor_emr.COMPONENT_TAG]
    )


def test_the_job_is_deployed_where_the_step_looks_for_it() -> None:
    from stacks.buckets import BOOTSTRAP_PREFIX, BOOTSTRAP_SOURCES

    relative = monitor_emr.MONITOR_JOB_KEY.removeprefix(BOOTSTRAP_PREFIX)
    assert monitor_emr.MONITOR_JOB_KEY.startswith(BOOTSTRAP_PREFIX) and "aik/**" in BOOTSTRAP_SOURCES
    job = Path(__file__).resolve().parents[2] / relative
    assert 'if __name__ == "__main__":' in job.read_text()


def _set_step(cluster_id: str, state: str) -> None:
    """Play EMR: move moto's step to `state`."""
    from moto.core import DEFAULT_ACCOUNT_ID
    from moto.emr.models import emr_backends

    emr_backends[DEFAULT_ACCOUNT_ID][REGION].clusters[cluster_id].steps[-1].state = state


def test_a_failed_step_is_one_line_naming_it_and_its_logs(aws: None) -> None:
    from aik.errors import AikError

    cluster_id = _running_cluster()
    submitted = monitor_emr.add_to_cluster(_emr(), ENV, JOIN, cluster_id=cluster_id, region=REGION)
    seen: list[str] = []
    with pytest.raises(
        AikError, match=rf"step {submitted.step_id} \(aik-monitor\) .* ended FAILED.*logs: s3://"
    ):
        monitor_emr.wait_with_progress(
            _emr(), submitted, report=seen.append, sleep=lambda _: _set_step(cluster_id, "FAILED")
        )
    assert [line.split(": ")[-1].split(",")[0] for line in seen] == ["RUNNING", "FAILED"]


@pytest.fixture
def served(aws: None, tmp_path: Path, spark: SparkSession) -> str:
    """An aws workspace (the stacks' parameters, the loop's /aik/loop/emr), the logs and prediction log in
    the data bucket, and beside them locally the table the job makes of them (the step's output)."""
    from aik.monitor.spark_job import JoinJob, run_join

    boto3.client("s3", region_name=REGION).create_bucket(Bucket=BUCKET)
    ssm = boto3.client("ssm", region_name=REGION)
    ssm.put_parameter(Name="/aik/data-bucket", Value=BUCKET, Type="String")
    ssm.put_parameter(Name=emr_job.LOOP_EMR, Value=ENV.to_json(), Type="String")
    assert main(["--backend", "aws", "--region", REGION, "configure"]) == 0
    raw_data = ssm.get_parameter(Name="/aik/raw_data")["Parameter"]["Value"]
    auctions, records, win, click = _experiment_data(700, seed=9)
    for root in (str(tmp_path / "local") + "/", f"s3://{BUCKET}/"):
        logs = storage.join(root, "raw") if root.startswith("s3") else storage.join(root, "logs")
        _logs(raw_data if root.startswith("s3") else logs, auctions, list(win), list(click))
        _write_predictions(storage.join(root, "predictions"), records)
    local = tmp_path / "local"
    run_join(spark, JoinJob(str(local / "predictions"), str(local / "logs"), str(local / "joined")))
    return str(local / "joined")


def test_the_command_waits_for_the_step_then_judges_its_table_in_s3(
    served: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    cluster_id = _running_cluster()

    def step_ends(_: float) -> None:  # EMR's part: the step writes its table and completes
        upload_table(Path(served), f"s3://{BUCKET}/monitor/joined/")
        _set_step(cluster_id, "COMPLETED")

    wait = functools.partial(monitor_emr.wait_with_progress, sleep=step_ends)
    monkeypatch.setattr(monitor_emr, "wait_with_progress", wait)
    args = ["--backend", "aws", "--region", REGION, "monitor", "--on", "emr", "--cluster-id", cluster_id]
    assert main([*args, "--min-segment", "50"]) == 0
    out = capsys.readouterr().out
    (step,) = _emr().list_steps(ClusterId=cluster_id)["Steps"]
    assert f"step {step['Id']} ({cluster_id}): COMPLETED" in out and "verdict: challenger vs champion" in out
    config = step["Config"]["Args"]
    assert config[config.index("--predictions") + 1] == f"s3://{BUCKET}/predictions/"
    assert config[config.index("--out") + 1] == f"s3://{BUCKET}/monitor/joined/"
    doc = json.loads(storage.read_text(f"s3://{BUCKET}/monitor/monitor-report.json"))
    assert doc["inputs"]["joined"] == f"s3://{BUCKET}/monitor/joined/" and doc["inputs"]["requests"] == 700


def test_a_cluster_without_on_emr_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--workspace", str(tmp_path), "monitor", "--cluster-id", "j-1"]) == 1
    assert capsys.readouterr().err.strip() == "aik monitor: --cluster-id names the cluster of --on emr"


def test_on_emr_needs_the_aws_backend(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--workspace", str(tmp_path), "configure"]) == 0
    capsys.readouterr()
    assert main(["--workspace", str(tmp_path), "monitor", "--on", "emr"]) == 1
    assert capsys.readouterr().err.strip() == (
        "aik monitor: --on emr needs the aws backend (--backend aws): the cluster reads the logs in S3"
    )
