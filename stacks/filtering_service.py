"""The bid-filtering service on ECS Fargate behind an internal Network Load Balancer, and the optional
ad-server emulator service that replays the inference data against it; each task has a CloudWatch agent
that turns the StatsD metrics into CloudWatch metrics.

One module for both services: they share the task helpers at its end (log group, task role,
agent container, acknowledgements)."""

from __future__ import annotations

import json
from pathlib import Path

import aws_cdk as cdk
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_ecr_assets as ecr_assets
from aws_cdk import aws_ecs as ecs
from aws_cdk import aws_elasticloadbalancingv2 as elbv2
from aws_cdk import aws_iam as iam
from aws_cdk import aws_logs as logs
from aws_cdk import aws_ssm as ssm
from constructs import Construct

from aik import dashboard, params
from stacks import nag
from stacks.network import VPC_CIDR
from stacks.predictions import PredictionStream

REPO_ROOT = Path(__file__).resolve().parent.parent
CLUSTER_NAME = "advertising-server"
TASK_FAMILY = "adserver-application"
SERVICE_NAME = "aik-application"
EMULATOR_TASK_FAMILY = "adserver-emulator"
EMULATOR_SERVICE_NAME = "aik-emulator"
FILTERING_PORT = 9090
STATSD_PORT = 8125
CONTAINER_USER = "8000"
#: The CloudWatch agent image, pinned (`:latest` would change under a running service).
CLOUDWATCH_AGENT_IMAGE = "public.ecr.aws/cloudwatch-agent/cloudwatch-agent:1.300072.0b1766"
#: The emulator's THREADS REQUESTS (its HOST is the load balancer's name).
EMULATOR_LOAD = ("1", "500000")
#: The original model parameters the server falls back to when no release is live.
MODEL_PARAMETERS = (params.XGBOOST_PATH, params.PIPELINE_MODEL, params.PIPELINE_SCHEMA)
#: Parameters each task reads (and nothing else under /aik/ is readable by it).
SERVER_PARAMETERS = (params.RELEASE_LIVE, params.EXPERIMENT, *MODEL_PARAMETERS)
EMULATOR_PARAMETERS = (params.INFERENCE_DATA,)
#: Seconds a bidder's idle Thrift connection stays open through the load balancer (the original client
#: keeps one connection per thread for its whole run; the NLB default would reset it after 350 s).
TCP_IDLE_TIMEOUT = cdk.Duration.seconds(3600)
#: ECS ignores failing load-balancer health checks this long after a task starts (it loads the model).
HEALTH_CHECK_GRACE = cdk.Duration.seconds(180)
#: Average CPU the scaling policy keeps the filtering tasks at.
CPU_TARGET_PERCENT = 60
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


PRIVATE = ec2.SubnetSelection(subnet_type=ec2.SubnetType.PRIVATE_WITH_EGRESS)


class FilteringService(Construct):
    """ECS cluster `advertising-server` and Fargate service `aik-application` behind an internal NLB.

    Each task has two containers: `filtering-server` (Thrift on 9090, health-checked) scores bid
    requests with the live release (or the model the original `/aik/...` parameters point to), and
    `cloudwatch` receives its StatsD metrics on 8125 and publishes them. The service runs `min_tasks`
    tasks over the private subnets of both AZs, scales on CPU up to `max_tasks`, and deploys by
    starting new tasks before stopping old ones (100 % / 200 %). Bidders in the VPC reach it at
    `endpoint` (the NLB's DNS name, TCP 9090): the NLB admits 9090 from the kit VPC's CIDR
    (`VPC_CIDR`, a literal so that the rule is readable in the template and by cdk-nag), the tasks only
    from the NLB. The task role may put metrics into namespace `aik`, read the data bucket, get
    exactly the parameters the server reads (the release pointer, the experiment, the original three)
    and send records to the prediction log's delivery stream. Exposes `cluster`, `task_definition`, `service`,
    `task_role`, `load_balancer`, `target_group`, `endpoint`, `monitoring_config`, `current_region`,
    `agent_log_group` and the containers.
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        vpc: ec2.IVpc,
        data_read_policy: iam.IManagedPolicy,
        min_tasks: int,
        max_tasks: int,
        prediction_stream: PredictionStream | None = None,
        prediction_sample: float = 0.0,
    ) -> None:
        super().__init__(scope, construct_id)
        self._parameters()
        self._task(vpc, data_read_policy)
        self._server_container(prediction_stream, prediction_sample)
        self._service(min_tasks)
        self._load_balancer(vpc)
        self._scaling(min_tasks, max_tasks)
        self._acknowledge()

    def _parameters(self) -> None:
        """The agent's configuration and the region, as the stack-owned parameters."""
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

    def _task(self, vpc: ec2.IVpc, data_read_policy: iam.IManagedPolicy) -> None:
        """Task role, cluster, task definition and the CloudWatch agent container."""
        self.task_role = task_role(
            self,
            "TaskRole",
            description="Filtering server and CloudWatch agent of the kit",
            data_read_policy=data_read_policy,
            parameters=SERVER_PARAMETERS,
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
            cpu=2048,
            memory_limit_mib=4096,
            task_role=self.task_role,
            runtime_platform=X86_LINUX,
        )
        self.agent_log_group = log_group(self, "monitoring")
        self.cloudwatch_agent = add_agent(
            self.task_definition,
            config=self.monitoring_config,
            region=self.current_region,
            agent_log_group=self.agent_log_group,
        )

    def _server_container(self, prediction_stream: PredictionStream | None, prediction_sample: float) -> None:
        """The filtering-server container, started after its agent; it sends the sampled prediction log
        to `prediction_stream` (when given and the sample rate is above 0)."""
        # the server listens on loopback unless told otherwise; in the task it serves the VPC
        command = ["--backend", "aws", "--host", "0.0.0.0", "--port", str(FILTERING_PORT)]
        if prediction_stream is not None and prediction_sample > 0:
            command += [
                "--prediction-sample",
                f"{prediction_sample:g}",
                "--prediction-log",
                f"firehose:{prediction_stream.delivery_stream_name}",
            ]
            prediction_stream.grant_put(self.task_role)
        self.filtering_server = self.task_definition.add_container(
            "filtering-server",
            container_name="filtering-server",
            image=image("filtering_server/Dockerfile"),
            command=command,
            cpu=1792,
            memory_limit_mib=3584,
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
            secrets={"AWS_REGION": ecs.Secret.from_ssm_parameter(self.current_region)},
            logging=ecs.LogDriver.aws_logs(
                stream_prefix="filtering-server", log_group=log_group(self, "filtering-server")
            ),
        )
        self.filtering_server.add_container_dependencies(
            ecs.ContainerDependency(
                container=self.cloudwatch_agent, condition=ecs.ContainerDependencyCondition.START
            )
        )

    def _service(self, min_tasks: int) -> None:
        """The Fargate service over the private subnets, rolling 100 % / 200 %."""
        self.service = ecs.FargateService(
            self,
            "Service",
            service_name=SERVICE_NAME,
            cluster=self.cluster,
            task_definition=self.task_definition,
            desired_count=min_tasks,
            # New tasks serve before old ones stop: no deploy takes capacity away.
            min_healthy_percent=100,
            max_healthy_percent=200,
            circuit_breaker=ecs.DeploymentCircuitBreaker(enable=True, rollback=True),
            health_check_grace_period=HEALTH_CHECK_GRACE,
            vpc_subnets=PRIVATE,
            assign_public_ip=False,
        )

    def _load_balancer(self, vpc: ec2.IVpc) -> None:
        """The internal NLB on 9090 (from the VPC's CIDR) and the tasks as its targets."""
        self.load_balancer_group = ec2.SecurityGroup(
            self,
            "LoadBalancerSecurityGroup",
            vpc=vpc,
            description="Internal NLB of the kit filtering service (Thrift from the VPC)",
            allow_all_outbound=False,
        )
        self.load_balancer = elbv2.NetworkLoadBalancer(
            self,
            "LoadBalancer",
            vpc=vpc,
            internet_facing=False,
            vpc_subnets=PRIVATE,
            cross_zone_enabled=True,
            security_groups=[self.load_balancer_group],
        )
        self.load_balancer.connections.allow_from(
            ec2.Peer.ipv4(VPC_CIDR), ec2.Port.tcp(FILTERING_PORT), "Bidders in the VPC"
        )
        listener = self.load_balancer.add_listener(
            "Thrift", port=FILTERING_PORT, protocol=elbv2.Protocol.TCP, tcp_idle_timeout=TCP_IDLE_TIMEOUT
        )
        self.target_group = listener.add_targets(
            "Servers",
            port=FILTERING_PORT,
            protocol=elbv2.Protocol.TCP,
            targets=[
                self.service.load_balancer_target(
                    container_name="filtering-server", container_port=FILTERING_PORT
                )
            ],
            # A TCP connect to the Thrift port, like the container's own health check.
            health_check=elbv2.HealthCheck(
                protocol=elbv2.Protocol.TCP,
                port=str(FILTERING_PORT),
                interval=cdk.Duration.seconds(10),
                healthy_threshold_count=2,
                unhealthy_threshold_count=2,
            ),
            deregistration_delay=cdk.Duration.seconds(30),
        )
        # CDK opens the service's group to the NLB's group on 9090 (and the NLB's egress to it).
        self.service.connections.allow_from(
            self.load_balancer, ec2.Port.tcp(FILTERING_PORT), "Thrift from the NLB"
        )
        self.endpoint: str = self.load_balancer.load_balancer_dns_name

    def _scaling(self, min_tasks: int, max_tasks: int) -> None:
        """CPU target tracking between min and max tasks."""
        if max_tasks > min_tasks:
            scaling = self.service.auto_scale_task_count(min_capacity=min_tasks, max_capacity=max_tasks)
            scaling.scale_on_cpu_utilization(
                "CpuScaling",
                target_utilization_percent=CPU_TARGET_PERCENT,
                scale_out_cooldown=cdk.Duration.seconds(60),
                scale_in_cooldown=cdk.Duration.seconds(300),
            )

    def _acknowledge(self) -> None:
        acknowledge_task(self.task_definition, self.task_role)
        nag.acknowledge(
            self.load_balancer,
            "AwsSolutions-ELB2",
            "NLB access logs are written only for TLS listeners; the Thrift listener is plain TCP (the "
            "original Thrift clients speak no TLS), so there is nothing to log. The VPC flow log records "
            "rejected traffic.",
        )


class ReplayEmulator(Construct):
    """ECS service `aik-emulator`: one task replaying `/aik/inference_data` against the filtering
    service's `endpoint` (`THREADS REQUESTS` = 1 500000), with its own CloudWatch agent for the
    client-side metrics.

    The emulator is not essential: when the replay ends the task keeps running (its agent stays) and
    ECS does not start another replay. Its role may put metrics into `aik`, read the data bucket and
    get `/aik/inference_data` only. Exposes `task_definition`, `service`, `task_role`, `emulator`.
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        filtering: FilteringService,
        data_read_policy: iam.IManagedPolicy,
    ) -> None:
        super().__init__(scope, construct_id)
        self.task_role = task_role(
            self,
            "TaskRole",
            description="Ad-server emulator and CloudWatch agent of the kit",
            data_read_policy=data_read_policy,
            parameters=EMULATOR_PARAMETERS,
        )
        self.task_definition = ecs.FargateTaskDefinition(
            self,
            "TaskDefinition",
            family=EMULATOR_TASK_FAMILY,
            cpu=1024,
            memory_limit_mib=2048,
            task_role=self.task_role,
            runtime_platform=X86_LINUX,
        )
        agent = add_agent(
            self.task_definition,
            config=filtering.monitoring_config,
            region=filtering.current_region,
            agent_log_group=filtering.agent_log_group,
        )
        self.emulator = self.task_definition.add_container(
            "advertising-server",
            container_name="advertising-server",
            image=image("ad_server_emulator/Dockerfile"),
            command=["--backend", "aws", filtering.endpoint, *EMULATOR_LOAD],
            cpu=768,
            memory_limit_mib=1536,
            essential=False,
            user=CONTAINER_USER,
            secrets={"AWS_REGION": ecs.Secret.from_ssm_parameter(filtering.current_region)},
            logging=ecs.LogDriver.aws_logs(
                stream_prefix="advertising-server", log_group=log_group(self, "advertising-server")
            ),
        )
        # Replay only with the agent already listening for the metrics.
        self.emulator.add_container_dependencies(
            ecs.ContainerDependency(container=agent, condition=ecs.ContainerDependencyCondition.START)
        )
        self.service = ecs.FargateService(
            self,
            "Service",
            service_name=EMULATOR_SERVICE_NAME,
            cluster=filtering.cluster,
            task_definition=self.task_definition,
            desired_count=1,
            # One replay at a time: never an old and a new emulator side by side.
            min_healthy_percent=0,
            max_healthy_percent=100,
            circuit_breaker=ecs.DeploymentCircuitBreaker(enable=True, rollback=True),
            vpc_subnets=ec2.SubnetSelection(subnet_type=ec2.SubnetType.PRIVATE_WITH_EGRESS),
            assign_public_ip=False,
        )
        # The NLB admits the whole VPC; the emulator reaches it through its group's open egress.
        self.service.node.add_dependency(filtering.service)
        acknowledge_task(self.task_definition, self.task_role)


X86_LINUX = ecs.RuntimePlatform(
    cpu_architecture=ecs.CpuArchitecture.X86_64, operating_system_family=ecs.OperatingSystemFamily.LINUX
)


def log_group(scope: Construct, name: str) -> logs.LogGroup:
    """Log group `/aik/<name>` of one container."""
    return logs.LogGroup(
        scope,
        "".join(part.capitalize() for part in name.split("-")) + "LogGroup",
        log_group_name=f"/aik/{name}",
    )


def task_role(
    scope: Construct,
    construct_id: str,
    *,
    description: str,
    data_read_policy: iam.IManagedPolicy,
    parameters: tuple[str, ...],
) -> iam.Role:
    """A task role that reads the data bucket, gets exactly `parameters` and publishes into `aik`."""
    role = iam.Role(
        scope,
        construct_id,
        assumed_by=iam.ServicePrincipal("ecs-tasks.amazonaws.com"),
        description=description,
        managed_policies=[data_read_policy],
    )
    role.add_to_policy(
        iam.PolicyStatement(
            sid="PublishKitMetrics",
            actions=["cloudwatch:PutMetricData"],
            resources=["*"],
            conditions={"StringEquals": {"cloudwatch:namespace": dashboard.NAMESPACE}},
        )
    )
    role.add_to_policy(
        iam.PolicyStatement(
            sid="ReadTheTaskParameters",
            actions=["ssm:GetParameter"],
            resources=[parameter_arn(scope, name) for name in parameters],
        )
    )
    return role


def add_agent(
    task_definition: ecs.FargateTaskDefinition,
    *,
    config: ssm.IStringParameter,
    region: ssm.IStringParameter,
    agent_log_group: logs.ILogGroup,
) -> ecs.ContainerDefinition:
    """The CloudWatch agent container (StatsD on 8125), configured from `/aik/monitoring/config`."""
    return task_definition.add_container(
        "cloudwatch",
        container_name="cloudwatch",
        image=ecs.ContainerImage.from_registry(CLOUDWATCH_AGENT_IMAGE),
        cpu=256,
        memory_limit_mib=512,
        essential=True,
        port_mappings=[ecs.PortMapping(container_port=STATSD_PORT, protocol=ecs.Protocol.UDP)],
        secrets={
            "CW_CONFIG_CONTENT": ecs.Secret.from_ssm_parameter(config),
            "AWS_REGION": ecs.Secret.from_ssm_parameter(region),
        },
        logging=ecs.LogDriver.aws_logs(stream_prefix="cloudwatch-agent", log_group=agent_log_group),
    )


def acknowledge_task(task_definition: ecs.FargateTaskDefinition, role: iam.Role) -> None:
    """The two findings every kit task has: the image pull's token call and PutMetricData's `*`."""
    execution_role = task_definition.execution_role
    assert execution_role is not None
    nag.acknowledge(
        execution_role.node.find_child("DefaultPolicy"),
        "AwsSolutions-IAM5[Resource::*]",
        "ECS's execution role calls ecr:GetAuthorizationToken to pull the task's image asset; that "
        "action has no resource-level permissions (CDK adds it with the image).",
    )
    nag.acknowledge(
        role.node.find_child("DefaultPolicy"),
        "AwsSolutions-IAM5[Resource::*]",
        "cloudwatch:PutMetricData has no resource-level permissions; the statement is limited by "
        "condition to the kit's namespace aik, where the CloudWatch agent publishes the StatsD metrics.",
    )
