"""The Studio lifecycle configuration that installs the kit into every JupyterLab space's kernel.

Component = construct + runtime: `install-aik.sh` beside it is the script Studio runs when a
JupyterLab app starts (see its header for what it does and how it keeps the image's packages).
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import aws_cdk as cdk
from aws_cdk import aws_iam as iam
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_sagemaker as sagemaker
from constructs import Construct

from stacks import nag

SCRIPT = Path(__file__).resolve().parent / "install-aik.sh"
APP_TYPE = "JupyterLab"
#: Studio refuses lifecycle scripts longer than this (characters of the script, before base64).
MAX_SCRIPT_CHARS = 16384


def script_text() -> str:
    """The lifecycle script as it is in the repository."""
    return SCRIPT.read_text(encoding="utf-8")


def config_name(prefix: str, text: str | None = None) -> str:
    """`<prefix>-install-aik-<8 hex of the script>`: a new script gets a new name, so that
    CloudFormation can create the replacement before it deletes the old configuration."""
    digest = hashlib.sha256((script_text() if text is None else text).encode("utf-8")).hexdigest()[:8]
    return f"{prefix}-install-aik-{digest}"


class StudioLifecycle(Construct):
    """A JupyterLab lifecycle configuration running `install-aik.sh` with `AIK_SOURCE` set to
    `s3://<source_bucket>/<source_prefix>` (the kit's sources the stack deploys there).

    Exposes `config` and `arn`; `grant_read(role)` lets the role (the spaces' execution role) list
    and get exactly the objects under the prefix.
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        source_bucket: s3.IBucket,
        source_prefix: str,
    ) -> None:
        super().__init__(scope, construct_id)
        if not source_prefix.endswith("/"):
            raise ValueError(f"source_prefix must end with '/', got {source_prefix!r}")
        text = script_text()
        if len(text) > MAX_SCRIPT_CHARS - 200:
            raise ValueError(f"{SCRIPT.name} is {len(text)} characters; Studio accepts {MAX_SCRIPT_CHARS}")
        self._bucket = source_bucket
        self._prefix = source_prefix
        shebang, body = text.split("\n", 1)
        source_url = f"s3://{source_bucket.bucket_name}/{source_prefix}"
        self.config = sagemaker.CfnStudioLifecycleConfig(
            self,
            "Config",
            studio_lifecycle_config_app_type=APP_TYPE,
            # The script unchanged after one line that says where the kit's sources are.
            studio_lifecycle_config_content=cdk.Fn.base64(
                cdk.Fn.join("", [shebang, "\nexport AIK_SOURCE=", source_url, "\n", body])
            ),
            studio_lifecycle_config_name=config_name(cdk.Stack.of(self).stack_name),
        )
        self.arn: str = self.config.attr_studio_lifecycle_config_arn

    def grant_read(self, role: iam.IRole) -> None:
        """List and get the objects under the source prefix (what `aws s3 cp --recursive` needs)."""
        role.add_to_principal_policy(
            iam.PolicyStatement(
                sid="ListKitSources",
                actions=["s3:ListBucket"],
                resources=[self._bucket.bucket_arn],
                conditions={"StringLike": {"s3:prefix": [f"{self._prefix}*"]}},
            )
        )
        role.add_to_principal_policy(
            iam.PolicyStatement(
                sid="GetKitSources",
                actions=["s3:GetObject"],
                resources=[self._bucket.arn_for_objects(f"{self._prefix}*")],
            )
        )
        nag.acknowledge(
            role,
            nag.resource_rule(self, self._bucket.arn_for_objects(f"{self._prefix}*")),
            "The lifecycle script copies the kit's sources (aik/, pyproject.toml, README.md) that the "
            f"stack deploys under {self._prefix} in the bootstrap bucket; the wildcard is those object "
            "keys, read-only.",
        )
