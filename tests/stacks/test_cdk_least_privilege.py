"""Least-privilege and housekeeping invariants across the kit's templates (issue 11, item 6/7)."""

from __future__ import annotations

import fnmatch
from typing import Any

import pytest
from cdk_helpers import Synthesized, resolve_join

from aik import params
from stacks.boundary import STUDIO_ADMINISTRATION
from stacks.stage import PROJECT_TAG
from stacks.studio import CLEANUP_DOMAIN_TAG, STACK_PARAMETERS

TEMPLATES = ["sagemaker-emr", "filtering", "product"]
#: Resource types CloudFormation cannot tag (no `Tags` property).
UNTAGGABLE = {
    "AWS::ApplicationAutoScaling::ScalingPolicy",
    "AWS::EC2::Route",
    "AWS::EC2::SecurityGroupEgress",
    "AWS::EC2::SecurityGroupIngress",
    "AWS::EC2::SubnetRouteTableAssociation",
    "AWS::EC2::VPCGatewayAttachment",
    "AWS::EMR::SecurityConfiguration",
    "AWS::IAM::InstanceProfile",
    "AWS::IAM::ManagedPolicy",
    "AWS::IAM::Policy",
    "AWS::KMS::Alias",
    "AWS::Lambda::LayerVersion",
    "AWS::S3::BucketPolicy",
    "AWS::ServiceCatalog::LaunchRoleConstraint",
    "AWS::ServiceCatalog::PortfolioPrincipalAssociation",
    "AWS::ServiceCatalog::PortfolioProductAssociation",
}


def _statements(synth: Synthesized, stack: str) -> list[tuple[str, dict[str, Any]]]:
    """(logical id of the policy, statement) of every IAM policy document in a template."""
    out = []
    for logical_id, resource in synth.templates[stack]["Resources"].items():
        props = resource.get("Properties", {})
        documents = [props.get("PolicyDocument")] + [p["PolicyDocument"] for p in props.get("Policies", [])]
        for document in documents:
            if document:
                out.extend((logical_id, s) for s in document["Statement"])
    return out


def _actions(statement: dict[str, Any]) -> list[str]:
    actions = statement.get("Action", [])
    return actions if isinstance(actions, list) else [actions]


def _grants(statement: dict[str, Any], action: str) -> bool:
    return statement.get("Effect") == "Allow" and any(fnmatch.fnmatch(action, a) for a in _actions(statement))


def _studio_role_statements(synth: Synthesized) -> list[dict[str, Any]]:
    stack = synth.stage.sagemaker_emr
    role = stack.node.find_child("Studio").node.find_child("ExecutionRole")
    policy_id = stack.get_logical_id(role.node.find_child("DefaultPolicy").node.default_child)
    return [s for logical_id, s in _statements(synth, "sagemaker-emr") if logical_id == policy_id]


def _tags(resource: dict[str, Any]) -> dict[str, str]:
    tags = resource.get("Properties", {}).get("Tags")
    if isinstance(tags, dict):
        return tags
    return {t["Key"]: t["Value"] for t in tags or []}


@pytest.mark.parametrize("stack", TEMPLATES)
def test_every_taggable_resource_carries_the_project_tag(synth: Synthesized, stack: str) -> None:
    untagged = [
        (logical_id, r["Type"])
        for logical_id, r in synth.templates[stack]["Resources"].items()
        if r["Type"] not in UNTAGGABLE
        and not r["Type"].startswith("Custom::")
        and _tags(r).get(PROJECT_TAG[0]) != PROJECT_TAG[1]
    ]
    assert untagged == []


def test_no_kit_role_may_delete_object_versions(synth: Synthesized) -> None:
    # Only CDK's bucket auto-delete (a bucket policy, for emptying on destroy) and CDK's
    # BucketDeployment handler (s3:DeleteObject*, cancelled by an explicit Deny) still match.
    for stack in ("sagemaker-emr", "filtering"):
        for logical_id, statement in _statements(synth, stack):
            boundary = statement.get("Sid") == "AllowWhatTheRolesOwnPoliciesAllow"  # caps, grants nothing
            if _grants(statement, "s3:DeleteObjectVersion") and not boundary:
                assert "AutoDeleteObjects" in str(statement.get("Principal")) or logical_id.startswith(
                    "CustomCDKBucketDeployment"
                ), logical_id


def test_bucket_deployment_handler_is_denied_deleting_object_versions(synth: Synthesized) -> None:
    denied = [
        s
        for logical_id, s in _statements(synth, "sagemaker-emr")
        if logical_id.startswith("CustomCDKBucketDeployment") and s["Effect"] == "Deny"
    ]
    assert [_actions(s) for s in denied] == [["s3:DeleteObjectVersion"]]


def test_studio_may_not_change_the_stack_parameters(synth: Synthesized) -> None:
    (deny,) = [s for s in _studio_role_statements(synth) if s["Effect"] == "Deny"]
    assert set(_actions(deny)) >= {"ssm:PutParameter", "ssm:DeleteParameter", "ssm:DeleteParameters"}
    names = sorted(resolve_join(r).split(":parameter", 1)[1] for r in deny["Resource"])
    assert names == sorted(STACK_PARAMETERS)
    assert sorted(STACK_PARAMETERS) == sorted(
        [params.DATA_BUCKET, params.MONITORING_CONFIG, params.CURRENT_REGION, params.MLFLOW_TRACKING_SERVER]
    )


def test_cleanup_deletes_only_the_file_system_tagged_with_its_domain(synth: Synthesized) -> None:
    (statement,) = [
        s for _, s in _statements(synth, "sagemaker-emr") if s.get("Sid") == "RemoveThisDomainsFileSystem"
    ]
    assert statement["Condition"] == {
        "StringEquals": {
            "aws:ResourceTag/ManagedByAmazonSageMakerResource": f"${{aws:PrincipalTag/{CLEANUP_DOMAIN_TAG}}}"
        }
    }


def test_cleanup_role_is_tagged_with_the_domain_arn_once_the_domain_exists(synth: Synthesized) -> None:
    (tagger,) = synth.resources("sagemaker-emr", "Custom::AWS").values()
    stack = synth.stage.sagemaker_emr
    studio = stack.node.find_child("Studio")
    domain_id = stack.get_logical_id(studio.node.find_child("Domain"))
    role_id = stack.get_logical_id(studio.node.find_child("CleanupRole").node.default_child)
    create = resolve_join(tagger["Properties"]["Create"])
    assert '"action":"tagRole"' in create
    assert f'"Key":"{CLEANUP_DOMAIN_TAG}","Value":"' + "${" + domain_id + ".DomainArn}" in create
    assert '"RoleName":"${' + role_id + '}"' in create


def test_boundary_denies_studio_administration_to_every_kit_role(synth: Synthesized) -> None:
    (deny,) = [
        s for _, s in _statements(synth, "sagemaker-emr") if s.get("Sid") == "DenyStudioAdministration"
    ]
    assert deny["Effect"] == "Deny"
    assert sorted(_actions(deny)) == sorted(STUDIO_ADMINISTRATION)
    assert "sagemaker:DeleteDomain" in STUDIO_ADMINISTRATION
    assert "sagemaker:UpdateUserProfile" in STUDIO_ADMINISTRATION


def test_parameter_cleanup_deletes_the_notebook_parameters_on_destroy(synth: Synthesized) -> None:
    (cleanup,) = synth.resources("sagemaker-emr", "Custom::ParameterCleanup").values()
    assert cleanup["Properties"]["Prefix"] == params.PREFIX
    assert sorted(cleanup["Properties"]["Keep"]) == sorted(STACK_PARAMETERS)


def test_parameter_cleanup_may_not_delete_the_stack_parameters(synth: Synthesized) -> None:
    stack = synth.stage.sagemaker_emr
    role = stack.node.find_child("ParameterCleanup").node.find_child("Role")
    policy_id = stack.get_logical_id(role.node.find_child("DefaultPolicy").node.default_child)
    (deny,) = [s for i, s in _statements(synth, "sagemaker-emr") if i == policy_id and s["Effect"] == "Deny"]
    names = sorted(resolve_join(r).split(":parameter", 1)[1] for r in deny["Resource"])
    assert names == sorted(STACK_PARAMETERS)


def test_retained_data_keeps_the_notebook_parameters_too(variant: Synthesized) -> None:
    assert variant.resources("sagemaker-emr", "Custom::ParameterCleanup") == {}
