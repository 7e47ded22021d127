"""Stack `aik/filtering`: inference on ECS Fargate, its parameters, log groups, dashboard and alarms."""

from __future__ import annotations

from typing import Any

import aws_cdk as cdk
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_iam as iam
from constructs import Construct

from stacks.boundary import PermissionsBoundary
from stacks.config import KitConfig
from stacks.filtering_service import FilteringService
from stacks.monitoring import FilteringMonitoring
from stacks.retention import LogGroupRetention
from stacks.sagemaker_emr_stack import TwoAzStack


class FilteringStack(TwoAzStack):
    """The filtering service (in the kit's VPC, reading the data bucket) and its monitoring.

    Every role of the stack is under the kit's permissions boundary. Exposes `service` and `monitoring`.
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        config: KitConfig,
        vpc: ec2.IVpc,
        data_read_policy: iam.IManagedPolicy,
        boundary: PermissionsBoundary,
        **kwargs: Any,
    ) -> None:
        super().__init__(scope, construct_id, **kwargs)
        boundary.apply_to(self)
        cdk.Aspects.of(self).add(LogGroupRetention(config.log_retention_days, config.removal_policy))
        self.service = FilteringService(
            self,
            "Filtering",
            vpc=vpc,
            data_read_policy=data_read_policy,
            max_tasks=config.max_tasks,
        )
        self.monitoring = FilteringMonitoring(self, "Monitoring", latency_alarm_ms=config.latency_alarm_ms)
