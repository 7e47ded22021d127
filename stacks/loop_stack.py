"""Stack `aik/loop`: the retraining loop (schedule, state machine, transient EMR, SageMaker jobs, alarm)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import aws_cdk as cdk
from aws_cdk import aws_iam as iam
from constructs import Construct

from stacks.backtests import BacktestJobs
from stacks.boundary import PermissionsBoundary
from stacks.config import KitConfig
from stacks.loop import LoopInputs, RetrainingLoop
from stacks.retention import LogGroupRetention
from stacks.sagemaker_emr_stack import TwoAzStack


class LoopStack(TwoAzStack):
    """The retraining loop over the sagemaker-emr stack's VPC, buckets and EMR roles; its schedule is
    disabled unless `aik:loop-schedule` is on; and where `aik backtest --on sagemaker` runs its jobs (the
    loop's image and job role), which `backtest_users` may start. Every role is under the kit's
    permissions boundary. Exposes `loop`, `backtests`.
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        config: KitConfig,
        inputs: LoopInputs,
        boundary: PermissionsBoundary,
        backtest_users: Sequence[iam.IRole] = (),
        **kwargs: Any,
    ) -> None:
        super().__init__(scope, construct_id, **kwargs)
        boundary.apply_to(self)
        cdk.Aspects.of(self).add(LogGroupRetention(config.log_retention_days, config.removal_policy))
        self.loop = RetrainingLoop(self, "Loop", inputs=inputs, settings=config.loop)
        self.backtests = BacktestJobs(
            self,
            "Backtests",
            image=self.loop.image,
            job_role=self.loop.job_role,
            subnet_ids=self.loop.job_subnets.subnet_ids,
            security_group_ids=[self.loop.job_security_group.security_group_id],
            users=backtest_users,
        )
        cdk.CfnOutput(
            self,
            "StateMachineArn",
            value=self.loop.state_machine.state_machine_arn,
            description="The retraining loop (aws stepfunctions start-execution --state-machine-arn ...)",
        )
        cdk.CfnOutput(
            self,
            "NotificationsTopicArn",
            value=self.loop.topic.topic_arn,
            description="Failures of the loop and the staleness alarm (subscribe to be told)",
        )
