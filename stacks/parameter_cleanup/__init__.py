"""Deletes the notebook-written `/aik/...` parameters when the stack is deleted.

Component = construct + runtime: `handler.py` beside it is the Lambda code of the custom resource.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import aws_cdk as cdk
from aws_cdk import aws_iam as iam
from constructs import Construct

from stacks import nag
from stacks.custom_resource import handler_function

CODE = Path(__file__).resolve().parent


class ParameterCleanup(Construct):
    """Custom resource `Custom::ParameterCleanup`: on deletion, deletes every parameter under `prefix`
    but `keep` (the ones the stacks create, which its role may not touch either). Exposes `resource`.
    """

    def __init__(self, scope: Construct, construct_id: str, *, prefix: str, keep: Sequence[str]) -> None:
        super().__init__(scope, construct_id)
        stack = cdk.Stack.of(self)
        path = prefix.strip("/")

        def arn(name: str) -> str:
            return stack.format_arn(service="ssm", resource="parameter", resource_name=name)

        function, provider = handler_function(
            self,
            code=CODE,
            description="Deletes the notebook-written /aik/ parameters when the stack is deleted",
            timeout_s=120,
        )
        self._parameters = arn(f"{path}/*")
        function.add_to_role_policy(
            iam.PolicyStatement(
                sid="FindKitParameters",
                actions=["ssm:GetParametersByPath"],
                resources=[arn(path), self._parameters],
            )
        )
        function.add_to_role_policy(
            iam.PolicyStatement(
                sid="DeleteKitParameters", actions=["ssm:DeleteParameters"], resources=[self._parameters]
            )
        )
        function.add_to_role_policy(
            iam.PolicyStatement(
                sid="LeaveStackParametersAlone",
                effect=iam.Effect.DENY,
                actions=["ssm:DeleteParameter", "ssm:DeleteParameters"],
                resources=[arn(name.lstrip("/")) for name in keep],
            )
        )
        self.resource = cdk.CustomResource(
            self,
            "Resource",
            service_token=provider.service_token,
            resource_type="Custom::ParameterCleanup",
            properties={"Prefix": prefix, "Keep": list(keep)},
        )
        nag.acknowledge(
            function.role.node.find_child("DefaultPolicy"),  # type: ignore[union-attr]  # a Function always has its role
            nag.resource_rule(self, self._parameters),
            "The notebooks choose the names of the parameters they write under /aik/ (notebook 0's, "
            "training's, the release pointer); deletion covers that path only, never the stacks' own.",
        )
