"""Properties of what `aik backtest` uses in AWS: the backtest jobs' parameter and IAM (`aik/loop`), and
the optional SageMaker managed MLflow tracking server (`aik/sagemaker-emr` with `aik:mlflow`)."""

from __future__ import annotations

import json
from typing import Any

from aws_cdk.assertions import Match
from cdk_helpers import Synthesized

from aik import params
from stacks import lint, mlflow
from stacks.config import KitConfig

SERVER = "AWS::SageMaker::MlflowTrackingServer"


def _one(synth: Synthesized, stack: str, kind: str, prefix: str) -> tuple[str, dict[str, Any]]:
    """The one resource of `kind` whose logical id starts with `prefix` (its construct path, joined)."""
    (found,) = [(lid, r) for lid, r in synth.resources(stack, kind).items() if lid.startswith(prefix)]
    return found


def _parameter(synth: Synthesized, stack: str, name: str) -> dict[str, Any]:
    (found,) = [
        r["Properties"]
        for r in synth.resources(stack, "AWS::SSM::Parameter").values()
        if r["Properties"]["Name"] == name
    ]
    return found


def _statements(resource: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {s["Sid"]: s for s in resource["Properties"]["PolicyDocument"]["Statement"]}


# --- the backtest jobs (aik/loop) -----------------------------------------------------------------


def _placeholder(part: Any) -> str:
    """A joined part as text: intrinsics as quote-free `${...}` placeholders (the result stays JSON)."""
    if isinstance(part, str):
        return part
    if "Fn::GetAtt" in part:
        return "${" + ".".join(part["Fn::GetAtt"]) + "}"
    if "Fn::GetStackOutput" in part:
        return "${output " + part["Fn::GetStackOutput"]["OutputName"] + "}"
    return "${" + next(iter(part)) + "}"


def _backtest_parameter(synth: Synthesized) -> dict[str, Any]:
    """The parameter's JSON with its intrinsics as placeholders."""
    value = _parameter(synth, "loop", params.BACKTEST_JOBS)["Value"]
    delimiter, parts = value["Fn::Join"]
    return dict(json.loads(delimiter.join(_placeholder(p) for p in parts)))


def test_the_backtest_parameter_names_the_loops_image_and_job_role(synth: Synthesized) -> None:
    value = _backtest_parameter(synth)
    job_role, _ = _one(synth, "loop", "AWS::IAM::Role", "LoopJobRole")
    assert value["role_arn"] == "${" + job_role + ".Arn}"
    assert value["image_uri"] == "${Fn::Sub}"  # the asset image's URI


def test_the_backtest_jobs_run_in_the_loop_jobs_network(synth: Synthesized) -> None:
    value = _backtest_parameter(synth)
    group, _ = _one(synth, "loop", "AWS::EC2::SecurityGroup", "LoopJobSecurityGroup")
    assert value["security_group_ids"] == ["${" + group + ".GroupId}"]
    assert len(value["subnets"]) == 2 and all("privateSubnet" in s for s in value["subnets"])


def test_studio_may_start_and_stop_only_backtest_jobs_and_pass_only_the_job_role(synth: Synthesized) -> None:
    _, policy = _one(synth, "loop", "AWS::IAM::Policy", "BacktestsStartBacktests")
    statements = _statements(policy)
    jobs = statements["BacktestJobs"]
    assert json.dumps(jobs["Resource"]).endswith(':training-job/aik-backtest-*"]]}')
    assert "sagemaker:CreateTrainingJob" in jobs["Action"] and "sagemaker:StopTrainingJob" in jobs["Action"]
    job_role, _ = _one(synth, "loop", "AWS::IAM::Role", "LoopJobRole")
    passing = statements["PassTheJobRole"]
    assert passing["Action"] == "iam:PassRole"
    assert passing["Resource"] == {"Fn::GetAtt": [job_role, "Arn"]}
    assert passing["Condition"] == {"StringEquals": {"iam:PassedToService": "sagemaker.amazonaws.com"}}
    (role,) = policy["Properties"]["Roles"]
    assert "StudioExecutionRole" in json.dumps(role)


# --- the MLflow tracking server (aik/sagemaker-emr, aik:mlflow) -------------------------------------


def test_the_tracking_server_is_off_by_default(synth: Synthesized) -> None:
    assert KitConfig().mlflow is False
    assert synth.resources("sagemaker-emr", SERVER) == {}
    names = [
        r["Properties"]["Name"] for r in synth.resources("sagemaker-emr", "AWS::SSM::Parameter").values()
    ]
    assert params.MLFLOW_TRACKING_SERVER not in names


def test_the_context_switch_turns_the_tracking_server_on() -> None:
    assert KitConfig.from_context({"aik:mlflow": "true"}).mlflow is True


def test_the_tracking_server_keeps_its_artifacts_under_mlflow_in_the_data_bucket(
    variant: Synthesized,
) -> None:
    (server,) = variant.resources("sagemaker-emr", SERVER).values()
    props = server["Properties"]
    bucket, _ = _one(variant, "sagemaker-emr", "AWS::S3::Bucket", "BucketsData")
    assert props["ArtifactStoreUri"] == {
        "Fn::Join": ["", ["s3://", {"Ref": bucket}, "/" + mlflow.ARTIFACT_PREFIX]]
    }
    assert props["TrackingServerName"] == mlflow.SERVER_NAME
    assert props["TrackingServerSize"] == "Small" and props["AutomaticModelRegistration"] is False


def test_the_tracking_servers_role_reaches_only_its_artifact_prefix(variant: Synthesized) -> None:
    (server,) = variant.resources("sagemaker-emr", SERVER).values()
    role_id = server["Properties"]["RoleArn"]["Fn::GetAtt"][0]
    role = variant.resources("sagemaker-emr", "AWS::IAM::Role")[role_id]
    assert role["Properties"]["AssumeRolePolicyDocument"]["Statement"][0]["Principal"] == {
        "Service": "sagemaker.amazonaws.com"
    }
    (policy,) = [
        p
        for p in variant.resources("sagemaker-emr", "AWS::IAM::Policy").values()
        if p["Properties"]["Roles"] == [{"Ref": role_id}]
    ]
    statements = _statements(policy)
    assert set(statements) == {"ArtifactObjects", "ListArtifacts", "ArtifactBucket"}
    assert json.dumps(statements["ArtifactObjects"]["Resource"]).endswith(f'"/{mlflow.ARTIFACT_PREFIX}*"]]}}')
    assert statements["ListArtifacts"]["Condition"] == {
        "StringLike": {"s3:prefix": [mlflow.ARTIFACT_PREFIX, f"{mlflow.ARTIFACT_PREFIX}*"]}
    }
    assert policy["Properties"]["PolicyName"] and server.get("DependsOn")


def test_the_parameter_names_the_tracking_servers_arn(variant: Synthesized) -> None:
    (server_id,) = variant.resources("sagemaker-emr", SERVER)
    assert _parameter(variant, "sagemaker-emr", params.MLFLOW_TRACKING_SERVER)["Value"] == {
        "Fn::GetAtt": [server_id, "TrackingServerArn"]
    }


def test_studio_may_use_that_one_server(variant: Synthesized) -> None:
    (server_id,) = variant.resources("sagemaker-emr", SERVER)
    variant.template("sagemaker-emr").has_resource_properties(
        "AWS::IAM::Policy",
        {
            "PolicyDocument": {
                "Statement": Match.array_with(
                    [
                        Match.object_like(
                            {
                                "Sid": "UseKitMlflow",
                                "Action": "sagemaker-mlflow:*",
                                "Resource": {"Fn::GetAtt": [server_id, "TrackingServerArn"]},
                            }
                        )
                    ]
                )
            },
            "Roles": [{"Ref": Match.string_like_regexp("StudioExecutionRole")}],
        },
    )


def test_cfn_lint_finds_no_error_with_every_switch_on(variant: Synthesized) -> None:
    problems, _ = lint.check(variant.assembly_dir)
    assert [str(p) for p in problems] == []
