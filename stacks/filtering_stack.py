"""Stack `aik/filtering`: inference on ECS Fargate, its parameters, log groups, dashboard and alarms."""

from __future__ import annotations

from typing import Any

import aws_cdk as cdk
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_iam as iam
from aws_cdk import aws_s3 as s3
from constructs import Construct

from aik import params
from stacks.boundary import PermissionsBoundary
from stacks.config import KitConfig
from stacks.filtering_service import (
    MODEL_PARAMETERS,
    SERVER_PARAMETERS,
    FilteringService,
    ReplayEmulator,
    parameter_arn,
)
from stacks.model_check import ModelCheck
from stacks.monitoring import FilteringMonitoring
from stacks.predictions import PredictionStream
from stacks.retention import LogGroupRetention
from stacks.sagemaker_emr_stack import TwoAzStack


class FilteringStack(TwoAzStack):
    """The filtering service (in the kit's VPC, reading the data bucket), its monitoring, the model
    check that runs before it, the prediction log's delivery stream (into the data bucket), and the
    emulator service when `config.emulator` is on.

    Every role of the stack is under the kit's permissions boundary. Exposes `service`, `model_check`,
    `emulator` (None when off), `monitoring` and `predictions`.
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        config: KitConfig,
        vpc: ec2.IVpc,
        data_read_policy: iam.IManagedPolicy,
        data_bucket: s3.IBucket,
        prediction_write_policy: iam.IManagedPolicy,
        boundary: PermissionsBoundary,
        **kwargs: Any,
    ) -> None:
        super().__init__(scope, construct_id, **kwargs)
        boundary.apply_to(self)
        cdk.Aspects.of(self).add(LogGroupRetention(config.log_retention_days, config.removal_policy))
        self.predictions = PredictionStream(
            self, "Predictions", data_bucket=data_bucket, write_policy=prediction_write_policy
        )
        self.service = FilteringService(
            self,
            "Filtering",
            vpc=vpc,
            data_read_policy=data_read_policy,
            min_tasks=config.min_tasks,
            max_tasks=config.max_tasks,
            prediction_stream=self.predictions,
            prediction_sample=config.prediction_sample,
        )
        self.model_check = ModelCheck(
            self,
            "ModelCheck",
            release_parameter=params.RELEASE_LIVE,
            model_parameters=MODEL_PARAMETERS,
            parameter_arns=[parameter_arn(self, name) for name in SERVER_PARAMETERS],
            data_read_policy=data_read_policy,
            # Checked again whenever the server's image (or its tag) changes.
            trigger=self.service.filtering_server.image_name,
        )
        # No service (and no 10-minute rollback) before the check passes.
        self.service.service.node.add_dependency(self.model_check.resource)
        self.emulator = (
            ReplayEmulator(self, "Emulator", filtering=self.service, data_read_policy=data_read_policy)
            if config.emulator
            else None
        )
        self.monitoring = FilteringMonitoring(
            self,
            "Monitoring",
            latency_alarm_ms=config.latency_alarm_ms,
            target_group=self.service.target_group,
        )
        cdk.CfnOutput(
            self,
            "FilteringEndpoint",
            value=f"{self.service.endpoint}:9090",
            description="Where bidders in the VPC send Thrift requests (internal NLB, TCP)",
        )
