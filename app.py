#!/usr/bin/env python3
"""The CDK app: stage `aik` with stacks `sagemaker-emr` and `filtering`."""

import os
from pathlib import Path

import aws_cdk as cdk

from stacks.stage import AikStage

# `cdk synth` sets CDK_OUTDIR; `python app.py` (make synth) writes ./cdk.out beside this file.
app = cdk.App(outdir=None if "CDK_OUTDIR" in os.environ else str(Path(__file__).parent / "cdk.out"))
env = cdk.Environment(
    account=os.environ.get("CDK_DEFAULT_ACCOUNT"), region=os.environ.get("CDK_DEFAULT_REGION")
)
AikStage(app, "aik", env=env)
app.synth()
