"""A deploy-time check that a model is published before the filtering service is created or updated.

Component = construct + runtime: `handler.py` beside it is the Lambda code of the custom resource.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import aws_cdk as cdk
from aws_cdk import aws_iam as iam
from constructs import Construct

from stacks.custom_resource import handler_function

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
        self.function, self.provider = handler_function(
            self,
            code=CODE,
            description="Fails the filtering deployment when no model is published yet",
            timeout_s=30,
            managed_policies=[data_read_policy],
        )
        self.function.add_to_role_policy(
            iam.PolicyStatement(
                sid="ReadModelParameters", actions=["ssm:GetParameter"], resources=list(parameter_arns)
            )
        )
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
