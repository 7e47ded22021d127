"""cfn-lint over every synthesized template of the kit, the Service Catalog product template included.

`python -m stacks.lint [cdk.out]` (or `make cfn-lint`) prints each finding and exits non-zero on any
error or on any warning that is not a known, unavoidable one. Known: W3005 where a Lambda function's
`DependsOn` repeats the role its `Role` property already references, or an ECS service's `DependsOn`
repeats the target group its `LoadBalancers` reference - CDK's `Function`, custom-resource providers
and ECS load-balancer targets always emit these pairs, and the kit cannot remove them without
overriding CDK-generated resources.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path

from cfnlint.api import lint_file

DEFAULT_ASSEMBLY = Path(__file__).resolve().parent.parent / "cdk.out"


@dataclass(frozen=True)
class Finding:
    """One cfn-lint match: rule id, message, template file and line."""

    rule: str
    message: str
    template: str
    line: int

    @property
    def is_error(self) -> bool:
        """cfn-lint error rules start with E (warnings with W, informational with I)."""
        return self.rule.startswith("E")

    def __str__(self) -> str:
        return f"{self.rule} {self.message} ({self.template}:{self.line})"


def templates(assembly: Path) -> list[Path]:
    """Every CloudFormation template of a cloud assembly (stacks of nested stages and product templates)."""
    found = sorted(p for p in assembly.rglob("*.template.json") if "asset." not in p.parent.name)
    if not found:
        raise FileNotFoundError(f"no templates under {assembly}: run `make synth` first")
    return found


def lint(template: Path) -> list[Finding]:
    """cfn-lint's findings for one template, with its default rules and region."""
    return [Finding(m.rule.id, m.message, template.name, m.linenumber) for m in lint_file(template)]


#: The CDK-generated W3005 pairs: resource type -> the property path whose `Ref` the DependsOn repeats.
KNOWN_DEPENDENCIES = {
    "AWS::Lambda::Function": "/Properties/Role'",
    "AWS::ECS::Service": "/Properties/LoadBalancers/",
}


def is_known(finding: Finding, template: Path) -> bool:
    """Whether a finding is a CDK-generated redundant `DependsOn` of `KNOWN_DEPENDENCIES`."""
    if finding.rule != "W3005" or "'Resources/" not in finding.message:
        return False
    resource_id = finding.message.split("'Resources/", 1)[1].split("/", 1)[0]
    resources = json.loads(template.read_text())["Resources"]
    path = KNOWN_DEPENDENCIES.get(resources.get(resource_id, {}).get("Type", ""))
    return path is not None and path in finding.message


def check(assembly: Path) -> tuple[list[Finding], list[Finding]]:
    """(problems, known) over every template: errors and unexpected warnings, and the tolerated ones."""
    problems: list[Finding] = []
    known: list[Finding] = []
    for template in templates(assembly):
        for finding in lint(template):
            (known if is_known(finding, template) else problems).append(finding)
    return problems, known


def main(argv: list[str] | None = None) -> int:
    """Lint the assembly given on the command line (default ./cdk.out); 1 when anything needs fixing."""
    args = sys.argv[1:] if argv is None else argv
    assembly = Path(args[0]) if args else DEFAULT_ASSEMBLY
    problems, known = check(assembly)
    for finding in problems:
        print(f"PROBLEM {finding}")
    print(
        f"cfn-lint: {len(templates(assembly))} templates, {len(problems)} problems, "
        f"{len(known)} known CDK-generated warnings (W3005 on Lambda roles and ECS target groups)"
    )
    return 1 if problems else 0


if __name__ == "__main__":
    raise SystemExit(main())
