"""`aik --backend aws features --on emr`: the transient cluster and its step, submitted to moto's EMR."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Any

import boto3
import pytest

from aik.cli import main
from aik.errors import AikError
from aik.features import emr_job as emr

REGION = "us-east-1"
ENV = emr.EmrEnvironment(
    subnet_id="subnet-0123",
    instance_profile="aik-emr-instance",
    service_role="aik-emr-service",
    security_configuration="aik-emr-security",
    bootstrap_bucket="aik-bootstrap",
    main_security_group="sg-main",
    core_security_group="sg-core",
    service_security_group="sg-service",
)


@pytest.fixture
def loop_deployed(aws: None) -> None:
    """What the aik/loop stack leaves in SSM for the laptop."""
    boto3.client("ssm", region_name=REGION).put_parameter(
        Name=emr.LOOP_EMR, Value=ENV.to_json(), Type="String"
    )


def _features(*extra: str) -> int:
    return main(["--backend", "aws", "--region", REGION, "features", "--on", "emr", *extra])


def _only_cluster() -> dict:
    client = boto3.client("emr", region_name=REGION)
    clusters = client.list_clusters()["Clusters"]
    assert len(clusters) == 1
    return client.describe_cluster(ClusterId=clusters[0]["Id"])["Cluster"]


def test_the_cluster_runs_the_feature_job_as_its_one_step(
    loop_deployed: None, capsys: pytest.CaptureFixture[str]
) -> None:
    assert _features("--use-case", "ctr", "--seed", "7") == 0
    cluster = _only_cluster()
    steps = boto3.client("emr", region_name=REGION).list_steps(ClusterId=cluster["Id"])["Steps"]
    assert [s["Name"] for s in steps] == [emr.STEP_NAME]
    args = steps[0]["Config"]["Args"]
    assert args[:4] == [
        "spark-submit",
        "--deploy-mode",
        "client",
        "s3://aik-bootstrap/bootstrap/aik/features/job.py",
    ]
    assert args[4:] == ["--backend", "aws", "--region", REGION, "--use-case", "ctr", "--seed", "7"]
    assert steps[0]["ActionOnFailure"] == "TERMINATE_CLUSTER"
    assert f"EMR cluster {cluster['Id']}" in capsys.readouterr().out


def test_the_cluster_terminates_when_its_step_ends(loop_deployed: None) -> None:
    assert _features() == 0
    cluster = _only_cluster()
    assert cluster["AutoTerminate"] is True
    assert cluster["TerminationProtected"] is False


def test_the_cluster_is_the_kits(loop_deployed: None) -> None:
    assert _features() == 0
    cluster = _only_cluster()
    attributes = cluster["Ec2InstanceAttributes"]
    assert attributes["Ec2SubnetId"] == ENV.subnet_id
    assert attributes["IamInstanceProfile"] == ENV.instance_profile
    assert attributes["EmrManagedMasterSecurityGroup"] == ENV.main_security_group
    assert cluster["ServiceRole"] == ENV.service_role
    assert cluster["ReleaseLabel"] == emr.ClusterSize().release_label
    assert {t["Key"]: t["Value"] for t in cluster["Tags"]} == dict((emr.EMR_MANAGED_TAG, emr.COMPONENT_TAG))
    actions = boto3.client("emr", region_name=REGION).list_bootstrap_actions(ClusterId=cluster["Id"])
    assert [a["ScriptPath"] for a in actions["BootstrapActions"]] == [
        "s3://aik-bootstrap/bootstrap/emr_bootstrap/install-python-packages.sh"
    ]


def test_the_instance_options_size_the_cluster(loop_deployed: None) -> None:
    assert _features("--core-instances", "5", "--instance-type", "m5.2xlarge") == 0
    cluster = _only_cluster()
    groups = boto3.client("emr", region_name=REGION).list_instance_groups(ClusterId=cluster["Id"])
    sizes = {
        g["InstanceGroupType"]: (g["InstanceType"], g["RequestedInstanceCount"])
        for g in groups["InstanceGroups"]
    }
    assert sizes == {"MASTER": ("m5.2xlarge", 1), "CORE": ("m5.2xlarge", 5)}


def test_without_the_loop_stack_it_says_what_to_deploy(aws: None, capsys: pytest.CaptureFixture[str]) -> None:
    assert _features() == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "deploy the aik/loop stack" in err
    assert boto3.client("emr", region_name=REGION).list_clusters()["Clusters"] == []


def test_the_local_backend_is_refused(workspace: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--workspace", str(workspace), "features", "--on", "emr"]) == 1
    assert "needs the aws backend" in capsys.readouterr().err


def test_a_malformed_parameter_names_itself(aws: None) -> None:
    with pytest.raises(AikError, match=r"/aik/loop/emr must be a JSON object with keys"):
        emr.EmrEnvironment.from_json('{"subnet_id": "x"}')


def test_the_parameter_round_trips() -> None:
    assert emr.EmrEnvironment.from_json(ENV.to_json()) == ENV
    assert set(asdict(ENV)) == set(__import__("json").loads(ENV.to_json()))


def test_an_idle_timeout_emr_refuses_is_refused() -> None:
    with pytest.raises(AikError, match="idle timeout"):
        emr.ClusterSize(idle_timeout_s=30)


def test_the_window_options_reach_the_step(loop_deployed: None) -> None:
    assert _features("--window-days", "7", "--test-days", "1") == 0
    (step,) = boto3.client("emr", region_name=REGION).list_steps(ClusterId=_only_cluster()["Id"])["Steps"]
    assert step["Config"]["Args"][-4:] == ["--window-days", "7", "--test-days", "1"]


# --- --wait: moto's EMR runs no step, so the test plays the cluster's part in moto's own backend ----------


def _the_cluster_ends_the_step(
    monkeypatch: pytest.MonkeyPatch, state: str, reason: str | None = None, cluster_reason: str | None = None
) -> None:
    """After the submit, moto's step (and cluster) end as a real cluster's would: `state`, with `reason`."""
    from moto.core import DEFAULT_ACCOUNT_ID
    from moto.emr.models import emr_backends

    real = emr.submit

    def submit_and_run(*args: Any, **kwargs: Any) -> emr.Submitted:
        submitted = real(*args, **kwargs)
        cluster = emr_backends[DEFAULT_ACCOUNT_ID][REGION].clusters[submitted.cluster_id]
        (step,) = [s for s in cluster.steps if s.id == submitted.step_id]
        step.state = state
        if reason:
            step.last_state_change_reason = reason
        if cluster_reason:
            cluster.state = "TERMINATED_WITH_ERRORS"
            cluster.last_state_change_reason = cluster_reason
        return submitted

    monkeypatch.setattr(emr, "submit", submit_and_run)


def test_wait_returns_0_when_the_step_completes(
    loop_deployed: None, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    _the_cluster_ends_the_step(monkeypatch, "COMPLETED")
    assert _features("--wait") == 0
    out = capsys.readouterr().out
    (step,) = boto3.client("emr", region_name=REGION).list_steps(ClusterId=_only_cluster()["Id"])["Steps"]
    assert f"features: step {step['Id']} completed" in out


def test_wait_on_a_failed_step_exits_1_with_one_line_naming_the_step(
    loop_deployed: None, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    _the_cluster_ends_the_step(monkeypatch, "FAILED", reason="Step failed with exitCode 1")
    assert _features("--wait") == 1
    err = capsys.readouterr().err
    cluster = _only_cluster()["Id"]
    (step,) = boto3.client("emr", region_name=REGION).list_steps(ClusterId=cluster)["Steps"]
    assert err.count("\n") == 1
    assert err.startswith(f"aik features: step {step['Id']} ({emr.STEP_NAME}) on EMR cluster {cluster} ")
    assert "ended FAILED: Step failed with exitCode 1" in err
    assert f"(logs: s3://aik-bootstrap/emr-logs/{cluster}/)" in err


def test_wait_on_a_cluster_that_failed_names_the_cancelled_step_and_why(
    loop_deployed: None, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    _the_cluster_ends_the_step(
        monkeypatch, "CANCELLED", cluster_reason="Master instance failed attempting bootstrap action 1"
    )
    assert _features("--wait") == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert f"({emr.STEP_NAME}) on EMR cluster" in err
    assert (
        "ended CANCELLED: the cluster is TERMINATED_WITH_ERRORS: "
        "Master instance failed attempting bootstrap action 1" in err
    )


def test_a_wait_that_runs_out_says_the_step_goes_on(loop_deployed: None) -> None:
    client = boto3.client("emr", region_name=REGION)
    submitted = emr.submit(client, ENV, emr.ClusterSize(), region=REGION, use_case="bid-filtering", seed=1)
    with pytest.raises(AikError, match=r"did not end within 0 s \(still RUNNING\); it goes on"):
        emr.wait(client, submitted, delay_s=0, max_attempts=2)
