"""The parameter-cleanup custom resource's handler, against moto's SSM."""

from __future__ import annotations

from typing import Any

import boto3
import pytest

from aik import params
from stacks.parameter_cleanup import handler
from stacks.studio import STACK_PARAMETERS

REGION = "us-east-1"


@pytest.fixture
def ssm(aws: None, monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    client = boto3.client("ssm", region_name=REGION)
    # what the stacks create, what notebook 0 and training write (more than one DeleteParameters batch),
    # and a parameter of something else
    for name in (
        *STACK_PARAMETERS,
        *params.DERIVED_KEYS,
        params.DOWNLOAD_URL,
        params.RELEASE_LIVE,
        "/other/x",
    ):
        client.put_parameter(Name=name, Value="v", Type="String")
    return client


def _event(request: str) -> dict[str, Any]:
    return {
        "RequestType": request,
        "PhysicalResourceId": "aik-parameter-cleanup",
        "ResourceProperties": {"Prefix": params.PREFIX, "Keep": list(STACK_PARAMETERS)},
    }


def _names(ssm: Any) -> set[str]:
    pages = ssm.get_paginator("describe_parameters").paginate()
    return {p["Name"] for page in pages for p in page["Parameters"]}


def test_delete_removes_every_notebook_parameter_and_keeps_the_stack_ones(ssm: Any) -> None:
    result = handler.on_event(_event("Delete"))
    assert _names(ssm) == {*STACK_PARAMETERS, "/other/x"}
    assert result["Data"]["Deleted"] == str(len(params.DERIVED_KEYS) + 2)


def test_create_and_update_delete_nothing(ssm: Any) -> None:
    before = _names(ssm)
    handler.on_event(_event("Create"))
    handler.on_event(_event("Update"))
    assert _names(ssm) == before


def test_delete_twice_is_harmless(ssm: Any) -> None:
    handler.on_event(_event("Delete"))
    assert handler.on_event(_event("Delete"))["Data"]["Deleted"] == "0"
