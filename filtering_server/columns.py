"""Feature matrices of columnar calls: `filterColumns` (many requests as columns) and `filterAdvertisers`.

No Python object is built per row. Integer columns are little-endian arrays read with
`numpy.frombuffer`; a dictionary-encoded string column is its distinct values plus one i32 code per
row, so each distinct value is mapped once, by the same tables and rules as the single-request path
(`model._hot_path`), and numpy spreads the results over the rows (`values[codes]`, the missing value's
result at index -1). A plain-encoded column (data and offsets, meant for bidId, which scoring does not
read) is only checked; a scored field sent plain is turned into a dictionary first (a string per row).
A request's row therefore gets the features `ServedModel.features` gives the same request sent to
`filter` (tested). Malformed columns (wrong byte lengths, codes outside the dictionary, more rows than
the batch limit) are a `BadRequest`: an error reply, the connection stays open.
"""

from __future__ import annotations

import itertools
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
        _check_unscored(columns, rows)
        out = np.empty((rows, len(FEATURE_COLUMNS)), dtype=np.float64)
        dow = _int_column(columns.dayOfWeek, rows, 4, "dayOfWeek")
        out[:, _DOW] = np.nan if dow is None else _missing_to_nan(dow, I32_MISSING)
        out[:, _HOUR] = self._mapped(columns.hour, rows, "hour", None, _hour_value)
        for attr, position in _INDEX_POSITIONS.items():
            table = self.tables[attr][0]
            out[:, position] = self._mapped(
                getattr(columns, attr), rows, attr, table, self._index_value(attr)
            )
        out[:, _DEVICE] = self._device(columns, rows)
        for position, recode in self.other_recodes.items():
            out[:, position] = _recode_column(out[:, position], recode)
        return out.astype(np.float32)

    def _index_value(self, attr: str) -> Callable[[object], float]:
        """An index field's feature value of any raw value, in the hot path's order: the table, then the
        reference rules (bytes, unseen), an empty or missing value being unseen."""
        table, unseen = self.tables[attr]
        tables = self.tables

        def value(raw: object) -> float:
            found = table.get(raw) if isinstance(raw, str) else None
            if found is not None:
                return found
            return index_of_value(tables, attr, raw) if raw else unseen

        return value

    def _mapped(
        self,
        column: Any,
        rows: int,
        name: str,
        table: dict[str, float] | None,
        value: Callable[[object], float],
    ) -> np.ndarray | float:
        """A string column's feature per row: the value of each distinct string, spread by the codes.

        `table` (label -> value) answers most strings in one C-level pass; `value` the rest.
        """
        if column is None:
            return value(None)
        strings, codes = _string_column(column, rows, name)
        if table is None:
            found: list[float | None] = [value(raw) for raw in strings]
        else:
            found = list(map(table.get, strings))
            if None in found:
                found = [value(raw) if f is None else f for raw, f in zip(strings, found, strict=True)]
        found.append(value(None))  # index -1: a row whose value is missing
        return np.asarray(found, dtype=np.float64)[codes]

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
    """(distinct values, one code per row into them, -1 for missing) of either encoding."""
    if column.data is not None or column.offsets is not None:
        pieces = _plain_values(column, rows, name)
        table: dict[str, int] = {}
        codes = [table.setdefault(piece, len(table)) for piece in pieces]
        return list(table), np.asarray(codes, dtype=np.int32)
    strings = column.values if column.values is not None else []
    if column.codes is None:
        raise BadRequest(f"{name} has no codes")
    codes_array = _int_column(column.codes, rows, 4, f"{name}.codes")
    assert codes_array is not None
    if rows and (int(codes_array.min()) < -1 or int(codes_array.max()) >= len(strings)):
        bad = codes_array[(codes_array < -1) | (codes_array >= len(strings))][0]
        raise BadRequest(f"{name} has code {bad} outside its {len(strings)} values")
    return strings, codes_array


def _plain_offsets(column: Any, rows: int, name: str) -> np.ndarray:
    """A plain column's offsets, checked: rows + 1 of them, from 0, never decreasing, to len(data)."""
    if column.data is None or column.offsets is None:
        raise BadRequest(f"{name} needs both data and offsets")
    offsets = _int_column(column.offsets, rows + 1, 4, f"{name}.offsets")
    assert offsets is not None
    if offsets[0] != 0 or offsets[-1] != len(column.data) or bool(np.any(offsets[1:] < offsets[:-1])):
        raise BadRequest(f"{name}.offsets must rise from 0 to the {len(column.data)} bytes of its data")
    return offsets


def _plain_values(column: Any, rows: int, name: str) -> list[str]:
    data = column.data
    bounds = _plain_offsets(column, rows, name).tolist()
    return [data[a:b].decode("utf-8", "replace") for a, b in itertools.pairwise(bounds)]


def _check_unscored(columns: Any, rows: int) -> None:
    """The columns scoring does not read are still checked: a malformed request is refused whole."""
    for name, width in (("biddingPrice", 8), ("payingPrice", 8)):
        _int_column(getattr(columns, name), rows, width, name)
    if columns.bidId is not None:
        if columns.bidId.data is not None or columns.bidId.offsets is not None:
            _plain_offsets(columns.bidId, rows, "bidId")
        else:
            _string_column(columns.bidId, rows, "bidId")


def column_strings(column: Any, rows: int, name: str) -> list[str | None]:
    """Every row's value of a `StringColumn` of either encoding (None: missing), e.g. the bid ids."""
    if column is None:
        return [None] * rows
    strings, codes = _string_column(column, rows, name)
    table = [*strings, None]
    return [table[code] for code in codes.tolist()]


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
