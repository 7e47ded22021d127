"""The reference rules of a request's features (`aik.request_features`), on plain request objects."""

from __future__ import annotations

import math
from types import SimpleNamespace
from typing import Any

import pytest

from aik.bundle import StringIndexerSpec, indexer_from_specs
from aik.request_features import device_feature, hour_feature, request_features

INDEXER = indexer_from_specs(
    [
        StringIndexerSpec("AdvertiserID", "IndexAdvertiserID", ("1458", "3358")),
        StringIndexerSpec("Domain", "IndexDomain", ("d0",)),
        StringIndexerSpec("RegionID", "IndexRegionID", ("1", "2", "3")),
        StringIndexerSpec("CityID", "IndexCityID", ()),
    ]
)


def request(**fields: Any) -> SimpleNamespace:
    """A request with every BidRequest attribute the features read (missing ones None)."""
    names = (
        "dayOfWeek",
        "hour",
        "advertiserId",
        "domainId",
        "regionId",
        "cityId",
        "userAgent",
        "deviceTypeId",
    )
    return SimpleNamespace(**{name: fields.get(name) for name in names})


def test_features_are_in_the_boosters_column_order_with_unseen_values_at_the_label_count() -> None:
    features = request_features(
        request(dayOfWeek=2, hour="09", advertiserId="3358", domainId="d0", regionId="x", cityId=b"7"),
        INDEXER,
    )
    assert features == (2.0, 9.0, 1.0, 0.0, 3.0, 0.0, 6.0)


@pytest.mark.parametrize("hour", ["٣", "7.5", "", b"\xff", None])
def test_an_hour_that_is_not_ascii_digits_is_missing(hour: Any) -> None:
    assert math.isnan(hour_feature(hour))


@pytest.mark.parametrize("agent", [None, "", "null", b"null"])
def test_without_a_user_agent_the_device_is_the_requests_device_type(agent: Any) -> None:
    assert device_feature(agent, 2) == 2.0
    assert device_feature(agent, None) == 6.0
