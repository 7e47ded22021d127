"""The `aik` stage: the `sagemaker-emr`, `filtering` and `loop` stacks, checked by cdk-nag on every synth."""

from __future__ import annotations

from typing import Any

import aws_cdk as cdk
import jsii
from constructs import Construct, IConstruct

from stacks import nag
from stacks.config import KitConfig
from stacks.filtering_stack import FilteringStack
from stacks.loop import LoopInputs
from stacks.loop_stack import LoopStack
from stacks.sagemaker_emr_stack import SagemakerEmrStack

#: The tag every resource of the kit carries (cost allocation, finding what to clean up).
PROJECT_TAG = ("Project", "aik")
#: Types that take tags but that CDK also creates as plain `CfnResource`s (its custom-resource
#: providers' roles and functions), which `Tags.of` does not reach.
RAW_TAGGABLE_TYPES = ("AWS::IAM::Role", "AWS::Lambda::Function")


@jsii.implements(cdk.IAspect)
class TagRawResources:
    """Put `PROJECT_TAG` on the plain `CfnResource` roles and functions CDK generates."""

    def visit(self, node: IConstruct) -> None:
        if (
            isinstance(node, cdk.CfnResource)
            and node.cfn_resource_type in RAW_TAGGABLE_TYPES
            and not cdk.TagManager.is_taggable(node)
        ):
            node.add_property_override("Tags", [{"Key": PROJECT_TAG[0], "Value": PROJECT_TAG[1]}])


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
            data_bucket=self.sagemaker_emr.data_bucket,
            prediction_write_policy=self.sagemaker_emr.prediction_write_policy,
            boundary=self.sagemaker_emr.boundary,
            description="Advertising Intelligence Kit - bid-filtering service on ECS Fargate (aik/filtering)",
        )
        self.filtering.add_stack_dependency(self.sagemaker_emr)
        self.loop = LoopStack(
            self,
            "loop",
            config=config,
            inputs=LoopInputs(
                vpc=self.sagemaker_emr.vpc,
                data_bucket=self.sagemaker_emr.data_bucket,
                data_policy=self.sagemaker_emr.data_read_write_policy,
                bootstrap_bucket=self.sagemaker_emr.bootstrap_bucket,
                emr=self.sagemaker_emr.emr_security,
            ),
            boundary=self.sagemaker_emr.boundary,
            backtest_users=[self.sagemaker_emr.studio_execution_role],
            description="Advertising Intelligence Kit - retraining loop: schedule, Step Functions, transient "
            "EMR, SageMaker (aik/loop)",
        )
        self.loop.add_stack_dependency(self.sagemaker_emr)
        # The cost tag on every taggable resource of the three stacks and of the EMR product's template.
        cdk.Tags.of(self).add(*PROJECT_TAG)
        cdk.Aspects.of(self).add(TagRawResources())
        nag.add_checks(self)
