"""The Service Catalog portfolio and its EMR product, which Studio users launch to run the Spark job.

The product's template is a `ProductStack`: Service Catalog deploys it as its own CloudFormation stack,
so it cannot hold object references to the parent stack. Everything it needs from the parent (VPC,
subnet, Studio security group, bootstrap bucket, EMR roles, security configuration) reaches it as
CloudFormation exports of the parent, imported by name.

Over 400 lines on purpose: the product template's imports must match the parent's exports by name;
one module keeps both sides together.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

import aws_cdk as cdk
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_emr as emr
from aws_cdk import aws_iam as iam
from aws_cdk import aws_servicecatalog as servicecatalog
from constructs import Construct

from stacks import nag
from stacks.buckets import BOOTSTRAP_PREFIX, BOOTSTRAP_SCRIPT_KEY, EMR_LOG_PREFIX
from stacks.network import EMR_MANAGED_TAG

#: EMR releases the product offers (EMR 7.x: Spark 3.5 and Python 3.11 on Amazon Linux 2023).
EMR_RELEASES = ("emr-7.13.0", "emr-7.12.0")
MAIN_INSTANCE_TYPES = ("m5.xlarge", "m5.2xlarge", "m5.4xlarge", "m6i.xlarge", "m6i.2xlarge", "m6i.4xlarge")
CORE_INSTANCE_TYPES = (*MAIN_INSTANCE_TYPES, "r5.xlarge", "r5.2xlarge", "r6i.xlarge", "r6i.2xlarge")
CORE_INSTANCE_COUNTS = ("2", "5", "10")
#: Idle seconds before EMR terminates the cluster: EMR accepts 60 s .. 7 days. A regular expression
#: because Studio's template form mishandles `Number` parameters (so every parameter is a String).
IDLE_TIMEOUT_PATTERN = (
    r"^(6[0-9]|[7-9][0-9]|[1-9][0-9]{2,4}|[1-5][0-9]{5}|60[0-3][0-9]{3}|604[0-7][0-9]{2}|604800)$"
)
IDLE_TIMEOUT_RANGE = (60, 604800)
#: The interpreter Spark and Livy use on the cluster (EMR 7 ships 3.9 as python3; the kit needs 3.11).
CLUSTER_PYTHON = "/usr/bin/python3.11"
#: Tag that makes a Service Catalog product appear among Studio's EMR cluster templates.
STUDIO_VISIBILITY_TAG = ("sagemaker:studio-visibility:emr", "true")


@dataclass(frozen=True)
class ProductImports:
    """The export names through which the product template reaches the parent stack's resources."""

    vpc_id: str
    subnet_id: str
    studio_security_group_id: str
    bootstrap_bucket: str
    instance_profile: str
    service_role: str
    security_configuration: str


def export_names(prefix: str) -> ProductImports:
    """Export names under `prefix` (the parent stack's name, unique per account and region)."""
    return ProductImports(
        vpc_id=f"{prefix}-vpc-id",
        subnet_id=f"{prefix}-emr-subnet-id",
        studio_security_group_id=f"{prefix}-studio-security-group-id",
        bootstrap_bucket=f"{prefix}-emr-bootstrap-bucket",
        instance_profile=f"{prefix}-emr-instance-profile",
        service_role=f"{prefix}-emr-service-role",
        security_configuration=f"{prefix}-emr-security-configuration",
    )


class EmrClusterTemplate(servicecatalog.ProductStack):
    """The EMR cluster Studio users launch: Spark, Hive and Livy, Python packages, auto-termination.

    Parameters are the ones Studio shows in its "create cluster" form (all Strings). The cluster runs
    in the kit's private subnet with three security groups (main, core, service access) whose rules
    are explicit resources, so that EMR does not add its own and block the groups' deletion; Studio
    reaches Livy (8998) on the main node and nothing else.
    """

    def __init__(self, scope: Construct, construct_id: str, *, imports: ProductImports) -> None:
        super().__init__(
            scope, construct_id, description="Advertising Intelligence Kit - EMR cluster launched from Studio"
        )
        self.parameters = self._parameters()
        p = self.parameters
        vpc_id = cdk.Fn.import_value(imports.vpc_id)
        studio_sg = cdk.Fn.import_value(imports.studio_security_group_id)
        bucket = cdk.Fn.import_value(imports.bootstrap_bucket)

        self.main_sg = self._security_group("MainSecurityGroup", "EMR main (primary) node", vpc_id)
        self.core_sg = self._security_group("CoreSecurityGroup", "EMR core nodes", vpc_id)
        self.service_sg = self._security_group("ServiceSecurityGroup", "EMR service access", vpc_id)
        # The rules EMR's managed groups need in a private subnet, plus Studio's access to the main node.
        for target in (self.main_sg, self.core_sg):
            for source_name, source in (("Main", self.main_sg), ("Core", self.core_sg)):
                for protocol in ("icmp", "tcp", "udp"):
                    self._ingress(target, source_name, source.ref, protocol, purpose="cluster traffic")
            self._ingress(target, "Service", self.service_sg.ref, "tcp", 8443, purpose="EMR service access")
        self._ingress(self.service_sg, "Main", self.main_sg.ref, "tcp", 9443, purpose="EMR service access")
        # Studio's only way in: Livy on the main node (the clusters have no Kerberos realm).
        self._ingress(self.main_sg, "Studio", studio_sg, "tcp", 8998, purpose="Livy")

        volume = emr.CfnCluster.EbsConfigurationProperty(
            ebs_block_device_configs=[
                emr.CfnCluster.EbsBlockDeviceConfigProperty(
                    volume_specification=emr.CfnCluster.VolumeSpecificationProperty(
                        size_in_gb=320, volume_type="gp3"
                    ),
                )
            ],
            ebs_optimized=True,
        )
        self.cluster = emr.CfnCluster(
            self,
            "Cluster",
            name=p["EmrClusterName"].value_as_string,
            release_label=p["EmrReleaseVersion"].value_as_string,
            applications=[emr.CfnCluster.ApplicationProperty(name=n) for n in ("Spark", "Hive", "Livy")],
            bootstrap_actions=[
                emr.CfnCluster.BootstrapActionConfigProperty(
                    name="install-python-packages",
                    script_bootstrap_action=emr.CfnCluster.ScriptBootstrapActionConfigProperty(
                        path=cdk.Fn.sub("s3://${Bucket}/" + BOOTSTRAP_SCRIPT_KEY, {"Bucket": bucket}),
                        args=[cdk.Fn.sub("s3://${Bucket}/" + BOOTSTRAP_PREFIX, {"Bucket": bucket})],
                    ),
                )
            ],
            configurations=[
                emr.CfnCluster.ConfigurationProperty(
                    classification="livy-conf",
                    configuration_properties={"livy.server.session.timeout": "2h"},
                ),
                emr.CfnCluster.ConfigurationProperty(
                    classification="spark-env",
                    configurations=[
                        emr.CfnCluster.ConfigurationProperty(
                            classification="export",
                            configuration_properties={
                                "PYSPARK_PYTHON": CLUSTER_PYTHON,
                                "PYSPARK_DRIVER_PYTHON": CLUSTER_PYTHON,
                            },
                        )
                    ],
                ),
            ],
            ebs_root_volume_size=100,
            instances=emr.CfnCluster.JobFlowInstancesConfigProperty(
                master_instance_group=emr.CfnCluster.InstanceGroupConfigProperty(
                    name="main",
                    instance_count=1,
                    instance_type=p["MainInstanceType"].value_as_string,
                    market="ON_DEMAND",
                    ebs_configuration=volume,
                ),
                core_instance_group=emr.CfnCluster.InstanceGroupConfigProperty(
                    name="core",
                    instance_count=cdk.Token.as_number(p["CoreInstanceCount"].value_as_string),
                    instance_type=p["CoreInstanceType"].value_as_string,
                    market="ON_DEMAND",
                    ebs_configuration=volume,
                ),
                termination_protected=False,
                ec2_subnet_id=cdk.Fn.import_value(imports.subnet_id),
                emr_managed_master_security_group=self.main_sg.ref,
                emr_managed_slave_security_group=self.core_sg.ref,
                service_access_security_group=self.service_sg.ref,
            ),
            job_flow_role=cdk.Fn.import_value(imports.instance_profile),
            service_role=cdk.Fn.import_value(imports.service_role),
            security_configuration=cdk.Fn.import_value(imports.security_configuration),
            log_uri=cdk.Fn.sub("s3://${Bucket}/" + EMR_LOG_PREFIX, {"Bucket": bucket}),
            auto_termination_policy=emr.CfnCluster.AutoTerminationPolicyProperty(
                idle_timeout=cdk.Token.as_number(p["AutoTerminationIdleTimeout"].value_as_string)
            ),
            visible_to_all_users=True,
            tags=[
                cdk.CfnTag(key=EMR_MANAGED_TAG[0], value=EMR_MANAGED_TAG[1]),
                cdk.CfnTag(key="sagemaker:project-name", value=p["SageMakerProjectName"].value_as_string),
                cdk.CfnTag(key="sagemaker:project-id", value=p["SageMakerProjectId"].value_as_string),
            ],
        )
        # Ingress rules are deleted before the cluster's groups, and the cluster before its rules.
        for rule in self.node.children:
            if isinstance(rule, ec2.CfnSecurityGroupIngress):
                self.cluster.add_resource_dependency(rule)
        cdk.CfnOutput(
            self,
            "MainNodeDns",
            description="Private DNS name of the EMR main node",
            value=self.cluster.attr_master_public_dns,
        )
        cdk.CfnOutput(self, "ClusterId", description="The EMR cluster id", value=self.cluster.ref)
        self._acknowledge()

    def _parameters(self) -> dict[str, cdk.CfnParameter]:
        """The template's parameters, in the order Studio's form shows them."""
        specs: Mapping[str, dict[str, object]] = {
            "SageMakerProjectName": {"description": "Name of the SageMaker project (set by Studio)"},
            "SageMakerProjectId": {
                "description": "Service-generated id of the SageMaker project (set by Studio)"
            },
            "EmrClusterName": {"description": "Name of the EMR cluster"},
            "MainInstanceType": {
                "description": "Instance type of the EMR main (primary) node",
                "default": MAIN_INSTANCE_TYPES[0],
                "allowed_values": list(MAIN_INSTANCE_TYPES),
            },
            "CoreInstanceType": {
                "description": "Instance type of the EMR core nodes",
                "default": CORE_INSTANCE_TYPES[0],
                "allowed_values": list(CORE_INSTANCE_TYPES),
            },
            "CoreInstanceCount": {
                "description": "Number of core nodes",
                "default": CORE_INSTANCE_COUNTS[0],
                "allowed_values": list(CORE_INSTANCE_COUNTS),
            },
            "EmrReleaseVersion": {
                "description": "EMR release of the cluster",
                "default": EMR_RELEASES[0],
                "allowed_values": list(EMR_RELEASES),
            },
            "AutoTerminationIdleTimeout": {
                "description": "Seconds of idleness after which EMR terminates the cluster (60 to 604800)",
                "default": "3600",
                "allowed_pattern": IDLE_TIMEOUT_PATTERN,
                "constraint_description": "a whole number of seconds from 60 to 604800",
            },
        }
        # each spec holds only CfnParameter's keyword arguments, all strings
        return {name: cdk.CfnParameter(self, name, type="String", **spec) for name, spec in specs.items()}  # type: ignore[arg-type]

    def _security_group(self, construct_id: str, description: str, vpc_id: str) -> ec2.CfnSecurityGroup:
        # L1 groups: the product cannot import the VPC as an object, only its id.
        return ec2.CfnSecurityGroup(
            self,
            construct_id,
            group_description=f"{description} of the kit Studio-launched cluster",
            vpc_id=vpc_id,
            tags=[cdk.CfnTag(key=EMR_MANAGED_TAG[0], value=EMR_MANAGED_TAG[1])],
        )

    def _ingress(
        self,
        target: ec2.CfnSecurityGroup,
        source_name: str,
        source: str,
        protocol: str,
        port: int | None = None,
        *,
        purpose: str,
    ) -> None:
        """One ingress rule as its own resource; no port means the whole protocol."""
        if port is not None:
            from_port, to_port, ports = port, port, f" {port}"
        elif protocol == "icmp":
            from_port, to_port, ports = -1, -1, ""
        else:
            from_port, to_port, ports = 0, 65535, ""
        target_name = target.node.id.removesuffix("SecurityGroup")
        ec2.CfnSecurityGroupIngress(
            self,
            f"{target_name}From{source_name}{protocol.capitalize()}{port or ''}",
            group_id=target.ref,
            source_security_group_id=source,
            ip_protocol=protocol,
            from_port=from_port,
            to_port=to_port,
            description=f"{purpose}: {protocol}{ports or ' (all)'} from {source_name.lower()}",
        )

    def _acknowledge(self) -> None:
        nag.acknowledge(
            self.cluster,
            "AwsSolutions-EMR4",
            "False positive: the cluster's security configuration is defined in the parent stack "
            "(EmrSecurity, imported by export name) with EnableAtRestEncryption and EBS encryption by the "
            "kit's KMS key; cdk-nag looks for it only inside the product template. "
            "test_emr_security_configuration_encrypts_ebs_with_the_kit_key (tests/stacks/"
            "test_cdk_sagemaker_emr.py) checks it.",
        )
        nag.acknowledge(
            self.cluster,
            "AwsSolutions-EMR5",
            "In-transit TLS needs a PEM certificate bundle that Studio's Livy client (sparkmagic) "
            "trusts; the kit ships none (docs/deploy.md). Traffic stays in private subnets, and only "
            "the Studio security group reaches Livy (8998).",
        )
        nag.acknowledge(
            self.cluster,
            "AwsSolutions-EMR6",
            "Studio connects to Livy with 'No credential', as in the original kit: the cluster has no "
            "SSH key pair and no Kerberos realm; the only way in is Livy (8998 on the main node) from "
            "the kit domain's Studio security group (docs/deploy.md says what that leaves open).",
        )


class EmrPortfolio(Construct):
    """The Service Catalog portfolio, the EMR product (tagged for Studio) and its launch-constraint role.

    The launch role is what Service Catalog assumes to provision the product: it may run CloudFormation
    on Service Catalog's own stacks, read the template Service Catalog stages, manage security groups
    in the kit's VPC, call EMR (AWS's scoped `AmazonEMRFullAccessPolicy_v2`) and pass exactly the two
    EMR roles. Exposes `portfolio`, `product`, `template` and `launch_role`.
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        imports: ProductImports,
        vpc: ec2.IVpc,
        pass_roles: list[iam.IRole],
    ) -> None:
        super().__init__(scope, construct_id)
        stack = cdk.Stack.of(self)
        self.template = EmrClusterTemplate(self, "EmrClusterTemplate", imports=imports)
        self.portfolio = servicecatalog.Portfolio(
            self,
            "Portfolio",
            display_name="Advertising Intelligence Kit - EMR",
            provider_name="Advertising Intelligence Kit",
            description="EMR clusters for the kit's Spark feature job, launched from SageMaker Studio",
        )
        self.product = servicecatalog.CloudFormationProduct(
            self,
            "Product",
            product_name="Advertising Intelligence Kit EMR cluster",
            owner="Advertising Intelligence Kit",
            description="An EMR cluster (Spark, Hive, Livy) with the kit's Python packages installed",
            product_versions=[
                servicecatalog.CloudFormationProductVersion(
                    product_version_name="v1",
                    cloud_formation_template=servicecatalog.CloudFormationTemplate.from_product_stack(
                        self.template
                    ),
                )
            ],
        )
        cdk.Tags.of(self.product).add(*STUDIO_VISIBILITY_TAG)
        self.portfolio.add_product(self.product)

        self.launch_role = iam.Role(
            self,
            "LaunchRole",
            assumed_by=iam.ServicePrincipal("servicecatalog.amazonaws.com"),
            description="Service Catalog launch constraint of the kit's EMR product",
            managed_policies=[iam.ManagedPolicy.from_aws_managed_policy_name("AmazonEMRFullAccessPolicy_v2")],
        )
        self._service_catalog_stacks = service_catalog_stacks = stack.format_arn(
            service="cloudformation", resource="stack", resource_name="SC-*"
        )
        self.launch_role.add_to_policy(
            iam.PolicyStatement(
                sid="ProvisionServiceCatalogStacks",
                actions=[
                    "cloudformation:CreateStack",
                    "cloudformation:DeleteStack",
                    "cloudformation:DescribeStackEvents",
                    "cloudformation:DescribeStacks",
                    "cloudformation:SetStackPolicy",
                    "cloudformation:UpdateStack",
                ],
                resources=[service_catalog_stacks],
            )
        )
        self.launch_role.add_to_policy(
            iam.PolicyStatement(
                sid="InspectTemplates",
                actions=["cloudformation:GetTemplateSummary", "cloudformation:ValidateTemplate"],
                resources=["*"],
            )
        )
        self.launch_role.add_to_policy(
            iam.PolicyStatement(
                sid="ReadStagedTemplates",
                actions=["s3:GetObject"],
                resources=["*"],
                conditions={"StringEquals": {"s3:ExistingObjectTag/servicecatalog:provisioning": "true"}},
            )
        )
        security_groups = stack.format_arn(service="ec2", resource="security-group", resource_name="*")
        self.launch_role.add_to_policy(
            iam.PolicyStatement(
                sid="CreateGroupsInKitVpc",
                actions=["ec2:CreateSecurityGroup"],
                resources=[
                    stack.format_arn(service="ec2", resource="vpc", resource_name=vpc.vpc_id),
                    security_groups,
                ],
            )
        )
        self.launch_role.add_to_policy(
            iam.PolicyStatement(
                sid="ManageGroupsInKitVpc",
                actions=[
                    "ec2:AuthorizeSecurityGroupEgress",
                    "ec2:AuthorizeSecurityGroupIngress",
                    "ec2:CreateTags",
                    "ec2:DeleteSecurityGroup",
                    "ec2:RevokeSecurityGroupEgress",
                    "ec2:RevokeSecurityGroupIngress",
                ],
                resources=[security_groups],
                conditions={
                    "ArnEquals": {
                        "ec2:Vpc": stack.format_arn(service="ec2", resource="vpc", resource_name=vpc.vpc_id)
                    }
                },
            )
        )
        self.launch_role.add_to_policy(
            iam.PolicyStatement(
                sid="DescribeGroups",
                actions=["ec2:DescribeSecurityGroups", "ec2:DescribeSecurityGroupRules"],
                resources=["*"],
            )
        )
        for role in pass_roles:
            role.grant_pass_role(self.launch_role)
        self.portfolio.set_launch_role(self.product, self.launch_role)
        self._acknowledge(security_groups)

    def _acknowledge(self, security_groups: str) -> None:
        policy = self.launch_role.node.find_child("DefaultPolicy")
        nag.acknowledge(
            self.launch_role,
            nag.aws_managed_policy_rule(self, "AmazonEMRFullAccessPolicy_v2"),
            "Provisioning the product creates and terminates an EMR cluster; AmazonEMRFullAccessPolicy_v2 "
            "is AWS's tag-scoped EMR policy (resources must carry for-use-with-amazon-emr-managed-"
            "policies=true, which the template sets) and AWS keeps its action list current.",
        )
        nag.acknowledge(
            policy,
            nag.resource_rule(policy, self._service_catalog_stacks),
            "Service Catalog names the stacks it provisions SC-<account>-pp-<id> at launch time; the "
            "wildcard is that prefix in this account and region.",
        )
        nag.acknowledge(
            policy,
            "AwsSolutions-IAM5[Resource::*]",
            "GetTemplateSummary, ValidateTemplate and DescribeSecurityGroup(Rule)s do not support "
            "resource-level permissions; s3:GetObject is limited by condition to the template objects "
            "Service Catalog tags servicecatalog:provisioning=true.",
        )
        nag.acknowledge(
            policy,
            nag.resource_rule(policy, security_groups),
            "The cluster's security groups get their ids when the product is launched; mutations are "
            "limited by condition to groups in the kit's VPC.",
        )


def idle_timeout_allowed(value: str) -> bool:
    """Whether CloudFormation accepts `value` for AutoTerminationIdleTimeout (the tests check the range)."""
    return re.fullmatch(IDLE_TIMEOUT_PATTERN, value) is not None
