"""Invariants of the Studio lifecycle configuration: every JupyterLab space installs the kit at start."""

from __future__ import annotations

import re
from typing import Any

from aws_cdk.assertions import Match
from cdk_helpers import Synthesized, resolve_join

from stacks import studio_lifecycle
from stacks.buckets import BOOTSTRAP_PREFIX

STACK = "sagemaker-emr"


def _config(synth: Synthesized) -> tuple[str, dict[str, Any]]:
    ((logical_id, config),) = synth.resources(STACK, "AWS::SageMaker::StudioLifecycleConfig").items()
    return logical_id, config["Properties"]


def _bootstrap_bucket_id(synth: Synthesized) -> str:
    stack = synth.stage.sagemaker_emr
    bucket = stack.node.find_child("Buckets").node.find_child("EmrBootstrap")
    return stack.get_logical_id(bucket.node.default_child)


def _arn_of(logical_id: str) -> dict[str, Any]:
    return {"Fn::GetAtt": [logical_id, "StudioLifecycleConfigArn"]}


def test_lifecycle_configuration_is_for_jupyterlab_apps(synth: Synthesized) -> None:
    _, config = _config(synth)
    assert config["StudioLifecycleConfigAppType"] == "JupyterLab"


def test_lifecycle_runs_the_repository_script_after_one_line_naming_the_kit_sources(
    synth: Synthesized,
) -> None:
    _, config = _config(synth)
    content = resolve_join(config["StudioLifecycleConfigContent"]["Fn::Base64"])
    shebang, body = studio_lifecycle.script_text().split("\n", 1)
    source = "s3://${" + _bootstrap_bucket_id(synth) + "}/" + BOOTSTRAP_PREFIX
    assert content == f"{shebang}\nexport AIK_SOURCE={source}\n{body}"


def test_lifecycle_script_fits_studio_limit(synth: Synthesized) -> None:
    _, config = _config(synth)
    parts = config["StudioLifecycleConfigContent"]["Fn::Base64"]["Fn::Join"][1]
    # a bucket name has at most 63 characters
    assert sum(len(p) for p in parts if isinstance(p, str)) + 63 <= studio_lifecycle.MAX_SCRIPT_CHARS


def test_lifecycle_name_is_valid_and_changes_with_the_script(synth: Synthesized) -> None:
    _, config = _config(synth)
    name = config["StudioLifecycleConfigName"]
    assert re.fullmatch(r"[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}", name)
    assert name == studio_lifecycle.config_name(synth.stage.sagemaker_emr.stack_name)


def test_a_changed_script_gets_a_new_lifecycle_name() -> None:
    # CloudFormation replaces a lifecycle configuration to change it: the new one needs its own name.
    assert studio_lifecycle.config_name("aik", "echo a\n") != studio_lifecycle.config_name("aik", "echo b\n")


def test_domain_runs_the_lifecycle_in_every_jupyterlab_app_by_default(synth: Synthesized) -> None:
    logical_id, _ = _config(synth)
    synth.template(STACK).has_resource_properties(
        "AWS::SageMaker::Domain",
        {
            "DefaultUserSettings": Match.object_like(
                {
                    "JupyterLabAppSettings": {
                        "DefaultResourceSpec": {"LifecycleConfigArn": _arn_of(logical_id)},
                        "LifecycleConfigArns": [_arn_of(logical_id)],
                    }
                }
            )
        },
    )


def test_user_profile_runs_the_lifecycle_too(synth: Synthesized) -> None:
    logical_id, _ = _config(synth)
    synth.template(STACK).has_resource_properties(
        "AWS::SageMaker::UserProfile",
        {
            "UserSettings": Match.object_like(
                {
                    "JupyterLabAppSettings": {
                        "DefaultResourceSpec": {"LifecycleConfigArn": _arn_of(logical_id)},
                        "LifecycleConfigArns": [_arn_of(logical_id)],
                    }
                }
            )
        },
    )


def test_domain_opens_studio_with_jupyterlab_spaces_not_classic(synth: Synthesized) -> None:
    synth.template(STACK).has_resource_properties(
        "AWS::SageMaker::Domain",
        {
            "DefaultUserSettings": Match.object_like(
                {"StudioWebPortal": "ENABLED", "DefaultLandingUri": "studio::"}
            )
        },
    )


def test_execution_role_reads_only_the_kit_sources_of_the_bootstrap_bucket(synth: Synthesized) -> None:
    bucket = _bootstrap_bucket_id(synth)
    statements = [
        s
        for policy in synth.resources(STACK, "AWS::IAM::Policy").values()
        for s in policy["Properties"]["PolicyDocument"]["Statement"]
        if bucket in str(s["Resource"])
    ]
    studio = [s for s in statements if s.get("Sid") in ("ListKitSources", "GetKitSources")]
    assert {s["Sid"]: s["Action"] for s in studio} == {
        "ListKitSources": "s3:ListBucket",
        "GetKitSources": "s3:GetObject",
    }
    (listing,) = [s for s in studio if s["Sid"] == "ListKitSources"]
    assert listing["Condition"] == {"StringLike": {"s3:prefix": [f"{BOOTSTRAP_PREFIX}*"]}}
    (get,) = [s for s in studio if s["Sid"] == "GetKitSources"]
    assert get["Resource"] == {"Fn::Join": ["", [{"Fn::GetAtt": [bucket, "Arn"]}, f"/{BOOTSTRAP_PREFIX}*"]]}
