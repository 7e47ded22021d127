"""Custom-resource handler: on stack deletion, delete the `/aik/...` parameters the notebooks wrote.

`aik configure` (notebook 0), `aik train` (notebook 3) and the release commands write parameters that
CloudFormation does not know; without this they outlive `cdk destroy` and point at deleted objects.
The parameters the stacks create themselves are left to CloudFormation (`Keep`).

Runs in AWS Lambda (boto3 is in the runtime) behind the CDK custom-resource provider framework.
"""

from __future__ import annotations

import logging
from typing import Any

import boto3

logger = logging.getLogger()
logger.setLevel(logging.INFO)

#: DeleteParameters takes at most this many names per call.
BATCH = 10


def on_event(event: dict[str, Any], context: Any = None) -> dict[str, Any]:
    """Provider-framework entry point: nothing on Create/Update, delete the parameters on Delete."""
    physical_id = event.get("PhysicalResourceId") or "aik-parameter-cleanup"
    if event["RequestType"] != "Delete":
        return {"PhysicalResourceId": physical_id}
    props = event["ResourceProperties"]
    deleted = delete_parameters(boto3.client("ssm"), props["Prefix"], keep=set(props.get("Keep", [])))
    logger.info("deleted %d parameters under %s: %s", len(deleted), props["Prefix"], deleted)
    return {"PhysicalResourceId": physical_id, "Data": {"Deleted": str(len(deleted))}}


def delete_parameters(ssm: Any, prefix: str, *, keep: set[str]) -> list[str]:
    """Delete every parameter under `prefix` except `keep`; returns the names deleted."""
    names = [
        parameter["Name"]
        for page in ssm.get_paginator("get_parameters_by_path").paginate(
            Path=prefix.rstrip("/"), Recursive=True
        )
        for parameter in page["Parameters"]
    ]
    doomed = sorted(name for name in names if name not in keep)
    for start in range(0, len(doomed), BATCH):
        # names already gone come back as InvalidParameters, which is what deletion wants anyway
        ssm.delete_parameters(Names=doomed[start : start + BATCH])
    return doomed
