"""The model watcher survives any failure of the store or storage, retries with backoff and says how
stale its view is (health() and a StatsD gauge)."""

from __future__ import annotations

import time
from typing import Any

import pytest
from botocore.exceptions import ClientError, NoCredentialsError
from serve_live import run_server
from serving_fixtures import Artifacts, StatsdLines, publish_booster
from test_serving_swap import SWAP_TIMEOUT, other_booster

from aik import params
from filtering_api.metrics import MetricNames, MetricsAggregator, statsd_client
from filtering_server import model as model_module
from filtering_server.model import model_version
from filtering_server.watcher import ModelHolder, ModelWatcher


class FlakyStore:
    """The real local store, with a fault injected into `get` while `fault` is set."""

    def __init__(self, store: params.LocalParameterStore) -> None:
        self.store = store
        self.fault: BaseException | None = None
        self.calls = 0

    def get(self, name: str) -> str:
        self.calls += 1
        if self.fault is not None:
            raise self.fault
        return self.store.get(name)


def throttling() -> ClientError:
    """The error boto3 raises when SSM throttles GetParameter."""
    return ClientError({"Error": {"Code": "ThrottlingException", "Message": "Rate exceeded"}}, "GetParameter")


def wait_until(condition: Any, timeout: float = SWAP_TIMEOUT) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        time.sleep(0.02)


def test_a_throttled_store_does_not_kill_the_watcher(
    own_artifacts: Artifacts, caplog: pytest.LogCaptureFixture
) -> None:
    store = FlakyStore(own_artifacts.store)
    holder = ModelHolder()
    watcher = ModelWatcher(store, holder, interval=0.02, max_backoff=0.05)
    watcher.load_initial()
    watcher.start()
    try:
        store.fault = throttling()
        calls = store.calls
        wait_until(lambda: store.calls > calls + 5)  # several failed checks in a row
        store.fault = None
        data = publish_booster(own_artifacts, other_booster(own_artifacts, seed=21))
        wait_until(lambda: holder.current is not None and holder.current.version == model_version(data))
        assert watcher.alive
    finally:
        watcher.stop()
    failures = [r for r in caplog.records if "ThrottlingException" in r.getMessage()]
    assert len(failures) == 1  # logged once with its cause, not at every retry


def test_missing_credentials_in_storage_do_not_kill_the_watcher(
    own_artifacts: Artifacts, monkeypatch: pytest.MonkeyPatch
) -> None:
    holder = ModelHolder()
    watcher = ModelWatcher(own_artifacts.store, holder, interval=0.0)
    watcher.load_initial()
    real = model_module.storage.fingerprint

    def no_credentials(uri: str) -> str:
        raise NoCredentialsError()

    monkeypatch.setattr(model_module.storage, "fingerprint", no_credentials)
    assert watcher.poll_once() is False
    assert "NoCredentialsError" in (watcher.last_error or "")
    monkeypatch.setattr(model_module.storage, "fingerprint", real)
    assert watcher.poll_once() is False  # checks work again: nothing changed
    assert watcher.last_error is None


def test_a_non_utf8_parameter_file_is_reported_and_the_model_keeps_serving(own_artifacts: Artifacts) -> None:
    holder = ModelHolder()
    watcher = ModelWatcher(own_artifacts.store, holder, interval=0.0)
    model = watcher.load_initial()
    path = own_artifacts.store.path
    good = path.read_bytes()
    path.write_bytes(b"\xff\xfe" + good)
    assert watcher.poll_once() is False
    assert "corrupt" in (watcher.last_error or "")
    assert holder.current is model
    path.write_bytes(good)
    watcher.poll_once()
    assert watcher.last_error is None


def test_an_exception_escaping_a_check_does_not_end_the_thread(own_artifacts: Artifacts) -> None:
    holder = ModelHolder()
    watcher = ModelWatcher(own_artifacts.store, holder, interval=0.01, max_backoff=0.02)
    watcher.load_initial()
    polls = []

    def broken_poll() -> bool:
        polls.append(1)
        raise OSError(24, "Too many open files")

    watcher.poll_once = broken_poll  # type: ignore[method-assign]
    watcher.start()
    try:
        wait_until(lambda: len(polls) >= 3)
        assert watcher.alive
    finally:
        watcher.stop()


def test_backoff_doubles_per_failure_up_to_the_cap(own_artifacts: Artifacts) -> None:
    watcher = ModelWatcher(FlakyStore(own_artifacts.store), ModelHolder(), interval=10.0, max_backoff=70.0)
    delays = []
    for _ in range(5):
        delays.append(watcher.next_delay())
        watcher.failures += 1
    assert delays == [10.0, 20.0, 40.0, 70.0, 70.0]


def test_check_age_grows_while_checks_fail_and_resets_on_success(own_artifacts: Artifacts) -> None:
    now = [1000.0]
    store = FlakyStore(own_artifacts.store)
    watcher = ModelWatcher(store, ModelHolder(), interval=30.0, clock=lambda: now[0])
    watcher.load_initial()
    assert watcher.check_age() == 0.0
    store.fault = throttling()
    now[0] += 95.0
    watcher.poll_once()
    assert watcher.check_age() == 95.0
    store.fault = None
    watcher.poll_once()
    assert watcher.check_age() == 0.0


def test_health_reports_how_old_the_last_successful_check_is(own_artifacts: Artifacts) -> None:
    with run_server(own_artifacts, watch_interval=0.05) as live:
        store = FlakyStore(own_artifacts.store)
        live.watcher.store = store
        client = live.client()
        store.fault = throttling()
        wait_until(lambda: client.health().modelCheckAgeSeconds > 0.3)
        store.fault = None
        wait_until(lambda: client.health().modelCheckAgeSeconds < 0.3)
        assert client.health().ready


def test_health_does_not_reveal_the_model_uri(own_artifacts: Artifacts) -> None:
    with run_server(own_artifacts) as live:
        status = live.client().health()
        assert not hasattr(status, "modelUri") or not status.modelUri
        assert own_artifacts.model_uri not in repr(status)


def test_the_check_age_gauge_reaches_statsd(own_artifacts: Artifacts, statsd_receiver: StatsdLines) -> None:
    from aik import dashboard

    holder = ModelHolder()
    watcher = ModelWatcher(own_artifacts.store, holder, interval=30.0)
    watcher.load_initial()
    client = statsd_client("127.0.0.1", statsd_receiver.port, dashboard.SERVER_PREFIX)
    metrics = MetricsAggregator(client, MetricNames(timer=dashboard.FILTERING_LATENCY))
    metrics.add_gauge(dashboard.MODEL_CHECK_AGE, watcher.check_age)
    metrics.flush()
    name = f"{dashboard.SERVER_PREFIX}.{dashboard.MODEL_CHECK_AGE}"
    assert statsd_receiver.wait_for(lambda lines: statsd_receiver.values(name, "g"))
    assert all(v >= 0.0 for v in statsd_receiver.values(name, "g"))


def test_stop_ends_the_thread(own_artifacts: Artifacts) -> None:
    watcher = ModelWatcher(own_artifacts.store, ModelHolder(), interval=0.01)
    watcher.load_initial()
    watcher.start()
    assert watcher.alive
    watcher.stop()
    assert not watcher.alive
