"""Feature matrices of columnar calls: `filterColumns` (many requests as columns) and `filterAdvertisers`.

No Python object is built per row. Integer columns are little-endian arrays read with
`numpy.frombuffer`; a string column is a dictionary plus one i32 code per row, so each distinct value is
mapped once, by the same tables and rules as the single-request path (`model._hot_path`), and numpy
spreads the results over the rows (`values[codes]`, the missing value's result at index -1). A request's
row therefore gets the features `ServedModel.features` gives the same request sent to `filter`
(property-tested). Malformed columns (wrong byte lengths, codes outside the dictionary, more rows than
the batch limit) are a `BadRequest`: an error reply, the connection stays open.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from aik.device import device_type_id
from aik.request_features import as_text, device_feature, hour_feature
from aik.schema import FEATURE_COLUMNS, INDEXED_COLUMNS
from filtering_server.model import (
    _INT_DIGITS,
    BadRequest,
    IndexTables,
    ServedModel,
    check_hour,
    index_of_value,
    index_tables,
)

#: The smallest value of each integer type marks a missing value in an integer column (api.thrift).
I32_MISSING = -(2**31)
I64_MISSING = -(2**63)

_DOW, _HOUR, _DEVICE = (FEATURE_COLUMNS.index(name) for name in ("dow", "hour", "device_type_id"))
#: BidRequest attribute -> position of its Index* feature
_INDEX_POSITIONS = {
    attr: FEATURE_COLUMNS.index(INDEXED_COLUMNS[column])
    for attr, column in (
        ("advertiserId", "AdvertiserID"),
        ("domainId", "Domain"),
        ("regionId", "RegionID"),
        ("cityId", "CityID"),
    )
}


class ColumnScorer:
    """Feature matrices of columnar calls for one served model (its index tables built once)."""

    def __init__(self, model: ServedModel) -> None:
        self.model = model
        self.tables: IndexTables = index_tables(model)
        #: re-codings of features other than the Index* ones (rare: categorical dow, hour or device)
        self.other_recodes = {p: r for p, r in model.recode.items() if p not in _INDEX_POSITIONS.values()}

    # -- filterColumns ------------------------------------------------------------------------------

    def features(self, columns: Any, max_rows: int) -> np.ndarray:
        """The float32 feature matrix of a `BidColumns` (rows in order), or `BadRequest`."""
        rows = column_rows(columns, max_rows)
        out = np.empty((rows, len(FEATURE_COLUMNS)), dtype=np.float64)
        dow = _int_column(columns.dayOfWeek, rows, 4, "dayOfWeek")
        out[:, _DOW] = np.nan if dow is None else _missing_to_nan(dow, I32_MISSING)
        out[:, _HOUR] = self._mapped(columns.hour, rows, "hour", _hour_value)
        for attr, position in _INDEX_POSITIONS.items():
            out[:, position] = self._mapped(
                getattr(columns, attr), rows, attr, self._index_value(attr), missing=self.tables[attr][1]
            )
        out[:, _DEVICE] = self._device(columns, rows)
        for position, recode in self.other_recodes.items():
            out[:, position] = _recode_column(out[:, position], recode)
        return out.astype(np.float32)

    def _index_value(self, attr: str) -> Callable[[object], float]:
        table, unseen = self.tables[attr]
        get = table.get
        tables = self.tables

        def value(raw: object) -> float:  # the hot path's order: the table first, then the reference
            found = get(raw)  # type: ignore[call-overload]  # a bytes value is not a key: it misses
            if found is not None:
                return found
            return index_of_value(tables, attr, raw) if raw else unseen

        return value

    def _mapped(
        self,
        column: Any,
        rows: int,
        name: str,
        value: Callable[[object], float],
        missing: float | None = None,
    ) -> np.ndarray | float:
        """A string column's feature per row: `value` of each distinct string, spread by the codes."""
        if column is None:
            return value(None) if missing is None else missing
        strings, codes = _string_column(column, rows, name)
        mapped = np.empty(len(strings) + 1, dtype=np.float64)
        for i, raw in enumerate(strings):
            mapped[i] = value(raw)
        mapped[-1] = value(None) if missing is None else missing
        return mapped[codes]

    def _device(self, columns: Any, rows: int) -> np.ndarray:
        """The user agent's device type where a row has an agent, else its deviceTypeId, else 6."""
        given = _int_column(columns.deviceTypeId, rows, 4, "deviceTypeId")
        fallback = (
            np.full(rows, device_feature(None, None))
            if given is None
            else np.where(given == I32_MISSING, device_feature(None, None), given.astype(np.float64))
        )
        if columns.userAgent is None:
            return fallback
        strings, codes = _string_column(columns.userAgent, rows, "userAgent")
        limit = self.model.max_string
        agents = np.full(len(strings) + 1, np.nan)  # NaN: no agent, the row's deviceTypeId decides
        for i, raw in enumerate(strings):
            agent = as_text(raw)
            if agent is not None and len(agent) > limit:
                raise BadRequest(f"userAgent is {len(agent)} characters (limit {limit})")
            if agent and agent != "null":
                agents[i] = float(device_type_id(agent))
        per_row = agents[codes]
        return np.where(np.isnan(per_row), fallback, per_row)

    # -- filterAdvertisers ----------------------------------------------------------------------------

    def advertisers(self, request: Any, advertiser_ids: Sequence[Any]) -> np.ndarray:
        """The request's features once per candidate advertiser (the request's own advertiserId unused)."""
        if advertiser_ids is None:
            raise BadRequest("the advertiserIds list is missing")
        row = self.model.fast_features(request)
        out = np.empty((len(advertiser_ids), len(FEATURE_COLUMNS)), dtype=np.float64)
        out[:] = row
        value = self._index_value("advertiserId")
        out[:, _INDEX_POSITIONS["advertiserId"]] = [value(a) for a in advertiser_ids]
        return out.astype(np.float32)


def column_rows(columns: Any, max_rows: int) -> int:
    """The number of rows a `BidColumns` declares, within [0, max_rows] (`BadRequest` otherwise)."""
    if columns is None:
        raise BadRequest("the columns struct is missing")
    rows = columns.rows
    if rows is None:
        raise BadRequest("rows is missing")
    if rows < 0:
        raise BadRequest(f"rows is {rows}")
    if rows > max_rows:
        raise BadRequest(f"{rows} requests in one batch (limit {max_rows})")
    return int(rows)


def _int_column(data: bytes | None, rows: int, width: int, name: str) -> np.ndarray | None:
    if data is None:
        return None
    if len(data) != rows * width:
        raise BadRequest(f"{name} has {len(data)} bytes, expected {rows} x {width}")
    return np.frombuffer(data, dtype=f"<i{width}")


def _string_column(column: Any, rows: int, name: str) -> tuple[list[Any], np.ndarray]:
    strings = column.values if column.values is not None else []
    if column.codes is None:
        raise BadRequest(f"{name} has no codes")
    codes = _int_column(column.codes, rows, 4, f"{name}.codes")
    assert codes is not None
    if rows and (int(codes.min()) < -1 or int(codes.max()) >= len(strings)):
        bad = codes[(codes < -1) | (codes >= len(strings))][0]
        raise BadRequest(f"{name} has code {bad} outside its {len(strings)} values")
    return strings, codes


def _missing_to_nan(values: np.ndarray, missing: int) -> np.ndarray:
    out = values.astype(np.float64)
    out[values == missing] = np.nan
    return out


def _hour_value(raw: object) -> float:
    """The hour feature of one raw hour (the hot path's rule; an integer beyond Spark's int refused)."""
    if isinstance(raw, str) and len(raw) < _INT_DIGITS and raw.isascii() and raw.isdigit():
        return float(int(raw))
    check_hour(raw)
    return hour_feature(raw)


def _recode_column(values: np.ndarray, recode: Callable[[float], float]) -> np.ndarray:
    distinct, inverse = np.unique(values, return_inverse=True)
    return np.asarray([recode(float(v)) for v in distinct], dtype=np.float64)[inverse]
