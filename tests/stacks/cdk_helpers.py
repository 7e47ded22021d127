"""Helpers of the CDK tests: synthesize the app like `app.py` does and read its templates."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

os.environ.setdefault("JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION", "1")

from aws_cdk.assertions import Template

from stacks.app import build_app
from stacks.stage import AikStage


@dataclass(frozen=True)
class Synthesized:
    """One synthesis of the app: its stage, cloud-assembly directory and the four templates."""

    stage: AikStage
    assembly_dir: Path
    templates: dict[str, dict[str, Any]]

    def template(self, name: str) -> Template:
        """`sagemaker-emr`, `filtering`, `loop` or `product` (the Service Catalog EMR template)."""
        return Template.from_json(self.templates[name])

    def resources(self, name: str, resource_type: str) -> dict[str, dict[str, Any]]:
        """The resources of one type in template `name`, by logical id."""
        return {
            logical_id: resource
            for logical_id, resource in self.templates[name]["Resources"].items()
            if resource["Type"] == resource_type
        }


def synthesize(outdir: Path, context: dict[str, Any] | None = None) -> Synthesized:
    """Build and synthesize the app exactly as `app.py` does (cdk-nag runs inside `synth`)."""
    app, stage = build_app(outdir=str(outdir), context=context)
    app.synth()
    stage_assembly = next(p for p in outdir.iterdir() if p.name.startswith("assembly-"))

    def load(pattern: str) -> dict[str, Any]:
        (path,) = stage_assembly.glob(pattern)
        return json.loads(path.read_text())

    templates = {
        "sagemaker-emr": load(f"{stage.sagemaker_emr.artifact_id}.template.json"),
        "filtering": load(f"{stage.filtering.artifact_id}.template.json"),
        "loop": load(f"{stage.loop.artifact_id}.template.json"),
        "product": load("*.product.template.json"),
    }
    return Synthesized(stage=stage, assembly_dir=outdir, templates=templates)


@dataclass(frozen=True)
class NagAudit:
    """cdk-nag's findings with no acknowledgement applied, and the acknowledgements the code makes."""

    findings: list[tuple[str, str, str]]  # (rule id, severity, construct path)
    acknowledgements: list[tuple[str, str, str]]  # (rule id, construct path, reason)
    checked_stages: list[str]  # paths of the stages `nag.add_checks` was called for


def resolve_join(value: Any) -> str:
    """A template string value with `Fn::Join` flattened and other intrinsics rendered as `${...}`."""
    if isinstance(value, str):
        return value
    if isinstance(value, dict) and "Fn::Join" in value:
        delimiter, parts = value["Fn::Join"]
        return delimiter.join(resolve_join(p) for p in parts)
    if isinstance(value, dict) and "Ref" in value:
        return "${" + value["Ref"] + "}"
    if isinstance(value, dict) and "Fn::GetAtt" in value:
        return "${" + ".".join(value["Fn::GetAtt"]) + "}"
    return "${" + json.dumps(value, sort_keys=True) + "}"
