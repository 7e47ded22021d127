"""The `BidRequestFilter` methods: score one request, score a batch, report health.

Called by `processor.Processor` with the decoded arguments; a `BadRequest` becomes an error reply and
the connection stays open. Each call reads the current model once, so a hot swap in the middle of a
call never mixes two models.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from filtering_api.idl import BidBatchResponse, BidResponse, HealthStatus
from filtering_server.model import BadRequest

if TYPE_CHECKING:
    from filtering_server.server import FilteringServer


class FilteringHandler:
    """The service's methods, answered from the model `server.holder` holds."""

    def __init__(self, server: FilteringServer) -> None:
        self.server = server

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
    return 0
