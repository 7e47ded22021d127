"""The aws backend's boto3 clients, all in one region: `--region`, else the environment, else the instance's.

boto3 alone resolves a region from `AWS_DEFAULT_REGION` and the config file only; on an EMR node (and
other EC2 hosts without a profile) neither is set, so the region also comes from `AWS_REGION` (what
ECS and Lambda set) and finally from the instance metadata service (IMDSv2, through
botocore's own `IMDSRegionProvider`, which honours `AWS_EC2_METADATA_SERVICE_ENDPOINT` and
`AWS_EC2_METADATA_DISABLED`).
"""

from __future__ import annotations

import functools
import os
from typing import Any

from aik.errors import AikError

ENV_REGION = "AWS_REGION"

# The region given on the command line (or to a notebook), process-wide: every client of the kit, and
# the S3 client of `aik.storage` in particular, is created in it. Set through `use_region`.
_explicit: str | None = None


def use_region(region: str | None) -> None:
    """Make `region` the region of every client the kit creates from now on (None: resolve it)."""
    global _explicit
    _explicit = region or None


@functools.cache  # an instance's region cannot change while the process runs
def instance_region() -> str | None:
    """The region of the EC2 instance this runs on (IMDSv2), or None when no metadata service answers."""
    import botocore.session
    from botocore.utils import IMDSRegionProvider

    return IMDSRegionProvider(botocore.session.get_session()).provide() or None


def region(explicit: str | None = None) -> str:
    """The region for a client: `explicit`, `use_region`'s, `AWS_REGION`, boto3's default, the instance's."""
    chosen = explicit or _explicit or os.environ.get(ENV_REGION)
    if not chosen:
        import boto3

        chosen = boto3.session.Session().region_name or instance_region()
    if not chosen:
        raise AikError(
            "no AWS region: pass --region, or set AWS_REGION (the instance metadata service did not answer)"
        )
    return chosen


def client(service: str, region_name: str | None = None) -> Any:
    """A boto3 client of `service` in `region(region_name)`."""
    import boto3

    return boto3.client(service, region_name=region(region_name))


def session(region_name: str | None = None) -> Any:
    """A boto3 session in `region(region_name)` (for SDKs that take a session, such as SageMaker's)."""
    import boto3

    return boto3.Session(region_name=region(region_name))
