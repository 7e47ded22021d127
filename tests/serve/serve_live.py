"""Helpers of the serving tests: a live server in a context manager and a StatsD receiver."""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from serving_fixtures import Artifacts

from filtering_api.metrics import MetricsAggregator
from filtering_server import forest, wire
from filtering_server.model import ServedModel
from filtering_server.prediction_log import PredictionLog
from filtering_server.server import FilteringServer, ServerConfig
from filtering_server.watcher import ModelHolder, ModelWatcher


@dataclass
class LiveServer:
    """A running server and what it serves."""

    server: FilteringServer
    holder: ModelHolder
    watcher: ModelWatcher
    artifacts: Artifacts
    metrics: MetricsAggregator | None = None
    clients: list[Any] = field(default_factory=list)

    @property
    def port(self) -> int:
        """The ephemeral port."""
        return self.server.port

    def client(self, timeout_ms: int = 10_000) -> Any:
        """A thriftpy2 client (closed when the server stops)."""
        from filtering_api.client import connect

        c = connect("127.0.0.1", self.port, timeout_ms)
        self.clients.append(c)
        return c


#: When set, `run_server` serves with this transport whatever its config says (the transport tests run
#: once per transport: `transport` fixture of test_serving_server.py and test_serving_bounds.py).
transport_under_test: str | None = None


@contextlib.contextmanager
def run_server(
    artifacts: Artifacts,
    *,
    watch_interval: float = 0.0,
    metrics: MetricsAggregator | None = None,
    config: ServerConfig | None = None,
    echo: bool = False,
    model: ServedModel | None = None,
    predictions: PredictionLog | None = None,
) -> Iterator[LiveServer]:
    """Warm the kernels up, load the model (unless given one), serve on 127.0.0.1:<ephemeral>, yield,
    then drain and stop."""
    # As `python -m filtering_server` does before it listens: otherwise the first request compiles the
    # numba kernels (or loads them from the disk cache) inside the request, and with a cold cache on a
    # busy machine that outlasts the client's timeout.
    forest.warm_up()
    wire.warm_up()
    holder = ModelHolder(model)
    watcher = ModelWatcher(artifacts.store, holder, interval=watch_interval)
    if model is None:
        watcher.load_initial()
    config = config or ServerConfig(host="127.0.0.1", port=0)
    if transport_under_test is not None:
        config = dataclasses.replace(config, transport=transport_under_test)
    server = FilteringServer(
        holder,
        config,
        metrics,
        echo=echo,
        model_check_age=watcher.check_age,
        predictions=predictions,
    )
    server.start()
    watcher.start()
    live = LiveServer(server, holder, watcher, artifacts, metrics)
    try:
        yield live
    finally:
        for c in live.clients:
            with contextlib.suppress(Exception):
                c.close()
        watcher.stop()
        server.shutdown(timeout=5)
