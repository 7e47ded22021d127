"""All cdk-nag wiring of the kit: the AwsSolutions pack on every synth, and acknowledgements with evidence.

cdk-nag 3.x is a CDK policy-validation plugin (`Validations.of(stage).add_plugins(...)`): it walks every
`CfnResource` of the construct tree after synthesis, including the resources of the Service Catalog
`ProductStack` (the EMR cluster template), and any unacknowledged finding fails the synth with
`ValidationFailed` and a `validation-report.json` in the cloud assembly. `NagSuppressions` of cdk-nag
2.x is gone: a finding is acknowledged with `Validations.of(construct).acknowledge(...)` on the
construct that owns it (it covers that construct and everything below it). Granular rules (IAM4,
IAM5) report one finding per policy/action/resource, written `RuleId[Finding]`, and 3.x matches
acknowledgements exactly (no prefix or regex matching), so every finding is acknowledged by its id.

Constructs call `nag.acknowledge(...)` through the module (not `from stacks.nag import acknowledge`)
so that the tests can record the acknowledgements instead of applying them and prove that each one
still matches a finding.
"""

from __future__ import annotations

import json
from typing import Any

import aws_cdk as cdk
from aws_cdk import aws_iam as iam
from cdk_nag import AwsSolutionsChecks
from constructs import IConstruct

PACK = "AwsSolutions"


def add_checks(stage: cdk.Stage) -> None:
    """Run the AwsSolutions rules over every stack of `stage` (and its product templates) on synth."""
    cdk.Validations.of(stage).add_plugins(AwsSolutionsChecks(stage, verbose=True))


def acknowledge(scope: IConstruct, rule_id: str, reason: str) -> None:
    """Acknowledge one finding (`AwsSolutions-XX` or `AwsSolutions-XX[finding]`) where it is owned."""
    if not rule_id.startswith(f"{PACK}-"):
        raise ValueError(f"not an {PACK} rule id: {rule_id!r}")
    if len(reason) < 20:
        raise ValueError(f"acknowledgement of {rule_id} needs a reason that states the evidence")
    cdk.Validations.of(scope).acknowledge(cdk.Acknowledgment(id=rule_id, reason=reason))


def finding(scope: IConstruct, value: Any) -> str:
    """The text cdk-nag writes for a (tokenised) policy resource or ARN, as resolved in `scope`'s stack.

    cdk-nag names a wildcard resource by flattening the CloudFormation intrinsic it resolves to
    (`{"Fn::GetAtt": ["Bucket1234", "Arn"]}` + `/*` becomes `<Bucket1234.Arn>/*`); its flattener is
    not exported to Python, so this mirrors `utils/flatten-cfn-reference` of cdk-nag 3.0.2, and the
    acknowledgement test fails if the two ever disagree. Logical ids come from the stack, never
    from hand-written strings.
    """
    return _flatten(cdk.Stack.of(scope).resolve(value))


def managed_policy_rule(scope: IConstruct, policy: iam.IManagedPolicy) -> str:
    """The IAM4 finding id for an AWS managed policy attached in `scope`'s stack."""
    return f"{PACK}-IAM4[Policy::{finding(scope, policy.managed_policy_arn)}]"


def aws_managed_policy_rule(scope: IConstruct, name: str) -> str:
    """The IAM4 finding id for the AWS managed policy `name` (`service-role/AmazonEMRServicePolicy_v2`)."""
    return managed_policy_rule(scope, iam.ManagedPolicy.from_aws_managed_policy_name(name))


def resource_rule(scope: IConstruct, resource: Any) -> str:
    """The IAM5 finding id for a wildcard resource (an ARN string or token) in `scope`'s stack."""
    return f"{PACK}-IAM5[Resource::{finding(scope, resource)}]"


def action_rule(action: str) -> str:
    """The IAM5 finding id for a wildcard action."""
    return f"{PACK}-IAM5[Action::{action}]"


def _flatten(node: Any) -> str:
    if node is None:
        return ""
    if isinstance(node, str):
        return node.replace("${", "<").replace("}", ">")
    if isinstance(node, dict):
        if "Fn::Join" in node:
            delimiter, items = node["Fn::Join"]
            return delimiter.join(_flatten(item) for item in items)
        if "Fn::Sub" in node:
            return _flatten(node["Fn::Sub"])
        if "Fn::GetAtt" in node:
            resource, attribute = node["Fn::GetAtt"]
            return f"<{_flatten(resource)}.{_flatten(attribute)}>"
        if "Fn::ImportValue" in node:
            return _flatten(node["Fn::ImportValue"])
        if "Ref" in node:
            return f"<{_flatten(node['Ref'])}>"
    return json.dumps(node, separators=(",", ":"))
