"""Fixtures of the monitoring tests: a simulated run fed through the aggregator with known values."""

from __future__ import annotations

import numpy as np
import pytest

from aik.monitoring.windows import WindowAggregator, WindowRecord

T0 = 1_700_000_000
REQUESTS = {0: 100, 10: 250, 30: 50}  # window offset -> requests (no datapoint at +20: a gap)

Run = tuple[list[WindowRecord], dict[str, list[np.ndarray]]]


def simulated_run() -> Run:
    """Records of a run fed through the aggregator with known values, and those values per metric."""
    rng = np.random.default_rng(5)
    agg = WindowAggregator()
    sent: dict[str, list[np.ndarray]] = {"server": [], "client": [], "likelihood": []}
    for offset, n in REQUESTS.items():
        server = np.round(rng.lognormal(-1.5, 0.5, n), 6)
        client = np.round(server + rng.uniform(0.1, 0.4, n), 6)
        likelihood = np.round(rng.uniform(0, 0.5, n), 4)
        for i in range(n):
            now = T0 + offset + 9.9 * i / n
            agg.add_line("filtering_server.filtering_count:1|c", now)
            agg.add_line(f"filtering_server.filtering_latency:{server[i]}|ms", now)
            agg.add_line(f"adserver_client.adserver_latency_ms:{client[i]}|ms", now)
            agg.add_line(f"adserver_client.likelihood_to_bid:{likelihood[i]}|g", now)
        sent["server"].append(server)
        sent["client"].append(client)
        sent["likelihood"].append(likelihood)
    return agg.pop_all(), sent


@pytest.fixture
def run() -> Run:
    """Records of `simulated_run` and the values sent per metric and window."""
    return simulated_run()


@pytest.fixture
def records(run: Run) -> list[WindowRecord]:
    """Records of `simulated_run`."""
    return run[0]
