"""Zero-downtime model swap: under load no request fails or gets a mixed answer; bad models are refused."""

from __future__ import annotations

import threading
import time
from typing import Any

import numpy as np
import xgboost
from serve_live import LiveServer, run_server
from serving_fixtures import Artifacts, publish_booster, train_booster

from ad_server_emulator.emulator import bid_request
from aik import params, storage
from filtering_server.model import model_version

SWAP_TIMEOUT = 90.0  # a load spawns xgboost in a child process; the machine may be busy


def wait_for_version(live: LiveServer, version: str, timeout: float = SWAP_TIMEOUT) -> None:
    """Until the server reports `version` in health()."""
    client = live.client()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if client.health().modelVersion == version:
            return
        time.sleep(0.1)
    raise AssertionError(f"model {version} was not swapped in within {timeout} s")


def other_booster(artifacts: Artifacts, seed: int) -> Any:
    """A second, clearly different model of the same features."""
    return train_booster(
        artifacts.features, 1 - artifacts.labels, artifacts.specs, rounds=15, depth=4, seed=seed
    )


def test_swap_under_load_never_fails_or_mixes_models(own_artifacts: Artifacts) -> None:
    with run_server(own_artifacts, watch_interval=0.2) as live:
        old = live.holder.current
        assert old is not None
        requests = [bid_request(r) for r in own_artifacts.rows[:200]]
        before = [old.score(r) for r in requests]
        new_booster = other_booster(own_artifacts, seed=11)
        stop = threading.Event()
        seen: list[list[tuple[int, float]]] = [[] for _ in range(3)]  # per connection, in order
        batches: list[tuple[str, list[float], list[int]]] = []
        failures: list[str] = []

        def single(k: int) -> None:
            client = live.client()
            i = k
            while not stop.is_set():
                j = i % len(requests)
                try:
                    seen[k].append((j, client.filter(requests[j]).likelihoodToBid))
                except Exception as exc:
                    failures.append(f"{type(exc).__name__}: {exc}")
                i += 7

        def batched() -> None:
            client = live.client()
            rng = np.random.default_rng(0)
            while not stop.is_set():
                picks = rng.integers(0, len(requests), 20).tolist()
                try:
                    reply = client.filterBatch([requests[j] for j in picks])
                    batches.append((reply.modelVersion, reply.likelihoodToBid, picks))
                except Exception as exc:
                    failures.append(f"{type(exc).__name__}: {exc}")

        threads = [threading.Thread(target=single, args=(k,)) for k in range(3)]
        threads.append(threading.Thread(target=batched))
        for t in threads:
            t.start()
        time.sleep(0.5)
        data = publish_booster(own_artifacts, new_booster)
        wait_for_version(live, model_version(data))
        new = live.holder.current
        assert new is not None and new.version != old.version
        after = [new.score(r) for r in requests]
        time.sleep(0.5)
        stop.set()
        for t in threads:
            t.join(timeout=30)

    assert failures == []
    answers = [a for per_connection in seen for a in per_connection]
    assert all(v in (before[j], after[j]) for j, v in answers)  # each answer is wholly one model's
    changed = {j for j in range(len(requests)) if before[j] != after[j]}
    assert len(changed) > len(requests) // 2  # the two models really differ
    assert any(j in changed and v == before[j] for j, v in answers)  # the load spanned the swap
    assert any(j in changed and v == after[j] for j, v in answers)
    for per_connection in seen:  # once a connection got the new model, it never gets the old one again
        models = [v == after[j] for j, v in per_connection if j in changed]
        assert models == sorted(models)
    versions = {old.version: before, new.version: after}
    for version, values, picks in batches:
        assert values == [versions[version][j] for j in picks]  # a batch is scored by the model it names
    assert {v for v, _, _ in batches} == {old.version, new.version}


def test_a_bad_model_is_refused_and_the_old_one_keeps_serving(own_artifacts: Artifacts) -> None:
    with run_server(own_artifacts, watch_interval=0.2) as live:
        old = live.holder.current
        assert old is not None
        client = live.client()
        request = bid_request(own_artifacts.rows[0])
        expected = old.score(request)
        six = xgboost.train(
            {"objective": "binary:logistic"},
            xgboost.DMatrix(own_artifacts.features[:, :6], own_artifacts.labels),
            2,
        )
        bad_models = [
            (b"", "the model file is empty"),
            (b"\x00not a model at all", "not an xgboost model"),
            (bytes(six.save_raw("ubj")), "the booster has 6 features"),
        ]
        for payload, reason in bad_models:
            previous = live.watcher.rejected
            storage.write_bytes(own_artifacts.model_uri, payload)
            deadline = time.monotonic() + SWAP_TIMEOUT
            while live.watcher.rejected == previous and time.monotonic() < deadline:
                assert client.filter(request).likelihoodToBid == expected  # served throughout
                time.sleep(0.05)
            assert reason in (live.watcher.last_error or "")
            assert own_artifacts.model_uri in (live.watcher.last_error or "")
            assert client.health().modelVersion == old.version
            assert client.filter(request).likelihoodToBid == expected
        # then a good model is taken at once
        data = publish_booster(own_artifacts, other_booster(own_artifacts, seed=5))
        wait_for_version(live, model_version(data))
        assert client.filter(request).likelihoodToBid != expected


def test_pointing_the_parameter_at_another_model_swaps(own_artifacts: Artifacts) -> None:
    with run_server(own_artifacts, watch_interval=0.2) as live:
        uri = storage.join(own_artifacts.store.get(params.DATA_BUCKET), "binary-model/v2/xgboost.bin")
        booster = other_booster(own_artifacts, seed=3)
        data = bytes(booster.save_raw("ubj"))
        storage.write_bytes(uri, data)
        own_artifacts.store.put(params.XGBOOST_PATH, uri)
        wait_for_version(live, model_version(data))
        current = live.holder.current
        assert current is not None and current.sources.model_uri == uri


def test_a_missing_parameter_or_artifact_during_watching_keeps_the_model(own_artifacts: Artifacts) -> None:
    with run_server(own_artifacts, watch_interval=0.1) as live:
        old = live.holder.current
        assert old is not None
        storage.delete(own_artifacts.model_uri)
        deadline = time.monotonic() + 10
        while live.watcher.last_error is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert "not found" in (live.watcher.last_error or "")
        assert live.client().health().modelVersion == old.version
        assert not live.watcher.poll_once()


def test_the_watcher_ignores_unchanged_artifacts(own_artifacts: Artifacts) -> None:
    with run_server(own_artifacts, watch_interval=0.0) as live:
        assert live.watcher.poll_once() is False  # nothing changed: no reload
        assert live.holder.swaps == 1
