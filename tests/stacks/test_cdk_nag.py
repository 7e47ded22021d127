"""The cdk-nag gate: zero unacknowledged AwsSolutions findings, and every acknowledgement still earned."""

from __future__ import annotations

import json
from pathlib import Path

import aws_cdk as cdk
import pytest
from aws_cdk import aws_sns as sns
from cdk_helpers import NagAudit, Synthesized

from stacks import nag


def test_synth_reports_no_unacknowledged_finding(synth: Synthesized) -> None:
    # The synth itself fails on a finding (ValidationFailed); this reads what it left behind.
    report = json.loads((synth.assembly_dir / "validation-report.json").read_text())
    violations = [v for plugin in report["pluginReports"] for v in plugin["violations"]]
    assert violations == []


def test_the_kit_stage_registers_the_checks(nag_audit: NagAudit) -> None:
    assert nag_audit.checked_stages == ["aik"]


def test_registered_checks_fail_the_synth_on_a_new_finding(tmp_path: Path) -> None:
    app = cdk.App(outdir=str(tmp_path))
    stage = cdk.Stage(app, "probe")
    nag.add_checks(stage)
    sns.Topic(cdk.Stack(stage, "stack"), "TopicWithoutTls")  # AwsSolutions-SNS3: publishers may skip TLS
    with pytest.raises(RuntimeError, match="ValidationFailed"):
        app.synth()
    report = json.loads((tmp_path / "validation-report.json").read_text())
    rules = {v["ruleName"] for plugin in report["pluginReports"] for v in plugin["violations"]}
    assert "AwsSolutions-SNS3" in rules


def test_every_error_finding_is_acknowledged_at_or_above_its_resource(nag_audit: NagAudit) -> None:
    acknowledged = {(rule_id, path) for rule_id, path, _ in nag_audit.acknowledgements}
    unacknowledged = [
        (rule_id, resource)
        for rule_id, severity, resource in nag_audit.findings
        if not any(
            rule_id == ack and (resource == at or resource.startswith(at + "/")) for ack, at in acknowledged
        )
    ]
    assert unacknowledged == []


def test_every_acknowledgement_still_matches_a_finding(nag_audit: NagAudit) -> None:
    stale = [
        (rule_id, at)
        for rule_id, at, _ in nag_audit.acknowledgements
        if not any(
            rule_id == found and (resource == at or resource.startswith(at + "/"))
            for found, _, resource in nag_audit.findings
        )
    ]
    assert stale == []


def test_acknowledgements_are_made_at_resources_not_whole_stacks(
    nag_audit: NagAudit, synth: Synthesized
) -> None:
    stacks = {synth.stage.sagemaker_emr.node.path, synth.stage.filtering.node.path}
    assert not [path for _, path, _ in nag_audit.acknowledgements if path in stacks]


def test_every_acknowledgement_states_its_evidence(nag_audit: NagAudit) -> None:
    for rule_id, path, reason in nag_audit.acknowledgements:
        assert len(reason.split()) >= 12, (rule_id, path)


def test_the_product_template_is_checked(nag_audit: NagAudit) -> None:
    # The original kit's cdk-nag 2.x never saw these three: they live in the ProductStack.
    product = [(rule_id, path) for rule_id, _, path in nag_audit.findings if "/EmrClusterTemplate/" in path]
    assert {rule_id for rule_id, _ in product} >= {
        "AwsSolutions-EMR4",
        "AwsSolutions-EMR5",
        "AwsSolutions-EMR6",
    }


def test_acknowledge_refuses_a_reason_without_evidence() -> None:
    with pytest.raises(ValueError, match="evidence"):
        nag.acknowledge(None, "AwsSolutions-S1", "log bucket")  # type: ignore[arg-type]


def test_acknowledge_refuses_rules_of_other_packs() -> None:
    with pytest.raises(ValueError, match="AwsSolutions"):
        nag.acknowledge(None, "HIPAA.Security-S3BucketLoggingEnabled", "a reason long enough to pass")  # type: ignore[arg-type]


def test_finding_text_flattens_intrinsics_like_cdk_nag() -> None:
    assert nag._flatten({"Fn::Join": ["", [{"Fn::GetAtt": ["Bucket12", "Arn"]}, "/*"]]}) == "<Bucket12.Arn>/*"
    assert nag._flatten({"Fn::Sub": "arn:${AWS::Partition}:s3:::x"}) == "arn:<AWS::Partition>:s3:::x"
    assert nag._flatten({"Ref": "AWS::Region"}) == "<AWS::Region>"
    assert nag._flatten({"Fn::ImportValue": "stack:Export"}) == "stack:Export"
