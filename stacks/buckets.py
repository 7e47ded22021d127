"""The kit's S3 buckets: access logs, data/training, and EMR bootstrap (with the scripts deployed into it)."""

from __future__ import annotations

from pathlib import Path

import aws_cdk as cdk
from aws_cdk import aws_iam as iam
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_s3_deployment as s3deploy
from aws_cdk import aws_ssm as ssm
from constructs import Construct

from aik import params
from stacks import nag
from stacks.predictions import PREDICTION_PREFIXES

REPO_ROOT = Path(__file__).resolve().parent.parent
#: Key prefix of everything the deployment copies into the bootstrap bucket (it prunes only below it).
BOOTSTRAP_PREFIX = "bootstrap/"
#: The bootstrap action's script, relative to the bucket root.
BOOTSTRAP_SCRIPT_KEY = f"{BOOTSTRAP_PREFIX}emr_bootstrap/install-python-packages.sh"
#: Where EMR writes the cluster logs (`LogUri`), relative to the bucket root.
EMR_LOG_PREFIX = "emr-logs/"
#: What the bootstrap bucket receives from the repository: the scripts, and the `aik` package that the
#: feature job imports on the cluster (installed by the script, without dependencies).
BOOTSTRAP_SOURCES = ("emr_bootstrap/**", "aik/**", "pyproject.toml", "README.md")


#: What notebooks, training jobs and the feature job do with the data bucket's objects: read, write,
#: delete the current version and finish multipart uploads. Not `s3:DeleteObjectVersion` (which
#: `Bucket.grant_read_write` gives): on a versioned bucket a deleted or overwritten object stays
#: recoverable from its earlier versions.
DATA_OBJECT_ACTIONS = (
    "s3:GetObject",
    "s3:PutObject",
    "s3:DeleteObject",
    "s3:AbortMultipartUpload",
    "s3:ListMultipartUploadParts",
)
DATA_BUCKET_ACTIONS = ("s3:ListBucket", "s3:GetBucketLocation", "s3:ListBucketMultipartUploads")


def grant_data_read_write(bucket: s3.IBucket, role: iam.IRole) -> str:
    """Read and write `bucket`'s objects without `s3:DeleteObjectVersion`; returns the objects' ARN."""
    objects = bucket.arn_for_objects("*")
    role.add_to_principal_policy(
        iam.PolicyStatement(sid="ListData", actions=list(DATA_BUCKET_ACTIONS), resources=[bucket.bucket_arn])
    )
    role.add_to_principal_policy(
        iam.PolicyStatement(sid="ReadWriteData", actions=list(DATA_OBJECT_ACTIONS), resources=[objects])
    )
    return objects


def secure_bucket(
    scope: Construct,
    construct_id: str,
    *,
    removal_policy: cdk.RemovalPolicy,
    access_logs: s3.IBucket | None = None,
    access_log_prefix: str | None = None,
) -> s3.Bucket:
    """A bucket as every bucket of the kit is: S3-managed encryption, versioned, private, TLS only.

    With `removal_policy` DESTROY the bucket is emptied (auto-delete custom resource) and deleted with
    the stack; with RETAIN it and its objects outlive the stack.
    """
    destroy = removal_policy == cdk.RemovalPolicy.DESTROY
    return s3.Bucket(
        scope,
        construct_id,
        encryption=s3.BucketEncryption.S3_MANAGED,
        versioned=True,
        block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
        object_ownership=s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
        enforce_ssl=True,
        removal_policy=removal_policy,
        auto_delete_objects=destroy,
        server_access_logs_bucket=access_logs,
        server_access_logs_prefix=access_log_prefix,
    )


class KitBuckets(Construct):
    """The access-log bucket, the data bucket (`/aik/data-bucket`) and the EMR bootstrap bucket.

    Exposes `access_logs`, `data`, `bootstrap`, `data_read_policy` (read-only on the data bucket),
    `data_read_write_policy` and `prediction_write_policy` (the prediction log's prefixes, write-only).
    The scripts of `emr_bootstrap/` and the `aik` sources are deployed under `bootstrap/` in the
    bootstrap bucket; EMR writes its logs under `emr-logs/`.
    """

    def __init__(self, scope: Construct, construct_id: str, *, removal_policy: cdk.RemovalPolicy) -> None:
        super().__init__(scope, construct_id)
        self.access_logs = secure_bucket(self, "AccessLogs", removal_policy=removal_policy)
        self.data = secure_bucket(
            self,
            "Data",
            removal_policy=removal_policy,
            access_logs=self.access_logs,
            access_log_prefix="data/",
        )
        self.bootstrap = secure_bucket(
            self,
            "EmrBootstrap",
            removal_policy=removal_policy,
            access_logs=self.access_logs,
            access_log_prefix="emr-bootstrap/",
        )
        self.data_bucket_parameter = ssm.StringParameter(
            self,
            "DataBucketParameter",
            parameter_name=params.DATA_BUCKET,
            string_value=self.data.bucket_name,
            description="The bucket of the kit's data, features and models (notebook 0 derives the rest)",
            tier=ssm.ParameterTier.STANDARD,
        )

        # Read on the data bucket as a managed policy of this stack, for roles of other stacks (the
        # filtering task): object keys and listing only, and nag findings that name this stack's bucket.
        self.data_read_policy = iam.ManagedPolicy(
            self,
            "DataReadPolicy",
            description="Read the kit's data bucket (models, MLeap bundle, inference data)",
            statements=[
                iam.PolicyStatement(
                    sid="ListData", actions=["s3:ListBucket"], resources=[self.data.bucket_arn]
                ),
                iam.PolicyStatement(
                    sid="ReadData", actions=["s3:GetObject"], resources=[self.data.arn_for_objects("*")]
                ),
            ],
        )
        nag.acknowledge(
            self.data_read_policy,
            nag.resource_rule(self, self.data.arn_for_objects("*")),
            "The filtering server loads the model and MLeap bundle and the emulator reads the inference "
            "data from keys that notebook 0 and the training step choose; the wildcard is object keys "
            "of the kit's data bucket, read-only.",
        )

        # Read/write on the data bucket, likewise for roles of other stacks (the retraining loop's
        # SageMaker jobs read the splits and the bundle and publish the model and its reports).
        self.data_read_write_policy = iam.ManagedPolicy(
            self,
            "DataReadWritePolicy",
            description="Read and write the kit's data bucket (features, models, reports)",
            statements=[
                iam.PolicyStatement(
                    sid="ListData",
                    actions=["s3:ListBucket", "s3:GetBucketLocation"],
                    resources=[self.data.bucket_arn],
                ),
                iam.PolicyStatement(
                    sid="ReadWriteData",
                    actions=["s3:GetObject", "s3:PutObject", "s3:DeleteObject", "s3:AbortMultipartUpload"],
                    resources=[self.data.arn_for_objects("*")],
                ),
            ],
        )
        nag.acknowledge(
            self.data_read_write_policy,
            nag.resource_rule(self, self.data.arn_for_objects("*")),
            "The retraining loop's jobs read the splits, MLeap bundle and truth file and write the model, "
            "its reports and candidates under keys that notebook 0 and each run choose; the wildcard is "
            "object keys of the kit's data bucket.",
        )

        # Write under the prediction log's prefixes only, for the Firehose delivery stream's role in the
        # filtering stack (its findings name this stack's bucket).
        log_objects = [self.data.arn_for_objects(f"{prefix}*") for prefix in PREDICTION_PREFIXES]
        self.prediction_write_policy = iam.ManagedPolicy(
            self,
            "PredictionWritePolicy",
            description="Write the prediction log's objects into the kit's data bucket (Firehose)",
            statements=[
                iam.PolicyStatement(
                    sid="FindTheBucket",
                    actions=["s3:GetBucketLocation", "s3:ListBucket", "s3:ListBucketMultipartUploads"],
                    resources=[self.data.bucket_arn],
                ),
                iam.PolicyStatement(
                    sid="WriteTheLogPrefixes",
                    actions=["s3:PutObject", "s3:AbortMultipartUpload"],
                    resources=log_objects,
                ),
            ],
        )
        for prefix, objects in zip(PREDICTION_PREFIXES, log_objects, strict=True):
            nag.acknowledge(
                self.prediction_write_policy,
                nag.resource_rule(self, objects),
                f"Firehose writes objects it names itself (UTC hour prefixes, random suffixes) under "
                f"{prefix} of the data bucket: the wildcard is that prefix, the only place it may write.",
            )

        deployment = s3deploy.BucketDeployment(
            self,
            "BootstrapScripts",
            destination_bucket=self.bootstrap,
            destination_key_prefix=BOOTSTRAP_PREFIX,
            sources=[
                s3deploy.Source.asset(
                    str(REPO_ROOT),
                    # Docker semantics: "**" excludes everything (dotfiles included), "!" re-includes.
                    exclude=["**", *(f"!{pattern}" for pattern in BOOTSTRAP_SOURCES), "**/__pycache__"],
                    ignore_mode=cdk.IgnoreMode.DOCKER,
                )
            ],
            memory_limit=256,
        )
        # CDK grants its handler Bucket.grant_read_write (s3:DeleteObject*); it prunes current objects
        # only, and the bootstrap bucket's older versions stay recoverable.
        deployment.handler_role.add_to_principal_policy(
            iam.PolicyStatement(
                sid="KeepObjectVersions",
                effect=iam.Effect.DENY,
                actions=["s3:DeleteObjectVersion"],
                resources=[self.bootstrap.arn_for_objects("*")],
            )
        )
        self._acknowledge_deployment(deployment)

    def _acknowledge_deployment(self, deployment: s3deploy.BucketDeployment) -> None:
        """The findings of CDK's BucketDeployment handler (a singleton CDK owns), at that handler."""
        handler = deployment.handler_role.node.scope
        assert handler is not None
        stack = cdk.Stack.of(self)
        reason = (
            "CDK's BucketDeployment handler copies the bootstrap scripts from the CDK asset bucket into "
            "the bootstrap bucket: {}. The kit does not control this construct's policy."
        )
        nag.acknowledge(
            handler,
            nag.aws_managed_policy_rule(self, "service-role/AWSLambdaBasicExecutionRole"),
            reason.format("its role writes its own logs through AWSLambdaBasicExecutionRole"),
        )
        nag.acknowledge(
            handler,
            "AwsSolutions-L1",
            reason.format(
                "CDK pins the handler's Python runtime together with the AWS CLI layer it bundles; "
                "upgrading it is CDK's (a newer aws-cdk-lib)"
            ),
        )
        for action in ("s3:GetObject*", "s3:GetBucket*", "s3:List*", "s3:DeleteObject*", "s3:Abort*"):
            nag.acknowledge(
                handler,
                nag.action_rule(action),
                reason.format(f"{action} is one of the read/write action families of Bucket.grant_*"),
            )
        asset_objects = (
            f"arn:{stack.partition}:s3:::cdk-{cdk.DefaultStackSynthesizer.DEFAULT_QUALIFIER}-assets-"
            f"{stack.account}-{stack.region}/*"
        )
        for objects in (asset_objects, self.bootstrap.arn_for_objects("*")):
            nag.acknowledge(
                handler,
                nag.resource_rule(self, objects),
                reason.format(
                    "the wildcard is the object keys of the asset bucket and of the bootstrap bucket"
                ),
            )
