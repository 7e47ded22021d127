"""The permissions boundary of every IAM role the kit creates, and of roles its EMR product creates."""

from __future__ import annotations

import aws_cdk as cdk
from aws_cdk import aws_iam as iam
from constructs import Construct

from stacks import nag

#: SageMaker administration no kit role needs: the domain, its user profiles and lifecycle
#: configurations belong to the stack (a Studio user could otherwise remove the install script or
#: give a profile another execution role).
STUDIO_ADMINISTRATION = (
    "sagemaker:CreateDomain",
    "sagemaker:UpdateDomain",
    "sagemaker:DeleteDomain",
    "sagemaker:CreateUserProfile",
    "sagemaker:UpdateUserProfile",
    "sagemaker:DeleteUserProfile",
    "sagemaker:CreateStudioLifecycleConfig",
    "sagemaker:DeleteStudioLifecycleConfig",
)
#: The services roles under the boundary may pass roles to (EMR, its instances and scaling, Service
#: Catalog launches and SageMaker jobs); passing a role anywhere else is denied.
PASS_ROLE_SERVICES = (
    "ec2.amazonaws.com",
    "elasticmapreduce.amazonaws.com",
    "application-autoscaling.amazonaws.com",
    "servicecatalog.amazonaws.com",
    "sagemaker.amazonaws.com",
)


class PermissionsBoundary(Construct):
    """A managed policy that caps what any kit role can do, whatever policies are attached to it.

    Denies billing and account actions, SageMaker domain/user-profile/lifecycle administration
    (`STUDIO_ADMINISTRATION`), editing or deleting this policy, removing or replacing the boundary of
    a user or role, creating users or roles without it, and passing roles to services other than
    `PASS_ROLE_SERVICES`; allows everything else (the roles' own policies decide).
    Exposes `policy`. The policy has a physical name because its statements must name its own ARN
    (a `Ref` to itself would be circular); the name includes the stack name and region, so
    deployments in several regions of one account do not collide.
    """

    def __init__(self, scope: Construct, construct_id: str) -> None:
        super().__init__(scope, construct_id)
        stack = cdk.Stack.of(self)
        name = f"{stack.stack_name}-permissions-boundary-{stack.region}"
        arn = stack.format_arn(service="iam", region="", resource="policy", resource_name=name)
        users = stack.format_arn(service="iam", region="", resource="user", resource_name="*")
        roles = stack.format_arn(service="iam", region="", resource="role", resource_name="*")
        self.policy = iam.ManagedPolicy(
            self,
            "Policy",
            managed_policy_name=name,
            description="Permissions boundary of the Advertising Intelligence Kit's roles",
            statements=[
                iam.PolicyStatement(
                    sid="DenyBillingAndAccount",
                    effect=iam.Effect.DENY,
                    actions=["account:*", "aws-portal:*", "billing:*", "savingsplans:*", "cur:*", "ce:*"],
                    resources=["*"],
                ),
                iam.PolicyStatement(
                    sid="DenyStudioAdministration",
                    effect=iam.Effect.DENY,
                    actions=list(STUDIO_ADMINISTRATION),
                    resources=["*"],
                ),
                iam.PolicyStatement(
                    sid="DenyEditingTheBoundary",
                    effect=iam.Effect.DENY,
                    actions=[
                        "iam:DeletePolicy",
                        "iam:DeletePolicyVersion",
                        "iam:CreatePolicyVersion",
                        "iam:SetDefaultPolicyVersion",
                    ],
                    resources=[arn],
                ),
                iam.PolicyStatement(
                    sid="DenyRemovingTheBoundary",
                    effect=iam.Effect.DENY,
                    actions=["iam:DeleteUserPermissionsBoundary", "iam:DeleteRolePermissionsBoundary"],
                    resources=[users, roles],
                    conditions={"StringEquals": {"iam:PermissionsBoundary": arn}},
                ),
                iam.PolicyStatement(
                    sid="DenyReplacingTheBoundary",
                    effect=iam.Effect.DENY,
                    actions=["iam:PutUserPermissionsBoundary", "iam:PutRolePermissionsBoundary"],
                    resources=[users, roles],
                    conditions={"StringNotEquals": {"iam:PermissionsBoundary": arn}},
                ),
                iam.PolicyStatement(
                    sid="DenyCreatingWithoutTheBoundary",
                    effect=iam.Effect.DENY,
                    actions=["iam:CreateUser", "iam:CreateRole"],
                    resources=[users, roles],
                    conditions={"StringNotEquals": {"iam:PermissionsBoundary": arn}},
                ),
                iam.PolicyStatement(
                    sid="DenyPassingRolesElsewhere",
                    effect=iam.Effect.DENY,
                    actions=["iam:PassRole"],
                    resources=[roles],
                    conditions={"StringNotEquals": {"iam:PassedToService": list(PASS_ROLE_SERVICES)}},
                ),
                iam.PolicyStatement(sid="AllowWhatTheRolesOwnPoliciesAllow", actions=["*"], resources=["*"]),
            ],
        )
        self.arn = arn
        for finding in ("Action::*", "Resource::*"):
            nag.acknowledge(
                self.policy,
                f"AwsSolutions-IAM5[{finding}]",
                "This is a permissions boundary, not a grant: a boundary only caps permissions, so its "
                "final Allow * is what lets the roles' own least-privilege policies take effect, and "
                "its Deny statements are what it adds.",
            )

    def apply_to(self, scope: Construct) -> None:
        """Put every role under `scope` (CDK's own custom-resource roles included) under the boundary."""
        iam.PermissionsBoundary.of(scope).apply(self.policy)
