"""The `BidRequestFilter` methods: score one request, a batch, columns, candidate advertisers; health.

Called by `processor.Processor` with the decoded arguments; a `BadRequest` becomes an error reply and
the connection stays open. Each call reads the current model once, so a hot swap in the middle of a
call never mixes two models.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

import numpy as np

from filtering_api.idl import BidBatchResponse, BidColumnsResponse, BidResponse, HealthStatus
from filtering_server.columns import ColumnScorer, column_rows
from filtering_server.model import BadRequest, ServedModel

if TYPE_CHECKING:
    from filtering_server.server import FilteringServer


class FilteringHandler:
    """The service's methods, answered from the model `server.holder` holds."""

    def __init__(self, server: FilteringServer) -> None:
        self.server = server
        #: the columnar calls' scorer of the current model (rebuilt when the model changes)
        self._columns: ColumnScorer | None = None

    def _model(self) -> ServedModel:
        model = self.server.holder.current
        if model is None:
            raise BadRequest("no model loaded")
        return model

    def _column_scorer(self, model: ServedModel) -> ColumnScorer:
        scorer = self._columns
        if scorer is None or scorer.model is not model:
            self._columns = scorer = ColumnScorer(model)  # two threads may both build one: harmless
        return scorer

    def filter(self, request: Any) -> Any:
        """The likelihood to bid for one request."""
        if self.server.echo:
            return BidResponse(likelihoodToBid=0.5)
        model = self.server.holder.current
        if model is None:
            raise BadRequest("no model loaded")
        return BidResponse(likelihoodToBid=model.score(request))

    def filterBatch(self, requests: Any) -> Any:  # the IDL's method name
        """The likelihoods of many requests, and the version of the model that scored them."""
        limit = self.server.config.max_batch
        if requests is None:
            raise BadRequest("the requests list is missing")
        if len(requests) > limit:
            raise BadRequest(f"{len(requests)} requests in one batch (limit {limit})")
        if self.server.echo:
            return BidBatchResponse(likelihoodToBid=[0.5] * len(requests), modelVersion="echo")
        model = self.server.holder.current
        if model is None:
            raise BadRequest("no model loaded")
        return BidBatchResponse(likelihoodToBid=model.score_batch(requests), modelVersion=model.version)

    def filterColumns(self, columns: Any) -> Any:  # the IDL's method name
        """The likelihoods of many requests sent as columns, as little-endian float64s in row order."""
        if self.server.echo:
            rows = column_rows(columns, self.server.config.max_batch)
            return BidColumnsResponse(
                likelihoodToBid=np.full(rows, 0.5, "<f8").tobytes(), modelVersion="echo"
            )
        model = self._model()
        features = self._column_scorer(model).features(columns, self.server.config.max_batch)
        likelihoods = model.score_features(features) if features.shape[0] else np.empty(0)
        return BidColumnsResponse(
            likelihoodToBid=likelihoods.astype("<f8", copy=False).tobytes(), modelVersion=model.version
        )

    def filterAdvertisers(self, request: Any, advertiserIds: Any) -> Any:  # the IDL's names
        """One request's likelihood for each candidate advertiser, in the order given."""
        if self.server.echo:
            if advertiserIds is None:
                raise BadRequest("the advertiserIds list is missing")
            return BidBatchResponse(likelihoodToBid=[0.5] * len(advertiserIds), modelVersion="echo")
        model = self._model()
        features = self._column_scorer(model).advertisers(request, advertiserIds)
        likelihoods = model.score_features(features).tolist() if features.shape[0] else []
        return BidBatchResponse(likelihoodToBid=likelihoods, modelVersion=model.version)

    def health(self) -> Any:
        """Readiness, the model served, requests served, uptime and the age of the last model check."""
        server = self.server
        model = server.holder.current
        age = server.model_check_age() if server.model_check_age is not None else None
        return HealthStatus(
            ready=server.ready,
            modelVersion=model.version if model else "",
            modelLoadedAt=model.loaded_at_iso if model else "",
            modelLoadSeconds=float(model.load_seconds) if model else 0.0,
            requestsServed=int(server.requests_served),
            uptimeSeconds=time.monotonic() - server.started,
            modelCheckAgeSeconds=-1.0 if age is None else float(age),
        )


def requests_scored(result: Any) -> int:
    """How many requests a method's result scored (health scores none)."""
    if isinstance(result, BidResponse):
        return 1
    if isinstance(result, BidBatchResponse):
        return len(result.likelihoodToBid)
    if isinstance(result, BidColumnsResponse):
        return len(result.likelihoodToBid) // 8
    return 0
