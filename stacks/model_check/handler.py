"""Custom-resource handler: refuse to deploy the filtering service before a model is published.

The server loads the live release (`/aik/release/live`, the manifest's URI) or, without one, the three
original parameters (`/aik/xgboost/path`, `/aik/pipelineModelArtifactPath`,
`/aik/pipelineModelArtifactSchemaPath`). Without them its tasks never become healthy and ECS rolls the
deployment back after many minutes; this check fails the stack at once with what to do instead.

Runs in AWS Lambda (boto3 is in the runtime) behind the CDK custom-resource provider framework, which
turns an exception into FAILED with the exception's message (CloudFormation shows it as the reason).
"""

from __future__ import annotations

import logging
from typing import Any
from urllib.parse import urlparse

import boto3
from botocore.exceptions import ClientError

logger = logging.getLogger()
logger.setLevel(logging.INFO)

WHAT_TO_DO = (
    "run notebook 3_train_xgboost in SageMaker Studio (or `aik --backend aws train`) to publish a model, "
    "then deploy aik/filtering again"
)


class NoModel(RuntimeError):
    """No model the server could load: the message says which piece is missing and what to do."""


def on_event(event: dict[str, Any], context: Any = None) -> dict[str, Any]:
    """Provider-framework entry point: check on Create and Update, nothing to do on Delete."""
    physical_id = event.get("PhysicalResourceId") or "aik-model-check"
    if event["RequestType"] == "Delete":
        return {"PhysicalResourceId": physical_id}
    props = event["ResourceProperties"]
    found = check(
        boto3.client("ssm"),
        boto3.client("s3"),
        release_parameter=props["ReleaseParameter"],
        model_parameters=list(props["ModelParameters"]),
    )
    logger.info("model to serve: %s", found)
    return {"PhysicalResourceId": physical_id, "Data": {"Serves": found}}


def check(ssm: Any, s3: Any, *, release_parameter: str, model_parameters: list[str]) -> str:
    """What the server would load (the release manifest's URI, or the model's), else raise `NoModel`."""
    release = _parameter(ssm, release_parameter)
    if release is not None:
        _require_object(s3, release, release_parameter)
        return release
    for name in model_parameters:
        value = _parameter(ssm, name)
        if value is None:
            raise NoModel(
                f"no model to serve yet: neither {release_parameter} nor {name} is set; {WHAT_TO_DO}"
            )
        _require_object(s3, value, name)
    return _parameter(ssm, model_parameters[0]) or ""


def _parameter(ssm: Any, name: str) -> str | None:
    try:
        return str(ssm.get_parameter(Name=name)["Parameter"]["Value"])
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") == "ParameterNotFound":
            return None
        raise


def _require_object(s3: Any, uri: str, parameter: str) -> None:
    parsed = urlparse(uri)
    if parsed.scheme != "s3" or not parsed.netloc or not parsed.path.strip("/"):
        raise NoModel(f"{parameter} is {uri!r}, not an s3:// object URI; {WHAT_TO_DO}")
    try:
        s3.head_object(Bucket=parsed.netloc, Key=parsed.path.lstrip("/"))
    except ClientError as exc:
        code = exc.response.get("Error", {}).get("Code", "")
        if code in ("404", "NoSuchKey", "NotFound"):
            raise NoModel(f"{parameter} names {uri}, which does not exist; {WHAT_TO_DO}") from exc
        raise
