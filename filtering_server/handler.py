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
from typing import TYPE_CHECKING, Any

import numpy as np

from filtering_api.idl import (
    Arm,
    ArmResponse,
    BidBatchResponse,
    BidColumnsResponse,
    BidResponse,
    HealthStatus,
)
from filtering_server.columns import ColumnScorer, column_rows
from filtering_server.model import BadRequest, ServedModel
from filtering_server.serving import ArmModel, Serving

if TYPE_CHECKING:
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
        #: the columnar calls' scorer of the current model (rebuilt when the model changes)
        self._columns: ColumnScorer | None = None

    def _column_scorer(self, model: ServedModel) -> ColumnScorer:
        scorer = self._columns
        if scorer is None or scorer.model is not model:
            self._columns = scorer = ColumnScorer(model)  # two threads may both build one: harmless
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

        Answered by the champion alone, also during an experiment (its rows are not split by arm, and
        not written to the prediction log): columnar clients get the live release.
        """
        if self.server.echo:
            rows = column_rows(columns, self.server.config.max_batch)
            return BidColumnsResponse(
                likelihoodToBid=np.full(rows, 0.5, "<f8").tobytes(), modelVersion="echo"
            )
        arm = self._serving().champion
        model = arm.model
        features = self._column_scorer(model).features(columns, self.server.config.max_batch)
        likelihoods = model.score_features(features) if features.shape[0] else np.empty(0)
        answer = ColumnsAnswer(
            likelihoodToBid=likelihoods.astype("<f8", copy=False).tobytes(), modelVersion=model.version
        )
        answer.tally = ((arm.arm, int(likelihoods.shape[0]), float(likelihoods.sum())),)
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


def requests_scored(result: Any) -> int:
    """How many requests a method's result scored (health scores none)."""
    if isinstance(result, BidResponse | ArmResponse):
        return 1
    if isinstance(result, BidBatchResponse):
        return len(result.likelihoodToBid)
    if isinstance(result, BidColumnsResponse):
        return len(result.likelihoodToBid) // 8
    return 0


def arm_tally(result: Any) -> Tally:
    """Per arm that answered a result: (arm, requests, sum of likelihoods); empty for echo and health."""
    return getattr(result, "tally", ())
