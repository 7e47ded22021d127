"""The prediction log's delivery stream: Kinesis Data Firehose from the filtering tasks to the data bucket."""

from __future__ import annotations

import aws_cdk as cdk
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kinesisfirehose as firehose
from aws_cdk import aws_s3 as s3
from constructs import Construct

from aik import predictions

#: Objects land under `predictions/YYYY/MM/DD/HH/` (Firehose appends its UTC hour prefix to a prefix
#: without expressions): the layout `aik.predictions` reads; failed deliveries under their own prefix.
DATA_PREFIX = f"{predictions.PREFIX}/"
ERROR_PREFIX = "prediction-errors/"
PREDICTION_PREFIXES = (DATA_PREFIX, ERROR_PREFIX)
#: Firehose writes an object when either fills: at most a minute late, in objects of up to 5 MiB.
BUFFER_INTERVAL = cdk.Duration.seconds(60)
BUFFER_SIZE = cdk.Size.mebibytes(5)


class PredictionStream(Construct):
    """A DirectPut delivery stream writing gzip-compressed JSON Lines to `<data bucket>/predictions/`.

    Encrypted at rest with an AWS-owned key. Its role, assumable by Firehose for this account only,
    has `write_policy` (the data stack's: write under the two prefixes of the data bucket, nothing else;
    an L1 stream, because the L2 S3 destination grants its role read-write on the whole bucket).
    `grant_put(role)` lets a filtering task send records (PutRecord/PutRecordBatch on this stream
    only). Exposes `stream`, `role`.
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        data_bucket: s3.IBucket,
        write_policy: iam.IManagedPolicy,
    ) -> None:
        super().__init__(scope, construct_id)
        stack = cdk.Stack.of(self)
        self.role = iam.Role(
            self,
            "Role",
            assumed_by=iam.ServicePrincipal(
                "firehose.amazonaws.com", conditions={"StringEquals": {"sts:ExternalId": stack.account}}
            ),
            description="Kinesis Data Firehose delivering the prediction log to the data bucket",
            # attached with the role, so the stream (which checks its role) is created after both
            managed_policies=[write_policy],
        )
        self.stream = firehose.CfnDeliveryStream(
            self,
            "Stream",
            delivery_stream_type="DirectPut",
            delivery_stream_encryption_configuration_input=firehose.CfnDeliveryStream.DeliveryStreamEncryptionConfigurationInputProperty(
                key_type="AWS_OWNED_CMK"
            ),
            extended_s3_destination_configuration=firehose.CfnDeliveryStream.ExtendedS3DestinationConfigurationProperty(
                bucket_arn=data_bucket.bucket_arn,
                role_arn=self.role.role_arn,
                prefix=DATA_PREFIX,
                error_output_prefix=ERROR_PREFIX,
                compression_format="GZIP",
                buffering_hints=firehose.CfnDeliveryStream.BufferingHintsProperty(
                    interval_in_seconds=BUFFER_INTERVAL.to_seconds(),
                    size_in_m_bs=int(BUFFER_SIZE.to_mebibytes()),
                ),
            ),
        )

    @property
    def delivery_stream_name(self) -> str:
        """The stream's name (a token: CloudFormation names it)."""
        return self.stream.ref

    def grant_put(self, grantee: iam.IGrantable) -> iam.Grant:
        """Let `grantee` send records to the stream."""
        return iam.Grant.add_to_principal(
            grantee=grantee,
            actions=["firehose:PutRecord", "firehose:PutRecordBatch"],
            resource_arns=[self.stream.attr_arn],
        )
