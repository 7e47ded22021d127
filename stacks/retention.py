"""One place for how long the kit keeps logs: every CloudWatch log group, CDK's own included."""

from __future__ import annotations

from typing import cast

import aws_cdk as cdk
import jsii
from constructs import IConstruct


@jsii.implements(cdk.IAspect)
class LogGroupRetention:
    """Give every log group under a scope the kit's retention and removal policy.

    The kit's own log groups and the ones CDK creates for its Lambda handlers (the bucket deployment,
    the custom-resource provider), which CDK would otherwise keep for two years and retain after
    `cdk destroy`.
    """

    def __init__(self, days: int, removal_policy: cdk.RemovalPolicy) -> None:
        self.days = days
        self.removal_policy = removal_policy

    def visit(self, node: IConstruct) -> None:
        """Set retention and removal policy on a log group; leave anything else alone."""
        if not cdk.CfnResource.is_cfn_resource(node):
            return
        resource = cast(cdk.CfnResource, node)  # what is_cfn_resource just checked (jsii has no TypeGuard)
        if resource.cfn_resource_type == "AWS::Logs::LogGroup":
            resource.add_property_override("RetentionInDays", self.days)
            resource.apply_removal_policy(self.removal_policy)
