"""What the notebooks call to stay thin: the context of the environment they run in."""

from __future__ import annotations

import os
from pathlib import Path

from aik.context import Context
from aik.settings import ENV_BACKEND, Settings

#: Present in SageMaker Studio (and notebook instances): there the kit's data lives in AWS.
STUDIO_METADATA = Path("/opt/ml/metadata/resource-metadata.json")
#: Present on every EMR cluster node (EMR's node settings): notebook 2's Livy session runs there.
EMR_INSTANCE_INFO = Path("/mnt/var/lib/info/instance.json")


def in_sagemaker() -> bool:
    """True inside SageMaker Studio or a SageMaker notebook instance."""
    return STUDIO_METADATA.is_file()


def on_emr() -> bool:
    """True on an EMR cluster node (a Livy session from Studio, a step, a shell on the cluster)."""
    return EMR_INSTANCE_INFO.is_file()


def detected_backend() -> str:
    """aws in SageMaker and on EMR, local anywhere else."""
    return "aws" if in_sagemaker() or on_emr() else "local"


def notebook_context(
    backend: str | None = None, workspace: str | None = None, region: str | None = None
) -> Context:
    """The notebook's context: the backend given, else `AIK_BACKEND`, else where it runs (`detected_backend`).

    The region, when not given, is resolved by `aik.aws` (AWS_REGION, boto3's, the instance's).
    """
    if backend is None and ENV_BACKEND not in os.environ:
        backend = detected_backend()
    return Context(Settings.from_env(backend, workspace, region))
