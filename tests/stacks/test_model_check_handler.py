"""The model-check custom resource's handler, against moto's SSM and S3."""

from __future__ import annotations

from typing import Any

import boto3
import pytest

from aik import params
from stacks.filtering_service import MODEL_PARAMETERS
from stacks.model_check import handler

REGION = "us-east-1"
BUCKET = "aik-data"


@pytest.fixture
def clients(aws: None, monkeypatch: pytest.MonkeyPatch) -> tuple[Any, Any]:
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    s3 = boto3.client("s3", region_name=REGION)
    s3.create_bucket(Bucket=BUCKET)
    return boto3.client("ssm", region_name=REGION), s3


def _event(request: str = "Create") -> dict[str, Any]:
    return {
        "RequestType": request,
        "ResourceProperties": {
            "ReleaseParameter": params.RELEASE_LIVE,
            "ModelParameters": list(MODEL_PARAMETERS),
            "Trigger": "image",
        },
    }


def _configure(ssm: Any) -> None:
    """What notebook 0 writes: the three model parameters, before any model exists."""
    for name, key in params.DERIVED_KEYS.items():
        if name in MODEL_PARAMETERS:
            ssm.put_parameter(Name=name, Value=f"s3://{BUCKET}/{key}", Type="String")


def _publish_model(s3: Any) -> None:
    for name in MODEL_PARAMETERS:
        s3.put_object(Bucket=BUCKET, Key=params.DERIVED_KEYS[name], Body=b"x")


def test_no_parameters_at_all_fails_naming_notebook_3(clients: tuple[Any, Any]) -> None:
    with pytest.raises(handler.NoModel, match="run notebook 3_train_xgboost"):
        handler.on_event(_event())


def test_configured_but_untrained_fails_naming_the_missing_model(clients: tuple[Any, Any]) -> None:
    ssm, _ = clients
    _configure(ssm)
    with pytest.raises(handler.NoModel, match=f"{params.XGBOOST_PATH} names s3://{BUCKET}/.*does not exist"):
        handler.on_event(_event())


def test_published_model_passes(clients: tuple[Any, Any]) -> None:
    ssm, s3 = clients
    _configure(ssm)
    _publish_model(s3)
    result = handler.on_event(_event())
    assert result["Data"]["Serves"] == f"s3://{BUCKET}/{params.DERIVED_KEYS[params.XGBOOST_PATH]}"


def test_a_live_release_passes_without_the_original_parameters(clients: tuple[Any, Any]) -> None:
    ssm, s3 = clients
    manifest = "releases/20261130T000000Z-abc/release.json"
    s3.put_object(Bucket=BUCKET, Key=manifest, Body=b"{}")
    ssm.put_parameter(Name=params.RELEASE_LIVE, Value=f"s3://{BUCKET}/{manifest}", Type="String")
    assert handler.on_event(_event())["Data"]["Serves"] == f"s3://{BUCKET}/{manifest}"


def test_a_release_pointer_to_a_missing_manifest_fails(clients: tuple[Any, Any]) -> None:
    ssm, _ = clients
    ssm.put_parameter(Name=params.RELEASE_LIVE, Value=f"s3://{BUCKET}/releases/gone.json", Type="String")
    with pytest.raises(handler.NoModel, match="does not exist"):
        handler.on_event(_event())


def test_a_local_path_in_a_parameter_fails_with_the_value(clients: tuple[Any, Any]) -> None:
    ssm, _ = clients
    ssm.put_parameter(Name=params.RELEASE_LIVE, Value="/home/me/.aik/release.json", Type="String")
    with pytest.raises(handler.NoModel, match="not an s3:// object URI"):
        handler.on_event(_event())


def test_delete_checks_nothing(clients: tuple[Any, Any]) -> None:
    # no parameters exist, and the stack must still be deletable
    assert handler.on_event({**_event("Delete"), "PhysicalResourceId": "aik-model-check"}) == {
        "PhysicalResourceId": "aik-model-check"
    }
