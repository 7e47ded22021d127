"""Column contracts shared by the Spark job, training, the server and the emulator (docs/pipeline.md)."""

from __future__ import annotations

#: Raw fields kept for inference (pipeline-schema.json): field -> Spark type name, in this order.
RAW_SCHEMA: dict[str, str] = {
    "BidID": "String",
    "dow": "Integer",
    "hour": "String",
    "RegionID": "String",
    "CityID": "String",
    "Domain": "String",
    "AdvertiserID": "String",
    "BiddingPrice": "Long",
    "PayingPrice": "Long",
    "UserAgent": "String",
}

#: StringIndexer stages of the feature pipeline, in pipeline order: raw column -> index column.
INDEXED_COLUMNS: dict[str, str] = {
    "AdvertiserID": "IndexAdvertiserID",
    "Domain": "IndexDomain",
    "RegionID": "IndexRegionID",
    "CityID": "IndexCityID",
}

LABEL = "label"

#: The model's features, in the booster's order (the splits hold LABEL first, then these).
FEATURE_COLUMNS: tuple[str, ...] = (
    "dow",
    "hour",
    "IndexAdvertiserID",
    "IndexDomain",
    "IndexRegionID",
    "IndexCityID",
    "device_type_id",
)

SPLIT_COLUMNS: tuple[str, ...] = (LABEL, *FEATURE_COLUMNS)

#: iPinYou imp/clk/conv logs: 24 tab-separated fields, no header.
EVENT_LOG_COLUMNS: tuple[str, ...] = (
    "BidID",
    "Timestamp",
    "LogType",
    "iPinYouID",
    "UserAgent",
    "IP",
    "RegionID",
    "CityID",
    "AdExchange",
    "Domain",
    "URL",
    "AnonymousURLID",
    "AdSlotID",
    "AdSlotWidth",
    "AdSlotHeight",
    "AdSlotVisibility",
    "AdSlotFormat",
    "AdSlotFloorPrice",
    "CreativeID",
    "BiddingPrice",
    "PayingPrice",
    "KeyPageURL",
    "AdvertiserID",
    "UserProfileIDs",
)

#: iPinYou bid logs: 21 fields, the event-log fields without LogType, PayingPrice and KeyPageURL.
BID_LOG_COLUMNS: tuple[str, ...] = tuple(
    c for c in EVENT_LOG_COLUMNS if c not in ("LogType", "PayingPrice", "KeyPageURL")
)
