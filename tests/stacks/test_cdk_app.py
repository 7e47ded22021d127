"""`python app.py` (what `make synth` and `cdk synth` run): offline, credential-free and deterministic."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from cdk_helpers import Synthesized

from stacks.buckets import REPO_ROOT


def _run_app(outdir: Path, extra_env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("AWS_", "CDK_")) and key not in ("AWS_PROFILE",)
    }
    # No credentials and an unroutable endpoint: any AWS call would fail the synth.
    env.update(
        {
            "CDK_OUTDIR": str(outdir),
            "AWS_EC2_METADATA_DISABLED": "true",
            "AWS_ENDPOINT_URL": "http://127.0.0.1:9",
            "JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION": "1",
            **extra_env,
        }
    )
    return subprocess.run(
        [sys.executable, "app.py"], cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=600
    )


def _templates(outdir: Path) -> dict[str, str]:
    return {p.name: p.read_text() for p in sorted(outdir.glob("assembly-*/*.template.json"))}


def test_app_synthesizes_offline_without_credentials_identically_to_the_tests(
    synth: Synthesized, tmp_path: Path
) -> None:
    result = _run_app(tmp_path, {})
    assert result.returncode == 0, result.stderr[-3000:]
    produced = _templates(tmp_path)
    assert len(produced) == 4
    assert produced == _templates(synth.assembly_dir)


@pytest.mark.slow
def test_app_with_an_environment_still_needs_no_lookup(tmp_path: Path) -> None:
    result = _run_app(tmp_path, {"CDK_DEFAULT_ACCOUNT": "123456789012", "CDK_DEFAULT_REGION": "eu-west-1"})
    assert result.returncode == 0, result.stderr[-3000:]
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    assert "missing" not in manifest
    stage = json.loads(next(tmp_path.glob("assembly-*/manifest.json")).read_text())
    assert "missing" not in stage
    sagemaker = next(v for k, v in _templates(tmp_path).items() if "sagemakeremr" in k and "product" not in k)
    assert '"Fn::GetAZs": ""' in sagemaker
