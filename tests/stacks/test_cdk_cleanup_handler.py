"""The Studio cleanup custom resource's handler, against moto's EC2 and EFS."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError

from stacks.cleanup import handler

REGION = "us-east-1"
DOMAIN = "d-abc123xyz"
DOMAIN_ARN = f"arn:aws:sagemaker:{REGION}:123456789012:domain/{DOMAIN}"


@dataclass
class Studio:
    """What a deleted Studio domain leaves in the kit's VPC, plus things the cleanup must not touch."""

    ec2: Any
    efs: Any
    vpc_id: str
    file_system_id: str
    inbound_sg: str
    outbound_sg: str
    other_sg: str
    other_vpc_fs: str
    untagged_fs: str
    stray_eni: str
    other_eni: str


def _vpc(ec2: Any, cidr: str) -> tuple[str, list[str]]:
    vpc_id = ec2.create_vpc(CidrBlock=cidr)["Vpc"]["VpcId"]
    base = cidr.split(".")
    subnets = [
        ec2.create_subnet(
            VpcId=vpc_id, CidrBlock=f"{base[0]}.{base[1]}.{i}.0/24", AvailabilityZone=f"{REGION}{az}"
        )["Subnet"]["SubnetId"]
        for i, az in enumerate("ab")
    ]
    return vpc_id, subnets


def _file_system(efs: Any, token: str, subnets: list[str], groups: list[str], tagged: bool) -> str:
    tags = [{"Key": handler.SAGEMAKER_EFS_TAG, "Value": DOMAIN_ARN}] if tagged else []
    fs = efs.create_file_system(CreationToken=token, Tags=tags)["FileSystemId"]
    for subnet in subnets:
        efs.create_mount_target(FileSystemId=fs, SubnetId=subnet, SecurityGroups=groups)
    return fs


@pytest.fixture
def studio(aws: None) -> Studio:
    ec2 = boto3.client("ec2", region_name=REGION)
    efs = boto3.client("efs", region_name=REGION)
    vpc_id, subnets = _vpc(ec2, "10.0.0.0/16")
    _, other_subnets = _vpc(ec2, "10.1.0.0/16")

    def group(name: str, vpc: str) -> str:
        return ec2.create_security_group(GroupName=name, Description=name, VpcId=vpc)["GroupId"]

    inbound = group(f"security-group-for-inbound-nfs-{DOMAIN}", vpc_id)
    outbound = group(f"security-group-for-outbound-nfs-{DOMAIN}", vpc_id)
    other = group("kit-owned-group", vpc_id)
    # SageMaker's two groups reference each other, which is what blocks a plain delete.
    nfs = {"IpProtocol": "tcp", "FromPort": 2049, "ToPort": 2049}
    ec2.authorize_security_group_ingress(
        GroupId=inbound, IpPermissions=[{**nfs, "UserIdGroupPairs": [{"GroupId": outbound}]}]
    )
    ec2.authorize_security_group_egress(
        GroupId=outbound, IpPermissions=[{**nfs, "UserIdGroupPairs": [{"GroupId": inbound}]}]
    )
    fs = _file_system(efs, "home", subnets, [inbound], tagged=True)
    other_vpc_fs = _file_system(efs, "elsewhere", other_subnets, [], tagged=True)
    untagged = _file_system(efs, "users-own", subnets, [other], tagged=False)
    stray = ec2.create_network_interface(
        SubnetId=subnets[0], Groups=[outbound], Description="[SageMaker] Studio app interface"
    )["NetworkInterface"]["NetworkInterfaceId"]
    other_eni = ec2.create_network_interface(SubnetId=subnets[1], Groups=[other], Description="kept")[
        "NetworkInterface"
    ]["NetworkInterfaceId"]
    return Studio(ec2, efs, vpc_id, fs, inbound, outbound, other, other_vpc_fs, untagged, stray, other_eni)


def _file_systems(efs: Any) -> set[str]:
    return {fs["FileSystemId"] for fs in efs.describe_file_systems()["FileSystems"]}


def _groups(ec2: Any, vpc_id: str) -> set[str]:
    found = ec2.describe_security_groups(Filters=[{"Name": "vpc-id", "Values": [vpc_id]}])["SecurityGroups"]
    return {g["GroupId"] for g in found}


def _interfaces(ec2: Any, vpc_id: str) -> set[str]:
    found = ec2.describe_network_interfaces(Filters=[{"Name": "vpc-id", "Values": [vpc_id]}])
    return {i["NetworkInterfaceId"] for i in found["NetworkInterfaces"]}


def test_cleanup_deletes_the_sagemaker_file_system_of_the_vpc(studio: Studio) -> None:
    report = handler.cleanup(studio.vpc_id, studio.ec2, studio.efs, sleep=lambda s: None)
    assert report.file_systems == [studio.file_system_id]
    assert studio.file_system_id not in _file_systems(studio.efs)


def test_cleanup_keeps_file_systems_it_does_not_own(studio: Studio) -> None:
    handler.cleanup(studio.vpc_id, studio.ec2, studio.efs, sleep=lambda s: None)
    assert {studio.other_vpc_fs, studio.untagged_fs} <= _file_systems(studio.efs)


def test_cleanup_deletes_both_nfs_security_groups(studio: Studio) -> None:
    report = handler.cleanup(studio.vpc_id, studio.ec2, studio.efs, sleep=lambda s: None)
    assert sorted(report.security_groups) == sorted([studio.inbound_sg, studio.outbound_sg])
    remaining = _groups(studio.ec2, studio.vpc_id)
    assert studio.inbound_sg not in remaining
    assert studio.outbound_sg not in remaining
    assert studio.other_sg in remaining


def test_cleanup_empties_both_nfs_groups_before_deleting_either(
    studio: Studio, monkeypatch: pytest.MonkeyPatch
) -> None:
    # EC2 refuses to delete a group another group's rule references (moto does not enforce it).
    calls: list[tuple[str, str]] = []
    for name in ("revoke_security_group_ingress", "revoke_security_group_egress", "delete_security_group"):
        real = getattr(studio.ec2, name)

        def record(real: Any = real, name: str = name, **kwargs: Any) -> Any:
            calls.append((name, kwargs["GroupId"]))
            return real(**kwargs)

        monkeypatch.setattr(studio.ec2, name, record)
    handler.cleanup(studio.vpc_id, studio.ec2, studio.efs, sleep=lambda s: None)
    first_delete = min(i for i, (name, _) in enumerate(calls) if name == "delete_security_group")
    assert ("revoke_security_group_ingress", studio.inbound_sg) in calls[:first_delete]
    assert ("revoke_security_group_egress", studio.outbound_sg) in calls[:first_delete]


def test_cleanup_deletes_detached_studio_interfaces_only(studio: Studio) -> None:
    report = handler.cleanup(studio.vpc_id, studio.ec2, studio.efs, sleep=lambda s: None)
    assert studio.stray_eni in report.network_interfaces
    remaining = _interfaces(studio.ec2, studio.vpc_id)
    assert studio.stray_eni not in remaining
    assert studio.other_eni in remaining


def test_cleanup_reports_no_failure_when_everything_is_gone(studio: Studio) -> None:
    assert handler.cleanup(studio.vpc_id, studio.ec2, studio.efs, sleep=lambda s: None).failures == []


def test_cleanup_is_idempotent(studio: Studio) -> None:
    handler.cleanup(studio.vpc_id, studio.ec2, studio.efs, sleep=lambda s: None)
    again = handler.cleanup(studio.vpc_id, studio.ec2, studio.efs, sleep=lambda s: None)
    assert (again.file_systems, again.security_groups, again.failures) == ([], [], [])


def test_cleanup_gives_up_waiting_for_mount_targets_after_the_timeout(
    studio: Studio, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Mount targets that never finish deleting: the file system must be left and reported.
    monkeypatch.setattr(studio.efs, "delete_mount_target", lambda **kwargs: None)
    sleeps: list[float] = []
    report = handler.cleanup(
        studio.vpc_id, studio.ec2, studio.efs, timeout_s=20, poll_s=5, sleep=sleeps.append
    )
    assert sleeps == [5, 5, 5, 5]
    assert report.file_systems == []
    assert any(studio.file_system_id in failure for failure in report.failures)
    assert studio.file_system_id in _file_systems(studio.efs)


def test_delete_request_fails_with_the_reason_when_a_leftover_cannot_be_removed(
    studio: Studio, monkeypatch: pytest.MonkeyPatch
) -> None:
    def refuse(**kwargs: Any) -> None:
        raise ClientError(
            {"Error": {"Code": "DependencyViolation", "Message": "in use"}}, "DeleteSecurityGroup"
        )

    real_client = boto3.client

    def client(name: str, **kwargs: Any) -> Any:
        made = real_client(name, region_name=REGION)
        if name == "ec2":
            monkeypatch.setattr(made, "delete_security_group", refuse)
        return made

    monkeypatch.setattr(handler.boto3, "client", client)
    event = {
        "RequestType": "Delete",
        "PhysicalResourceId": "p",
        "ResourceProperties": {"VpcId": studio.vpc_id},
    }
    with pytest.raises(RuntimeError, match=rf"{studio.vpc_id}.*DependencyViolation"):
        handler.on_event(event)


def test_delete_request_cleans_up_and_keeps_the_physical_id(studio: Studio) -> None:
    event = {
        "RequestType": "Delete",
        "PhysicalResourceId": "p-1",
        "ResourceProperties": {"VpcId": studio.vpc_id},
    }
    assert handler.on_event(event)["PhysicalResourceId"] == "p-1"
    assert studio.file_system_id not in _file_systems(studio.efs)


@pytest.mark.parametrize("request_type", ["Create", "Update"])
def test_create_and_update_requests_touch_nothing(studio: Studio, request_type: str) -> None:
    event = {"RequestType": request_type, "ResourceProperties": {"VpcId": studio.vpc_id}}
    assert handler.on_event(event)["PhysicalResourceId"] == f"studio-cleanup-{studio.vpc_id}"
    assert studio.file_system_id in _file_systems(studio.efs)
    assert studio.inbound_sg in _groups(studio.ec2, studio.vpc_id)
