"""Backtests as SageMaker training jobs: where they run, and who may start them.

`aik --backend aws backtest --on sagemaker` starts one training job per candidate in the kit's pipeline
image (the retraining loop's), as the loop's job role. This construct writes both to the parameter
`/aik/backtest/sagemaker` and lets the given roles (Studio's execution role) start, follow and stop
jobs named `aik-backtest-*` and pass the job role to SageMaker.
"""

from __future__ import annotations

from collections.abc import Sequence

import aws_cdk as cdk
from aws_cdk import aws_ecr_assets as ecr_assets
from aws_cdk import aws_iam as iam
from aws_cdk import aws_ssm as ssm
from constructs import Construct

from aik.params import BACKTEST_JOB_PREFIX as JOB_PREFIX
from aik.params import BACKTEST_JOBS as PARAMETER
from stacks import nag


class BacktestJobs(Construct):
    """The parameter naming the backtest jobs' image, role and network (the loop's jobs' subnets and
    security group), and the policy of the roles that start them.

    Exposes `parameter` and `policy` (None without `users`).
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        image: ecr_assets.DockerImageAsset,
        job_role: iam.IRole,
        subnet_ids: Sequence[str] = (),
        security_group_ids: Sequence[str] = (),
        users: Sequence[iam.IRole] = (),
    ) -> None:
        super().__init__(scope, construct_id)
        stack = cdk.Stack.of(self)
        self.parameter = ssm.StringParameter(
            self,
            "Parameter",
            parameter_name=PARAMETER,
            string_value=stack.to_json_string(
                {
                    "image_uri": image.image_uri,
                    "role_arn": job_role.role_arn,
                    "subnets": list(subnet_ids),
                    "security_group_ids": list(security_group_ids),
                }
            ),
            description="Image and role of the backtest training jobs (read by aik backtest --on sagemaker)",
            tier=ssm.ParameterTier.STANDARD,
        )
        self.policy: iam.Policy | None = None
        if not users:
            return
        self.jobs_arn = stack.format_arn(
            service="sagemaker", resource="training-job", resource_name=f"{JOB_PREFIX}-*"
        )
        self.policy = iam.Policy(
            self,
            "StartBacktests",
            roles=list(users),
            statements=[
                iam.PolicyStatement(
                    sid="BacktestJobs",
                    actions=[
                        "sagemaker:CreateTrainingJob",
                        "sagemaker:DescribeTrainingJob",
                        "sagemaker:StopTrainingJob",
                        "sagemaker:AddTags",
                    ],
                    resources=[self.jobs_arn],
                ),
                iam.PolicyStatement(
                    sid="PassTheJobRole",
                    actions=["iam:PassRole"],
                    resources=[job_role.role_arn],
                    conditions={"StringEquals": {"iam:PassedToService": "sagemaker.amazonaws.com"}},
                ),
                iam.PolicyStatement(
                    sid="ReadTheParameter",
                    actions=["ssm:GetParameter"],
                    resources=[self.parameter.parameter_arn],
                ),
            ],
        )
        nag.acknowledge(
            self.policy,
            nag.resource_rule(self, self.jobs_arn),
            "aik backtest names each job aik-backtest-<backtest id>-<n>-<candidate> at run time; the "
            "wildcard is that prefix in this account and region.",
        )
