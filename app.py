#!/usr/bin/env python3
"""The CDK app: stage `aik` with stacks `sagemaker-emr` and `filtering` (see stacks/app.py)."""

import os
from pathlib import Path

import aws_cdk as cdk

from stacks.app import build_app


def main() -> None:
    """Synthesize to ./cdk.out (or where the CDK CLI says), env-agnostic unless CDK_DEFAULT_* are set."""
    account = os.environ.get("CDK_DEFAULT_ACCOUNT")
    region = os.environ.get("CDK_DEFAULT_REGION")
    env = cdk.Environment(account=account, region=region) if account or region else None
    outdir = None if "CDK_OUTDIR" in os.environ else str(Path(__file__).resolve().parent / "cdk.out")
    app, _ = build_app(outdir=outdir, env=env)
    app.synth()


if __name__ == "__main__":
    main()
