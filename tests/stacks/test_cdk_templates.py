"""Whole-template checks: cfn-lint on all four templates, and snapshots with asset hashes normalised."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from cdk_helpers import Synthesized
from syrupy.assertion import SnapshotAssertion
from syrupy.extensions.json import JSONSnapshotExtension

from stacks import lint

TEMPLATES = ["sagemaker-emr", "filtering", "loop", "product"]
#: Asset hashes change with every edit of an asset's files (the code, Dockerfiles, bootstrap scripts);
#: the snapshots are about the templates, so they see a placeholder.
ASSET_HASH = re.compile(r"[0-9a-f]{64}")


def normalised(template: dict[str, Any]) -> Any:
    """The template with every asset hash replaced by `<asset-hash>`."""
    return json.loads(ASSET_HASH.sub("<asset-hash>", json.dumps(template)))


@pytest.fixture
def snapshot_json(snapshot: SnapshotAssertion) -> SnapshotAssertion:
    return snapshot.use_extension(JSONSnapshotExtension)


@pytest.mark.parametrize("name", TEMPLATES)
def test_template_matches_its_snapshot(
    synth: Synthesized, snapshot_json: SnapshotAssertion, name: str
) -> None:
    assert normalised(synth.templates[name]) == snapshot_json


def test_cfn_lint_checks_all_four_templates(synth: Synthesized) -> None:
    names = [p.name for p in lint.templates(synth.assembly_dir)]
    assert len(names) == 4
    assert any(name.endswith(".product.template.json") for name in names)


def test_cfn_lint_finds_no_error_and_no_avoidable_warning(synth: Synthesized) -> None:
    problems, _ = lint.check(synth.assembly_dir)
    assert [str(p) for p in problems] == []


def test_cfn_lint_tolerates_only_cdk_role_and_target_group_dependencies(synth: Synthesized) -> None:
    _, known = lint.check(synth.assembly_dir)
    assert {finding.rule for finding in known} <= {"W3005"}
    assert all(
        "/Properties/Role'" in finding.message or "/Properties/LoadBalancers/" in finding.message
        for finding in known
    )


def test_cfn_lint_would_report_an_error(tmp_path: Any) -> None:
    broken = {"Resources": {"Topic": {"Type": "AWS::SNS::Topic", "Properties": {"NoSuchProperty": 1}}}}
    (tmp_path / "broken.template.json").write_text(json.dumps(broken))
    problems, _ = lint.check(tmp_path)
    assert [p.rule for p in problems if p.is_error]
