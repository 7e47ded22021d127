"""The kit's own custom resources: a Python handler in Lambda behind CDK's provider framework."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import aws_cdk as cdk
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import custom_resources as cr
from constructs import Construct

from stacks import nag


def handler_function(
    scope: Construct,
    *,
    code: Path,
    description: str,
    timeout_s: int = 60,
    managed_policies: Sequence[iam.IManagedPolicy] = (),
) -> tuple[lambda_.Function, cr.Provider]:
    """`LogGroup`, `Role`, `Function` (`code/handler.py:on_event`) and `Provider` under `scope`.

    The role writes only its own log group (instead of AWSLambdaBasicExecutionRole) plus
    `managed_policies`; callers add the statements their handler needs.
    """
    log_group = logs.LogGroup(scope, "LogGroup")
    role = iam.Role(
        scope,
        "Role",
        assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"),
        description=description,
        managed_policies=list(managed_policies),
    )
    log_group.grant_write(role)
    function = lambda_.Function(
        scope,
        "Function",
        runtime=lambda_.Runtime.PYTHON_3_14,
        handler="handler.on_event",
        code=lambda_.Code.from_asset(str(code), exclude=["__pycache__", "*.pyc", "__init__.py"]),
        timeout=cdk.Duration.seconds(timeout_s),
        memory_size=128,
        description=description,
        role=role,
        log_group=log_group,
    )
    provider = cr.Provider(scope, "Provider", on_event_handler=function)
    nag.acknowledge(
        provider,
        nag.aws_managed_policy_rule(scope, "service-role/AWSLambdaBasicExecutionRole"),
        "CDK's custom-resource provider framework gives its own function AWSLambdaBasicExecutionRole to "
        "write its logs; the framework, not the kit, owns that role.",
    )
    nag.acknowledge(
        provider,
        nag.resource_rule(scope, f"{function.function_arn}:*"),
        "The provider framework may invoke any version or alias of the kit's handler function "
        "(the wildcard is the qualifier of that one function's ARN).",
    )
    return function, provider
