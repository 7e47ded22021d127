"""Build the kit's CDK app: the same for `python app.py`, `cdk synth` and the tests."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import aws_cdk as cdk

from stacks.config import CONTEXT_KEYS, KitConfig
from stacks.stage import AikStage

CDK_JSON = Path(__file__).resolve().parent.parent / "cdk.json"


def cdk_json_context() -> dict[str, Any]:
    """The `context` of cdk.json (the feature flags), which only the CDK CLI would otherwise pass in."""
    return dict(json.loads(CDK_JSON.read_text(encoding="utf-8")).get("context", {}))


def build_app(
    *,
    outdir: str | None = None,
    env: cdk.Environment | None = None,
    context: Mapping[str, Any] | None = None,
) -> tuple[cdk.App, AikStage]:
    """An App with stage `aik`: cdk.json's feature flags plus `context`, no version-reporting metadata.

    `context` overrides cdk.json (settings such as `aik:retain-data` are read from it); the CDK CLI's
    own context (`-c`) takes precedence over both. Synthesis makes no AWS call.
    """
    app = cdk.App(
        outdir=outdir,
        context={**cdk_json_context(), **(context or {})},
        analytics_reporting=False,
    )
    all_context = {key: app.node.try_get_context(key) for key in CONTEXT_KEYS}
    stage = AikStage(app, "aik", env=env, config=KitConfig.from_context(all_context))
    return app, stage
