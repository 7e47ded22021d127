"""The kit's network: a two-AZ VPC with NAT, a flow log of rejected traffic and the VPC endpoints."""

from __future__ import annotations

import aws_cdk as cdk
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_logs as logs
from constructs import Construct

#: Literal so security-group rules name it (a `Fn::GetAtt` of the VPC CIDR would hide it from cdk-nag).
VPC_CIDR = "10.0.0.0/16"

#: Interface endpoints: Studio and training (SageMaker API/runtime, STS), the
#: agents (CloudWatch metrics and logs) and image pulls (ECR API and Docker registry) stay in the VPC.
INTERFACE_ENDPOINTS: dict[str, ec2.InterfaceVpcEndpointAwsService] = {
    "SageMakerApi": ec2.InterfaceVpcEndpointAwsService.SAGEMAKER_API,
    "SageMakerRuntime": ec2.InterfaceVpcEndpointAwsService.SAGEMAKER_RUNTIME,
    "Sts": ec2.InterfaceVpcEndpointAwsService.STS,
    "Monitoring": ec2.InterfaceVpcEndpointAwsService.CLOUDWATCH_MONITORING,
    "Logs": ec2.InterfaceVpcEndpointAwsService.CLOUDWATCH_LOGS,
    "EcrDocker": ec2.InterfaceVpcEndpointAwsService.ECR_DOCKER,
    "EcrApi": ec2.InterfaceVpcEndpointAwsService.ECR,
}

#: The tag EMR's v2 managed service policy requires on the subnets and security groups it uses.
EMR_MANAGED_TAG = ("for-use-with-amazon-emr-managed-policies", "true")


class Network(Construct):
    """A VPC over two AZs (public + private subnets, NAT), a REJECT flow log and the VPC endpoints.

    Exposes `vpc` and `endpoint_security_group` (HTTPS from inside the VPC). The private subnets
    carry the EMR managed-policy tag, since EMR launches the cluster into one of them.
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        nat_gateways: int,
    ) -> None:
        super().__init__(scope, construct_id)
        self.vpc = ec2.Vpc(
            self,
            "Vpc",
            ip_addresses=ec2.IpAddresses.cidr(VPC_CIDR),
            max_azs=2,
            nat_gateways=nat_gateways,
            subnet_configuration=[
                ec2.SubnetConfiguration(name="public", subnet_type=ec2.SubnetType.PUBLIC, cidr_mask=24),
                ec2.SubnetConfiguration(
                    name="private", subnet_type=ec2.SubnetType.PRIVATE_WITH_EGRESS, cidr_mask=20
                ),
            ],
            gateway_endpoints={
                "S3": ec2.GatewayVpcEndpointOptions(service=ec2.GatewayVpcEndpointAwsService.S3)
            },
        )
        # Retention and removal policy: `stacks.retention.LogGroupRetention`, as for every log group.
        flow_log_group = logs.LogGroup(self, "FlowLogGroup")
        self.vpc.add_flow_log(
            "RejectedTraffic",
            destination=ec2.FlowLogDestination.to_cloud_watch_logs(flow_log_group),
            traffic_type=ec2.FlowLogTrafficType.REJECT,
        )
        for subnet in self.vpc.private_subnets:
            cdk.Tags.of(subnet).add(*EMR_MANAGED_TAG)

        # One security group for all interface endpoints: HTTPS from the VPC's own (literal) range.
        self.endpoint_security_group = ec2.SecurityGroup(
            self,
            "EndpointSecurityGroup",
            vpc=self.vpc,
            description="HTTPS from inside the VPC to the interface endpoints",
            allow_all_outbound=False,
        )
        self.endpoint_security_group.add_ingress_rule(
            ec2.Peer.ipv4(VPC_CIDR), ec2.Port.tcp(443), "HTTPS from the VPC"
        )
        for name, service in INTERFACE_ENDPOINTS.items():
            self.vpc.add_interface_endpoint(
                name,
                service=service,
                private_dns_enabled=True,
                open=False,
                security_groups=[self.endpoint_security_group],
                subnets=ec2.SubnetSelection(subnet_type=ec2.SubnetType.PRIVATE_WITH_EGRESS),
            )
