"""The SageMaker managed MLflow tracking server of the kit (optional: the `aik:mlflow` context switch).

`aik backtest` records every run in MLflow; in AWS it finds this server through the parameter
`/aik/mlflow/tracking-server-arn` and reaches it with the `sagemaker-mlflow` plugin (the ARN is the
tracking URI). The server keeps its artifacts in the data bucket under `mlflow/`.
"""

from __future__ import annotations

from collections.abc import Sequence

import aws_cdk as cdk
from aws_cdk import aws_iam as iam
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_sagemaker as sagemaker
from aws_cdk import aws_ssm as ssm
from constructs import Construct

from aik import params
from stacks import nag

#: The server's name (required by CloudFormation; one per account and region).
SERVER_NAME = "aik-mlflow"
#: Where the server keeps run artifacts, under the data bucket.
ARTIFACT_PREFIX = "mlflow/"
#: SageMaker's smallest size; Medium and Large hold more concurrent users.
SERVER_SIZE = "Small"


class MlflowTracking(Construct):
    """A SageMaker managed MLflow tracking server, its service role and the parameter naming it.

    The server's role may read, write and list only `s3://<data bucket>/mlflow/`. Each role in `users`
    may call the MLflow API of this one server (and open its UI); the users already read and write the
    data bucket, which is where the MLflow client puts artifacts. Exposes `server`, `role`, `parameter`.
    """

    def __init__(
        self, scope: Construct, construct_id: str, *, data_bucket: s3.IBucket, users: Sequence[iam.IRole]
    ) -> None:
        super().__init__(scope, construct_id)
        self.role = iam.Role(
            self,
            "ServerRole",
            assumed_by=iam.ServicePrincipal("sagemaker.amazonaws.com"),
            description="SageMaker managed MLflow tracking server of the kit: its artifact store only",
        )
        self._artifacts = data_bucket.arn_for_objects(f"{ARTIFACT_PREFIX}*")
        self.role.add_to_policy(
            iam.PolicyStatement(
                sid="ArtifactObjects",
                actions=["s3:GetObject", "s3:PutObject", "s3:DeleteObject"],
                resources=[self._artifacts],
            )
        )
        self.role.add_to_policy(
            iam.PolicyStatement(
                sid="ListArtifacts",
                actions=["s3:ListBucket"],
                resources=[data_bucket.bucket_arn],
                conditions={"StringLike": {"s3:prefix": [ARTIFACT_PREFIX, f"{ARTIFACT_PREFIX}*"]}},
            )
        )
        self.role.add_to_policy(
            iam.PolicyStatement(
                sid="ArtifactBucket", actions=["s3:GetBucketLocation"], resources=[data_bucket.bucket_arn]
            )
        )
        self.server = sagemaker.CfnMlflowTrackingServer(
            self,
            "Server",
            tracking_server_name=SERVER_NAME,
            artifact_store_uri=f"s3://{data_bucket.bucket_name}/{ARTIFACT_PREFIX}",
            role_arn=self.role.role_arn,
            tracking_server_size=SERVER_SIZE,
            automatic_model_registration=False,
        )
        # the service checks the role's access when it creates the server
        policy = self.role.node.find_child("DefaultPolicy").node.default_child
        assert isinstance(policy, cdk.CfnResource)
        self.server.add_dependency(policy)
        self.parameter = ssm.StringParameter(
            self,
            "Parameter",
            parameter_name=params.MLFLOW_TRACKING_SERVER,
            string_value=self.server.attr_tracking_server_arn,
            description="The SageMaker managed MLflow tracking server where aik backtest records its runs",
            tier=ssm.ParameterTier.STANDARD,
        )
        for user in users:
            self.grant_use(user)
        self._acknowledge()

    def grant_use(self, role: iam.IRole) -> None:
        """Let `role` call this server's MLflow API, open its UI and read where it is."""
        role.add_to_principal_policy(
            iam.PolicyStatement(
                sid="UseKitMlflow",
                actions=["sagemaker-mlflow:*"],
                resources=[self.server.attr_tracking_server_arn],
            )
        )
        role.add_to_principal_policy(
            iam.PolicyStatement(
                sid="OpenKitMlflow",
                actions=[
                    "sagemaker:DescribeMlflowTrackingServer",
                    "sagemaker:CreatePresignedMlflowTrackingServerUrl",
                ],
                resources=[self.server.attr_tracking_server_arn],
            )
        )
        self.parameter.grant_read(role)
        policy = role.node.try_find_child("DefaultPolicy")
        if policy is not None:
            nag.acknowledge(
                policy,
                nag.action_rule("sagemaker-mlflow:*"),
                "Every MLflow REST call (experiments, runs, metrics, artifacts listing, models) on the one "
                "tracking server of the kit: the resource is that server's ARN, and the action list follows "
                "MLflow's REST API, which grows with its versions.",
            )

    def _acknowledge(self) -> None:
        nag.acknowledge(
            self.role.node.find_child("DefaultPolicy"),
            nag.resource_rule(self, self._artifacts),
            "The tracking server writes each run's artifacts under keys it names at run time; the wildcard "
            "is the mlflow/ prefix of the data bucket only.",
        )
