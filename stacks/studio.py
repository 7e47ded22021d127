"""SageMaker Studio: security group, execution role, VpcOnly domain, a user profile and the cleanup."""

from __future__ import annotations

from pathlib import Path

import aws_cdk as cdk
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_sagemaker as sagemaker
from aws_cdk import custom_resources as cr
from constructs import Construct

from aik import params
from stacks import nag
from stacks.buckets import grant_data_read_write
from stacks.cleanup.handler import SAGEMAKER_EFS_TAG
from stacks.studio_lifecycle import StudioLifecycle

CLEANUP_CODE = Path(__file__).resolve().parent / "cleanup"
#: The parameters the two stacks create (and delete): no notebook or Studio user may change them.
STACK_PARAMETERS = (
    params.DATA_BUCKET,
    params.MONITORING_CONFIG,
    params.CURRENT_REGION,
    params.MLFLOW_TRACKING_SERVER,
)
#: The cleanup role's tag naming the kit's domain ARN (what its EFS deletion must match).
CLEANUP_DOMAIN_TAG = "aik-studio-domain"
DOMAIN_NAME = "aik-studio"
USER_PROFILE_NAME = "aik-user"


class StudioDomain(Construct):
    """A SageMaker Studio domain (VpcOnly, IAM auth) in the private subnets, with one user profile.

    The execution role (Studio, notebooks, training jobs) may read and write the data bucket, read and
    write the `/aik/*` parameters, describe and list EMR clusters and open Studio's EMR UIs. Exposes
    `security_group`, `execution_role`, `domain`, `user_profile` and `cleanup` (the custom resource
    that removes what the domain leaves behind, see `stacks/cleanup/handler.py`).
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        vpc: ec2.IVpc,
        data_bucket: s3.IBucket,
        lifecycle: StudioLifecycle,
    ) -> None:
        super().__init__(scope, construct_id)
        stack = cdk.Stack.of(self)
        self.security_group = ec2.SecurityGroup(
            self, "SecurityGroup", vpc=vpc, description="SageMaker Studio apps of the kit domain"
        )
        # Studio in VpcOnly mode: the Jupyter server and kernel-gateway apps talk to each other.
        self.security_group.add_ingress_rule(
            self.security_group, ec2.Port.tcp_range(8192, 65535), "Studio apps to each other"
        )

        self.execution_role = iam.Role(
            self,
            "ExecutionRole",
            assumed_by=iam.ServicePrincipal("sagemaker.amazonaws.com"),
            description="SageMaker Studio and training jobs of the Advertising Intelligence Kit",
            managed_policies=[iam.ManagedPolicy.from_aws_managed_policy_name("AmazonSageMakerFullAccess")],
        )
        grant_data_read_write(data_bucket, self.execution_role)
        self.parameters_arn = stack.format_arn(
            service="ssm", resource="parameter", resource_name=params.PREFIX.strip("/") + "/*"
        )
        self.execution_role.add_to_policy(
            iam.PolicyStatement(
                sid="ReadWriteKitParameters",
                actions=[
                    "ssm:GetParameter",
                    "ssm:GetParameters",
                    "ssm:GetParametersByPath",
                    "ssm:PutParameter",
                ],
                resources=[self.parameters_arn],
            )
        )
        # The notebooks own every /aik/ parameter except the ones the stacks create.
        self.execution_role.add_to_policy(
            iam.PolicyStatement(
                sid="LeaveStackParametersAlone",
                effect=iam.Effect.DENY,
                actions=["ssm:PutParameter", "ssm:DeleteParameter", "ssm:DeleteParameters"],
                resources=[
                    stack.format_arn(service="ssm", resource="parameter", resource_name=name.lstrip("/"))
                    for name in STACK_PARAMETERS
                ],
            )
        )
        self.execution_role.add_to_policy(
            iam.PolicyStatement(
                sid="StudioEmrDiscovery",
                actions=["elasticmapreduce:ListClusters"],
                resources=["*"],
            )
        )
        self._emr_arn = stack.format_arn(service="elasticmapreduce", resource="*")
        self.execution_role.add_to_policy(
            iam.PolicyStatement(
                sid="StudioEmrConnect",
                actions=[
                    "elasticmapreduce:DescribeCluster",
                    "elasticmapreduce:DescribeSecurityConfiguration",
                    "elasticmapreduce:ListInstanceGroups",
                    "elasticmapreduce:ListInstances",
                    "elasticmapreduce:CreatePersistentAppUI",
                    "elasticmapreduce:DescribePersistentAppUI",
                    "elasticmapreduce:GetPersistentAppUIPresignedURL",
                    "elasticmapreduce:GetOnClusterAppUIPresignedURL",
                ],
                resources=[self._emr_arn],
            )
        )

        lifecycle.grant_read(self.execution_role)
        # Every JupyterLab app of the domain runs the kit's install script when it starts.
        jupyter_lab = sagemaker.CfnDomain.JupyterLabAppSettingsProperty(
            default_resource_spec=sagemaker.CfnDomain.ResourceSpecProperty(
                lifecycle_config_arn=lifecycle.arn
            ),
            lifecycle_config_arns=[lifecycle.arn],
        )
        jupyter_lab_user = sagemaker.CfnUserProfile.JupyterLabAppSettingsProperty(
            default_resource_spec=sagemaker.CfnUserProfile.ResourceSpecProperty(
                lifecycle_config_arn=lifecycle.arn
            ),
            lifecycle_config_arns=[lifecycle.arn],
        )
        subnets = vpc.select_subnets(subnet_type=ec2.SubnetType.PRIVATE_WITH_EGRESS)
        self.domain = sagemaker.CfnDomain(
            self,
            "Domain",
            domain_name=DOMAIN_NAME,
            app_network_access_type="VpcOnly",
            auth_mode="IAM",
            vpc_id=vpc.vpc_id,
            subnet_ids=subnets.subnet_ids,
            default_user_settings=sagemaker.CfnDomain.UserSettingsProperty(
                execution_role=self.execution_role.role_arn,
                security_groups=[self.security_group.security_group_id],
                # Studio (JupyterLab spaces), not Studio Classic, whose apps run no JupyterLab scripts.
                studio_web_portal="ENABLED",
                default_landing_uri="studio::",
                jupyter_lab_app_settings=jupyter_lab,
            ),
        )
        self.user_profile = sagemaker.CfnUserProfile(
            self,
            "UserProfile",
            domain_id=self.domain.attr_domain_id,
            user_profile_name=USER_PROFILE_NAME,
            user_settings=sagemaker.CfnUserProfile.UserSettingsProperty(
                execution_role=self.execution_role.role_arn,
                jupyter_lab_app_settings=jupyter_lab_user,
            ),
        )

        self.cleanup = self._cleanup(vpc)
        self._tag_cleanup_role()
        # Deletion runs in reverse: the profile, then the domain, then the cleanup, then the VPC.
        self.domain.node.add_dependency(self.cleanup)
        # Every part of the VPC except the VPC resource itself, which the VpcId property already references.
        vpc_resource = vpc.node.default_child
        for part in vpc.node.children:
            if vpc_resource is None or part.node.path != vpc_resource.node.path:
                self.cleanup.node.add_dependency(part)
        self._acknowledge(data_bucket)

    def _cleanup(self, vpc: ec2.IVpc) -> cdk.CustomResource:
        stack = cdk.Stack.of(self)
        log_group = logs.LogGroup(self, "CleanupLogGroup")
        # An own role instead of AWSLambdaBasicExecutionRole: it writes to its one log group only.
        role = iam.Role(
            self,
            "CleanupRole",
            assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"),
            description="Studio cleanup custom resource of the kit",
        )
        log_group.grant_write(role)
        self.cleanup_function = lambda_.Function(
            self,
            "CleanupFunction",
            runtime=lambda_.Runtime.PYTHON_3_14,
            handler="handler.on_event",
            code=lambda_.Code.from_asset(str(CLEANUP_CODE), exclude=["__pycache__", "*.pyc"]),
            timeout=cdk.Duration.minutes(14),
            memory_size=256,
            description="Removes the EFS file system and NFS security groups Studio leaves in the kit's VPC",
            role=role,
            log_group=log_group,
        )
        vpc_arn = stack.format_arn(service="ec2", resource="vpc", resource_name=vpc.vpc_id)
        self._cleanup_resources = [
            stack.format_arn(service="ec2", resource="security-group", resource_name="*"),
            stack.format_arn(service="ec2", resource="network-interface", resource_name="*"),
            stack.format_arn(service="elasticfilesystem", resource="file-system", resource_name="*"),
        ]
        self.cleanup_function.add_to_role_policy(
            iam.PolicyStatement(
                sid="FindLeftovers",
                actions=[
                    "ec2:DescribeSecurityGroups",
                    "ec2:DescribeNetworkInterfaces",
                    "elasticfilesystem:DescribeFileSystems",
                    "elasticfilesystem:DescribeMountTargets",
                ],
                resources=["*"],
            )
        )
        self.cleanup_function.add_to_role_policy(
            iam.PolicyStatement(
                sid="RemoveLeftoversInKitVpc",
                actions=[
                    "ec2:DeleteNetworkInterface",
                    "ec2:DeleteSecurityGroup",
                    "ec2:RevokeSecurityGroupEgress",
                    "ec2:RevokeSecurityGroupIngress",
                ],
                resources=self._cleanup_resources[:2],
                conditions={"ArnEquals": {"ec2:Vpc": vpc_arn}},
            )
        )
        self.cleanup_function.add_to_role_policy(
            iam.PolicyStatement(
                sid="RemoveThisDomainsFileSystem",
                actions=["elasticfilesystem:DeleteMountTarget", "elasticfilesystem:DeleteFileSystem"],
                resources=self._cleanup_resources[2:],
                # SageMaker tags the home EFS with the domain's ARN; the role carries that ARN as its
                # own tag (set once the domain exists, see _tag_cleanup_role), so only this domain's
                # file system matches.
                conditions={
                    "StringEquals": {
                        f"aws:ResourceTag/{SAGEMAKER_EFS_TAG}": f"${{aws:PrincipalTag/{CLEANUP_DOMAIN_TAG}}}"
                    }
                },
            )
        )
        self.provider = cr.Provider(self, "CleanupProvider", on_event_handler=self.cleanup_function)
        return cdk.CustomResource(
            self,
            "Cleanup",
            service_token=self.provider.service_token,
            resource_type="Custom::StudioCleanup",
            properties={"VpcId": vpc.vpc_id},
        )

    def _tag_cleanup_role(self) -> None:
        """Tag the cleanup role with the domain's ARN once the domain exists.

        The role's policy cannot name the ARN itself: the domain depends on the cleanup (so that
        deletion runs the cleanup after the domain), which depends on the role. A tag set by a
        resource that depends on the domain stays on the role until the role is deleted.
        """
        role = self.cleanup_function.role
        assert role is not None
        call = cr.AwsSdkCall(
            service="IAM",
            action="tagRole",
            parameters={
                "RoleName": role.role_name,
                "Tags": [{"Key": CLEANUP_DOMAIN_TAG, "Value": self.domain.attr_domain_arn}],
            },
            physical_resource_id=cr.PhysicalResourceId.of("aik-cleanup-role-domain-tag"),
        )
        self.cleanup_tag = cr.AwsCustomResource(
            self,
            "CleanupRoleDomainTag",
            on_create=call,
            on_update=call,
            policy=cr.AwsCustomResourcePolicy.from_statements(
                [iam.PolicyStatement(actions=["iam:TagRole"], resources=[role.role_arn])]
            ),
            install_latest_aws_sdk=False,
        )
        # CDK names the singleton "AWS" + the provider function's UUID without dashes.
        singleton_id = "AWS" + cr.AwsCustomResource.PROVIDER_FUNCTION_UUID.replace("-", "")
        singleton = cdk.Stack.of(self).node.find_child(singleton_id)
        nag.acknowledge(
            singleton,
            nag.aws_managed_policy_rule(self, "service-role/AWSLambdaBasicExecutionRole"),
            "CDK's AwsCustomResource runs in one singleton function per stack whose role CDK gives "
            "AWSLambdaBasicExecutionRole for its logs; the kit's call (iam:TagRole on the cleanup role "
            "only) is in the resource's own policy.",
        )

    def _acknowledge(self, data_bucket: s3.IBucket) -> None:
        role_policy = self.execution_role.node.find_child("DefaultPolicy")
        nag.acknowledge(
            self.execution_role,
            nag.aws_managed_policy_rule(self, "AmazonSageMakerFullAccess"),
            "Studio users create apps, spaces, training jobs and Service Catalog products (the EMR "
            "template) through the SageMaker APIs; AmazonSageMakerFullAccess is AWS's maintained policy "
            "for that. The kit's permissions boundary removes from it SageMaker domain, user-profile and "
            "lifecycle administration, billing, IAM boundary changes and passing roles outside the kit's "
            "services; the rest of it (sagemaker:* on the account's other SageMaker resources among "
            "them) stays granted.",
        )
        nag.acknowledge(
            role_policy,
            nag.resource_rule(self, data_bucket.arn_for_objects("*")),
            "Notebooks and SageMaker training jobs read the raw data and features and write models and "
            "releases in the kit's data bucket under keys notebook 0 and training choose; the wildcard "
            "is that bucket's object keys (no s3:DeleteObjectVersion: versions stay recoverable).",
        )
        nag.acknowledge(
            role_policy,
            nag.resource_rule(self, self.parameters_arn),
            "Notebook 0 writes and every step reads the kit's parameters, all named under /aik/.",
        )
        nag.acknowledge(
            role_policy,
            "AwsSolutions-IAM5[Resource::*]",
            "elasticmapreduce:ListClusters has no resource-level permissions; Studio lists clusters to "
            "offer the ones it can connect to.",
        )
        nag.acknowledge(
            role_policy,
            nag.resource_rule(self, self._emr_arn),
            "Studio connects to clusters Service Catalog launches at run time (ids unknown at deploy "
            "time) and opens their persistent app UIs; limited to this account and region.",
        )
        nag.acknowledge(
            self.provider,
            nag.aws_managed_policy_rule(self, "service-role/AWSLambdaBasicExecutionRole"),
            "CDK's custom-resource provider framework gives its own function AWSLambdaBasicExecutionRole to "
            "write its logs; the framework, not the kit, owns that role.",
        )
        nag.acknowledge(
            self.provider,
            nag.resource_rule(self, f"{self.cleanup_function.function_arn}:*"),
            "The provider framework may invoke any version or alias of the kit's cleanup function "
            "(the wildcard is the qualifier of that one function's ARN).",
        )
        role = self.cleanup_function.role
        assert role is not None  # a Function made without a role gets its own
        function_policy = role.node.find_child("DefaultPolicy")
        nag.acknowledge(
            function_policy,
            "AwsSolutions-IAM5[Resource::*]",
            "The Describe calls of EC2 and EFS have no resource-level permissions; the handler needs them "
            "to find what Studio created (names and ids are chosen by SageMaker).",
        )
        for resource in self._cleanup_resources:
            nag.acknowledge(
                function_policy,
                nag.resource_rule(self, resource),
                "SageMaker creates these resources outside CloudFormation, so their ids are unknown; "
                "deletion is limited by condition to the kit's VPC (EC2) or to the file system whose "
                "ManagedByAmazonSageMakerResource tag is this domain's ARN (EFS).",
            )
