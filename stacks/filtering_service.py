"""The bid-filtering service on ECS Fargate: one task with the filtering server, the ad-server emulator and
the CloudWatch agent that turns their StatsD metrics into CloudWatch metrics."""

from __future__ import annotations

import json
from pathlib import Path

import aws_cdk as cdk
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_ecr_assets as ecr_assets
from aws_cdk import aws_ecs as ecs
from aws_cdk import aws_iam as iam
from aws_cdk import aws_logs as logs
from aws_cdk import aws_ssm as ssm
from constructs import Construct

from aik import dashboard, params
from stacks import nag

REPO_ROOT = Path(__file__).resolve().parent.parent
CLUSTER_NAME = "advertising-server"
TASK_FAMILY = "adserver-application"
SERVICE_NAME = "aik-application"
FILTERING_PORT = 9090
STATSD_PORT = 8125
CONTAINER_USER = "8000"
#: The CloudWatch agent image, pinned (the original's `:latest` changes under a running service).
CLOUDWATCH_AGENT_IMAGE = "public.ecr.aws/cloudwatch-agent/cloudwatch-agent:1.300072.0b1766"
#: The emulator's positional arguments in ECS, as in the original kit: HOST THREADS REQUESTS.
EMULATOR_ARGS = ("localhost", "1", "500000")
#: Parameters the containers read (and nothing else under /aik/ is readable by the task).
SERVER_PARAMETERS = (params.XGBOOST_PATH, params.PIPELINE_MODEL, params.PIPELINE_SCHEMA)
EMULATOR_PARAMETERS = (params.INFERENCE_DATA,)
#: Never in an image's build context, whatever `.dockerignore` says (it is owned by the images).
IMAGE_CONTEXT_EXCLUDES = (
    ".git",
    ".venv",
    ".aik",
    "cdk.out",
    "tests",
    "notebooks",
    "bench",
    "emr_bootstrap",
    "**/__pycache__",
    "**/*.pyc",
)


def health_check_command(port: int = FILTERING_PORT) -> list[str]:
    """The filtering server's container health check: a TCP connect to its Thrift port.

    It runs the image's own Python because the slim image has no curl or nc; exit 0 when the port
    accepts a connection within 2 s, non-zero otherwise.
    """
    probe = f"import socket; socket.create_connection(('127.0.0.1', {port}), timeout=2).close()"
    return ["CMD", "python", "-c", probe]


def agent_config() -> str:
    """The CloudWatch agent's configuration: a StatsD receiver publishing to namespace `aik` every 5 s."""
    return json.dumps(
        {
            "agent": {"metrics_collection_interval": 5},
            "metrics": {
                "namespace": dashboard.NAMESPACE,
                "force_flush_interval": 5,
                "metrics_collected": {
                    "statsd": {
                        "service_address": f":{STATSD_PORT}",
                        "metrics_collection_interval": 5,
                        "metrics_aggregation_interval": 5,
                    }
                },
            },
        },
        sort_keys=True,
    )


def image(dockerfile: str) -> ecs.ContainerImage:
    """An image built from the repository root with `dockerfile`, for x86-64 Fargate."""
    return ecs.ContainerImage.from_asset(
        str(REPO_ROOT),
        file=dockerfile,
        platform=ecr_assets.Platform.LINUX_AMD64,
        exclude=list(IMAGE_CONTEXT_EXCLUDES),
    )


def parameter_arn(scope: Construct, name: str) -> str:
    """The ARN of the SSM parameter `name` (`/aik/...`) in the stack's account and region."""
    return cdk.Stack.of(scope).format_arn(service="ssm", resource="parameter", resource_name=name.lstrip("/"))


class FilteringService(Construct):
    """ECS cluster `advertising-server` and Fargate service `aik-application`: one task, three containers.

    `filtering-server` (Thrift on 9090, health-checked) scores bid requests with the model the
    `/aik/...` parameters point to; `advertising-server` replays `/aik/inference_data` against it
    (not essential: the task keeps serving when the replay ends); `cloudwatch` receives both StatsD
    streams on 8125 and publishes them. The task role may put metrics into namespace `aik`, read the
    data bucket and get exactly the parameters the containers read. Exposes `cluster`,
    `task_definition`, `service`, `task_role`, `monitoring_config`, `current_region` and the
    containers.
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        vpc: ec2.IVpc,
        data_read_policy: iam.IManagedPolicy,
        max_tasks: int,
    ) -> None:
        super().__init__(scope, construct_id)
        self.monitoring_config = ssm.StringParameter(
            self,
            "MonitoringConfig",
            parameter_name=params.MONITORING_CONFIG,
            string_value=agent_config(),
            description="CloudWatch agent configuration of the filtering task (StatsD to namespace aik)",
            tier=ssm.ParameterTier.STANDARD,
        )
        self.current_region = ssm.StringParameter(
            self,
            "CurrentRegion",
            parameter_name=params.CURRENT_REGION,
            string_value=cdk.Stack.of(self).region,
            description="The region the kit's filtering stack is deployed in",
            tier=ssm.ParameterTier.STANDARD,
        )

        self.task_role = iam.Role(
            self,
            "TaskRole",
            assumed_by=iam.ServicePrincipal("ecs-tasks.amazonaws.com"),
            description="Filtering server, ad-server emulator and CloudWatch agent of the kit",
            managed_policies=[data_read_policy],
        )
        self.task_role.add_to_policy(
            iam.PolicyStatement(
                sid="PublishKitMetrics",
                actions=["cloudwatch:PutMetricData"],
                resources=["*"],
                conditions={"StringEquals": {"cloudwatch:namespace": dashboard.NAMESPACE}},
            )
        )
        self.task_role.add_to_policy(
            iam.PolicyStatement(
                sid="ReadModelAndDataParameters",
                actions=["ssm:GetParameter"],
                resources=[parameter_arn(self, name) for name in (*SERVER_PARAMETERS, *EMULATOR_PARAMETERS)],
            )
        )

        self.cluster = ecs.Cluster(
            self,
            "Cluster",
            cluster_name=CLUSTER_NAME,
            vpc=vpc,
            container_insights_v2=ecs.ContainerInsights.ENABLED,
        )
        self.task_definition = ecs.FargateTaskDefinition(
            self,
            "TaskDefinition",
            family=TASK_FAMILY,
            cpu=4096,
            memory_limit_mib=8192,
            task_role=self.task_role,
            runtime_platform=ecs.RuntimePlatform(
                cpu_architecture=ecs.CpuArchitecture.X86_64,
                operating_system_family=ecs.OperatingSystemFamily.LINUX,
            ),
        )

        def log_group(name: str) -> logs.LogGroup:
            return logs.LogGroup(
                self,
                "".join(part.capitalize() for part in name.split("-")) + "LogGroup",
                log_group_name=f"/aik/{name}",
            )

        region = ecs.Secret.from_ssm_parameter(self.current_region)
        self.filtering_server = self.task_definition.add_container(
            "filtering-server",
            container_name="filtering-server",
            image=image("filtering_server/Dockerfile"),
            command=["--backend", "aws", "--port", str(FILTERING_PORT)],
            cpu=2048,
            memory_limit_mib=4096,
            essential=True,
            user=CONTAINER_USER,
            port_mappings=[ecs.PortMapping(container_port=FILTERING_PORT, protocol=ecs.Protocol.TCP)],
            health_check=ecs.HealthCheck(
                command=health_check_command(),
                interval=cdk.Duration.seconds(15),
                timeout=cdk.Duration.seconds(5),
                retries=3,
                # Loading the model and the MLeap bundle from S3 happens before the port opens.
                start_period=cdk.Duration.seconds(120),
            ),
            secrets={"AWS_REGION": region},
            logging=ecs.LogDriver.aws_logs(
                stream_prefix="filtering-server", log_group=log_group("filtering-server")
            ),
        )
        self.cloudwatch_agent = self.task_definition.add_container(
            "cloudwatch",
            container_name="cloudwatch",
            image=ecs.ContainerImage.from_registry(CLOUDWATCH_AGENT_IMAGE),
            cpu=256,
            memory_limit_mib=512,
            essential=True,
            port_mappings=[ecs.PortMapping(container_port=STATSD_PORT, protocol=ecs.Protocol.UDP)],
            secrets={
                "CW_CONFIG_CONTENT": ecs.Secret.from_ssm_parameter(self.monitoring_config),
                "AWS_REGION": region,
            },
            logging=ecs.LogDriver.aws_logs(
                stream_prefix="cloudwatch-agent", log_group=log_group("monitoring")
            ),
        )
        self.advertising_server = self.task_definition.add_container(
            "advertising-server",
            container_name="advertising-server",
            image=image("ad_server_emulator/Dockerfile"),
            command=["--backend", "aws", *EMULATOR_ARGS],
            cpu=1024,
            memory_limit_mib=2048,
            essential=False,
            user=CONTAINER_USER,
            secrets={"AWS_REGION": region},
            logging=ecs.LogDriver.aws_logs(
                stream_prefix="advertising-server", log_group=log_group("advertising-server")
            ),
        )
        # Replay only against a server that answers, with the agent already listening for metrics.
        self.advertising_server.add_container_dependencies(
            ecs.ContainerDependency(
                container=self.filtering_server, condition=ecs.ContainerDependencyCondition.HEALTHY
            ),
            ecs.ContainerDependency(
                container=self.cloudwatch_agent, condition=ecs.ContainerDependencyCondition.START
            ),
        )
        self.filtering_server.add_container_dependencies(
            ecs.ContainerDependency(
                container=self.cloudwatch_agent, condition=ecs.ContainerDependencyCondition.START
            )
        )

        self.service = ecs.FargateService(
            self,
            "Service",
            service_name=SERVICE_NAME,
            cluster=self.cluster,
            task_definition=self.task_definition,
            desired_count=1,
            # One task replays load: never run an old and a new emulator side by side.
            min_healthy_percent=0,
            max_healthy_percent=100,
            circuit_breaker=ecs.DeploymentCircuitBreaker(enable=True, rollback=True),
            vpc_subnets=ec2.SubnetSelection(subnet_type=ec2.SubnetType.PRIVATE_WITH_EGRESS),
            assign_public_ip=False,
        )
        if max_tasks > 1:
            scaling = self.service.auto_scale_task_count(min_capacity=1, max_capacity=max_tasks)
            scaling.scale_on_cpu_utilization("CpuScaling", target_utilization_percent=60)
        self._acknowledge()

    def _acknowledge(self) -> None:
        execution_policy = self.task_definition.execution_role.node.find_child("DefaultPolicy")  # type: ignore[union-attr]
        nag.acknowledge(
            execution_policy,
            "AwsSolutions-IAM5[Resource::*]",
            "ECS's execution role calls ecr:GetAuthorizationToken to pull the two image assets; that "
            "action has no resource-level permissions (CDK adds it with the images).",
        )
        nag.acknowledge(
            self.task_role.node.find_child("DefaultPolicy"),
            "AwsSolutions-IAM5[Resource::*]",
            "cloudwatch:PutMetricData has no resource-level permissions; the statement is limited by "
            "condition to the kit's namespace aik, where the CloudWatch agent publishes the StatsD metrics.",
        )
