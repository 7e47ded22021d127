"""Session fixtures of the CDK tests: the app is synthesized once (with the cdk-nag gate) and shared."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from cdk_helpers import NagAudit, Synthesized, synthesize

from stacks import nag
from stacks.app import build_app


@pytest.fixture(scope="session")
def synth(tmp_path_factory: pytest.TempPathFactory) -> Synthesized:
    """The kit's app with the default settings, synthesized once per test session."""
    return synthesize(tmp_path_factory.mktemp("cdk.out"))


@pytest.fixture(scope="session")
def variant(tmp_path_factory: pytest.TempPathFactory) -> Synthesized:
    """The app with every switch flipped: retained data, 1-3 tasks, the emulator, 25 ms alarm, 90-day logs,
    the loop's schedule on with a 24-hour staleness alarm, a 14+2-day window and another landing prefix,
    the MLflow tracking server."""
    return synthesize(
        tmp_path_factory.mktemp("cdk.out-variant"),
        context={
            "aik:retain-data": "true",
            "aik:min-tasks": "1",
            "aik:max-tasks": "3",
            "aik:emulator": "true",
            "aik:latency-alarm-ms": "25",
            "aik:log-retention-days": "90",
            "aik:loop-schedule": "true",
            "aik:release-max-age-hours": "24",
            "aik:loop-window-days": "14",
            "aik:loop-test-days": "2",
            "aik:loop-ingest-prefix": "landing/ipinyou/",
            "aik:mlflow": "true",
        },
    )


@pytest.fixture(scope="session")
def nag_audit(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NagAudit]:
    """Synthesize a second app whose `nag.acknowledge` records instead of acknowledging, then run the pack.

    The synth runs without the plugin (it would fail on the unacknowledged findings); the pack then
    validates the synthesized tree directly, exactly as the plugin does after synthesis. The optional
    MLflow tracking server is on, so that its acknowledgements are checked too.
    """
    recorded: list[tuple[str, str, str]] = []
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(
            nag,
            "acknowledge",
            lambda scope, rule_id, reason: recorded.append((rule_id, scope.node.path, reason)),
        )
        checked: list[str] = []
        patch.setattr(nag, "add_checks", lambda stage: checked.append(stage.node.path))
        app, _ = build_app(
            outdir=str(tmp_path_factory.mktemp("cdk.out-audit")), context={"aik:mlflow": "true"}
        )
        app.synth()
    from cdk_nag import AwsSolutionsChecks

    report = AwsSolutionsChecks(verbose=False).validate_scope(app)
    findings = [
        (violation.rule_name, violation.severity or "error", resource.construct_path or "")
        for violation in report.violations
        for resource in violation.violating_resources
    ]
    yield NagAudit(findings=findings, acknowledgements=recorded, checked_stages=checked)
