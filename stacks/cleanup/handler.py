"""Custom-resource handler: on stack deletion, remove what SageMaker Studio created outside CloudFormation.

A Studio domain creates a home EFS file system (with a mount target and its network interface in each
domain subnet) and two security groups, `security-group-for-inbound-nfs-<domain>` and
`security-group-for-outbound-nfs-<domain>`, that reference each other. CloudFormation knows none of
them, so deleting the domain leaves them behind and the VPC's subnets and the VPC cannot be deleted.
The resource is deleted after the domain (the domain depends on it) and before the VPC (it depends
on the VPC), which is exactly when these leftovers can and must go.

Runs in AWS Lambda (boto3 is in the runtime) behind the CDK custom-resource provider framework, which
turns a return value into SUCCESS and an exception into FAILED with the exception's message.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import boto3
from botocore.exceptions import ClientError

logger = logging.getLogger()
logger.setLevel(logging.INFO)

#: The tag SageMaker puts on the EFS file systems it creates (value: the domain's ARN).
SAGEMAKER_EFS_TAG = "ManagedByAmazonSageMakerResource"
NFS_GROUP_NAME = re.compile(r"^security-group-for-(inbound|outbound)-nfs-d-[a-z0-9]+$")
NOT_FOUND = (
    "FileSystemNotFound",
    "MountTargetNotFound",
    "InvalidGroup.NotFound",
    "InvalidNetworkInterfaceID.NotFound",
)


@dataclass
class CleanupReport:
    """What the cleanup removed, and what it could not (with the reason)."""

    file_systems: list[str] = field(default_factory=list)
    mount_targets: list[str] = field(default_factory=list)
    network_interfaces: list[str] = field(default_factory=list)
    security_groups: list[str] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)


def on_event(event: dict[str, Any], context: Any = None) -> dict[str, Any]:
    """Provider-framework entry point: nothing to do on Create/Update, clean up on Delete."""
    request = event["RequestType"]
    vpc_id = event["ResourceProperties"]["VpcId"]
    physical_id = event.get("PhysicalResourceId") or f"studio-cleanup-{vpc_id}"
    logger.info("%s request for VPC %s", request, vpc_id)
    if request != "Delete":
        return {"PhysicalResourceId": physical_id}
    report = cleanup(vpc_id, boto3.client("ec2"), boto3.client("efs"))
    logger.info("cleanup of %s: %s", vpc_id, report)
    if report.failures:
        # FAILED keeps the stack deletion from running into the VPC's opaque DependencyViolation.
        raise RuntimeError(f"could not remove Studio leftovers in {vpc_id}: " + "; ".join(report.failures))
    return {"PhysicalResourceId": physical_id, "Data": {"Removed": str(report)}}


def cleanup(
    vpc_id: str,
    ec2: Any,
    efs: Any,
    *,
    timeout_s: float = 600.0,
    poll_s: float = 5.0,
    sleep: Callable[[float], None] = time.sleep,
) -> CleanupReport:
    """Remove SageMaker's EFS file systems, leftover interfaces and NFS security groups in `vpc_id`."""
    report = CleanupReport()
    for file_system_id in _sagemaker_file_systems(efs, vpc_id):
        _delete_file_system(efs, file_system_id, report, timeout_s=timeout_s, poll_s=poll_s, sleep=sleep)

    groups = [
        g
        for g in _paginate(ec2, "describe_security_groups", "SecurityGroups", Filters=[_vpc_filter(vpc_id)])
        if NFS_GROUP_NAME.match(g.get("GroupName", ""))
    ]
    group_ids = {g["GroupId"] for g in groups}
    detached = [_vpc_filter(vpc_id), {"Name": "status", "Values": ["available"]}]
    for interface in _paginate(ec2, "describe_network_interfaces", "NetworkInterfaces", Filters=detached):
        eni = interface["NetworkInterfaceId"]
        if _left_by_studio(interface, group_ids) and _attempt(
            report, f"network interface {eni}", partial(ec2.delete_network_interface, NetworkInterfaceId=eni)
        ):
            report.network_interfaces.append(eni)

    # The inbound and outbound groups reference each other: empty both before deleting either.
    for group in groups:
        group_id = group["GroupId"]
        if group.get("IpPermissions"):
            revoke = partial(
                ec2.revoke_security_group_ingress, GroupId=group_id, IpPermissions=group["IpPermissions"]
            )
            _attempt(report, f"ingress rules of {group_id}", revoke)
        if group.get("IpPermissionsEgress"):
            revoke = partial(
                ec2.revoke_security_group_egress, GroupId=group_id, IpPermissions=group["IpPermissionsEgress"]
            )
            _attempt(report, f"egress rules of {group_id}", revoke)
    for group in groups:
        group_id = group["GroupId"]
        if _attempt(
            report, f"security group {group_id}", partial(ec2.delete_security_group, GroupId=group_id)
        ):
            report.security_groups.append(group_id)
    return report


def _sagemaker_file_systems(efs: Any, vpc_id: str) -> list[str]:
    """File systems SageMaker created whose mount targets are in `vpc_id` (the kit's own VPC)."""
    found = []
    for fs in _paginate(efs, "describe_file_systems", "FileSystems"):
        tags = {t["Key"]: t["Value"] for t in fs.get("Tags", [])}
        if SAGEMAKER_EFS_TAG not in tags:
            continue
        targets = efs.describe_mount_targets(FileSystemId=fs["FileSystemId"]).get("MountTargets", [])
        if any(t.get("VpcId") == vpc_id for t in targets):
            found.append(fs["FileSystemId"])
    return found


def _delete_file_system(
    efs: Any,
    file_system_id: str,
    report: CleanupReport,
    *,
    timeout_s: float,
    poll_s: float,
    sleep: Callable[[float], None],
) -> None:
    for target in efs.describe_mount_targets(FileSystemId=file_system_id).get("MountTargets", []):
        target_id = target["MountTargetId"]
        if _attempt(
            report, f"mount target {target_id}", partial(efs.delete_mount_target, MountTargetId=target_id)
        ):
            report.mount_targets.append(target_id)
    # DeleteMountTarget returns while the target is still "deleting"; the file system can only go
    # once none is left.
    waited = 0.0
    while efs.describe_mount_targets(FileSystemId=file_system_id).get("MountTargets"):
        if waited >= timeout_s:
            report.failures.append(f"mount targets of {file_system_id} still present after {timeout_s:.0f} s")
            return
        sleep(poll_s)
        waited += poll_s
    if _attempt(
        report, f"file system {file_system_id}", partial(efs.delete_file_system, FileSystemId=file_system_id)
    ):
        report.file_systems.append(file_system_id)


def _left_by_studio(interface: dict[str, Any], nfs_group_ids: set[str]) -> bool:
    """A detached interface that belongs to Studio's NFS groups or names SageMaker/EFS as its creator."""
    groups = {g["GroupId"] for g in interface.get("Groups", [])}
    description = interface.get("Description", "").lower()
    return bool(groups & nfs_group_ids) or "sagemaker" in description or "efs mount target" in description


def _attempt(report: CleanupReport, what: str, action: Callable[[], Any]) -> bool:
    """Run one deletion: True when done (a resource already gone counts as done); otherwise record why."""
    try:
        action()
    except ClientError as exc:
        code = exc.response.get("Error", {}).get("Code", "")
        if code not in NOT_FOUND:
            report.failures.append(f"{what}: {code or exc}")
            logger.warning("could not remove %s: %s", what, exc)
            return False
    return True


def _vpc_filter(vpc_id: str) -> dict[str, Any]:
    return {"Name": "vpc-id", "Values": [vpc_id]}


def _paginate(client: Any, operation: str, key: str, **kwargs: Any) -> Iterable[dict[str, Any]]:
    for page in client.get_paginator(operation).paginate(**kwargs):
        yield from page.get(key, [])
