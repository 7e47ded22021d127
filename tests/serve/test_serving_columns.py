"""Columnar calls: `filterColumns` (requests as columns) and `filterAdvertisers` (one request, N advertisers)
answer what `filter` answers for each request; malformed columns get an error reply and the connection
keeps serving; the client's column helpers."""

from __future__ import annotations

import numpy as np
import pytest
from serve_live import LiveServer, run_server
from serving_fixtures import Artifacts
from thriftpy2.thrift import TApplicationException

from ad_server_emulator.emulator import bid_request
from filtering_api.client import (
    bid_columns,
    bid_columns_of,
    likelihoods,
    plain_string_column,
    string_column,
)
from filtering_api.idl import BidColumns, BidRequest, StringColumn
from filtering_server.columns import ColumnScorer, column_strings
from filtering_server.model import BadRequest, ServedModel
from filtering_server.server import ServerConfig

LONG_AGENT = "Mozilla/5.0 " + "x" * 5000


def odd_requests(model: ServedModel) -> list[BidRequest]:
    """Requests with every kind of value the feature rules treat specially."""
    labels = model.indexer.labels
    seen = {
        attr: labels[column][0]
        for attr, column in (
            ("advertiserId", "AdvertiserID"),
            ("domainId", "Domain"),
            ("regionId", "RegionID"),
            ("cityId", "CityID"),
        )
    }
    agent = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 Mobile/15E148"
    return [
        BidRequest(),
        BidRequest(hour="07", dayOfWeek=2, deviceTypeId=3, **seen),
        BidRequest(hour="x", dayOfWeek=None, userAgent="null", deviceTypeId=1, advertiserId="unseen"),
        BidRequest(hour=" 7", userAgent="", deviceTypeId=None, domainId="", regionId=b"\xff\xfe"),
        BidRequest(hour="-3", dayOfWeek=-(2**31) + 1, userAgent=agent, deviceTypeId=5, cityId=b"abc"),
        BidRequest(hour=b"12", dayOfWeek=7, userAgent=agent, **seen),
        BidRequest(hour="2147483647", userAgent=b"Mozilla/5.0 (Windows NT 10.0)", deviceTypeId=0),
    ]


def rows_of(live: LiveServer, n: int) -> list[BidRequest]:
    return [bid_request(r) for r in live.artifacts.rows[:n]]


# -- filterColumns --------------------------------------------------------------------------------------


def test_columns_answer_what_filter_answers_for_each_request(live: LiveServer) -> None:
    client = live.client()
    requests = rows_of(live, 300)
    reply = client.filterColumns(bid_columns_of(requests))
    single = [client.filter(r).likelihoodToBid for r in requests]
    assert likelihoods(reply).tolist() == single
    assert live.holder.current is not None
    assert reply.modelVersion == live.holder.current.version


@pytest.mark.parametrize("model_name", ["numeric_model", "pandas_model"])
def test_column_features_equal_the_reference_features_of_odd_requests(
    model_name: str, request: pytest.FixtureRequest
) -> None:
    model: ServedModel = request.getfixturevalue(model_name)
    requests = odd_requests(model)
    features = ColumnScorer(model).features(bid_columns_of(requests), max_rows=100)
    expected = np.asarray([model.features(r) for r in requests], dtype=np.float32)
    np.testing.assert_array_equal(features, expected)


def test_scored_fields_sent_plain_get_the_features_of_the_dictionary_encoding(
    numeric_model: ServedModel,
) -> None:
    requests = [r for r in odd_requests(numeric_model) if r.domainId is not None and r.hour is not None]
    columns = bid_columns_of(requests)
    columns.domainId = plain_string_column([r.domainId for r in requests])
    columns.hour = plain_string_column([r.hour for r in requests])
    scorer = ColumnScorer(numeric_model)
    np.testing.assert_array_equal(
        scorer.features(columns, max_rows=100), scorer.features(bid_columns_of(requests), max_rows=100)
    )


def test_column_strings_reads_both_encodings() -> None:
    ids = ["b-1", "b-2", "b-1"]
    assert column_strings(plain_string_column(ids), 3, "bidId") == ids
    assert column_strings(string_column(["x", None, "x"]), 3, "bidId") == ["x", None, "x"]
    assert column_strings(None, 2, "bidId") == [None, None]


def test_left_out_columns_are_missing_in_every_row(numeric_model: ServedModel) -> None:
    features = ColumnScorer(numeric_model).features(BidColumns(rows=3), max_rows=100)
    expected = np.asarray([numeric_model.features(BidRequest())] * 3, dtype=np.float32)
    np.testing.assert_array_equal(features, expected)


def test_no_rows_get_an_empty_answer(live: LiveServer) -> None:
    assert live.client().filterColumns(BidColumns(rows=0)).likelihoodToBid == b""


def test_the_echo_server_answers_columns_of_the_same_shape(numeric_artifacts: Artifacts) -> None:
    with run_server(numeric_artifacts, echo=True) as echo:
        reply = echo.client().filterColumns(bid_columns_of([BidRequest()] * 4))
    assert likelihoods(reply).tolist() == [0.5] * 4
    assert reply.modelVersion == "echo"


MALFORMED = {
    "no rows": BidColumns(),
    "negative rows": BidColumns(rows=-1),
    "an int column of the wrong length": BidColumns(rows=2, dayOfWeek=b"\x01\x00\x00\x00"),
    "codes of the wrong length": BidColumns(rows=2, hour=StringColumn(values=["1"], codes=b"\x00" * 4)),
    "a code past the dictionary": BidColumns(
        rows=1, domainId=StringColumn(values=["a"], codes=np.asarray([1], "<i4").tobytes())
    ),
    "a code below -1": BidColumns(
        rows=1, domainId=StringColumn(values=["a"], codes=np.asarray([-2], "<i4").tobytes())
    ),
    "no codes": BidColumns(rows=1, cityId=StringColumn(values=["a"])),
    "an hour beyond Spark's int": BidColumns(rows=1, hour=string_column(["9" * 40])),
    "a user agent over the limit": BidColumns(rows=1, userAgent=string_column([LONG_AGENT])),
    "plain offsets not rising": BidColumns(
        rows=2, bidId=StringColumn(data=b"ab", offsets=np.asarray([0, 2, 1], "<i4").tobytes())
    ),
    "plain offsets short of the data": BidColumns(
        rows=1, domainId=StringColumn(data=b"abc", offsets=np.asarray([0, 2], "<i4").tobytes())
    ),
    "plain offsets of the wrong length": BidColumns(
        rows=2, bidId=StringColumn(data=b"ab", offsets=np.asarray([0, 2], "<i4").tobytes())
    ),
    "plain data without offsets": BidColumns(rows=1, bidId=StringColumn(data=b"a")),
    "a price column of the wrong length": BidColumns(rows=1, biddingPrice=b"\x01\x00\x00\x00"),
}


@pytest.mark.parametrize("case", list(MALFORMED))
def test_malformed_columns_get_an_error_reply_and_the_connection_serves_on(
    live: LiveServer, case: str
) -> None:
    client = live.client()
    with pytest.raises(TApplicationException, match="invalid request: "):
        client.filterColumns(MALFORMED[case])
    request = bid_request(live.artifacts.rows[0])
    assert live.holder.current is not None
    assert client.filter(request).likelihoodToBid == live.holder.current.score(request)


def test_more_rows_than_the_batch_limit_are_refused_before_scoring(
    numeric_artifacts: Artifacts, numeric_model: ServedModel
) -> None:
    config = ServerConfig(host="127.0.0.1", port=0, max_batch=10)
    with run_server(numeric_artifacts, model=numeric_model, config=config) as live:
        client = live.client()
        with pytest.raises(TApplicationException, match=r"11 requests in one batch \(limit 10\)"):
            client.filterColumns(BidColumns(rows=11))
        # a dictionary longer than the limit is refused from the message's bytes, before decoding
        with pytest.raises(TApplicationException, match=r"a list, set or map of 11 elements \(limit 10\)"):
            client.filterColumns(
                BidColumns(rows=1, hour=StringColumn([str(i) for i in range(11)], b"\0" * 4))
            )
        assert len(likelihoods(client.filterColumns(bid_columns_of([BidRequest()] * 10)))) == 10


# -- filterAdvertisers ------------------------------------------------------------------------------------


def test_each_advertisers_likelihood_is_filter_of_the_request_with_that_advertiser(
    live: LiveServer,
) -> None:
    client = live.client()
    model = live.holder.current
    assert model is not None
    candidates = [*model.indexer.labels["AdvertiserID"], "never-seen", ""]
    for row in live.artifacts.rows[:20]:
        request = bid_request(row)
        reply = client.filterAdvertisers(request, candidates)
        expected = []
        for advertiser in candidates:
            request.advertiserId = advertiser
            expected.append(client.filter(request).likelihoodToBid)
        assert reply.likelihoodToBid == expected
        assert reply.modelVersion == model.version


def test_no_candidate_advertisers_get_an_empty_answer(live: LiveServer) -> None:
    assert live.client().filterAdvertisers(bid_request(live.artifacts.rows[0]), []).likelihoodToBid == []


def test_advertisers_of_a_bad_request_get_its_error(numeric_model: ServedModel) -> None:
    with pytest.raises(BadRequest, match="userAgent is"):
        ColumnScorer(numeric_model).advertisers(BidRequest(userAgent=LONG_AGENT), ["a"])
    with pytest.raises(BadRequest, match="request struct is missing"):
        ColumnScorer(numeric_model).advertisers(None, ["a"])


# -- the client's helpers ---------------------------------------------------------------------------------


def test_bid_columns_send_bid_ids_plain_unless_one_is_missing() -> None:
    assert bid_columns_of([BidRequest(bidId="a"), BidRequest(bidId="b")]).bidId.data == b"ab"
    assert bid_columns_of([BidRequest(bidId="a"), BidRequest()]).bidId.values == ["a"]
    with pytest.raises(ValueError, match="bidId has missing values"):
        bid_columns({"bidId": ["a", None]})


def test_string_columns_encode_each_distinct_value_once() -> None:
    column = string_column(["b", None, "a", "b"])
    assert column.values == ["b", "a"]
    assert np.frombuffer(column.codes, "<i4").tolist() == [0, -1, 1, 0]


def test_bid_columns_refuse_unknown_fields_and_unequal_lengths() -> None:
    with pytest.raises(ValueError, match="not BidRequest fields: domain"):
        bid_columns({"domain": ["a"]})
    with pytest.raises(ValueError, match="different lengths"):
        bid_columns({"domainId": ["a"], "dayOfWeek": [1, 2]})


def test_integer_columns_mark_none_with_the_smallest_value() -> None:
    columns = bid_columns({"dayOfWeek": [3, None], "biddingPrice": np.asarray([5, 6])})
    assert columns.rows == 2
    assert np.frombuffer(columns.dayOfWeek, "<i4").tolist() == [3, -(2**31)]
    assert np.frombuffer(columns.biddingPrice, "<i8").tolist() == [5, 6]
