"""The retraining loop in AWS: schedule -> Step Functions -> transient EMR -> SageMaker -> gates -> release.

An EventBridge Scheduler schedule (disabled unless the `aik:loop-schedule` context switch is on) starts
a Step Functions state machine that
0. ingests the new log days from the landing prefix of the data bucket (`aik ingest --from`, which
   appends the days not ingested yet) as a SageMaker processing job in the kit's image: before any
   cluster exists (a bad day costs no cluster), with the job role that may write the source parameters
   (the EMR instance role, shared with Studio's clusters, reads parameters only);
1. creates a transient EMR cluster (`createCluster.sync`), runs the Spark feature job as a step
   (`addStep.sync`) on the sliding window (`--window-days`, `--test-days`) and terminates the cluster
   (`terminateCluster.sync`), also when the step fails;
2. trains the model as a SageMaker training job in the kit's own image (`createTrainingJob.sync`): the
   program is aik/train/sagemaker_entry.py, so the cloud trains the laptop's `default` preset;
3. evaluates, gates and publishes it with the kit's own code (`aik train --model-uri`) as a SageMaker
   processing job in the same image (`createProcessingJob.sync`); a failed gate exits non-zero;
4. counts the publish in CloudWatch (`ReleasesPublished`, namespace `aik/loop`), which the staleness
   alarm watches.
Any failure up to the publish goes to one notification (SNS, with the failed step named) and ends the
execution failed; nothing before the publish step changes what the servers load. A failed count comes
after the pointer switch: the release is live, so it notifies a warning and the execution succeeds.
The SageMaker jobs run in the VPC's private subnets with a security group of their own (no ingress,
HTTPS out).

The cluster's request and step come from aik/features/emr_job.py, the same functions `aik --backend aws
features --on emr` submits from a laptop; the stack writes where the cluster runs (subnet, roles,
groups) to the parameter `/aik/loop/emr` for that command.

Over 400 lines on purpose: one construct whose states, job requests and the IAM each state needs
are read together.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aws_cdk as cdk
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_cloudwatch_actions as cw_actions
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_ecr_assets as ecr_assets
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_logs as logs
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_scheduler as scheduler
from aws_cdk import aws_sns as sns
from aws_cdk import aws_ssm as ssm
from aws_cdk import aws_stepfunctions as sfn
from constructs import Construct

from aik import params
from aik.features import emr_job
from aik.features.window import Window
from stacks import nag
from stacks.emr_security import EmrSecurity

REPO_ROOT = Path(__file__).resolve().parent.parent
#: The kit's pipeline image (training program and `aik` CLI), built from the repository root.
PIPELINE_DOCKERFILE = "aik/Dockerfile"
#: What the pipeline image's build context may hold (everything else is excluded).
PIPELINE_IMAGE_SOURCES = ("pyproject.toml", "README.md", "aik/**")
#: CloudWatch namespace and metric of the loop's publishes (the staleness alarm's input).
METRIC_NAMESPACE = "aik/loop"
RELEASES_PUBLISHED = "ReleasesPublished"
#: Prefix of every SageMaker job the loop starts (its IAM is scoped to it) and of its outputs.
JOB_PREFIX = "aik-loop"
OUTPUT_PREFIX = "loop/"
#: Step Functions' managed EventBridge rules behind the `.sync` integrations the state machine uses.
SYNC_RULES = (
    "StepFunctionsGetEventsForEMRRunJobFlowRule",
    "StepFunctionsGetEventsForEMRAddJobFlowStepsRule",
    "StepFunctionsGetEventsForEMRTerminateJobFlowsRule",
    "StepFunctionsGetEventsForSageMakerTrainingJobsRule",
    "StepFunctionsGetEventsForSageMakerProcessingJobsRule",
)
#: Key prefix of the raw data the ingest writes (the landing prefix must be outside it).
RAW_PREFIX = params.DERIVED_KEYS[params.RAW_DATA]
#: Key prefix of the data bucket where new log days land for the loop's ingest (`aik ingest --from`).
INGEST_PREFIX = "incoming/"
#: The states of a successful run, in order (the tests check the definition against it).
STEPS = (
    "IngestNewDays",
    "CreateCluster",
    "RunFeatureJob",
    "TerminateCluster",
    "TrainModel",
    "EvaluateGateAndPublish",
    "CountPublish",
)
#: The states after the pointer switch: their failure warns, and the run still succeeds.
AFTER_PUBLISH = ("CountPublish",)


@dataclass(frozen=True)
class LoopSettings:
    """What a deployment may change about the loop (CDK context, see stacks/config.py)."""

    #: Whether the schedule starts the state machine; off by default (the schedule exists, disabled).
    schedule_enabled: bool = False
    #: EventBridge Scheduler expression, UTC.
    schedule_expression: str = "cron(0 3 * * ? *)"
    #: The staleness alarm fires when no release was published for this many hours (1 to 168).
    release_max_age_hours: int = 48
    cluster: emr_job.ClusterSize = field(default_factory=emr_job.ClusterSize)
    training_instance_type: str = "ml.m5.xlarge"
    processing_instance_type: str = "ml.m5.xlarge"
    #: Upper bound of each SageMaker job's run time.
    job_max_run_s: int = 3600
    #: Preset the training job trains (the laptop's default).
    preset: str = "default"
    #: The sliding window of the feature job: train on the `window_days` days before the newest
    #: `test_days` days, test on those (the local `aik pipeline run` defaults).
    window_days: int = 7
    test_days: int = 1
    #: Where new log days land in the data bucket (the ingest step reads them from there).
    ingest_prefix: str = INGEST_PREFIX

    def __post_init__(self) -> None:
        if self.window_days < 1 or self.test_days < 1:
            raise ValueError(
                f"the loop's window needs at least one training and one test day, got "
                f"{self.window_days} and {self.test_days}"
            )
        prefix = self.ingest_prefix
        if not prefix.endswith("/") or prefix.startswith("/") or prefix.startswith(RAW_PREFIX):
            raise ValueError(
                f"the ingest prefix must be a key prefix ending in / outside {RAW_PREFIX}, got {prefix!r}"
            )


@dataclass(frozen=True)
class LoopInputs:
    """What the loop uses from the sagemaker-emr stack."""

    vpc: ec2.IVpc
    data_bucket: s3.IBucket
    #: Read/write on the data bucket, a managed policy of the bucket's own stack (so that its
    #: acknowledged wildcard names that stack's bucket, not a cross-stack reference).
    data_policy: iam.IManagedPolicy
    bootstrap_bucket: s3.IBucket
    emr: EmrSecurity


class EmrJobSecurityGroups(Construct):
    """The EMR-managed security groups (main, core, service access) of the loop's transient clusters.

    The rules EMR needs in a private subnet are declared here, so that EMR adds none of its own and the
    groups can be deleted with the stack. Tagged for AWS's EMR v2 managed policies. Exposes `main`,
    `core`, `service`.
    """

    def __init__(self, scope: Construct, construct_id: str, *, vpc: ec2.IVpc) -> None:
        super().__init__(scope, construct_id)

        def group(name: str, description: str) -> ec2.SecurityGroup:
            sg = ec2.SecurityGroup(
                self,
                name,
                vpc=vpc,
                description=f"{description} of the retraining loop transient EMR clusters",
            )
            cdk.Tags.of(sg).add(*emr_job.EMR_MANAGED_TAG)
            return sg

        self.main = group("Main", "EMR main (primary) node")
        self.core = group("Core", "EMR core nodes")
        self.service = group("Service", "EMR service access")
        for target in (self.main, self.core):
            for source, name in ((self.main, "main"), (self.core, "core")):
                target.add_ingress_rule(source, ec2.Port.all_tcp(), f"cluster traffic: tcp from {name}")
                target.add_ingress_rule(source, ec2.Port.all_udp(), f"cluster traffic: udp from {name}")
                target.add_ingress_rule(source, ec2.Port.all_icmp(), f"cluster traffic: icmp from {name}")
            target.add_ingress_rule(self.service, ec2.Port.tcp(8443), "EMR service access: tcp 8443")
        self.service.add_ingress_rule(self.main, ec2.Port.tcp(9443), "EMR service access: tcp 9443 from main")


class RetrainingLoop(Construct):
    """The schedule, state machine, transient-EMR security groups, pipeline image, SageMaker role,
    notification topic and staleness alarm of the retraining loop.

    Grants the state machine exactly its steps: EMR clusters tagged as the kit's feature job, SageMaker
    jobs named `aik-loop-*`, passing the EMR and SageMaker roles, publishing to its topic. Exposes
    `state_machine`, `schedule`, `topic`, `staleness_alarm`, `job_role`, `image`, `emr_parameter`.
    """

    def __init__(
        self, scope: Construct, construct_id: str, *, inputs: LoopInputs, settings: LoopSettings
    ) -> None:
        super().__init__(scope, construct_id)
        stack = cdk.Stack.of(self)
        self._settings = settings
        self._inputs = inputs

        key = kms.Key(
            self,
            "TopicKey",
            description="Encrypts the retraining loop's notification topic",
            enable_key_rotation=True,
            pending_window=cdk.Duration.days(7),
        )
        # CloudWatch publishes the alarm's notifications into the encrypted topic with its own principal.
        key.add_to_resource_policy(
            iam.PolicyStatement(
                sid="CloudWatchAlarmsPublish",
                principals=[iam.ServicePrincipal("cloudwatch.amazonaws.com")],
                actions=["kms:Decrypt", "kms:GenerateDataKey*"],
                resources=["*"],
                conditions={"StringEquals": {"aws:SourceAccount": stack.account}},
            )
        )
        self.topic = sns.Topic(
            self,
            "Notifications",
            display_name="aik retraining loop",
            master_key=key,
            enforce_ssl=True,
        )

        self.groups = EmrJobSecurityGroups(self, "EmrGroups", vpc=inputs.vpc)
        subnet = inputs.vpc.select_subnets(subnet_type=ec2.SubnetType.PRIVATE_WITH_EGRESS).subnets[0]
        self.emr_environment = emr_job.EmrEnvironment(
            subnet_id=subnet.subnet_id,
            instance_profile=inputs.emr.instance_profile.instance_profile_name,
            service_role=inputs.emr.service_role.role_name,
            security_configuration=inputs.emr.security_configuration.ref,
            bootstrap_bucket=inputs.bootstrap_bucket.bucket_name,
            main_security_group=self.groups.main.security_group_id,
            core_security_group=self.groups.core.security_group_id,
            service_security_group=self.groups.service.security_group_id,
        )
        self.emr_parameter = ssm.StringParameter(
            self,
            "EmrParameter",
            parameter_name=emr_job.LOOP_EMR,
            string_value=stack.to_json_string({k: v for k, v in self.emr_environment.__dict__.items()}),
            description="Where the kit's transient EMR clusters run (read by `aik features --on emr`)",
            tier=ssm.ParameterTier.STANDARD,
        )

        self.image = ecr_assets.DockerImageAsset(
            self,
            "PipelineImage",
            directory=str(REPO_ROOT),
            file=PIPELINE_DOCKERFILE,
            platform=ecr_assets.Platform.LINUX_AMD64,
            # Docker semantics: "**" excludes everything, "!" re-includes the image's sources.
            exclude=["**", *(f"!{pattern}" for pattern in PIPELINE_IMAGE_SOURCES), "**/__pycache__"],
            ignore_mode=cdk.IgnoreMode.DOCKER,
        )
        # The SageMaker jobs' network: the private subnets, and a group that admits nothing and lets
        # HTTPS out (S3 through the gateway endpoint, the interface endpoints, SSM through the NAT).
        self.job_subnets = inputs.vpc.select_subnets(subnet_type=ec2.SubnetType.PRIVATE_WITH_EGRESS)
        self.job_security_group = ec2.SecurityGroup(
            self,
            "JobSecurityGroup",
            vpc=inputs.vpc,
            description="SageMaker jobs of the retraining loop: no inbound, HTTPS out to AWS APIs",
            allow_all_outbound=False,
        )
        self.job_security_group.add_egress_rule(
            ec2.Peer.any_ipv4(), ec2.Port.tcp(443), "HTTPS to S3, SSM, ECR, CloudWatch and SageMaker"
        )
        self.job_role = self._job_role()

        self.log_group = logs.LogGroup(self, "StateMachineLogs")
        self.state_machine = sfn.StateMachine(
            self,
            "StateMachine",
            definition_body=sfn.DefinitionBody.from_chainable(self._definition()),
            comment="aik retraining loop: features on transient EMR, SageMaker training, gates and publish",
            timeout=cdk.Duration.hours(6),
            tracing_enabled=True,
            logs=sfn.LogOptions(
                destination=self.log_group, level=sfn.LogLevel.ALL, include_execution_data=True
            ),
        )
        self._grant_steps()
        # CDK makes the machine depend on its role as well as on the role's policy; the role is already
        # ordered by the RoleArn reference (cfn-lint W3005), so only the policy is kept.
        machine = self.state_machine.node.default_child
        policy = self.state_machine.role.node.find_child("DefaultPolicy").node.default_child
        assert isinstance(machine, cdk.CfnResource) and isinstance(policy, cdk.CfnResource)
        machine.add_override("DependsOn", [stack.get_logical_id(policy)])

        self.schedule = self._schedule()
        self.staleness_alarm = self._staleness_alarm()
        self._acknowledge()

    # --- the state machine ------------------------------------------------------------------------

    def _task(
        self, construct_id: str, resource: str, parameters: dict[str, Any], **fields: Any
    ) -> sfn.CustomState:
        """A `.sync` service-integration Task state (CustomState: CDK has no L2 task for createCluster's
        full RunJobFlow request or for processing jobs)."""
        stack = cdk.Stack.of(self)
        state: dict[str, Any] = {
            "Type": "Task",
            "Resource": f"arn:{stack.partition}:states:::{resource}",
            "Parameters": parameters,
            **fields,
        }
        return sfn.CustomState(self, construct_id, state_json=state)

    def _failure(self, step: str, notify: sfn.IChainable) -> sfn.IChainable:
        """The state a step's catch goes to: names the step beside the error, then notifies."""
        return sfn.Pass(
            self,
            f"{step}Failed",
            parameters={"step": step, "error.$": "$.error"},
            result_path="$.failure",
        ).next(notify)

    def _definition(self) -> sfn.IChainable:
        s = self._settings
        data = self._inputs.data_bucket.bucket_name
        stack = cdk.Stack.of(self)
        env = self.emr_environment

        notify = sfn.CustomState(
            self,
            "NotifyFailure",
            state_json={
                "Type": "Task",
                "Resource": f"arn:{stack.partition}:states:::sns:publish",
                "Parameters": {
                    "TopicArn": self.topic.topic_arn,
                    "Subject": "aik retraining loop failed",
                    "Message.$": "States.Format('The aik retraining loop failed in step {} (execution {}): "
                    "{}: {}. The live release is unchanged.', $.failure.step, $$.Execution.Id, "
                    "$.failure.error.Error, $.failure.error.Cause)",
                },
                "ResultPath": None,
            },
        ).next(
            sfn.Fail(self, "Failed", error="RetrainingFailed", cause="a step failed: see the notification")
        )

        prepare = sfn.Pass(
            self,
            "Prepare",
            parameters={"id.$": "States.UUID()"},
            result_path="$.run",
        )
        ingest = self._task(
            "IngestNewDays",
            "sagemaker:createProcessingJob.sync",
            self._ingest_job(data),
            ResultPath=None,
        )
        create = self._task(
            "CreateCluster",
            "elasticmapreduce:createCluster.sync",
            emr_job.run_job_flow_request(env, s.cluster, name=f"{JOB_PREFIX}-features", keep_alive=True),
            ResultSelector={"ClusterId.$": "$.ClusterId"},
            ResultPath="$.cluster",
        )
        run_step = self._task(
            "RunFeatureJob",
            "elasticmapreduce:addStep.sync",
            {
                "ClusterId.$": "$.cluster.ClusterId",
                "Step": emr_job.feature_step(
                    env,
                    region=stack.region,
                    use_case="bid-filtering",
                    seed=42,
                    action_on_failure="CONTINUE",
                    window=Window(s.window_days, s.test_days),
                ),
            },
            ResultPath=None,
        )
        terminate = self._task(
            "TerminateCluster",
            "elasticmapreduce:terminateCluster.sync",
            {"ClusterId.$": "$.cluster.ClusterId"},
            ResultPath=None,
        )
        terminate_after_failure = self._task(
            "TerminateClusterAfterFailure",
            "elasticmapreduce:terminateCluster.sync",
            {"ClusterId.$": "$.cluster.ClusterId"},
            ResultPath=None,
        )
        train = self._task(
            "TrainModel",
            "sagemaker:createTrainingJob.sync",
            self._training_job(data),
            ResultSelector={"ModelArtifacts.$": "$.ModelArtifacts.S3ModelArtifacts"},
            ResultPath="$.training",
        )
        publish = self._task(
            "EvaluateGateAndPublish",
            "sagemaker:createProcessingJob.sync",
            self._processing_job(),
            ResultPath=None,
        )
        count = sfn.CustomState(
            self,
            "CountPublish",
            state_json={
                "Type": "Task",
                "Resource": f"arn:{stack.partition}:states:::aws-sdk:cloudwatch:putMetricData",
                "Parameters": {
                    "Namespace": METRIC_NAMESPACE,
                    "MetricData": [{"MetricName": RELEASES_PUBLISHED, "Value": 1, "Unit": "Count"}],
                },
                "ResultPath": None,
            },
        )

        published = sfn.Succeed(self, "Published")
        # After the pointer switch the release is live: a failed count warns, and the run succeeds.
        warn = sfn.CustomState(
            self,
            "NotifyPublishedWithWarning",
            state_json={
                "Type": "Task",
                "Resource": f"arn:{stack.partition}:states:::sns:publish",
                "Parameters": {
                    "TopicArn": self.topic.topic_arn,
                    "Subject": "aik retraining loop: published, with a warning",
                    "Message.$": "States.Format('The aik retraining loop published a new live release "
                    "(execution {}), but step {} after the publish failed: {}: {}. The staleness alarm may "
                    "fire although the release is fresh.', $$.Execution.Id, $.warning.step, "
                    "$.warning.error.Error, $.warning.error.Cause)",
                },
                "ResultPath": None,
            },
        )
        warn.add_catch(published, errors=["States.ALL"], result_path="$.notifyError")
        warn.next(published)
        count_failed = sfn.Pass(
            self,
            "CountPublishFailed",
            parameters={"step": "CountPublish", "error.$": "$.error"},
            result_path="$.warning",
        ).next(warn)

        failed_step = self._failure("RunFeatureJob", notify)
        terminate_after_failure.add_catch(self._failure("TerminateClusterAfterFailure", notify), **_catch())
        terminate_after_failure.next(failed_step)
        ingest.add_catch(self._failure("IngestNewDays", notify), **_catch())
        create.add_catch(self._failure("CreateCluster", notify), **_catch())
        run_step.add_catch(terminate_after_failure, **_catch())
        terminate.add_catch(self._failure("TerminateCluster", notify), **_catch())
        train.add_catch(self._failure("TrainModel", notify), **_catch())
        publish.add_catch(self._failure("EvaluateGateAndPublish", notify), **_catch())
        count.add_catch(count_failed, **_catch())
        return (
            prepare.next(ingest)
            .next(create)
            .next(run_step)
            .next(terminate)
            .next(train)
            .next(publish)
            .next(count)
            .next(published)
        )

    def _training_job(self, data: str) -> dict[str, Any]:
        """CreateTrainingJob: the kit's image runs its training program on the feature job's outputs."""
        s = self._settings

        def channel(name: str, key: str) -> dict[str, Any]:
            return {
                "ChannelName": name,
                "DataSource": {
                    "S3DataSource": {
                        "S3DataType": "S3Prefix",
                        "S3Uri": f"s3://{data}/{key}",
                        "S3DataDistributionType": "FullyReplicated",
                    }
                },
                "InputMode": "File",
            }

        return {
            "TrainingJobName.$": f"States.Format('{JOB_PREFIX}-train-{{}}', $.run.id)",
            "RoleArn": self.job_role.role_arn,
            "AlgorithmSpecification": {"TrainingImage": self.image.image_uri, "TrainingInputMode": "File"},
            "HyperParameters": {"preset": s.preset, "seed": "0"},
            "InputDataConfig": [
                channel("train", params.DERIVED_KEYS[params.OUTPUT_TRAIN]),
                channel("validation", params.DERIVED_KEYS[params.OUTPUT_VALID]),
                channel("pipeline", params.DERIVED_KEYS[params.PIPELINE_MODEL]),
            ],
            "OutputDataConfig": {"S3OutputPath": f"s3://{data}/{OUTPUT_PREFIX}training/"},
            "ResourceConfig": {
                "InstanceType": s.training_instance_type,
                "InstanceCount": 1,
                "VolumeSizeInGB": 30,
            },
            "StoppingCondition": {"MaxRuntimeInSeconds": s.job_max_run_s},
            "VpcConfig": self._vpc_config(),
        }

    def _vpc_config(self) -> dict[str, Any]:
        """The jobs' VpcConfig: the private subnets and the jobs' own security group."""
        return {
            "SecurityGroupIds": [self.job_security_group.security_group_id],
            "Subnets": self.job_subnets.subnet_ids,
        }

    def _ingest_job(self, data: str) -> dict[str, Any]:
        """CreateProcessingJob: `aik ingest --from s3://<data>/<ingest prefix>` (append the new days)."""
        return self._kit_job(
            f"{JOB_PREFIX}-ingest",
            ["ingest", "--from", f"s3://{data}/{self._settings.ingest_prefix}"],
            arguments=None,
        )

    def _kit_job(self, name: str, command: list[str], arguments: str | None) -> dict[str, Any]:
        """A processing job running `aik --backend aws --region R <command>` in the kit's image."""
        s = self._settings
        stack = cdk.Stack.of(self)
        app: dict[str, Any] = {
            "ImageUri": self.image.image_uri,
            "ContainerEntrypoint": ["aik", "--backend", "aws", "--region", stack.region, *command],
        }
        if arguments is not None:
            app["ContainerArguments.$"] = arguments
        return {
            "ProcessingJobName.$": f"States.Format('{name}-{{}}', $.run.id)",
            "RoleArn": self.job_role.role_arn,
            "AppSpecification": app,
            "ProcessingResources": {
                "ClusterConfig": {
                    "InstanceType": s.processing_instance_type,
                    "InstanceCount": 1,
                    "VolumeSizeInGB": 30,
                }
            },
            "StoppingCondition": {"MaxRuntimeInSeconds": s.job_max_run_s},
            "NetworkConfig": {"VpcConfig": self._vpc_config()},
        }

    def _processing_job(self) -> dict[str, Any]:
        """CreateProcessingJob: `aik train --model-uri <the job's model.tar.gz>` (evaluate, gate, publish)."""
        return self._kit_job(
            f"{JOB_PREFIX}-publish",
            ["train"],
            arguments="States.Array('--model-uri', $.training.ModelArtifacts)",
        )

    # --- IAM -----------------------------------------------------------------------------------

    def _job_role(self) -> iam.Role:
        """The role of the loop's SageMaker jobs: the kit's data, parameters, image and their own logs."""
        stack = cdk.Stack.of(self)
        role = iam.Role(
            self,
            "JobRole",
            assumed_by=iam.ServicePrincipal("sagemaker.amazonaws.com"),
            description="SageMaker training and processing jobs of the aik retraining loop",
        )
        role.add_managed_policy(self._inputs.data_policy)
        self.image.repository.grant_pull(role)
        self._parameters_arn = stack.format_arn(
            service="ssm", resource="parameter", resource_name=params.PREFIX.strip("/") + "/*"
        )
        role.add_to_policy(
            iam.PolicyStatement(
                sid="KitParameters",
                actions=["ssm:GetParameter", "ssm:GetParameters", "ssm:PutParameter"],
                resources=[self._parameters_arn],
            )
        )
        self._job_logs_arn = stack.format_arn(
            service="logs",
            resource="log-group",
            resource_name="/aws/sagemaker/*",
            arn_format=cdk.ArnFormat.COLON_RESOURCE_NAME,
        )
        role.add_to_policy(
            iam.PolicyStatement(
                sid="JobLogs",
                actions=["logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents"],
                resources=[self._job_logs_arn],
            )
        )
        # SageMaker attaches the jobs to the VPC with network interfaces it creates as this role.
        role.add_to_policy(
            iam.PolicyStatement(
                sid="JobNetworkDescribe",
                actions=[
                    "ec2:DescribeNetworkInterfaces",
                    "ec2:DescribeVpcs",
                    "ec2:DescribeDhcpOptions",
                    "ec2:DescribeSubnets",
                    "ec2:DescribeSecurityGroups",
                ],
                resources=["*"],
            )
        )
        subnet_arns = [
            stack.format_arn(service="ec2", resource="subnet", resource_name=subnet_id)
            for subnet_id in self.job_subnets.subnet_ids
        ]
        group_arn = stack.format_arn(
            service="ec2", resource="security-group", resource_name=self.job_security_group.security_group_id
        )
        role.add_to_policy(
            iam.PolicyStatement(
                sid="JobNetworkInterfaceInputs",
                actions=["ec2:CreateNetworkInterface"],
                resources=[*subnet_arns, group_arn],
            )
        )
        self._interfaces_arn = stack.format_arn(
            service="ec2", resource="network-interface", resource_name="*"
        )
        role.add_to_policy(
            iam.PolicyStatement(
                sid="JobNetworkInterfaces",
                actions=[
                    "ec2:CreateNetworkInterface",
                    "ec2:CreateNetworkInterfacePermission",
                    "ec2:DeleteNetworkInterface",
                    "ec2:DeleteNetworkInterfacePermission",
                ],
                resources=[self._interfaces_arn],
                conditions={"ArnEquals": {"ec2:Subnet": subnet_arns}},
            )
        )
        role.add_to_policy(
            iam.PolicyStatement(
                sid="JobMetrics",
                actions=["cloudwatch:PutMetricData"],
                resources=["*"],
                conditions={"StringLike": {"cloudwatch:namespace": "/aws/sagemaker/*"}},
            )
        )
        return role

    def _grant_steps(self) -> None:
        """What the state machine's tasks call, scoped to the loop's own resources."""
        stack = cdk.Stack.of(self)
        role = self.state_machine.role
        tag_key, tag_value = emr_job.COMPONENT_TAG
        role.add_to_principal_policy(
            iam.PolicyStatement(
                sid="CreateTaggedClusters",
                actions=["elasticmapreduce:RunJobFlow"],
                resources=["*"],
                conditions={"StringEquals": {f"elasticmapreduce:RequestTag/{tag_key}": tag_value}},
            )
        )
        role.add_to_principal_policy(
            iam.PolicyStatement(
                sid="CreateClustersWithTags",
                actions=["elasticmapreduce:AddTags"],
                resources=[self._clusters_arn(stack)],
                conditions={"StringEquals": {f"elasticmapreduce:RequestTag/{tag_key}": tag_value}},
            )
        )
        role.add_to_principal_policy(
            iam.PolicyStatement(
                sid="RunAndEndTaggedClusters",
                actions=[
                    "elasticmapreduce:DescribeCluster",
                    "elasticmapreduce:AddJobFlowSteps",
                    "elasticmapreduce:DescribeStep",
                    "elasticmapreduce:CancelSteps",
                    "elasticmapreduce:TerminateJobFlows",
                ],
                resources=[self._clusters_arn(stack)],
                conditions={"StringEquals": {f"elasticmapreduce:ResourceTag/{tag_key}": tag_value}},
            )
        )
        emr = self._inputs.emr
        emr.service_role.grant_pass_role(role)
        emr.instance_role.grant_pass_role(role)
        self.job_role.grant_pass_role(role)
        self._training_jobs_arn = stack.format_arn(
            service="sagemaker", resource="training-job", resource_name=f"{JOB_PREFIX}-*"
        )
        self._processing_jobs_arn = stack.format_arn(
            service="sagemaker", resource="processing-job", resource_name=f"{JOB_PREFIX}-*"
        )
        role.add_to_principal_policy(
            iam.PolicyStatement(
                sid="LoopSageMakerJobs",
                actions=[
                    "sagemaker:CreateTrainingJob",
                    "sagemaker:DescribeTrainingJob",
                    "sagemaker:StopTrainingJob",
                    "sagemaker:CreateProcessingJob",
                    "sagemaker:DescribeProcessingJob",
                    "sagemaker:StopProcessingJob",
                ],
                resources=[self._training_jobs_arn, self._processing_jobs_arn],
            )
        )
        role.add_to_principal_policy(
            iam.PolicyStatement(
                sid="SyncIntegrationRules",
                actions=["events:PutTargets", "events:PutRule", "events:DescribeRule"],
                resources=[
                    stack.format_arn(service="events", resource="rule", resource_name=rule)
                    for rule in SYNC_RULES
                ],
            )
        )
        role.add_to_principal_policy(
            iam.PolicyStatement(
                sid="CountPublishes",
                actions=["cloudwatch:PutMetricData"],
                resources=["*"],
                conditions={"StringEquals": {"cloudwatch:namespace": METRIC_NAMESPACE}},
            )
        )
        self.topic.grant_publish(role)

    @staticmethod
    def _clusters_arn(stack: cdk.Stack) -> str:
        return stack.format_arn(service="elasticmapreduce", resource="cluster", resource_name="*")

    # --- schedule and alarm ----------------------------------------------------------------------

    def _schedule(self) -> scheduler.CfnSchedule:
        """The EventBridge Scheduler schedule that starts the state machine (DISABLED unless switched on)."""
        role = iam.Role(
            self,
            "ScheduleRole",
            assumed_by=iam.ServicePrincipal(
                "scheduler.amazonaws.com",
                conditions={"StringEquals": {"aws:SourceAccount": cdk.Stack.of(self).account}},
            ),
            description="EventBridge Scheduler: start the aik retraining loop",
        )
        self.state_machine.grant_start_execution(role)
        return scheduler.CfnSchedule(
            self,
            "Schedule",
            description="Starts the aik retraining loop (aik:loop-schedule turns it on)",
            schedule_expression=self._settings.schedule_expression,
            schedule_expression_timezone="UTC",
            flexible_time_window=scheduler.CfnSchedule.FlexibleTimeWindowProperty(mode="OFF"),
            state="ENABLED" if self._settings.schedule_enabled else "DISABLED",
            target=scheduler.CfnSchedule.TargetProperty(
                arn=self.state_machine.state_machine_arn,
                role_arn=role.role_arn,
                input="{}",
                retry_policy=scheduler.CfnSchedule.RetryPolicyProperty(
                    maximum_retry_attempts=2, maximum_event_age_in_seconds=3600
                ),
            ),
        )

    def _staleness_alarm(self) -> cloudwatch.Alarm:
        """Fires when no release was published in the last `release_max_age_hours` hours."""
        hours = self._settings.release_max_age_hours
        metric = cloudwatch.Metric(
            namespace=METRIC_NAMESPACE,
            metric_name=RELEASES_PUBLISHED,
            statistic="Sum",
            period=cdk.Duration.hours(1),
        )
        alarm = cloudwatch.Alarm(
            self,
            "StalenessAlarm",
            metric=metric,
            alarm_description=f"No model release was published in the last {hours} hours: the live model "
            "is getting old (the retraining loop is off, failing, or its gates keep refusing)",
            comparison_operator=cloudwatch.ComparisonOperator.LESS_THAN_THRESHOLD,
            threshold=1,
            evaluation_periods=hours,
            datapoints_to_alarm=hours,
            treat_missing_data=cloudwatch.TreatMissingData.BREACHING,
        )
        alarm.add_alarm_action(cw_actions.SnsAction(self.topic))
        return alarm

    # --- cdk-nag ---------------------------------------------------------------------------------

    def _acknowledge(self) -> None:
        machine_policy = self.state_machine.role.node.find_child("DefaultPolicy")
        nag.acknowledge(
            machine_policy,
            "AwsSolutions-IAM5[Resource::*]",
            "These actions support no resource-level permissions: elasticmapreduce:RunJobFlow (allowed "
            "only with the request tag aik:component=feature-job), cloudwatch:PutMetricData (only in the "
            "namespace aik/loop), and the log delivery (logs:*LogDelivery*, DescribeLogGroups, "
            "*ResourcePolicies) and X-Ray calls that sfn.StateMachine grants for its logs and tracing.",
        )
        nag.acknowledge(
            machine_policy,
            nag.resource_rule(self, self._clusters_arn(cdk.Stack.of(self))),
            "Cluster ids exist only once the state machine has created the cluster; every call on "
            "clusters is limited by condition to clusters tagged aik:component=feature-job.",
        )
        nag.acknowledge(
            machine_policy,
            nag.action_rule("kms:GenerateDataKey*"),
            "Topic.grant_publish on the loop's encrypted topic: kms:GenerateDataKey* and kms:Decrypt on "
            "that topic's own key (the resource is the key's ARN), which SNS needs to encrypt a message.",
        )
        for arn in (self._training_jobs_arn, self._processing_jobs_arn):
            nag.acknowledge(
                machine_policy,
                nag.resource_rule(self, arn),
                "Each execution names its SageMaker jobs aik-loop-<kind>-<uuid> at run time; the "
                "wildcard is that prefix in this account and region.",
            )
        job_policy = self.job_role.node.find_child("DefaultPolicy")
        nag.acknowledge(
            job_policy,
            nag.resource_rule(self, self._parameters_arn),
            "The publish step runs `aik train`, which reads the kit's parameters under /aik/; the "
            "wildcard is that path only.",
        )
        nag.acknowledge(
            job_policy,
            nag.resource_rule(self, self._job_logs_arn),
            "SageMaker writes a job's output to the log groups /aws/sagemaker/TrainingJobs and "
            "/aws/sagemaker/ProcessingJobs, with one stream per job named at run time.",
        )
        nag.acknowledge(
            job_policy,
            "AwsSolutions-IAM5[Resource::*]",
            "Neither ecr:GetAuthorizationToken (Repository.grant_pull: the registry login before the "
            "pull, which is itself limited to the asset repository), cloudwatch:PutMetricData nor the "
            "ec2:Describe* calls SageMaker makes to place a job in the VPC (network interfaces, VPCs, DHCP "
            "options, subnets, security groups) support resource-level permissions; PutMetricData is "
            "allowed only in SageMaker's own namespaces (/aws/sagemaker/*).",
        )
        nag.acknowledge(
            job_policy,
            nag.resource_rule(self, self._interfaces_arn),
            "The network interfaces SageMaker creates for a job exist only at run time; creating, "
            "permitting and deleting them is allowed only in the loop's private subnets (condition "
            "ec2:Subnet).",
        )


def _catch() -> dict[str, Any]:
    """A catch of every error, keeping the input and putting the error at `$.error`."""
    return {"errors": ["States.ALL"], "result_path": "$.error"}
