"""Stack `aik/sagemaker-emr`: the ML data-pipeline environment (network, buckets, EMR product, Studio)."""

from __future__ import annotations

from typing import Any

import aws_cdk as cdk
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_iam as iam
from aws_cdk import aws_s3 as s3
from constructs import Construct

from aik import params
from stacks.boundary import PermissionsBoundary
from stacks.buckets import BOOTSTRAP_PREFIX, KitBuckets
from stacks.config import KitConfig
from stacks.emr_product import EmrPortfolio, ProductImports, export_names
from stacks.emr_security import EmrSecurity
from stacks.mlflow import MlflowTracking
from stacks.network import Network
from stacks.parameter_cleanup import ParameterCleanup
from stacks.retention import LogGroupRetention
from stacks.studio import STACK_PARAMETERS, StudioDomain
from stacks.studio_lifecycle import StudioLifecycle


class TwoAzStack(cdk.Stack):
    """A stack whose AZs are the region's first two, as `Fn::GetAZs` tokens, whatever its environment.

    An environment-agnostic stack gets these anyway; an environment-specific one would look the AZ
    names up in the account (an AWS call at synth time, and a template that differs per account).
    Using the tokens in both cases keeps synthesis offline and the template identical.
    """

    @property
    def availability_zones(self) -> list[str]:
        """The region's first two AZs, resolved by CloudFormation at deploy time."""
        return [cdk.Fn.select(i, cdk.Fn.get_azs()) for i in range(2)]


class SagemakerEmrStack(TwoAzStack):
    """VPC, buckets, permissions boundary, EMR roles/key/security configuration, the Service Catalog
    EMR product and the Studio domain, and with `aik:mlflow` a SageMaker managed MLflow tracking server;
    exports what the product template imports.

    Exposes `vpc`, `data_bucket`, `data_read_policy`, `prediction_write_policy` and `boundary` for the
    filtering stack, and `data_read_write_policy`, `bootstrap_bucket` and `emr_security` for the loop
    stack.
    """

    def __init__(self, scope: Construct, construct_id: str, *, config: KitConfig, **kwargs: Any) -> None:
        super().__init__(scope, construct_id, **kwargs)
        self.boundary = PermissionsBoundary(self, "PermissionsBoundary")
        self.boundary.apply_to(self)
        cdk.Aspects.of(self).add(LogGroupRetention(config.log_retention_days, config.removal_policy))

        network = Network(
            self,
            "Network",
            nat_gateways=config.nat_gateways,
        )
        self.vpc: ec2.IVpc = network.vpc
        buckets = KitBuckets(self, "Buckets", removal_policy=config.removal_policy)
        self.data_bucket: s3.IBucket = buckets.data
        self.data_read_policy: iam.IManagedPolicy = buckets.data_read_policy
        self.data_read_write_policy: iam.IManagedPolicy = buckets.data_read_write_policy
        self.prediction_write_policy: iam.IManagedPolicy = buckets.prediction_write_policy
        self.bootstrap_bucket: s3.IBucket = buckets.bootstrap
        emr_security = EmrSecurity(
            self,
            "EmrSecurity",
            data_bucket=buckets.data,
            bootstrap_bucket=buckets.bootstrap,
            removal_policy=config.removal_policy,
        )
        # The install script fetches the kit from the sources deployed for EMR's bootstrap action.
        lifecycle = StudioLifecycle(
            self, "StudioLifecycle", source_bucket=buckets.bootstrap, source_prefix=BOOTSTRAP_PREFIX
        )
        self.emr_security = emr_security
        studio = StudioDomain(
            self,
            "Studio",
            vpc=self.vpc,
            data_bucket=buckets.data,
            lifecycle=lifecycle,
        )

        self.mlflow: MlflowTracking | None = None
        if config.mlflow:
            self.mlflow = MlflowTracking(
                self, "Mlflow", data_bucket=buckets.data, users=[studio.execution_role]
            )
            cdk.CfnOutput(
                self,
                "MlflowTrackingServerArn",
                value=self.mlflow.server.attr_tracking_server_arn,
                description="The MLflow tracking server (its ARN is the tracking URI, with sagemaker-mlflow)",
            )

        if not config.retain_data:
            # `cdk destroy` also removes what the notebooks wrote under /aik/ (kept with the data).
            ParameterCleanup(self, "ParameterCleanup", prefix=params.PREFIX, keep=STACK_PARAMETERS)

        imports = export_names(self.stack_name)
        emr_subnet = self.vpc.select_subnets(subnet_type=ec2.SubnetType.PRIVATE_WITH_EGRESS).subnets[0]
        self._export(
            imports,
            {
                "vpc_id": (self.vpc.vpc_id, "The kit's VPC"),
                "subnet_id": (emr_subnet.subnet_id, "Private subnet of the Studio-launched EMR clusters"),
                "studio_security_group_id": (
                    studio.security_group.security_group_id,
                    "Security group of Studio's apps (reaches Livy on the EMR main node)",
                ),
                "bootstrap_bucket": (
                    buckets.bootstrap.bucket_name,
                    "Bucket of the EMR bootstrap scripts and logs",
                ),
                "instance_profile": (
                    emr_security.instance_profile.instance_profile_name,
                    "Instance profile (job-flow role) of the EMR clusters",
                ),
                "service_role": (emr_security.service_role.role_name, "Service role of the EMR clusters"),
                "security_configuration": (
                    emr_security.security_configuration.ref,
                    "EMR security configuration (EBS encryption with the aik/ebs key)",
                ),
            },
        )
        portfolio = EmrPortfolio(
            self,
            "EmrPortfolio",
            imports=imports,
            vpc=self.vpc,
            pass_roles=[emr_security.instance_role, emr_security.service_role],
        )
        portfolio.portfolio.give_access_to_role(studio.execution_role)

        cdk.CfnOutput(
            self, "StudioDomainId", value=studio.domain.attr_domain_id, description="SageMaker domain"
        )
        cdk.CfnOutput(
            self,
            "StudioHomeEfsId",
            value=studio.domain.attr_home_efs_file_system_id,
            description="Home EFS file system of the Studio domain (the cleanup removes it on destroy)",
        )
        cdk.CfnOutput(self, "DataBucketName", value=buckets.data.bucket_name, description="The data bucket")
        self.studio_execution_role: iam.IRole = studio.execution_role

    def _export(self, imports: ProductImports, values: dict[str, tuple[str, str]]) -> None:
        """One output per product import, exported under the name the product template imports."""
        for field, (value, description) in values.items():
            cdk.CfnOutput(
                self,
                "".join(part.capitalize() for part in field.split("_")),
                value=value,
                description=description,
                export_name=getattr(imports, field),
            )
