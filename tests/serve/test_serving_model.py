"""Raw request -> features -> likelihood: the Spark job's rules, xgboost's numbers, clear load errors."""

from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import xgboost
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from serving_fixtures import (
    Artifacts,
    build_artifacts,
    index_features,
    publish_booster,
    train_booster,
    varied_rows,
)

from ad_server_emulator.emulator import bid_request
from aik import params, storage
from aik.bundle import StringIndexerSpec, write_bundle
from aik.errors import ArtifactError, ArtifactNotFound, ParameterNotFound
from aik.request_features import request_features
from aik.schema import FEATURE_COLUMNS, RAW_SCHEMA
from filtering_api.idl import BidRequest
from filtering_server.model import (
    BadRequest,
    ModelSources,
    ServedModel,
    _hot_path,
    load_model,
    model_version,
    validate,
)

TOLERANCE = 1e-6
CHROME = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0"
IPHONE = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko)"


def served(artifacts: Artifacts) -> ServedModel:
    """The model the server would load from these artifacts."""
    return load_model(ModelSources.from_store(artifacts.store))


@pytest.mark.parametrize("flavour", ["numeric", "categorical", "pandas-categorical", "kit-default"])
def test_raw_rows_score_as_xgboost_on_the_pipeline_features(
    flavour: str,
    numeric_artifacts: Artifacts,
    categorical_artifacts: Artifacts,
    pandas_artifacts: Artifacts,
    stump_artifacts: Artifacts,
) -> None:
    artifacts = {
        "numeric": numeric_artifacts,
        "categorical": categorical_artifacts,
        "pandas-categorical": pandas_artifacts,
        "kit-default": stump_artifacts,  # the training default preset's shape: folded into tables
    }[flavour]
    model = served(artifacts)
    assert (model.forest.layout == "additive") == (flavour == "kit-default")
    rows = varied_rows(artifacts)
    expected = artifacts.predict_reference(index_features(rows, artifacts.specs))
    requests = [bid_request(r) for r in rows]
    one_by_one = np.array([model.score(r) for r in requests])
    batch = np.array(model.score_batch(requests))
    assert np.max(np.abs(one_by_one - expected)) < TOLERANCE
    assert np.max(np.abs(batch - expected)) < TOLERANCE
    assert expected.std() > 0.05


def test_features_follow_the_pipeline_rules(numeric_model: ServedModel) -> None:
    labels = numeric_model.indexer.labels
    request = BidRequest(
        dayOfWeek=3,
        hour="07",
        advertiserId=labels["AdvertiserID"][2],
        domainId=labels["Domain"][0],
        regionId="no such region",
        cityId=None,
        userAgent=CHROME,
        deviceTypeId=0,  # ignored: the user agent decides
    )
    assert numeric_model.features(request) == (
        3.0,
        7.0,
        2.0,
        0.0,
        len(labels["RegionID"]),
        len(labels["CityID"]),
        3.0,
    )


@pytest.mark.parametrize(
    ("agent", "device_type", "expected"),
    [
        (IPHONE, 3, 0.0),  # woothee: smartphone
        ("", 3, 3.0),  # no user agent: the request's deviceTypeId
        ("null", 1, 1.0),
        (None, 5, 5.0),
        (None, None, 6.0),  # neither: unknown
        (b"DoCoMo/2.0 P903i", None, 1.0),  # bytes (text that was not valid UTF-8) are decoded first
    ],
)
def test_device_type_from_user_agent_else_device_type_id(
    numeric_model: ServedModel, agent: Any, device_type: Any, expected: float
) -> None:
    request = BidRequest(dayOfWeek=1, hour="1", userAgent=agent, deviceTypeId=device_type)
    assert numeric_model.features(request)[6] == expected
    assert numeric_model.score(request) == numeric_model.forest.predict7(*numeric_model.features(request))


@pytest.mark.parametrize("hour", ["x", "", "7.5", "٣", None, " "])
def test_a_missing_or_non_integer_hour_is_a_missing_value(numeric_model: ServedModel, hour: Any) -> None:
    features = numeric_model.features(BidRequest(dayOfWeek=1, hour=hour))
    assert math.isnan(features[1])


def test_a_missing_day_of_week_is_a_missing_value_and_scores(numeric_model: ServedModel) -> None:
    request = BidRequest(hour="5")
    assert math.isnan(numeric_model.features(request)[0])
    assert 0.0 < numeric_model.score(request) < 1.0


def test_an_empty_request_scores_with_the_documented_defaults(numeric_model: ServedModel) -> None:
    request = BidRequest()
    labels = numeric_model.indexer.labels
    features = numeric_model.features(request)
    assert math.isnan(features[0]) and math.isnan(features[1])
    assert features[2:] == (
        len(labels["AdvertiserID"]),
        len(labels["Domain"]),
        len(labels["RegionID"]),
        len(labels["CityID"]),
        6.0,
    )
    assert numeric_model.score(request) == numeric_model.forest.predict7(*features)


def test_overlong_user_agent_and_missing_request_are_bad_requests(numeric_model: ServedModel) -> None:
    with pytest.raises(BadRequest, match="userAgent is 5000 characters"):
        numeric_model.score(BidRequest(userAgent="x" * 5000))
    with pytest.raises(BadRequest, match="missing"):
        numeric_model.score(None)


_text = st.one_of(st.none(), st.text(max_size=30), st.binary(max_size=12), st.sampled_from(["07", "23", "0"]))


@st.composite
def raw_requests(draw: st.DrawFn, labels: dict[str, tuple[str, ...]]) -> Any:
    """BidRequests as Thrift decodes them: known labels, unseen or odd text, bytes, missing fields."""

    def field(column: str) -> Any:
        known = st.sampled_from(labels[column]) if labels[column] else st.none()
        return draw(st.one_of(known, known, _text))

    return BidRequest(
        dayOfWeek=draw(st.one_of(st.none(), st.integers(-(2**31), 2**31 - 1))),
        hour=draw(st.one_of(_text, st.sampled_from(["7", "٣", "+5", " 8"]))),
        advertiserId=field("AdvertiserID"),
        domainId=field("Domain"),
        regionId=field("RegionID"),
        cityId=field("CityID"),
        userAgent=draw(st.one_of(_text, st.sampled_from([CHROME, IPHONE, "null", b"null", "x" * 4097]))),
        deviceTypeId=draw(st.one_of(st.none(), st.integers(-(2**31), 2**31 - 1))),
    )


def _reference_score(model: ServedModel, request: Any) -> float:
    """The request scored on the reference features (`aik.request_features`), re-coded for the booster."""
    model.check(request)  # the server's bound on the user agent
    return model.forest.predict7(*model.recoded(request_features(request, model.indexer)))


@pytest.mark.parametrize("flavour", ["numeric", "pandas-categorical", "kit-default"])
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_the_hot_path_scores_the_reference_features(
    flavour: str,
    numeric_model: ServedModel,
    pandas_model: ServedModel,
    stump_model: ServedModel,
    data: st.DataObject,
) -> None:
    model = {"numeric": numeric_model, "pandas-categorical": pandas_model, "kit-default": stump_model}[
        flavour
    ]
    request = data.draw(raw_requests(model.indexer.labels))
    try:
        expected = _reference_score(model, request)
    except BadRequest:
        with pytest.raises(BadRequest):
            model.score(request)
        return
    score = model.score(request)
    assert 0.0 <= score <= 1.0
    assert score == expected
    reference = np.asarray(model.recoded(request_features(request, model.indexer)), dtype=np.float32)
    np.testing.assert_array_equal(model.feature_matrix([request])[0], reference)  # the batch path's


#: Odd values a request's fields may carry (the fused path's dicts miss them: the reference rules decide).
_ODD_FIELDS: dict[str, list[Any]] = {
    "dayOfWeek": [None, -5, 0, 7, 300, 2**31 - 1],
    "hour": [None, "", "7", "007", "٣", " 8", "+5", "12.5", b"12", "99999999999"],
    "userAgent": [None, "", "null", b"null", "x" * 4097, IPHONE.encode(), "curl/8.0"],
    "deviceTypeId": [None, -1, 2, 9],
    "domainId": [None, "", b"", "never-seen"],
}


def _outcome(score: Any, request: Any) -> Any:
    try:
        return score(request)
    except BadRequest as exc:
        return str(exc)


@pytest.mark.parametrize("flavour", ["kit-default", "pandas-categorical-stumps"])
def test_the_fused_path_answers_as_the_two_stage_path_on_many_requests(
    flavour: str, stump_artifacts: Artifacts, stump_model: ServedModel, own_artifacts: Artifacts
) -> None:
    if flavour == "kit-default":
        artifacts, model = stump_artifacts, stump_model
    else:  # stumps on pandas categoricals: labels re-coded, the unseen one to a missing value
        features, labels, specs = own_artifacts.features, own_artifacts.labels, own_artifacts.specs
        booster = train_booster(features, labels, specs, flavour="pandas-categorical", rounds=200, depth=1)
        publish_booster(own_artifacts, booster)
        artifacts, model = own_artifacts, served(own_artifacts)
        assert model.recode
    assert model.forest.terms is not None and model.score.__qualname__.startswith("_fused_path")
    two_stage = _hot_path(model, model.forest.predict7)  # the features, then the forest's predict7
    rng = np.random.default_rng(7)
    requests = [bid_request(r) for r in varied_rows(artifacts, n=5000)]  # unseen and missing labels
    for request in requests[::3]:
        name = str(rng.choice(list(_ODD_FIELDS)))
        values = _ODD_FIELDS[name]
        setattr(request, name, values[int(rng.integers(len(values)))])
    for request in requests[1::7]:  # a known label as Thrift's bytes (text that was not valid UTF-8)
        request.advertiserId = request.advertiserId.encode() if request.advertiserId else None
    expected = [_outcome(two_stage, r) for r in requests]
    assert sum(isinstance(e, str) for e in expected) > 10  # some are bad requests, most are scored
    assert [_outcome(model.score, r) for r in requests] == expected
    assert [_outcome(model.score, r) for r in requests] == expected  # again: the user agents remembered


def test_version_is_the_short_sha256_of_the_booster_bytes(
    numeric_artifacts: Artifacts, numeric_model: ServedModel
) -> None:
    data = storage.read_bytes(numeric_artifacts.model_uri)
    assert numeric_model.version == model_version(data) == hashlib.sha256(data).hexdigest()[:12]


def test_validation_rejects_a_forest_that_disagrees_with_xgboost(numeric_model: ServedModel) -> None:
    with pytest.raises(ArtifactError, match="differ from xgboost"):
        validate(numeric_model, lambda x: numeric_model.forest.predict(x) + 0.01)


# -- load errors name the parameter or the URI -----------------------------------------------------


def test_missing_parameter_is_named(tmp_path: Path) -> None:
    store = params.LocalParameterStore(tmp_path / "parameters.json")
    with pytest.raises(ParameterNotFound, match="/aik/xgboost/path"):
        ModelSources.from_store(store)


def test_missing_artifact_is_named(own_artifacts: Artifacts) -> None:
    uri = own_artifacts.store.get(params.PIPELINE_MODEL)
    storage.delete(uri)
    with pytest.raises(ArtifactNotFound) as info:
        served(own_artifacts)
    assert uri in str(info.value)


@pytest.mark.parametrize(
    ("parameter", "content", "message"),
    [
        (params.PIPELINE_MODEL, b"PK not a zip", "not a valid MLeap pipeline bundle"),
        (params.PIPELINE_SCHEMA, b"{not json", "pipeline schema is not JSON"),
        (params.PIPELINE_SCHEMA, b"[1, 2]", "JSON object of field -> Spark type name"),
        (params.PIPELINE_SCHEMA, json.dumps({"BidID": "String"}).encode(), "has no field AdvertiserID"),
        (params.XGBOOST_PATH, b"", "the model file is empty"),
        (params.XGBOOST_PATH, b"\x00garbage" * 50, "not an xgboost model xgboost can load"),
    ],
    ids=["bundle-zip", "schema-json", "schema-object", "schema-field", "model-empty", "model-garbage"],
)
def test_corrupt_artifacts_are_rejected_naming_the_uri(
    own_artifacts: Artifacts, parameter: str, content: bytes, message: str
) -> None:
    uri = own_artifacts.store.get(parameter)
    storage.write_bytes(uri, content)
    with pytest.raises(ArtifactError, match=message) as info:
        served(own_artifacts)
    assert str(info.value).startswith(f"cannot use {uri}: ")


def test_bundle_without_an_indexer_is_rejected(own_artifacts: Artifacts) -> None:
    uri = own_artifacts.store.get(params.PIPELINE_MODEL)
    write_bundle(uri, [s for s in own_artifacts.specs if s.input_col != "CityID"])
    with pytest.raises(ArtifactError, match="no StringIndexer for CityID"):
        served(own_artifacts)


def test_bundle_with_wrong_output_column_is_rejected(own_artifacts: Artifacts) -> None:
    uri = own_artifacts.store.get(params.PIPELINE_MODEL)
    specs = [
        StringIndexerSpec(s.input_col, "CityIndex" if s.input_col == "CityID" else s.output_col, s.labels)
        for s in own_artifacts.specs
    ]
    write_bundle(uri, specs)
    with pytest.raises(ArtifactError, match="writes CityIndex, expected IndexCityID"):
        served(own_artifacts)


def test_booster_with_another_feature_count_is_rejected(own_artifacts: Artifacts) -> None:
    x = own_artifacts.features[:, :6]
    booster = xgboost.train({"objective": "binary:logistic"}, xgboost.DMatrix(x, own_artifacts.labels), 3)
    publish_booster(own_artifacts, booster)
    with pytest.raises(ArtifactError, match="the booster has 6 features, the server sends 7"):
        served(own_artifacts)


def test_booster_with_features_in_another_order_is_rejected(own_artifacts: Artifacts) -> None:
    names = list(reversed(FEATURE_COLUMNS))
    data = xgboost.DMatrix(own_artifacts.features[:, ::-1], own_artifacts.labels, feature_names=names)
    publish_booster(own_artifacts, xgboost.train({"objective": "binary:logistic"}, data, 3))
    with pytest.raises(ArtifactError, match="expected \\['dow', 'hour'"):
        served(own_artifacts)


def test_pipeline_schema_written_by_the_fixtures_is_the_contract(numeric_artifacts: Artifacts) -> None:
    schema = json.loads(storage.read_text(numeric_artifacts.store.get(params.PIPELINE_SCHEMA)))
    assert schema == RAW_SCHEMA


def test_fixture_workspace_is_a_normal_local_workspace(tmp_path: Path) -> None:
    artifacts = build_artifacts(tmp_path / "ws", rows=500, rounds=2, inference_rows=10)
    assert artifacts.store.get(params.XGBOOST_PATH).startswith(str(tmp_path / "ws" / "bucket"))
    assert (
        len(storage.read_text(artifacts.store.get(params.INFERENCE_DATA) + "part-00000.json").splitlines())
        == 10
    )


def test_loads_from_ssm_and_s3_like_from_the_local_store(aws: None, numeric_artifacts: Artifacts) -> None:
    import boto3

    from ad_server_emulator.emulator import load_rows
    from filtering_server.model import fingerprints

    boto3.client("s3").create_bucket(Bucket="aik-data")
    store = params.SsmParameterStore(region="us-east-1")
    local = numeric_artifacts.store
    for name, key in (
        (params.XGBOOST_PATH, "binary-model/xgboost.bin"),
        (params.PIPELINE_MODEL, "pipeline-model/model.zip"),
        (params.PIPELINE_SCHEMA, "pipeline-model/pipeline-schema.json"),
    ):
        uri = f"s3://aik-data/{key}"
        storage.copy(local.get(name), uri)
        store.put(name, uri)
    inference = local.get(params.INFERENCE_DATA)
    storage.copy(inference + "part-00000.json", "s3://aik-data/pipeline-model/inference-data/part-00000.json")
    store.put(params.INFERENCE_DATA, "s3://aik-data/pipeline-model/inference-data/")

    sources = ModelSources.from_store(store)
    model = load_model(sources)
    assert all(p.startswith("etag:") for p in fingerprints(sources))
    assert model.version == served(numeric_artifacts).version
    rows = load_rows(store.get(params.INFERENCE_DATA), 50)
    assert rows == numeric_artifacts.rows[:50]
    expected = numeric_artifacts.predict_reference(index_features(rows, numeric_artifacts.specs))
    assert np.max(np.abs(np.array([model.score(bid_request(r)) for r in rows]) - expected)) < TOLERANCE


def test_pandas_categorical_day_hour_and_device_are_recoded_too(own_artifacts: Artifacts) -> None:
    import pandas as pd
    from serving_fixtures import pandas_frame

    def frame(features: np.ndarray) -> pd.DataFrame:
        data = pandas_frame(features, own_artifacts.specs)
        data["device_type_id"] = pd.Categorical(features[:, 6].astype(int), categories=[6, 5, 4, 3, 2, 1, 0])
        data["dow"] = pd.Categorical(features[:, 0].astype(int), categories=[7, 1, 2, 3, 4, 5, 6])
        return data

    dtrain = xgboost.DMatrix(frame(own_artifacts.features), own_artifacts.labels, enable_categorical=True)
    booster = xgboost.train(
        {"objective": "binary:logistic", "max_cat_to_onehot": 1, "max_depth": 4}, dtrain, 20
    )
    publish_booster(own_artifacts, booster)
    model = served(own_artifacts)
    assert set(model.forest.category_encodings) == {0, 2, 3, 4, 5, 6}
    rows = own_artifacts.rows[:2000]
    expected = booster.predict(
        xgboost.DMatrix(frame(index_features(rows, own_artifacts.specs)), enable_categorical=True)
    )
    got = np.array([model.score(bid_request(r)) for r in rows])
    assert np.max(np.abs(got - expected)) < TOLERANCE


def test_string_categories_are_matched_by_the_index_text() -> None:
    from filtering_server.model import _recoder

    recode = _recoder(("5", "3", "x"))
    assert (recode(5.0), recode(3.0)) == (0.0, 1.0)
    assert math.isnan(recode(7.0)) and math.isnan(recode(math.nan))
