"""The `aik` stage: the `sagemaker-emr` and `filtering` stacks, checked by cdk-nag on every synth."""

from __future__ import annotations

from typing import Any

import aws_cdk as cdk
from constructs import Construct

from stacks import nag
from stacks.config import KitConfig
from stacks.filtering_stack import FilteringStack
from stacks.sagemaker_emr_stack import SagemakerEmrStack


class AikStage(cdk.Stage):
    """Stage `aik`: stacks `sagemaker-emr` and `filtering` (targets `aik/sagemaker-emr`, `aik/filtering`).

    The filtering stack gets the VPC, the data-bucket read policy and the permissions boundary as
    objects from the sagemaker-emr stack (CDK turns them into exports and imports).
    """

    def __init__(
        self, scope: Construct, construct_id: str = "aik", *, config: KitConfig | None = None, **kwargs: Any
    ) -> None:
        super().__init__(scope, construct_id, **kwargs)
        config = config or KitConfig()
        self.sagemaker_emr = SagemakerEmrStack(
            self,
            "sagemaker-emr",
            config=config,
            description="Advertising Intelligence Kit - Studio, EMR product and data (aik/sagemaker-emr)",
        )
        self.filtering = FilteringStack(
            self,
            "filtering",
            config=config,
            vpc=self.sagemaker_emr.vpc,
            data_read_policy=self.sagemaker_emr.data_read_policy,
            boundary=self.sagemaker_emr.boundary,
            description="Advertising Intelligence Kit - bid-filtering service on ECS Fargate (aik/filtering)",
        )
        self.filtering.add_stack_dependency(self.sagemaker_emr)
        nag.add_checks(self)
