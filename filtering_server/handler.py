"""The `BidRequestFilter` methods: score one request, a batch, columns, candidate advertisers; health.

Called by `processor.Processor` with the decoded arguments; a `BadRequest` becomes an error reply and
the connection stays open. Each call reads what is served (`holder.serving`: the arms and the
experiment) once, so a hot swap or an experiment starting in the middle of a call never mixes two
states. Each request is answered by its arm's release: the champion's without an experiment, else the
arm `aik.experiments.assign` gives its BidID. Results carry the arm(s) that answered (not on the wire:
`filter`'s reply is the original's, byte for byte) for the per-arm metrics and the prediction log.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from functools import partial
from typing import TYPE_CHECKING, Any

import numpy as np

from aik import experiments as X
from filtering_api.idl import (
    Arm,
    ArmResponse,
    BidBatchResponse,
    BidColumnsResponse,
    BidResponse,
    HealthStatus,
)
from filtering_server.columns import ColumnScorer, bid_units, column_rows, column_strings_at
from filtering_server.model import BadRequest, ServedModel
from filtering_server.serving import ArmModel, Serving

if TYPE_CHECKING:
    from filtering_api.metrics import MetricsAggregator
    from filtering_server.prediction_log import PredictionLog
    from filtering_server.server import FilteringServer


#: Per arm that answered a call: (arm name, requests, sum of their likelihoods).
Tally = tuple[tuple[str, int, float], ...]


class Answer(BidResponse):
    """`filter`'s reply and its tally (never encoded: the reply's bytes are BidResponse's)."""

    __slots__ = ("tally",)


class ArmAnswer(ArmResponse):
    """`filterArm`'s reply and its tally."""

    __slots__ = ("tally",)


class BatchAnswer(BidBatchResponse):
    """`filterBatch`'s (and `filterAdvertisers`') reply and its tally."""

    __slots__ = ("tally",)


class ColumnsAnswer(BidColumnsResponse):
    """`filterColumns`' reply and its tally."""

    __slots__ = ("tally",)


def arm_info(arm: ArmModel) -> Any:
    """The Thrift `Arm` of an arm."""
    return Arm(arm=arm.arm, release=arm.release, modelVersion=arm.model.version, share=arm.share)


class FilteringHandler:
    """The service's methods, answered from what `server.holder` serves."""

    def __init__(self, server: FilteringServer, predictions: PredictionLog | None = None) -> None:
        self.server = server
        #: the sampled prediction log (None: off)
        self.predictions = predictions
        #: the columnar calls' scorer of each served model, by id(model) (rebuilt when a model changes)
        self._columns: dict[int, ColumnScorer] = {}

    def _column_scorer(self, model: ServedModel) -> ColumnScorer:
        scorer = self._columns.get(id(model))
        if scorer is None or scorer.model is not model:
            scorer = ColumnScorer(model)  # two threads may both build one: harmless
            # keep the scorers of the models still served (each arm's), replaced as one reference
            serving = self.server.holder.serving
            served = {id(a.model) for a in serving.arms} if serving is not None else set()
            kept = {k: v for k, v in self._columns.items() if k in served}
            self._columns = {**kept, id(model): scorer}
        return scorer

    def _serving(self) -> Serving:
        serving = self.server.holder.serving
        if serving is None:
            raise BadRequest("no model loaded")
        return serving

    def filter(self, request: Any) -> Any:
        """The likelihood to bid for one request."""
        if self.server.echo:
            return BidResponse(likelihoodToBid=0.5)
        serving = self.server.holder.serving
        if serving is None:
            raise BadRequest("no model loaded")
        arm = serving.champion if serving.experiment is None else serving.pick(request)
        likelihood = arm.model.score(request)
        if self.predictions is not None:
            self.predictions.offer(request.bidId, serving.experiment_name, arm, likelihood)
        answer = Answer(likelihoodToBid=likelihood)
        answer.tally = ((arm.arm, 1, likelihood),)
        return answer

    def filterArm(self, request: Any) -> Any:  # the IDL's method name
        """`filter`, saying which arm and release answered."""
        if self.server.echo:
            return ArmResponse(likelihoodToBid=0.5, arm=Arm(arm="echo", release="echo", modelVersion="echo"))
        serving = self._serving()
        arm = serving.pick(request)
        likelihood = arm.model.score(request)
        if self.predictions is not None:
            self.predictions.offer(request.bidId, serving.experiment_name, arm, likelihood)
        answer = ArmAnswer(likelihoodToBid=likelihood, arm=arm_info(arm), experiment=serving.experiment_name)
        answer.tally = ((arm.arm, 1, likelihood),)
        return answer

    def filterBatch(self, requests: Any) -> Any:  # the IDL's method name
        """The likelihoods of many requests, and the arms and model versions that scored them."""
        limit = self.server.config.max_batch
        if requests is None:
            raise BadRequest("the requests list is missing")
        if len(requests) > limit:
            raise BadRequest(f"{len(requests)} requests in one batch (limit {limit})")
        if self.server.echo:
            return BidBatchResponse(likelihoodToBid=[0.5] * len(requests), modelVersion="echo")
        serving = self._serving()
        if serving.experiment is None:
            arm = serving.champion
            likelihoods = arm.model.score_batch(requests)
            answer = BatchAnswer(
                likelihoodToBid=likelihoods, modelVersion=arm.model.version, arms=[arm_info(arm)]
            )
            answer.tally = ((arm.arm, len(likelihoods), sum(likelihoods)),)
            arms_of = None
        else:
            answer, arms_of = _split_batch(serving, requests)
        if self.predictions is not None:
            self._log_batch(serving, requests, answer, arms_of)
        return answer

    def _log_batch(
        self, serving: Serving, requests: Sequence[Any], answer: Any, arms_of: list[ArmModel] | None
    ) -> None:
        assert self.predictions is not None
        offer, name = self.predictions.offer, serving.experiment_name
        champion = serving.champion
        for i, (request, likelihood) in enumerate(zip(requests, answer.likelihoodToBid, strict=True)):
            offer(request.bidId, name, champion if arms_of is None else arms_of[i], likelihood)

    def filterColumns(self, columns: Any) -> Any:  # the IDL's method name
        """The likelihoods of many requests sent as columns, as little-endian float64s in row order.

        Without an experiment the champion scores every row and the reply is fields 1-2 only, as before
        experiments existed. During one, each row is answered by the arm `aik.experiments.assign` gives
        its BidID (rows grouped by arm with numpy, one scoring call per arm), and the reply says which
        arm answered each row (`arms`, `armOfRequest`, `experiment`), as `filterBatch`'s does.
        """
        max_rows = self.server.config.max_batch
        if self.server.echo:
            rows = column_rows(columns, max_rows)
            return BidColumnsResponse(
                likelihoodToBid=np.full(rows, 0.5, "<f8").tobytes(), modelVersion="echo"
            )
        serving = self._serving()
        if serving.experiment is None:
            arm = serving.champion
            model = arm.model
            features = self._column_scorer(model).features(columns, max_rows)
            likelihoods = model.score_features(features) if features.shape[0] else np.empty(0)
            answer = ColumnsAnswer(
                likelihoodToBid=likelihoods.astype("<f8", copy=False).tobytes(), modelVersion=model.version
            )
            answer.tally = ((arm.arm, int(likelihoods.shape[0]), float(likelihoods.sum())),)
            if self.predictions is not None:
                rows = int(likelihoods.shape[0])
                self.predictions.offer_rows(
                    partial(column_strings_at, columns.bidId, rows), rows, None, (arm,), None, likelihoods
                )
            return answer
        return self._split_columns(serving, columns, max_rows)

    def _split_columns(self, serving: Serving, columns: Any, max_rows: int) -> Any:
        """`filterColumns` during an experiment: each arm scores its own rows (chosen by numpy)."""
        experiment = serving.experiment
        assert experiment is not None
        rows = column_rows(columns, max_rows)
        # each row's arm as an index into serving.arms (the order the reply's `arms` follow)
        position = {a.arm: i for i, a in enumerate(serving.arms)}
        to_serving = np.asarray([position[a.arm] for a in experiment.arms], dtype=np.int64)
        arm_of_row = to_serving[X.arm_indices(bid_units(columns.bidId, rows, experiment.salt), experiment)]
        likelihoods = np.empty(rows, dtype=np.float64)
        counts = np.bincount(arm_of_row, minlength=len(serving.arms))
        present = np.flatnonzero(counts)
        order = np.argsort(arm_of_row, kind="stable")  # rows grouped by arm, in row order within each
        bounds = np.concatenate(([0], np.cumsum(counts)))
        tally = []
        for k in present.tolist():
            arm = serving.arms[k]
            select = order[bounds[k] : bounds[k + 1]]
            features = self._column_scorer(arm.model).features(columns, max_rows, select)
            scores = arm.model.score_features(features)
            likelihoods[select] = scores
            tally.append((arm.arm, int(select.shape[0]), float(scores.sum())))
        reply_index = np.full(len(serving.arms), -1, dtype=np.int64)
        reply_index[present] = np.arange(present.shape[0])
        arms = [serving.arms[k] for k in present.tolist()]
        answer = ColumnsAnswer(
            likelihoodToBid=likelihoods.astype("<f8", copy=False).tobytes(),
            modelVersion="+".join(a.model.version for a in arms),
            arms=[arm_info(a) for a in arms],
            armOfRequest=reply_index[arm_of_row].astype("<i2").tobytes(),
            experiment=experiment.name,
        )
        answer.tally = tuple(tally)
        if self.predictions is not None:
            self.predictions.offer_rows(
                partial(column_strings_at, columns.bidId, rows),
                rows,
                experiment.name,
                serving.arms,
                arm_of_row,
                likelihoods,
            )
        return answer

    def filterAdvertisers(self, request: Any, advertiserIds: Any) -> Any:  # the IDL's names
        """One request's likelihood for each candidate advertiser, in the order given, by its arm."""
        if self.server.echo:
            if advertiserIds is None:
                raise BadRequest("the advertiserIds list is missing")
            return BidBatchResponse(likelihoodToBid=[0.5] * len(advertiserIds), modelVersion="echo")
        serving = self._serving()
        arm = serving.pick(request) if request is not None else serving.champion
        model = arm.model
        features = self._column_scorer(model).advertisers(request, advertiserIds)
        likelihoods = model.score_features(features).tolist() if features.shape[0] else []
        answer = BatchAnswer(
            likelihoodToBid=likelihoods,
            modelVersion=model.version,
            arms=[arm_info(arm)],
            experiment=serving.experiment_name,
        )
        answer.tally = ((arm.arm, len(likelihoods), sum(likelihoods)),)
        return answer

    def health(self) -> Any:
        """Readiness, the models served (every arm), requests served, uptime, the last model check's age."""
        server = self.server
        serving = server.holder.serving
        model = serving.champion.model if serving else None
        age = server.model_check_age() if server.model_check_age is not None else None
        return HealthStatus(
            ready=server.ready,
            modelVersion=model.version if model else "",
            modelLoadedAt=model.loaded_at_iso if model else "",
            modelLoadSeconds=float(model.load_seconds) if model else 0.0,
            requestsServed=int(server.requests_served),
            uptimeSeconds=time.monotonic() - server.started,
            modelCheckAgeSeconds=-1.0 if age is None else float(age),
            experiment=serving.experiment_name if serving else None,
            arms=[arm_info(a) for a in serving.arms] if serving else None,
        )


def _split_batch(serving: Serving, requests: Sequence[Any]) -> tuple[Any, list[ArmModel]]:
    """Score each request of a batch with its arm's model (one batch call per arm); the reply and arms."""
    arms_of = [serving.pick(r) for r in requests]
    order = {a.arm: i for i, a in enumerate(serving.arms)}
    groups: dict[str, list[int]] = {}
    for i, arm in enumerate(arms_of):
        groups.setdefault(arm.arm, []).append(i)
    likelihoods = [0.0] * len(requests)
    present = sorted(groups, key=order.__getitem__)
    tally = []
    for name in present:
        arm = serving.by_name[name]
        positions = groups[name]
        scores = arm.model.score_batch([requests[i] for i in positions])
        for i, p in zip(positions, scores, strict=True):
            likelihoods[i] = p
        tally.append((name, len(scores), sum(scores)))
    index = {name: i for i, name in enumerate(present)}
    answer = BatchAnswer(
        likelihoodToBid=likelihoods,
        modelVersion="+".join(serving.by_name[n].model.version for n in present),
        arms=[arm_info(serving.by_name[n]) for n in present],
        armOfRequest=[index[a.arm] for a in arms_of],
        experiment=serving.experiment_name,
    )
    answer.tally = tuple(tally)
    return answer, arms_of


#: The replies that answer one request, by exact type: most calls are counted by one set lookup.
_ONE_REQUEST = frozenset({BidResponse, ArmResponse, Answer, ArmAnswer})


def requests_scored(result: Any) -> int:
    """How many requests a method's result scored (health scores none)."""
    if type(result) in _ONE_REQUEST or isinstance(result, BidResponse | ArmResponse):
        return 1
    if isinstance(result, BidBatchResponse):
        return len(result.likelihoodToBid)
    if isinstance(result, BidColumnsResponse):
        return len(result.likelihoodToBid) // 8
    return 0


def record_scored(metrics: MetricsAggregator | None, result: Any, started: float) -> int:
    """The requests a call's result scored, recorded in `metrics` (if any) with the call's latency since
    `started` (a `time.perf_counter()`) and its arms (its tally; none for the echo's replies); both
    transports call it once the reply is sent."""
    count = requests_scored(result)
    if count and metrics is not None:
        metrics.record(count, (time.perf_counter() - started) * 1000.0, None, getattr(result, "tally", ()))
    return count
