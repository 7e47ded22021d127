"""A deploy-time check that a model is published before the filtering service is created or updated.

Component = construct + runtime: `handler.py` beside it is the Lambda code of the custom resource.
"""

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

CODE = Path(__file__).resolve().parent


class ModelCheck(Construct):
    """Custom resource `Custom::ModelCheck`: fails the deployment, naming notebook 3, when neither the
    live release nor the original model parameters point to existing objects (see `handler.py`).

    It runs on create and whenever `trigger` changes (pass the server image, so every new server is
    checked). Its function may get exactly `parameter_arns` and read the data bucket through
    `data_read_policy`. Exposes `resource`.
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        release_parameter: str,
        model_parameters: Sequence[str],
        parameter_arns: Sequence[str],
        data_read_policy: iam.IManagedPolicy,
        trigger: str,
    ) -> None:
        super().__init__(scope, construct_id)
        log_group = logs.LogGroup(self, "LogGroup")
        role = iam.Role(
            self,
            "Role",
            assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"),
            description="Model check custom resource of the kit's filtering stack",
            managed_policies=[data_read_policy],
        )
        log_group.grant_write(role)
        role.add_to_policy(
            iam.PolicyStatement(
                sid="ReadModelParameters", actions=["ssm:GetParameter"], resources=list(parameter_arns)
            )
        )
        self.function = lambda_.Function(
            self,
            "Function",
            runtime=lambda_.Runtime.PYTHON_3_14,
            handler="handler.on_event",
            code=lambda_.Code.from_asset(str(CODE), exclude=["__pycache__", "*.pyc", "__init__.py"]),
            timeout=cdk.Duration.seconds(30),
            memory_size=128,
            description="Fails the filtering deployment when no model is published yet",
            role=role,
            log_group=log_group,
        )
        self.provider = cr.Provider(self, "Provider", on_event_handler=self.function)
        self.resource = cdk.CustomResource(
            self,
            "Resource",
            service_token=self.provider.service_token,
            resource_type="Custom::ModelCheck",
            properties={
                "ReleaseParameter": release_parameter,
                "ModelParameters": list(model_parameters),
                "Trigger": trigger,
            },
        )
        nag.acknowledge(
            self.provider,
            nag.aws_managed_policy_rule(self, "service-role/AWSLambdaBasicExecutionRole"),
            "CDK's custom-resource provider framework gives its own function AWSLambdaBasicExecutionRole to "
            "write its logs; the framework, not the kit, owns that role.",
        )
        nag.acknowledge(
            self.provider,
            nag.resource_rule(self, f"{self.function.function_arn}:*"),
            "The provider framework may invoke any version or alias of the kit's model-check function "
            "(the wildcard is the qualifier of that one function's ARN).",
        )
