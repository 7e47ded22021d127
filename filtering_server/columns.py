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
import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from aik import experiments
from aik.device import UNKNOWN_DEVICE, device_type_id
from aik.request_features import as_text, hour_feature
from aik.schema import FEATURE_COLUMNS, INDEXED_COLUMNS
from filtering_server import wire
from filtering_server.model import (
    _INT_DIGITS,
    BadRequest,
    IndexTables,
    ServedModel,
    check_hour,
    index_of_value,
    index_tables,
)

#: An absent integer column, typed as the ones read from a request (read-only little-endian i32).
_EMPTY = np.frombuffer(b"", dtype="<i4")

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
#: `wire.gather_columns`'s slots: the hour, the four Index* features, the device type (last)
_SLOT_POSITIONS = np.asarray([_HOUR, *_INDEX_POSITIONS.values(), _DEVICE], dtype=np.int64)


class ColumnScorer:
    """Feature matrices of columnar calls for one served model (its index tables built once)."""

    def __init__(self, model: ServedModel) -> None:
        self.model = model
        self.tables: IndexTables = index_tables(model)
        #: re-codings of features other than the Index* ones (rare: categorical dow, hour or device)
        self.other_recodes = {p: r for p, r in model.recode.items() if p not in _INDEX_POSITIONS.values()}

    # -- filterColumns ------------------------------------------------------------------------------

    def features(self, columns: Any, max_rows: int, select: np.ndarray | None = None) -> np.ndarray:
        """The float32 feature matrix of a `BidColumns` (rows in order), or `BadRequest`; with `select`
        (row numbers, ascending), of those rows only (an experiment's arm scores its own rows).

        Each string column becomes its codes and the feature value of each distinct string (and of a
        missing one); `wire.gather_columns` spreads them over the rows in one compiled pass.
        """
        rows = column_rows(columns, max_rows)
        _check_unscored(columns, rows)
        dow = _int_column(columns.dayOfWeek, rows, 4, "dayOfWeek", _EMPTY)
        device = _int_column(columns.deviceTypeId, rows, 4, "deviceTypeId", _EMPTY)
        assert dow is not None and device is not None  # an absent column is _EMPTY
        slots = [
            ("hour", columns.hour, None, _hour_value),
            *(
                (attr, getattr(columns, attr), self.tables[attr][0], self._index_value(attr))
                for attr in _INDEX_POSITIONS
            ),
        ]
        codes = np.empty((len(slots) + 1, rows), dtype=np.int32)
        values: list[float | None] = []
        starts = [0]
        for k, (name, column, table, value) in enumerate(slots):
            values += self._distinct(column, rows, name, table, value, codes[k])
            starts.append(len(values))
        values += self._agents(columns.userAgent, rows, codes[-1])
        starts.append(len(values))
        if select is not None:
            codes = np.ascontiguousarray(codes[:, select])
            dow, device = _rows_of(dow, select), _rows_of(device, select)
            rows = len(select)
        out = np.empty((rows, len(FEATURE_COLUMNS)), dtype=np.float32)
        bad = wire.gather_columns(
            out,
            _DOW,
            dow,
            _SLOT_POSITIONS,
            codes,
            np.asarray(values, dtype=np.float64),
            np.asarray(starts, dtype=np.int64),
            device,
            float(UNKNOWN_DEVICE),
        )
        if bad >= 0:
            name = "userAgent" if bad == len(slots) else slots[bad][0]
            size = starts[bad + 1] - starts[bad] - 1
            wrong = codes[bad][(codes[bad] < -1) | (codes[bad] >= size)][0]
            raise BadRequest(f"{name} has code {wrong} outside its {size} values")
        for position, recode in self.other_recodes.items():
            out[:, position] = _recode_column(out[:, position].astype(np.float64), recode)
        return out

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

    def _distinct(
        self,
        column: Any,
        rows: int,
        name: str,
        table: dict[str, float] | None,
        value: Callable[[object], float],
        codes: np.ndarray,
    ) -> list[float | None]:
        """A string column's feature value per distinct string, then the missing value's; its codes
        are written into `codes` (-1 throughout when the column is left out).

        `table` (label -> value) answers most strings in one C-level pass; `value` the rest.
        """
        if column is None:
            codes[:] = -1
            return [value(None)]
        strings, column_codes = _string_column(column, rows, name)
        codes[:] = column_codes
        if table is None:
            found: list[float | None] = [value(raw) for raw in strings]
        else:
            found = list(map(table.get, strings))
            if None in found:
                found = [value(raw) if f is None else f for raw, f in zip(strings, found, strict=True)]
        found.append(value(None))
        return found

    def _agents(self, column: Any, rows: int, codes: np.ndarray) -> list[float | None]:
        """The device type of each distinct user agent (NaN: no agent, the row's deviceTypeId decides)."""
        if column is None:
            codes[:] = -1
            return [math.nan]
        strings, column_codes = _string_column(column, rows, "userAgent")
        codes[:] = column_codes
        limit = self.model.max_string
        found: list[float | None] = []
        for raw in strings:
            agent = as_text(raw)
            if agent is not None and len(agent) > limit:
                raise BadRequest(f"userAgent is {len(agent)} characters (limit {limit})")
            found.append(float(device_type_id(agent)) if agent and agent != "null" else math.nan)
        found.append(math.nan)
        return found

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


def _rows_of(column: np.ndarray, select: np.ndarray) -> np.ndarray:
    """The selected rows of an integer column (an absent, empty one stays empty), read-only like the
    columns read in place, so `wire.gather_columns` runs its one compiled signature."""
    if not column.size:
        return column
    picked = column[select]
    picked.setflags(write=False)
    return picked


def _int_column(
    data: bytes | None, rows: int, width: int, name: str, absent: np.ndarray | None = None
) -> np.ndarray | None:
    """A little-endian integer column read in place (`absent` when the request left it out)."""
    if data is None:
        return absent
    if len(data) != rows * width:
        raise BadRequest(f"{name} has {len(data)} bytes, expected {rows} x {width}")
    return np.frombuffer(data, dtype=f"<i{width}")


def _string_column(
    column: Any, rows: int, name: str, check_codes: bool = False
) -> tuple[list[Any], np.ndarray]:
    """(distinct values, one code per row into them, -1 for missing) of either encoding; the codes are
    checked against the values here with `check_codes`, else by the caller (`wire.gather_columns`)."""
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
    if check_codes and rows and (int(codes_array.min()) < -1 or int(codes_array.max()) >= len(strings)):
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
            _string_column(columns.bidId, rows, "bidId", check_codes=True)


def column_strings(column: Any, rows: int, name: str) -> list[str | None]:
    """Every row's value of a `StringColumn` of either encoding (None: missing), e.g. the bid ids."""
    if column is None:
        return [None] * rows
    strings, codes = _string_column(column, rows, name, check_codes=True)
    table = [*strings, None]
    return [table[code] for code in codes.tolist()]


def bid_units(column: Any, rows: int, salt: str) -> np.ndarray:
    """`aik.experiments.unit` of each row's BidID under `salt` (a missing one hashes as "", as
    `Serving.pick` hashes a request without a BidID); a dictionary column hashes each distinct value once."""
    if column is None:
        return np.full(rows, experiments.unit("", salt))
    if column.data is not None or column.offsets is not None:
        data = column.data
        if data.isascii():  # the bytes are the UTF-8 of the decoded ids: hash slices, no str per row
            bounds = _plain_offsets(column, rows, "bidId").tolist()
            return experiments.units_of_slices(data, bounds, salt)
        strings = _plain_values(column, rows, "bidId")
        return experiments.units_of_keys((s.encode() for s in strings), salt)
    distinct, codes = _string_column(column, rows, "bidId", check_codes=True)
    # each distinct id as `unit` formats it, then the missing value's "" at index -1
    keys = [f"{value}".encode() for value in distinct] + [b""]
    return experiments.units_of_keys(keys, salt)[codes]


def column_strings_at(column: Any, rows: int, select: np.ndarray) -> list[str | None]:
    """The values of the rows `select` of a `StringColumn` of either encoding (None: missing), without
    a string for the other rows (the prediction log's sampled BidIDs)."""
    if column is None:
        return [None] * select.shape[0]
    if column.data is not None or column.offsets is not None:
        data = column.data
        offsets = _plain_offsets(column, rows, "bidId")
        return [
            data[a:b].decode("utf-8", "replace")
            for a, b in zip(offsets[select].tolist(), offsets[select + 1].tolist(), strict=True)
        ]
    strings, codes = _string_column(column, rows, "bidId", check_codes=True)
    table = [*strings, None]
    return [table[code] for code in codes[select].tolist()]


def _hour_value(raw: object) -> float:
    """The hour feature of one raw hour (the hot path's rule; an integer beyond Spark's int refused)."""
    if isinstance(raw, str) and len(raw) < _INT_DIGITS and raw.isascii() and raw.isdigit():
        return float(int(raw))
    check_hour(raw)
    return hour_feature(raw)


def _recode_column(values: np.ndarray, recode: Callable[[float], float]) -> np.ndarray:
    distinct, inverse = np.unique(values, return_inverse=True)
    return np.asarray([recode(float(v)) for v in distinct], dtype=np.float64)[inverse]
