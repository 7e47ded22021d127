"""The `aik` stage: the `sagemaker-emr` and `filtering` stacks."""

from __future__ import annotations

from typing import Any

import aws_cdk as cdk
from constructs import Construct


class AikStage(cdk.Stage):
    """Stage `aik`: stacks `sagemaker-emr` and `filtering` (targets `aik/sagemaker-emr`, `aik/filtering`)."""

    def __init__(self, scope: Construct, construct_id: str = "aik", **kwargs: Any) -> None:
        super().__init__(scope, construct_id, **kwargs)
        # Filled in by issue 3 (the stacks themselves); empty stacks synthesize to empty templates.
        self.sagemaker_emr = cdk.Stack(self, "sagemaker-emr")
        self.filtering = cdk.Stack(self, "filtering")
