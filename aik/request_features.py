"""A bid request's seven model features, in plain Python: the one reference of the feature rules.

The Spark feature job (`aik.features.transforms`) computes the same features for every logged request;
this module states the rules for one request's raw fields, as the filtering server receives them (the
Thrift `BidRequest`: string fields as str, bytes or None, integer fields as int or None):

- `dow` = dayOfWeek; `hour` = int(hour), the raw row's "HH" string, ASCII digits only (as Spark casts);
- Index* = the bundle's StringIndexer lookups with handleInvalid=keep: an unseen or missing value maps to
  the number of labels (`FeatureIndexer.index`);
- `device_type_id` = `aik.device.device_type_id(userAgent)` when a user agent is present (and not the
  string "null"), else the request's deviceTypeId, else 6 (unknown).

Values the pipeline never produces get documented defaults: a missing dayOfWeek and a missing or
non-numeric hour are missing (NaN), which the trees route along their learned default branch, as
xgboost treats missing values. Bytes that are not valid UTF-8 are decoded with replacement characters,
as Spark reads text.

The server (`filtering_server.model.ServedModel`) computes these through this module and only adds its
own bounds and the booster's category re-coding; its hot path is a specialised copy, property-tested
against `request_features`.
"""

from __future__ import annotations

import math
from typing import Any

from aik.bundle import FeatureIndexer
from aik.device import UNKNOWN_DEVICE, device_type_id

#: BidRequest attribute -> raw column of the bundle it is looked up in (the Index* features, in order).
REQUEST_COLUMNS: dict[str, str] = {
    "advertiserId": "AdvertiserID",
    "domainId": "Domain",
    "regionId": "RegionID",
    "cityId": "CityID",
}


def as_text(value: object) -> str | None:
    """A string field as text: bytes decoded as UTF-8 with replacement characters, None kept."""
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, bytes | bytearray):
        return bytes(value).decode("utf-8", "replace")
    return str(value)


def integer_feature(value: object) -> float:
    """An integer field as a float feature; anything else is missing (NaN)."""
    if value is None:
        return math.nan
    try:
        return float(int(value))  # type: ignore[call-overload]  # whatever int() refuses is caught below
    except (TypeError, ValueError, OverflowError):
        return math.nan


def hour_feature(value: object) -> float:
    """int(hour) of the raw hour string, NaN when missing or not an integer."""
    if value is None:
        return math.nan
    text = value.decode("ascii", "replace") if isinstance(value, bytes | bytearray) else value
    if not isinstance(text, str) or not text.strip().lstrip("+-").isascii():
        return math.nan  # int() would also accept non-ASCII digits, which Spark does not
    try:
        return float(int(text))
    except (ValueError, OverflowError):  # not an integer, or beyond a float (the server refuses both)
        return math.nan


def device_feature(user_agent: object, device_type: object) -> float:
    """The user agent's device type when there is an agent, else the request's deviceTypeId, else 6."""
    agent = as_text(user_agent)
    if agent and agent != "null":
        return float(device_type_id(agent))
    return float(UNKNOWN_DEVICE) if device_type is None else integer_feature(device_type)


def index_feature(indexer: FeatureIndexer, column: str, value: object) -> float:
    """The StringIndexer index of a raw value (the label count when unseen or missing)."""
    return float(indexer.index(column, as_text(value)))


def request_features(request: Any, indexer: FeatureIndexer) -> tuple[float, ...]:
    """The seven features of a raw BidRequest, in `aik.schema.FEATURE_COLUMNS` order."""
    return (
        integer_feature(request.dayOfWeek),
        hour_feature(request.hour),
        *(index_feature(indexer, column, getattr(request, attr)) for attr, column in REQUEST_COLUMNS.items()),
        device_feature(request.userAgent, request.deviceTypeId),
    )
