"""Invariants of the `aik/sagemaker-emr` stack (network, buckets, boundary, EMR security, Studio)."""

from __future__ import annotations

from typing import Any

import pytest
from aws_cdk.assertions import Match
from cdk_helpers import Synthesized, resolve_join

from aik import params
from stacks.boundary import PASS_ROLE_SERVICES
from stacks.buckets import BOOTSTRAP_PREFIX
from stacks.emr_product import export_names
from stacks.network import EMR_MANAGED_TAG, INTERFACE_ENDPOINTS
from stacks.studio import DOMAIN_NAME, USER_PROFILE_NAME

STACK = "sagemaker-emr"


def _statements(document: dict[str, Any]) -> list[dict[str, Any]]:
    return list(document["Statement"])


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _policies_of_role(synth: Synthesized, stack: str, role_id: str) -> list[dict[str, Any]]:
    """Every statement attached inline to a role (its default policy), by the role's logical id."""
    out = []
    for policy in synth.resources(stack, "AWS::IAM::Policy").values():
        if {"Ref": role_id} in policy["Properties"]["Roles"]:
            out.extend(_statements(policy["Properties"]["PolicyDocument"]))
    return out


def _role_id(synth: Synthesized, stack: str, description_start: str) -> str:
    (role_id,) = [
        logical_id
        for logical_id, role in synth.resources(stack, "AWS::IAM::Role").items()
        if role["Properties"].get("Description", "").startswith(description_start)
    ]
    return role_id


# --- network --------------------------------------------------------------------------------------


def test_vpc_has_a_public_and_a_private_subnet_in_each_of_two_azs(synth: Synthesized) -> None:
    subnets = synth.resources(STACK, "AWS::EC2::Subnet").values()
    kinds = sorted(
        (
            next(t["Value"] for t in s["Properties"]["Tags"] if t["Key"] == "aws-cdk:subnet-type"),
            s["Properties"]["AvailabilityZone"]["Fn::Select"][0],
        )
        for s in subnets
    )
    assert kinds == [("Private", 0), ("Private", 1), ("Public", 0), ("Public", 1)]


def test_azs_are_resolved_at_deploy_time_not_looked_up(synth: Synthesized) -> None:
    for subnet in synth.resources(STACK, "AWS::EC2::Subnet").values():
        assert subnet["Properties"]["AvailabilityZone"]["Fn::Select"][1] == {"Fn::GetAZs": ""}


def test_private_subnets_reach_the_internet_through_nat(synth: Synthesized) -> None:
    routes = [
        r["Properties"]
        for r in synth.resources(STACK, "AWS::EC2::Route").values()
        if "NatGatewayId" in r["Properties"]
    ]
    assert len(routes) == 2
    assert all(r["DestinationCidrBlock"] == "0.0.0.0/0" for r in routes)
    synth.template(STACK).resource_count_is("AWS::EC2::NatGateway", 1)


def test_flow_log_sends_rejected_traffic_to_cloudwatch_logs(synth: Synthesized) -> None:
    synth.template(STACK).has_resource_properties(
        "AWS::EC2::FlowLog",
        {"ResourceType": "VPC", "TrafficType": "REJECT", "LogDestinationType": "cloud-watch-logs"},
    )


def test_interface_endpoints_are_the_originals_and_private(synth: Synthesized) -> None:
    endpoints = [
        e["Properties"]
        for e in synth.resources(STACK, "AWS::EC2::VPCEndpoint").values()
        if e["Properties"]["VpcEndpointType"] == "Interface"
    ]
    services = sorted(resolve_join(e["ServiceName"]).split("${AWS::Region}.")[1] for e in endpoints)
    assert services == sorted(
        ["sagemaker.api", "sagemaker.runtime", "sts", "monitoring", "logs", "ecr.dkr", "ecr.api"]
    )
    assert len(INTERFACE_ENDPOINTS) == len(endpoints)
    assert all(e["PrivateDnsEnabled"] is True for e in endpoints)


def test_endpoint_security_group_admits_only_https_from_the_vpc(synth: Synthesized) -> None:
    synth.template(STACK).has_resource_properties(
        "AWS::EC2::SecurityGroup",
        {
            "GroupDescription": Match.string_like_regexp("interface endpoints"),
            "SecurityGroupIngress": [
                Match.object_like(
                    {"CidrIp": "10.0.0.0/16", "FromPort": 443, "ToPort": 443, "IpProtocol": "tcp"}
                )
            ],
        },
    )


def test_s3_gateway_endpoint_serves_every_subnet(synth: Synthesized) -> None:
    (gateway,) = [
        e["Properties"]
        for e in synth.resources(STACK, "AWS::EC2::VPCEndpoint").values()
        if e["Properties"]["VpcEndpointType"] == "Gateway"
    ]
    assert resolve_join(gateway["ServiceName"]).endswith(".s3")
    assert len(gateway["RouteTableIds"]) == 4


def test_private_subnets_carry_the_emr_managed_policy_tag(synth: Synthesized) -> None:
    for subnet in synth.resources(STACK, "AWS::EC2::Subnet").values():
        tags = {t["Key"]: t["Value"] for t in subnet["Properties"]["Tags"]}
        private = tags["aws-cdk:subnet-type"] == "Private"
        assert (tags.get(EMR_MANAGED_TAG[0]) == EMR_MANAGED_TAG[1]) is private


# --- buckets --------------------------------------------------------------------------------------


def test_every_bucket_is_encrypted_versioned_and_private(synth: Synthesized) -> None:
    buckets = synth.resources(STACK, "AWS::S3::Bucket")
    assert len(buckets) == 3
    for bucket in buckets.values():
        p = bucket["Properties"]
        assert p["BucketEncryption"]["ServerSideEncryptionConfiguration"][0][
            "ServerSideEncryptionByDefault"
        ] == {"SSEAlgorithm": "AES256"}
        assert p["VersioningConfiguration"] == {"Status": "Enabled"}
        assert p["PublicAccessBlockConfiguration"] == {
            "BlockPublicAcls": True,
            "BlockPublicPolicy": True,
            "IgnorePublicAcls": True,
            "RestrictPublicBuckets": True,
        }


def test_every_bucket_denies_requests_without_tls(synth: Synthesized) -> None:
    buckets = set(synth.resources(STACK, "AWS::S3::Bucket"))
    enforced = set()
    for policy in synth.resources(STACK, "AWS::S3::BucketPolicy").values():
        for statement in _statements(policy["Properties"]["PolicyDocument"]):
            if statement.get("Condition") == {"Bool": {"aws:SecureTransport": "false"}}:
                assert statement["Effect"] == "Deny"
                enforced.add(policy["Properties"]["Bucket"]["Ref"])
    assert enforced == buckets


def test_buckets_are_emptied_and_deleted_with_the_stack_by_default(synth: Synthesized) -> None:
    buckets = synth.resources(STACK, "AWS::S3::Bucket")
    assert {b["DeletionPolicy"] for b in buckets.values()} == {"Delete"}
    synth.template(STACK).resource_count_is("Custom::S3AutoDeleteObjects", len(buckets))


def test_retain_data_switch_keeps_buckets_and_their_objects(variant: Synthesized) -> None:
    buckets = variant.resources(STACK, "AWS::S3::Bucket")
    assert {b["DeletionPolicy"] for b in buckets.values()} == {"Retain"}
    variant.template(STACK).resource_count_is("Custom::S3AutoDeleteObjects", 0)


def test_retain_data_switch_keeps_the_ebs_key_and_log_groups(variant: Synthesized) -> None:
    for resource_type in ("AWS::KMS::Key", "AWS::Logs::LogGroup"):
        for stack in (STACK, "filtering"):
            for resource in variant.resources(stack, resource_type).values():
                assert resource["DeletionPolicy"] == "Retain", resource_type


@pytest.mark.parametrize("stack", [STACK, "filtering"])
def test_every_log_group_expires_and_goes_with_the_stack_by_default(synth: Synthesized, stack: str) -> None:
    groups = synth.resources(stack, "AWS::Logs::LogGroup")
    assert groups
    for logical_id, group in groups.items():
        assert group["Properties"]["RetentionInDays"] == 30, logical_id
        assert group["DeletionPolicy"] == "Delete", logical_id


def test_log_retention_setting_reaches_cdk_own_log_groups(variant: Synthesized) -> None:
    days = {
        g["Properties"]["RetentionInDays"] for g in variant.resources(STACK, "AWS::Logs::LogGroup").values()
    }
    assert days == {90}


def test_data_and_bootstrap_buckets_log_access_to_the_log_bucket(synth: Synthesized) -> None:
    buckets = synth.resources(STACK, "AWS::S3::Bucket")
    logged = {
        logical_id: b["Properties"]["LoggingConfiguration"]
        for logical_id, b in buckets.items()
        if "LoggingConfiguration" in b["Properties"]
    }
    (log_bucket,) = set(buckets) - set(logged)
    assert len(logged) == 2
    assert all(c["DestinationBucketName"] == {"Ref": log_bucket} for c in logged.values())


def test_data_bucket_name_is_published_as_a_standard_parameter(synth: Synthesized) -> None:
    (data_bucket,) = [
        logical_id
        for logical_id in synth.resources(STACK, "AWS::S3::Bucket")
        if logical_id.startswith("BucketsData")
    ]
    synth.template(STACK).has_resource_properties(
        "AWS::SSM::Parameter",
        {"Name": params.DATA_BUCKET, "Type": "String", "Tier": "Standard", "Value": {"Ref": data_bucket}},
    )


def test_bootstrap_scripts_are_deployed_below_their_own_prefix(synth: Synthesized) -> None:
    synth.template(STACK).has_resource_properties(
        "Custom::CDKBucketDeployment",
        {
            "DestinationBucketKeyPrefix": BOOTSTRAP_PREFIX,
            "DestinationBucketName": {"Ref": Match.string_like_regexp("Bootstrap")},
        },
    )


# --- permissions boundary -------------------------------------------------------------------------


def _boundary(synth: Synthesized) -> tuple[str, list[dict[str, Any]]]:
    (policy,) = [
        p["Properties"]
        for p in synth.resources(STACK, "AWS::IAM::ManagedPolicy").values()
        if "permissions-boundary" in resolve_join(p["Properties"].get("ManagedPolicyName", ""))
    ]
    return resolve_join(policy["ManagedPolicyName"]), _statements(policy["PolicyDocument"])


def _deny(statements: list[dict[str, Any]], sid: str) -> dict[str, Any]:
    (statement,) = [s for s in statements if s.get("Sid") == sid]
    assert statement["Effect"] == "Deny"
    return statement


def test_boundary_denies_billing_and_account_actions(synth: Synthesized) -> None:
    _, statements = _boundary(synth)
    actions = set(_deny(statements, "DenyBillingAndAccount")["Action"])
    assert {"account:*", "aws-portal:*", "savingsplans:*", "cur:*", "ce:*"} <= actions


def test_boundary_denies_editing_or_deleting_itself(synth: Synthesized) -> None:
    name, statements = _boundary(synth)
    statement = _deny(statements, "DenyEditingTheBoundary")
    assert {"iam:DeletePolicy", "iam:CreatePolicyVersion", "iam:SetDefaultPolicyVersion"} <= set(
        statement["Action"]
    )
    assert resolve_join(statement["Resource"]).endswith(f":policy/{name}")


def test_boundary_denies_removing_or_replacing_a_boundary(synth: Synthesized) -> None:
    _, statements = _boundary(synth)
    removing = _deny(statements, "DenyRemovingTheBoundary")
    replacing = _deny(statements, "DenyReplacingTheBoundary")
    assert set(removing["Action"]) == {
        "iam:DeleteUserPermissionsBoundary",
        "iam:DeleteRolePermissionsBoundary",
    }
    assert set(replacing["Action"]) == {"iam:PutUserPermissionsBoundary", "iam:PutRolePermissionsBoundary"}
    assert "StringNotEquals" in replacing["Condition"]


def test_boundary_denies_creating_users_or_roles_without_it(synth: Synthesized) -> None:
    name, statements = _boundary(synth)
    statement = _deny(statements, "DenyCreatingWithoutTheBoundary")
    assert set(statement["Action"]) == {"iam:CreateUser", "iam:CreateRole"}
    required = resolve_join(statement["Condition"]["StringNotEquals"]["iam:PermissionsBoundary"])
    assert required.endswith(f":policy/{name}")


def test_boundary_lets_roles_be_passed_only_to_the_kit_services(synth: Synthesized) -> None:
    _, statements = _boundary(synth)
    statement = _deny(statements, "DenyPassingRolesElsewhere")
    assert statement["Action"] == "iam:PassRole"
    allowed = statement["Condition"]["StringNotEquals"]["iam:PassedToService"]
    assert sorted(allowed) == sorted(PASS_ROLE_SERVICES)
    assert set(allowed) == {
        "ec2.amazonaws.com",
        "elasticmapreduce.amazonaws.com",
        "application-autoscaling.amazonaws.com",
        "servicecatalog.amazonaws.com",
        "sagemaker.amazonaws.com",
    }


@pytest.mark.parametrize("stack", [STACK, "filtering"])
def test_every_role_is_under_the_permissions_boundary(synth: Synthesized, stack: str) -> None:
    roles = synth.resources(stack, "AWS::IAM::Role")
    assert roles
    for logical_id, role in roles.items():
        assert "PermissionsBoundary" in role["Properties"], logical_id


def test_filtering_roles_use_the_same_boundary(synth: Synthesized) -> None:
    boundaries = {
        str(role["Properties"]["PermissionsBoundary"])
        for role in synth.resources("filtering", "AWS::IAM::Role").values()
    }
    assert len(boundaries) == 1
    assert "PermissionsBoundaryPolicy" in boundaries.pop()


# --- EMR roles, key, security configuration --------------------------------------------------------


def test_ebs_key_rotates_and_has_the_kit_alias(synth: Synthesized) -> None:
    template = synth.template(STACK)
    template.has_resource_properties("AWS::KMS::Key", {"EnableKeyRotation": True})
    template.has_resource_properties("AWS::KMS::Alias", {"AliasName": "alias/aik/ebs"})


def test_emr_security_configuration_encrypts_ebs_with_the_kit_key(synth: Synthesized) -> None:
    (key_id,) = synth.resources(STACK, "AWS::KMS::Key")
    synth.template(STACK).has_resource_properties(
        "AWS::EMR::SecurityConfiguration",
        {
            "SecurityConfiguration": {
                "EncryptionConfiguration": Match.object_like(
                    {
                        "EnableAtRestEncryption": True,
                        "AtRestEncryptionConfiguration": {
                            "LocalDiskEncryptionConfiguration": {
                                "EnableEbsEncryption": True,
                                "EncryptionKeyProviderType": "AwsKms",
                                "AwsKmsKey": {"Fn::GetAtt": [key_id, "Arn"]},
                            }
                        },
                    }
                )
            }
        },
    )


def test_both_emr_roles_may_use_the_ebs_key_and_grant_it_to_ebs(synth: Synthesized) -> None:
    (key_id,) = synth.resources(STACK, "AWS::KMS::Key")
    for prefix in ("EMR cluster instances", "EMR service role"):
        statements = _policies_of_role(synth, STACK, _role_id(synth, STACK, prefix))
        on_key = [s for s in statements if {"Fn::GetAtt": [key_id, "Arn"]} in _as_list(s["Resource"])]
        actions = {a for s in on_key for a in _as_list(s["Action"])}
        assert {"kms:Decrypt", "kms:Encrypt", "kms:CreateGrant"} <= actions, prefix
        grants = [s for s in on_key if "kms:CreateGrant" in _as_list(s["Action"])]
        assert all(s["Condition"] == {"Bool": {"kms:GrantIsForAWSResource": True}} for s in grants)


def test_instance_profile_carries_the_instance_role_and_its_name(synth: Synthesized) -> None:
    role_id = _role_id(synth, STACK, "EMR cluster instances")
    synth.template(STACK).has_resource_properties(
        "AWS::IAM::InstanceProfile", {"Roles": [{"Ref": role_id}], "InstanceProfileName": {"Ref": role_id}}
    )


def test_instance_role_has_no_aws_managed_policy(synth: Synthesized) -> None:
    role = synth.resources(STACK, "AWS::IAM::Role")[_role_id(synth, STACK, "EMR cluster instances")]
    assert "ManagedPolicyArns" not in role["Properties"]


def test_instance_role_reads_only_the_kit_parameters(synth: Synthesized) -> None:
    statements = _policies_of_role(synth, STACK, _role_id(synth, STACK, "EMR cluster instances"))
    ssm = [s for s in statements if any(a.startswith("ssm:") for a in _as_list(s["Action"]))]
    assert len(ssm) == 1
    assert not any("Put" in a for a in _as_list(ssm[0]["Action"]))
    assert resolve_join(ssm[0]["Resource"]).endswith(":parameter/aik/*")


def test_emr_service_role_uses_the_scoped_v2_policy(synth: Synthesized) -> None:
    role = synth.resources(STACK, "AWS::IAM::Role")[_role_id(synth, STACK, "EMR service role")]
    (policy,) = role["Properties"]["ManagedPolicyArns"]
    assert resolve_join(policy).endswith(":iam::aws:policy/service-role/AmazonEMRServicePolicy_v2")


def test_emr_service_role_may_pass_only_the_instance_role(synth: Synthesized) -> None:
    statements = _policies_of_role(synth, STACK, _role_id(synth, STACK, "EMR service role"))
    (pass_role,) = [s for s in statements if "iam:PassRole" in _as_list(s["Action"])]
    instance_role = _role_id(synth, STACK, "EMR cluster instances")
    assert pass_role["Resource"] == {"Fn::GetAtt": [instance_role, "Arn"]}


# --- Service Catalog -------------------------------------------------------------------------------


def test_product_is_visible_to_studio(synth: Synthesized) -> None:
    synth.template(STACK).has_resource_properties(
        "AWS::ServiceCatalog::CloudFormationProduct",
        {"Tags": Match.array_with([{"Key": "sagemaker:studio-visibility:emr", "Value": "true"}])},
    )


def test_product_is_in_the_portfolio_with_a_launch_role(synth: Synthesized) -> None:
    (portfolio,) = synth.resources(STACK, "AWS::ServiceCatalog::Portfolio")
    (product,) = synth.resources(STACK, "AWS::ServiceCatalog::CloudFormationProduct")
    template = synth.template(STACK)
    template.has_resource_properties(
        "AWS::ServiceCatalog::PortfolioProductAssociation",
        {"PortfolioId": {"Ref": portfolio}, "ProductId": {"Ref": product}},
    )
    launch_role = _role_id(synth, STACK, "Service Catalog launch constraint")
    template.has_resource_properties(
        "AWS::ServiceCatalog::LaunchRoleConstraint",
        {"PortfolioId": {"Ref": portfolio}, "RoleArn": {"Fn::GetAtt": [launch_role, "Arn"]}},
    )


def test_studio_execution_role_has_access_to_the_portfolio(synth: Synthesized) -> None:
    synth.template(STACK).has_resource_properties(
        "AWS::ServiceCatalog::PortfolioPrincipalAssociation",
        {
            "PrincipalARN": {"Fn::GetAtt": [_role_id(synth, STACK, "SageMaker Studio"), "Arn"]},
            "PrincipalType": "IAM",
        },
    )


def test_launch_role_may_pass_exactly_the_two_emr_roles(synth: Synthesized) -> None:
    statements = _policies_of_role(synth, STACK, _role_id(synth, STACK, "Service Catalog launch constraint"))
    passed = {
        resource["Fn::GetAtt"][0]
        for s in statements
        if "iam:PassRole" in _as_list(s["Action"])
        for resource in _as_list(s["Resource"])
    }
    assert passed == {
        _role_id(synth, STACK, "EMR cluster instances"),
        _role_id(synth, STACK, "EMR service role"),
    }


def test_launch_role_runs_cloudformation_only_on_service_catalog_stacks(synth: Synthesized) -> None:
    statements = _policies_of_role(synth, STACK, _role_id(synth, STACK, "Service Catalog launch constraint"))
    (stacks,) = [s for s in statements if "cloudformation:CreateStack" in _as_list(s["Action"])]
    assert resolve_join(stacks["Resource"]).endswith(":stack/SC-*")


def test_every_product_import_is_exported_by_this_stack(synth: Synthesized) -> None:
    exported = {o["Export"]["Name"] for o in synth.templates[STACK]["Outputs"].values() if "Export" in o}
    imported = set()

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if "Fn::ImportValue" in node:
                imported.add(node["Fn::ImportValue"])
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(synth.templates["product"])
    names = export_names(synth.stage.sagemaker_emr.stack_name)
    assert imported == set(vars(names).values())
    assert imported <= exported


# --- Studio ---------------------------------------------------------------------------------------


def test_domain_is_vpc_only_with_iam_auth_in_the_private_subnets(synth: Synthesized) -> None:
    private = [
        logical_id
        for logical_id, s in synth.resources(STACK, "AWS::EC2::Subnet").items()
        if {"Key": "aws-cdk:subnet-type", "Value": "Private"} in s["Properties"]["Tags"]
    ]
    synth.template(STACK).has_resource_properties(
        "AWS::SageMaker::Domain",
        {
            "DomainName": DOMAIN_NAME,
            "AppNetworkAccessType": "VpcOnly",
            "AuthMode": "IAM",
            "SubnetIds": [{"Ref": s} for s in sorted(private)],
        },
    )


def test_user_profile_runs_as_the_execution_role(synth: Synthesized) -> None:
    synth.template(STACK).has_resource_properties(
        "AWS::SageMaker::UserProfile",
        {
            "UserProfileName": USER_PROFILE_NAME,
            "UserSettings": {
                "ExecutionRole": {"Fn::GetAtt": [_role_id(synth, STACK, "SageMaker Studio"), "Arn"]}
            },
        },
    )


def test_execution_role_reads_and_writes_only_the_kit_parameters(synth: Synthesized) -> None:
    statements = _policies_of_role(synth, STACK, _role_id(synth, STACK, "SageMaker Studio"))
    ssm = [
        s
        for s in statements
        if s["Effect"] == "Allow" and any(a.startswith("ssm:") for a in _as_list(s["Action"]))
    ]
    assert len(ssm) == 1
    assert {"ssm:GetParameter", "ssm:PutParameter"} <= set(ssm[0]["Action"])
    assert resolve_join(ssm[0]["Resource"]).endswith(":parameter/aik/*")


def test_execution_role_may_use_studio_emr_connections(synth: Synthesized) -> None:
    statements = _policies_of_role(synth, STACK, _role_id(synth, STACK, "SageMaker Studio"))
    actions = {a for s in statements for a in _as_list(s["Action"])}
    assert {
        "elasticmapreduce:ListClusters",
        "elasticmapreduce:DescribeCluster",
        "elasticmapreduce:ListInstances",
        "elasticmapreduce:CreatePersistentAppUI",
        "elasticmapreduce:GetPersistentAppUIPresignedURL",
        "elasticmapreduce:GetOnClusterAppUIPresignedURL",
    } <= actions


def test_execution_role_reads_and_writes_the_data_bucket(synth: Synthesized) -> None:
    statements = _policies_of_role(synth, STACK, _role_id(synth, STACK, "SageMaker Studio"))
    data_objects = [s for s in statements if "BucketsData" in resolve_join(_as_list(s["Resource"])[-1])]
    actions = {a for s in data_objects for a in _as_list(s["Action"])}
    assert {"s3:GetObject", "s3:PutObject", "s3:DeleteObject", "s3:ListBucket"} <= actions
    assert not any(a.startswith("s3:DeleteObjectVersion") or a.endswith("*") for a in actions)


def test_cleanup_is_deleted_after_the_domain_and_before_the_vpc(synth: Synthesized) -> None:
    (cleanup_id,) = synth.resources(STACK, "Custom::StudioCleanup")
    (domain,) = synth.resources(STACK, "AWS::SageMaker::Domain").values()
    assert cleanup_id in domain["DependsOn"]
    cleanup = synth.templates[STACK]["Resources"][cleanup_id]
    subnets = set(synth.resources(STACK, "AWS::EC2::Subnet"))
    assert subnets <= set(cleanup["DependsOn"])
    assert cleanup["Properties"]["VpcId"] == {"Ref": next(iter(synth.resources(STACK, "AWS::EC2::VPC")))}


def test_cleanup_function_may_delete_only_in_the_kit_vpc(synth: Synthesized) -> None:
    (function,) = [
        f["Properties"]
        for f in synth.resources(STACK, "AWS::Lambda::Function").values()
        if f["Properties"].get("Handler") == "handler.on_event"
        and "Studio leaves" in f["Properties"].get("Description", "")
    ]
    assert function["Runtime"] == "python3.14"
    role_id = function["Role"]["Fn::GetAtt"][0]
    statements = _policies_of_role(synth, STACK, role_id)
    (ec2_delete,) = [s for s in statements if "ec2:DeleteSecurityGroup" in _as_list(s["Action"])]
    assert "ec2:Vpc" in ec2_delete["Condition"]["ArnEquals"]
    (efs_delete,) = [s for s in statements if "elasticfilesystem:DeleteFileSystem" in _as_list(s["Action"])]
    # scoped to this domain's ARN (tests/stacks/test_cdk_least_privilege.py checks the condition)
    assert "StringEquals" in efs_delete["Condition"]


def test_outputs_name_what_users_and_the_product_need(synth: Synthesized) -> None:
    outputs = synth.templates[STACK]["Outputs"]
    assert {
        "VpcId",
        "SubnetId",
        "StudioSecurityGroupId",
        "BootstrapBucket",
        "InstanceProfile",
        "ServiceRole",
        "SecurityConfiguration",
        "StudioHomeEfsId",
        "StudioDomainId",
        "DataBucketName",
    } <= set(outputs)
    assert outputs["StudioHomeEfsId"]["Value"]["Fn::GetAtt"][1] == "HomeEfsFileSystemId"
