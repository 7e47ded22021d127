"""The served model: booster + feature bundle + schema, loaded from their URIs, validated and versioned.

A `ServedModel` turns a raw BidRequest into the seven features the booster was trained on — by the
rules of `aik.request_features`, the one reference the Spark job's features are tested against — and
scores them with its release's `Scorer` (the flattened forest for a booster). The server adds a bound
(a user agent longer than `max_string` characters is a `BadRequest`) and, when the booster was trained
on pandas categoricals (xgboost >= 3 stores their categories in the model), re-codes a feature to its
position among the training categories; a value the training data never had becomes missing
(xgboost itself refuses such a row).

Over 400 lines on purpose: loading, validating and scoring share the served model's recoding state.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy as np

from aik import params, releases, storage
from aik.bundle import FeatureIndexer, indexer_from_specs, parse_bundle
from aik.device import device_type_id
from aik.errors import AikError, ArtifactError
from aik.onnx_model import INSTALL_HINT
from aik.params import ParameterStore
from aik.request_features import (
    REQUEST_COLUMNS,
    as_text,
    device_feature,
    hour_feature,
    integer_feature,
    request_features,
)
from aik.schema import FEATURE_COLUMNS, INDEXED_COLUMNS
from filtering_server.forest import Forest, forest_from_json
from filtering_server.forest.additive import Terms
from filtering_server.scorer import Scorer
from filtering_server.xgboost_child import BoosterInspector

log = logging.getLogger(__name__)

#: The parameters that name the served artifacts, in the order they are reported.
MODEL_PARAMETERS: tuple[str, ...] = (params.XGBOOST_PATH, params.PIPELINE_MODEL, params.PIPELINE_SCHEMA)
DEFAULT_MAX_STRING = 4096
#: Largest difference from xgboost's own prediction a new model may show on the probe set.
PROBE_TOLERANCE = 1e-5
PROBE_ROWS = 512

_MISS = object()


class BadRequest(AikError):
    """A request the server answers with an error reply (the connection stays open)."""


#: Spark's int, which the feature job casts the hour to: an integer hour outside it is refused.
_INT_MAX = 2**31 - 1
_INT_DIGITS = 10


def check_hour(value: object) -> None:
    """`BadRequest` for an integer hour outside Spark's int, judged by its digits first (int() of
    thousands of digits is slow, and refused by Python beyond 4,300)."""
    text = value.decode("ascii", "replace") if isinstance(value, bytes | bytearray) else value
    if not isinstance(text, str):
        return
    digits = text.strip().lstrip("+-").lstrip("0")
    if not (digits.isascii() and digits.isdigit()):
        return  # not an integer: a missing value, not an error
    if len(digits) > _INT_DIGITS:
        raise BadRequest(f"hour has {len(digits)} digits (an integer hour is at most {_INT_MAX})")
    hour = int(text)
    if not -_INT_MAX - 1 <= hour <= _INT_MAX:
        raise BadRequest(f"hour {hour} is out of range (at most {_INT_MAX})")


@dataclass(frozen=True)
class ModelSources:
    """The URIs of the three artifacts: a release's files, or the values of the three model parameters.

    `model_uri` is the file the server scores: the booster, or a neural release's ONNX export.
    """

    model_uri: str
    bundle_uri: str
    schema_uri: str
    #: The release's manifest URI (the pointer's value) when the store has a live release.
    release_uri: str | None = None
    #: The release's id and the sha256 its manifest gives each file (model, bundle, schema).
    release_id: str | None = None
    digests: tuple[str, str, str] | None = None
    #: The model family the release's manifest names (the three parameters name a booster).
    family: str = releases.BOOSTER_FAMILY

    @classmethod
    def from_store(cls, store: ParameterStore) -> ModelSources:
        """The live release when `/aik/release/live` is set, else the three model parameters."""
        pointer = releases.live_uri(store)
        if pointer is None:
            model, bundle, schema = (store.get(name) for name in MODEL_PARAMETERS)
            return cls(model, bundle, schema)
        return cls.from_release(releases.read_release(pointer))

    @classmethod
    def from_release(cls, release: releases.Release) -> ModelSources:
        """The files of one release (an experiment's arm, or the live one)."""
        files = release.files
        role = release.served_role
        return cls(
            release.file_uri(role),
            release.file_uri("bundle"),
            release.file_uri("schema"),
            release_uri=release.manifest_uri,
            release_id=release.id,
            digests=(files[role].sha256, files["bundle"].sha256, files["schema"].sha256),
            family=release.family,
        )

    def uris(self) -> tuple[str, str, str]:
        """The three URIs."""
        return (self.model_uri, self.bundle_uri, self.schema_uri)


def fingerprints(sources: ModelSources) -> tuple[str, ...]:
    """Change markers of the three artifacts (raises `ArtifactNotFound` naming a missing one)."""
    return tuple(storage.fingerprint(uri) for uri in sources.uris())


def model_version(model_bytes: bytes) -> str:
    """The model version: the first 12 hex digits of the served model file's sha256."""
    return hashlib.sha256(model_bytes).hexdigest()[:12]


def _recoder(categories: Sequence[Any]) -> Callable[[float], float]:
    """Value -> position among the training categories (NaN when the training data never had it)."""
    if categories and isinstance(categories[0], str):
        table_s = {c: float(i) for i, c in enumerate(categories)}

        def recode_s(value: float) -> float:
            if value != value:
                return value
            return table_s.get(str(int(value)), math.nan)

        return recode_s
    table_f = {float(c): float(i) for i, c in enumerate(categories)}

    def recode_f(value: float) -> float:
        if value != value:
            return value
        return table_f.get(float(value), math.nan)

    return recode_f


@dataclass
class ServedModel:
    """A validated model ready to score: features from raw requests, then its scorer."""

    version: str
    sources: ModelSources
    #: what scores the feature rows: the compiled forest of a booster
    scorer: Scorer
    indexer: FeatureIndexer
    schema: dict[str, str]
    fingerprints: tuple[str, ...] = ()
    loaded_at: float = field(default_factory=time.time)
    load_seconds: float = 0.0
    max_string: int = DEFAULT_MAX_STRING
    #: feature position -> re-coding to the booster's training categories (pandas-categorical models)
    recode: dict[int, Callable[[float], float]] = field(init=False, repr=False)
    #: `score(request)`: the likelihood to bid for one raw BidRequest, the server's hot path. Built per
    #: model: the reference rules specialised into one closure over local lookups (`_hot_path`), which
    #: for an additive forest also does the scoring (`_fused_path`).
    score: Callable[[Any], float] = field(init=False, repr=False, compare=False)
    #: the same specialised closure returning the features: what `score_batch` scores
    fast_features: Callable[[Any], tuple[float, ...]] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        encodings = self.scorer.category_encodings
        self.recode = {position: _recoder(categories) for position, categories in encodings.items()}
        if self._recodes_non_index():  # rare (categorical dow/hour/device): the reference path
            self.score, self.fast_features = self._score_general, self.features
        else:
            terms = self.scorer.terms if isinstance(self.scorer, Forest) else None
            two_stage = _hot_path(self, self.scorer.predict7)
            self.score = two_stage if terms is None else _fused_path(self, terms, two_stage)
            self.fast_features = _hot_path(self, _pack)

    @property
    def forest(self) -> Forest:
        """The scorer as the compiled forest (TypeError for a release another runtime scores)."""
        if not isinstance(self.scorer, Forest):
            raise TypeError(f"model {self.version} is scored by {self.scorer.describe()}, not a forest")
        return self.scorer

    @property
    def loaded_at_iso(self) -> str:
        """Load time in ISO 8601 UTC."""
        return datetime.fromtimestamp(self.loaded_at, UTC).isoformat(timespec="seconds")

    def _recodes_non_index(self) -> bool:
        return any(FEATURE_COLUMNS[p] not in INDEXED_COLUMNS.values() for p in self.recode)

    def check(self, request: Any) -> None:
        """The server's bounds on a request (`BadRequest`): present, its user agent not too long, and an
        integer hour within Spark's int."""
        if request is None:
            raise BadRequest("the request struct is missing")
        agent = as_text(request.userAgent)
        if agent is not None and len(agent) > self.max_string:
            raise BadRequest(f"userAgent is {len(agent)} characters (limit {self.max_string})")
        check_hour(request.hour)

    def recoded(self, row: Sequence[float]) -> tuple[float, ...]:
        """Pipeline features re-coded to the booster's training categories (unchanged for most models)."""
        if not self.recode:
            return tuple(row)
        out = list(row)
        for position, recode in self.recode.items():
            out[position] = recode(out[position])
        return tuple(out)

    def features(self, request: Any) -> tuple[float, ...]:
        """The seven features of a raw BidRequest, in the booster's order (after any category re-coding)."""
        self.check(request)
        return self.recoded(request_features(request, self.indexer))

    def _score_general(self, request: Any) -> float:
        return self.scorer.predict7(*self.features(request))

    def feature_matrix(self, requests: Sequence[Any]) -> np.ndarray:
        """Features of many requests as a float32 matrix (the batch kernel's input)."""
        out = np.empty((len(requests), len(FEATURE_COLUMNS)), dtype=np.float32)
        features = self.fast_features
        for i, request in enumerate(requests):
            out[i] = features(request)
        return out

    def score_batch(self, requests: Sequence[Any]) -> list[float]:
        """Likelihoods for many requests with the batch kernel (the same numbers as `score`)."""
        if len(requests) == 0:
            return []
        return self.score_features(self.feature_matrix(requests)).tolist()

    def score_features(self, rows: np.ndarray) -> np.ndarray:
        """Likelihoods of a matrix of feature rows (`feature_matrix`'s layout) with the batch path."""
        return self.scorer.predict(rows)


def _pack(*features: float) -> tuple[float, ...]:
    return features


#: BidRequest attribute -> (label -> its feature value, the feature value of an unseen label)
IndexTables = dict[str, tuple[dict[str, float], float]]


def index_tables(model: ServedModel) -> IndexTables:
    """Each index column's labels mapped to their feature values (re-coded already), and its unseen value."""
    tables: IndexTables = {}
    for attr, column in REQUEST_COLUMNS.items():
        code = model.recode.get(FEATURE_COLUMNS.index(INDEXED_COLUMNS[column]), float)
        labels = model.indexer.labels[column]
        tables[attr] = ({label: code(float(i)) for i, label in enumerate(labels)}, code(float(len(labels))))
    return tables


def index_of_value(tables: IndexTables, attr: str, value: object) -> float:
    """The feature value of any raw value of an index field (bytes, None, unseen: the reference's rules)."""
    table, unseen = tables[attr]
    text = as_text(value)
    return unseen if text is None else table.get(text, unseen)


def _hot_path(model: ServedModel, emit: Callable[..., Any]) -> Callable[[Any], Any]:
    """`emit(*features)` of a raw request, for a model whose re-coding touches only the Index* features.

    The reference rules (`aik.request_features`) inlined into one closure over local lookups: each
    index column a dict of label -> feature (re-coded already); the common case of each field (a known
    str label, a str user agent within the bound, an int day, an "HH" hour) is tested first, anything
    else goes through the reference functions. With `emit` the scorer's `predict7` it is
    `ServedModel.score`; with `_pack`, the batch path's features. Property-tested against
    `ServedModel.features`.
    """
    tables = index_tables(model)
    index_of = functools.partial(index_of_value, tables)

    adv_get, adv_unseen = tables["advertiserId"][0].get, tables["advertiserId"][1]
    dom_get, dom_unseen = tables["domainId"][0].get, tables["domainId"][1]
    reg_get, reg_unseen = tables["regionId"][0].get, tables["regionId"][1]
    city_get, city_unseen = tables["cityId"][0].get, tables["cityId"][1]
    check = model.check
    miss = _MISS
    max_string = model.max_string

    def specialised(request: Any) -> Any:
        if request is None:
            raise BadRequest("the request struct is missing")
        dow = request.dayOfWeek
        hour = request.hour
        agent = request.userAgent
        adv = adv_get(request.advertiserId, miss)
        dom = dom_get(request.domainId, miss)
        reg = reg_get(request.regionId, miss)
        city = city_get(request.cityId, miss)
        if adv is miss:
            adv = index_of("advertiserId", request.advertiserId) if request.advertiserId else adv_unseen
        if dom is miss:
            dom = index_of("domainId", request.domainId) if request.domainId else dom_unseen
        if reg is miss:
            reg = index_of("regionId", request.regionId) if request.regionId else reg_unseen
        if city is miss:
            city = index_of("cityId", request.cityId) if request.cityId else city_unseen
        if agent.__class__ is str and 0 < len(agent) <= max_string and agent != "null":
            dev = float(device_type_id(agent))
        else:
            check(request)
            dev = device_feature(agent, request.deviceTypeId)
        # every argument a float: one compiled kernel signature, never a recompilation
        dow = float(dow) if dow.__class__ is int else integer_feature(dow)
        if hour.__class__ is str and len(hour) < _INT_DIGITS and hour.isascii() and hour.isdigit():
            hour = float(int(hour))
        else:
            check_hour(hour)
            hour = hour_feature(hour)
        return emit(dow, hour, adv, dom, reg, city, dev)

    return specialised


#: Most user agents a fused path remembers (as many as `aik.device`'s cache holds).
_AGENTS_KEPT = 65536


def _fused_path(
    model: ServedModel, terms: Terms, two_stage: Callable[[Any], float]
) -> Callable[[Any], float]:
    """`score` for an additive forest of seven features: each raw field straight to its margin term.

    `_hot_path` followed by the forest's `predict7` looks each Index* label up twice (label -> index,
    index -> term), parses the hour, calls `device_type_id` through its cache, and runs two Python
    functions. Between paced requests those tables and that code are evicted from the CPU caches, and
    refilling them is most of what the model adds to a paced request (docs/serving.md, the tail). Here
    one dict per field maps its common raw values (a known label, a day, an hour string, a user agent
    seen before) to the forest's term for them, composed at load time from the forest's own tables,
    and the terms are added in the forest's feature order, as `predict7` adds them. A request with any
    other value is scored by `two_stage` (`_hot_path` then `predict7`, whose rules also refuse bad
    requests), which then remembers its user agent. Either way the same likelihood bit for bit (tested).
    """
    base, (t_dow, t_hour, t_adv, t_dom, t_reg, t_city, t_dev) = terms
    tables = index_tables(model)

    def composed(attr: str, term: Mapping[float, float]) -> Callable[[Any, Any], Any]:
        # label -> the term of its index (re-coded already)
        return {label: term[value] for label, value in tables[attr][0].items()}.get

    adv_get, dom_get = composed("advertiserId", t_adv), composed("domainId", t_dom)
    reg_get, city_get = composed("regionId", t_reg), composed("cityId", t_city)
    dow_get = {day: t_dow[float(day)] for day in range(-1, 256)}.get
    hour_get = {text: t_hour[hour_feature(text)] for h in range(100) for text in (str(h), f"{h:02d}")}.get
    agents: dict[str, float] = {}
    agent_get = agents.get
    miss: Any = _MISS  # a dict's answer for a value it lacks
    max_string = model.max_string
    exp = math.exp

    def fused(request: Any) -> float:
        if request is None:
            raise BadRequest("the request struct is missing")
        dow = dow_get(request.dayOfWeek, miss)
        hour = hour_get(request.hour, miss)
        adv = adv_get(request.advertiserId, miss)
        dom = dom_get(request.domainId, miss)
        reg = reg_get(request.regionId, miss)
        city = city_get(request.cityId, miss)
        dev = agent_get(request.userAgent, miss)
        if (
            dow is miss
            or hour is miss
            or adv is miss
            or dom is miss
            or reg is miss
            or city is miss
            or dev is miss
        ):
            likelihood = two_stage(request)  # raises BadRequest for a bad request, as the reference does
            agent = request.userAgent
            valid = agent.__class__ is str and 0 < len(agent) <= max_string and agent != "null"
            if valid and agent not in agents and len(agents) < _AGENTS_KEPT:
                agents[agent] = t_dev[float(device_type_id(agent))]  # the term `two_stage` used
            return likelihood
        return 1.0 / (1.0 + exp(-(base + dow + hour + adv + dom + reg + city + dev)))

    return fused


# ------------------------------------------------------------------------------------------------
# Loading and validation
# ------------------------------------------------------------------------------------------------


def _parse_schema(data: bytes, uri: str) -> dict[str, str]:
    try:
        schema = json.loads(data)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ArtifactError(uri, f"pipeline schema is not JSON ({exc})") from exc
    if not isinstance(schema, dict) or not all(isinstance(v, str) for v in schema.values()):
        raise ArtifactError(uri, "pipeline schema must be a JSON object of field -> Spark type name")
    return schema


def _check_bundle(indexer: FeatureIndexer, schema: Mapping[str, str], sources: ModelSources) -> None:
    for column, output in INDEXED_COLUMNS.items():
        if column not in indexer.lookups:
            raise ArtifactError(sources.bundle_uri, f"the bundle has no StringIndexer for {column}")
        if indexer.output_columns[column] != output:
            raise ArtifactError(
                sources.bundle_uri,
                f"the {column} indexer writes {indexer.output_columns[column]}, expected {output}",
            )
        if column not in schema:
            raise ArtifactError(sources.schema_uri, f"the pipeline schema has no field {column}")


def _check_digests(sources: ModelSources, contents: tuple[bytes, bytes, bytes]) -> None:
    """Every file of a release is the one its manifest names (an altered file is refused)."""
    assert sources.digests is not None
    for uri, data, expected in zip(sources.uris(), contents, sources.digests, strict=True):
        actual = hashlib.sha256(data).hexdigest()
        if actual != expected:
            raise ArtifactError(
                uri,
                f"does not match release {sources.release_id}'s manifest "
                f"(sha256 {actual[:12]}, manifest {expected[:12]})",
            )


def _check_binding(
    bound: str | None, indexer: FeatureIndexer, sources: ModelSources, kind: str = "booster"
) -> None:
    """Refuse a bundle the model was not trained on (its codes would mean other values to the model).

    `bound` is the digest the model carries (a booster's attribute, an ONNX file's metadata). A
    release's model must carry it; a booster named by the model parameters without one is served with
    a warning.
    """
    try:
        releases.check_binding(
            releases.indexer_sha256(indexer),
            bound,
            bundle_uri=sources.bundle_uri,
            model_uri=sources.model_uri,
            required=sources.release_uri is not None,
            kind=kind,
        )
    except releases.ReleaseError as exc:
        raise ArtifactError(sources.bundle_uri, str(exc)) from exc
    if bound is None:
        log.warning(
            "the booster %s does not name the bundle it was trained on (no %s attribute): serving it "
            "with %s unchecked",
            sources.model_uri,
            releases.BOOSTER_ATTRIBUTE,
            sources.bundle_uri,
        )


def _check_forest(forest: Forest, uri: str) -> None:
    if forest.num_feature != len(FEATURE_COLUMNS):
        raise ArtifactError(
            uri, f"the booster has {forest.num_feature} features, the server sends {len(FEATURE_COLUMNS)}"
        )
    if forest.feature_names and tuple(forest.feature_names) != FEATURE_COLUMNS:
        raise ArtifactError(
            uri,
            f"the booster's features are {list(forest.feature_names)}, expected {list(FEATURE_COLUMNS)}",
        )


def probe_rows(indexer: FeatureIndexer, rows: int = PROBE_ROWS, seed: int = 0) -> np.ndarray:
    """Raw feature rows covering every feature's range: seen and unseen indices, and missing values."""
    rng = np.random.default_rng(seed)
    columns = []
    for name in FEATURE_COLUMNS:
        if name == "dow":
            columns.append(rng.integers(1, 8, rows))
        elif name == "hour":
            columns.append(rng.integers(0, 24, rows))
        elif name == "device_type_id":
            columns.append(rng.integers(0, 7, rows))
        else:
            raw = next(c for c, out in INDEXED_COLUMNS.items() if out == name)
            columns.append(rng.integers(0, len(indexer.labels[raw]) + 1, rows))  # + unseen
    x = np.column_stack(columns).astype(np.float64)
    x[rng.random(x.shape) < 0.02] = np.nan
    return x


def probe_features(model: ServedModel, rows: int = PROBE_ROWS) -> np.ndarray:
    """The probe rows as the features the booster sees (re-coded as a request's features are)."""
    raw = probe_rows(model.indexer, rows)
    if not model.recode:
        return raw
    return np.asarray([model.recoded(row) for row in raw.tolist()], dtype=np.float64)


def validate(model: ServedModel, reference: Callable[[np.ndarray], np.ndarray] | None) -> None:
    """Reject a model that scores the probe set outside [0, 1], or differently from its `reference`
    (xgboost itself, for the compiled trees)."""
    uri = model.sources.model_uri
    x = probe_features(model)
    ours = model.scorer.predict(x)
    if not np.all(np.isfinite(ours)) or ours.min() < 0.0 or ours.max() > 1.0:
        raise ArtifactError(uri, "the model scores the probe set outside [0, 1]")
    if reference is not None:
        theirs = reference(x)
        diff = float(np.max(np.abs(theirs - ours)))
        if not diff <= PROBE_TOLERANCE:
            raise ArtifactError(uri, f"the compiled trees differ from xgboost by {diff:.2e} on the probe set")
    one = model.score(_probe_request(model))
    if not 0.0 <= one <= 1.0:
        raise ArtifactError(uri, f"a probe request scores {one}")


def _probe_request(model: ServedModel) -> Any:
    from filtering_api.idl import BidRequest

    labels = model.indexer.labels
    return BidRequest(
        bidId="probe",
        dayOfWeek=3,
        hour="12",
        regionId=(labels["RegionID"] or ("",))[0],
        cityId=(labels["CityID"] or ("",))[0],
        domainId=(labels["Domain"] or ("",))[0],
        advertiserId=(labels["AdvertiserID"] or ("",))[0],
        userAgent="Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 Chrome/120.0 Safari/537.36",
    )


def load_model(
    sources: ModelSources, *, max_string: int = DEFAULT_MAX_STRING, layout: str | None = None
) -> ServedModel:
    """Fetch, parse, build and validate; any failure raises an `AikError` naming the URI at fault."""
    start = time.monotonic()
    prints = fingerprints(sources)  # before reading: a replacement after this is seen at the next poll
    model_bytes = storage.read_bytes(sources.model_uri)
    bundle_bytes = storage.read_bytes(sources.bundle_uri)
    schema_bytes = storage.read_bytes(sources.schema_uri)
    if sources.digests is not None:
        _check_digests(sources, (model_bytes, bundle_bytes, schema_bytes))
    schema = _parse_schema(schema_bytes, sources.schema_uri)
    indexer = indexer_from_specs(parse_bundle(bundle_bytes, sources.bundle_uri))
    _check_bundle(indexer, schema, sources)
    if sources.family != releases.BOOSTER_FAMILY:
        model = _load_neural(sources, model_bytes, indexer, schema, prints, max_string)
        model.load_seconds = time.monotonic() - start
        return model
    with BoosterInspector(sources.model_uri) as inspector:
        doc = inspector.load_json(model_bytes)
        attributes = (doc.get("learner") or {}).get("attributes") or {}
        _check_binding(attributes.get(releases.BOOSTER_ATTRIBUTE), indexer, sources)
        forest = forest_from_json(doc, sources.model_uri, layout)
        _check_forest(forest, sources.model_uri)
        model = ServedModel(
            version=model_version(model_bytes),
            sources=sources,
            scorer=forest,
            indexer=indexer,
            schema=schema,
            fingerprints=prints,
            max_string=max_string,
        )
        validate(model, inspector.predict)
    model.load_seconds = time.monotonic() - start
    if forest.best_iteration is not None and forest.best_iteration + 1 < forest.num_trees:
        log.warning(
            "model %s: best_iteration is %d but it has %d trees; like Booster.predict the server uses "
            "every tree (publish booster[: best_iteration + 1] to serve the early-stopped model)",
            model.version,
            forest.best_iteration,
            forest.num_trees,
        )
    return model


def _load_neural(
    sources: ModelSources,
    model_bytes: bytes,
    indexer: FeatureIndexer,
    schema: dict[str, str],
    prints: tuple[str, ...],
    max_string: int,
) -> ServedModel:
    """A neural release scored by ONNX Runtime from its ONNX export, bound to the release's bundle.

    Without onnxruntime the release is refused in one line naming it (the current model keeps serving).
    """
    from aik.onnx_model import BINDING_KEY, FAMILY_KEY, OnnxRuntimeMissing
    from filtering_server.onnx_scorer import load_onnx_scorer

    try:
        scorer, meta = load_onnx_scorer(model_bytes, sources.model_uri, sources.family, len(FEATURE_COLUMNS))
    except OnnxRuntimeMissing as exc:
        where = sources.release_uri or sources.model_uri
        raise ArtifactError(
            where,
            f"a {sources.family} release is scored by ONNX Runtime, which is not installed here "
            f"({INSTALL_HINT})",
        ) from exc
    named = meta.get(FAMILY_KEY)
    if named is not None and named != sources.family:
        raise ArtifactError(
            sources.model_uri, f"the ONNX model is a {named} model, its release says {sources.family}"
        )
    _check_binding(meta.get(BINDING_KEY), indexer, sources, kind="model")
    model = ServedModel(
        version=model_version(model_bytes),
        sources=sources,
        scorer=scorer,
        indexer=indexer,
        schema=schema,
        fingerprints=prints,
        max_string=max_string,
    )
    validate(model, None)  # PyTorch parity was the release's onnx_parity gate; here: probes in [0, 1]
    return model
