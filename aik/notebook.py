"""What the notebooks call to stay thin: the context of the environment they run in."""

from __future__ import annotations

import os
from pathlib import Path

from aik.context import Context
from aik.settings import ENV_BACKEND, Settings

#: Present in SageMaker Studio (and notebook instances): there the kit's data lives in AWS.
STUDIO_METADATA = Path("/opt/ml/metadata/resource-metadata.json")


def in_sagemaker() -> bool:
    """True inside SageMaker Studio or a SageMaker notebook instance."""
    return STUDIO_METADATA.is_file()


def notebook_context(
    backend: str | None = None, workspace: str | None = None, region: str | None = None
) -> Context:
    """The notebook's context: the backend given, else `AIK_BACKEND`, else aws in SageMaker, else local."""
    if backend is None and ENV_BACKEND not in os.environ and in_sagemaker():
        backend = "aws"
    return Context(Settings.from_env(backend, workspace, region))
