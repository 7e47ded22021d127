"""The server follows the release pointer: whole releases only, never a bundle with another's booster."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from forest_support import load_forest
from serve_live import LiveServer, run_server
from serving_fixtures import Artifacts, copy_artifacts, index_features, train_booster

from ad_server_emulator.emulator import bid_request
from aik import params, releases, storage
from aik.bundle import StringIndexerSpec, bundle_bytes, indexer_from_specs
from aik.schema import INDEXED_COLUMNS, RAW_SCHEMA
from filtering_server.model import ModelSources, ServedModel, load_model

SWAP_TIMEOUT = 90.0  # a load spawns xgboost in a child process; the machine may be busy


@dataclass
class Built:
    """A release and the pieces it was made of (for building deliberately mixed pairs)."""

    release: releases.Release
    specs: list[StringIndexerSpec]
    model: bytes


def _specs(rows: Sequence[Mapping[str, Any]], rng: np.random.Generator) -> list[StringIndexerSpec]:
    """Every value of the rows as labels, in a random order: codes that mean other values than another's."""
    specs = []
    for column, output in INDEXED_COLUMNS.items():
        labels = sorted({r[column] for r in rows if r[column] is not None})
        specs.append(StringIndexerSpec(column, output, tuple(rng.permutation(labels).tolist())))
    return specs


def build_release(artifacts: Artifacts, seed: int, *, passed: bool = True) -> Built:
    """A release of a bundle with its own codes and a booster trained on those codes (bound to them)."""
    rng = np.random.default_rng(seed)
    specs = _specs(artifacts.rows, rng)
    booster = train_booster(
        index_features(artifacts.rows, specs), artifacts.labels, specs, rounds=15, depth=4, seed=seed
    )
    booster.set_attr(**{releases.BOOSTER_ATTRIBUTE: releases.indexer_sha256(indexer_from_specs(specs))})
    model = bytes(booster.save_raw("ubj"))
    release = releases.write_release(
        releases.releases_root(artifacts.store),
        bundle=bundle_bytes(specs),
        schema=json.dumps(RAW_SCHEMA).encode(),
        model=model,
        metrics={"auc": 0.7},
        gates={"passed": passed, "checks": []},
        now=None,
    )
    return Built(release, specs, model)


def mixed_model(bundle_of: Built, booster_of: Built) -> ServedModel:
    """What a server that mixed two releases would serve: one's bundle with the other's booster."""
    uri = "mixed"
    return ServedModel(
        version="mixed",
        sources=ModelSources(uri, uri, uri),
        scorer=load_forest(booster_of.model, uri),
        indexer=indexer_from_specs(bundle_of.specs),
        schema=dict(RAW_SCHEMA),
    )


def wait_for_release(live: LiveServer, release: releases.Release, timeout: float = SWAP_TIMEOUT) -> None:
    """Until the server serves `release`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        current = live.holder.current
        if current is not None and current.sources.release_id == release.id:
            return
        time.sleep(0.05)
    raise AssertionError(f"release {release.id} was not swapped in within {timeout} s")


def wait_for_rejection(live: LiveServer, timeout: float = SWAP_TIMEOUT) -> str:
    """Until the watcher reports a rejected model; its message."""
    deadline = time.monotonic() + timeout
    while live.watcher.rejected is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert live.watcher.rejected is not None, "the watcher never rejected the release"
    return live.watcher.last_error or ""


@pytest.fixture
def pair(small_artifacts: Artifacts, tmp_path: Path) -> tuple[Artifacts, Built, Built]:
    """A workspace with two releases A and B; A is live."""
    artifacts = copy_artifacts(small_artifacts, tmp_path / "ws")
    a = build_release(artifacts, seed=1)
    time.sleep(1.01)  # release ids carry the second they were made
    b = build_release(artifacts, seed=2)
    artifacts.store.put(params.RELEASE_LIVE, a.release.manifest_uri)
    return artifacts, a, b


def verdict(value: float, pure: Mapping[str, float], mixed: Mapping[str, float]) -> str:
    """Which release's bundle AND booster produced an answer: its name, `mixed:<pair>`, or `unknown`."""
    for name, expected in pure.items():
        if value == expected:
            return name
    for name, expected in mixed.items():
        if value == expected:
            return "mixed:" + name
    return "unknown"


def discriminating(
    requests: Sequence[Any], pure: Mapping[str, ServedModel], mixed: Mapping[str, ServedModel]
) -> tuple[list[int], dict[int, dict[str, float]], dict[int, dict[str, float]]]:
    """Requests whose four answers (two releases, two mixes) all differ, with those answers."""
    keep, pure_values, mixed_values = [], {}, {}
    for j, request in enumerate(requests):
        p = {name: m.score(request) for name, m in pure.items()}
        x = {name: m.score(request) for name, m in mixed.items()}
        if len({*p.values(), *x.values()}) == len(p) + len(x):
            keep.append(j)
            pure_values[j], mixed_values[j] = p, x
    return keep, pure_values, mixed_values


def test_the_server_serves_the_live_release(pair: tuple[Artifacts, Built, Built]) -> None:
    artifacts, a, _ = pair
    with run_server(artifacts) as live:
        current = live.holder.current
        assert current is not None
        assert current.sources.release_id == a.release.id
        assert current.sources.model_uri == a.release.file_uri("model")
        assert current.sources.bundle_uri == a.release.file_uri("bundle")


def test_rerunning_the_feature_job_alone_changes_nothing_served(pair: tuple[Artifacts, Built, Built]) -> None:
    artifacts, _, b = pair
    request = bid_request(artifacts.rows[0])
    with run_server(artifacts) as live:
        before = live.client().filter(request).likelihoodToBid
        # what `aik features` writes: a new bundle (other codes) at the working location
        storage.write_bytes(artifacts.store.get(params.PIPELINE_MODEL), bundle_bytes(b.specs))
        assert live.watcher.poll_once() is False
        assert live.holder.swaps == 1
        assert live.client().filter(request).likelihoodToBid == before


def test_a_booster_trained_on_another_bundle_is_refused_and_says_so(
    pair: tuple[Artifacts, Built, Built],
) -> None:
    artifacts, a, b = pair
    root = releases.releases_root(artifacts.store)
    forged = releases.write_release(
        root,
        bundle=bundle_bytes(b.specs),  # B's codes under A's booster
        schema=json.dumps(RAW_SCHEMA).encode(),
        model=a.model,
        metrics={},
        gates={"passed": True, "checks": []},
    )
    with run_server(artifacts, watch_interval=0.1) as live:
        artifacts.store.put(params.RELEASE_LIVE, forged.manifest_uri)
        message = wait_for_rejection(live)
        assert "does not belong to the booster" in message
        assert forged.file_uri("bundle") in message
        current = live.holder.current
        assert current is not None and current.sources.release_id == a.release.id


def test_a_release_file_altered_after_its_manifest_is_refused(pair: tuple[Artifacts, Built, Built]) -> None:
    artifacts, a, b = pair
    storage.write_bytes(b.release.file_uri("model"), a.model)  # same booster format, other bytes
    with run_server(artifacts, watch_interval=0.1) as live:
        artifacts.store.put(params.RELEASE_LIVE, b.release.manifest_uri)
        message = wait_for_rejection(live)
        assert f"does not match release {b.release.id}'s manifest" in message
        current = live.holder.current
        assert current is not None and current.sources.release_id == a.release.id


def test_without_a_pointer_a_bundle_rewritten_under_a_bound_booster_is_refused(
    pair: tuple[Artifacts, Built, Built],
) -> None:
    artifacts, a, b = pair
    store = artifacts.store
    # the original flow: the three parameters, a booster bound to A's bundle
    data = json.loads(store.path.read_text())
    del data[params.RELEASE_LIVE]
    store.path.write_text(json.dumps(data))
    storage.write_bytes(store.get(params.XGBOOST_PATH), a.model)
    storage.write_bytes(store.get(params.PIPELINE_MODEL), bundle_bytes(a.specs))
    with run_server(artifacts, watch_interval=0.1) as live:
        assert live.holder.current is not None and live.holder.current.sources.release_id is None
        storage.write_bytes(store.get(params.PIPELINE_MODEL), bundle_bytes(b.specs))  # `aik features` again
        message = wait_for_rejection(live)
        assert "does not belong to the booster" in message
        assert live.holder.swaps == 1


def test_the_mixing_check_detects_a_server_that_mixes_releases(pair: tuple[Artifacts, Built, Built]) -> None:
    artifacts, a, b = pair
    requests = [bid_request(r) for r in artifacts.rows[:300]]
    pure = {"A": load_model(ModelSources.from_store(artifacts.store))}
    artifacts.store.put(params.RELEASE_LIVE, b.release.manifest_uri)
    pure["B"] = load_model(ModelSources.from_store(artifacts.store))
    mixed = {"A-bundle+B-booster": mixed_model(a, b), "B-bundle+A-booster": mixed_model(b, a)}
    keep, pure_values, mixed_values = discriminating(requests, pure, mixed)
    assert len(keep) > len(requests) // 2  # the check has power on most requests
    # a server scoring with one release's bundle and the other's booster is caught on every request
    wrong = mixed["A-bundle+B-booster"]
    verdicts = {verdict(wrong.score(requests[j]), pure_values[j], mixed_values[j]) for j in keep}
    assert verdicts == {"mixed:A-bundle+B-booster"}


def test_swapping_releases_under_load_every_answer_is_one_releases_bundle_and_booster(
    pair: tuple[Artifacts, Built, Built],
) -> None:
    artifacts, a, b = pair
    store = artifacts.store
    requests = [bid_request(r) for r in artifacts.rows[:300]]
    pure = {"A": load_model(ModelSources.from_store(store))}
    store.put(params.RELEASE_LIVE, b.release.manifest_uri)
    pure["B"] = load_model(ModelSources.from_store(store))
    store.put(params.RELEASE_LIVE, a.release.manifest_uri)
    mixed = {"A-bundle+B-booster": mixed_model(a, b), "B-bundle+A-booster": mixed_model(b, a)}
    keep, pure_values, mixed_values = discriminating(requests, pure, mixed)
    assert len(keep) > len(requests) // 2

    with run_server(artifacts, watch_interval=0.05) as live:
        stop = threading.Event()
        answers: list[tuple[int, float]] = []
        batches: list[tuple[list[int], list[float]]] = []
        failures: list[str] = []

        def single(k: int) -> None:
            client = live.client()
            i = k
            while not stop.is_set():
                j = keep[i % len(keep)]
                try:
                    answers.append((j, client.filter(requests[j]).likelihoodToBid))
                except Exception as exc:
                    failures.append(f"{type(exc).__name__}: {exc}")
                i += 5

        def batched() -> None:
            client = live.client()
            rng = np.random.default_rng(0)
            while not stop.is_set():
                picks = [keep[int(p)] for p in rng.integers(0, len(keep), 20)]
                try:
                    batches.append((picks, client.filterBatch([requests[j] for j in picks]).likelihoodToBid))
                except Exception as exc:
                    failures.append(f"{type(exc).__name__}: {exc}")

        threads = [threading.Thread(target=single, args=(k,)) for k in range(2)]
        threads.append(threading.Thread(target=batched))
        for t in threads:
            t.start()
        for target in (b, a, b):  # three swaps under load
            time.sleep(0.3)
            store.put(params.RELEASE_LIVE, target.release.manifest_uri)
            wait_for_release(live, target.release)
        time.sleep(0.3)
        stop.set()
        for t in threads:
            t.join(timeout=30)

    assert failures == []
    seen = [verdict(v, pure_values[j], mixed_values[j]) for j, v in answers]
    assert set(seen) == {"A", "B"}  # every answer one release's, and the load spanned the swaps
    for picks, values in batches:  # a batch is scored wholly by one release
        names = {verdict(v, pure_values[j], mixed_values[j]) for j, v in zip(picks, values, strict=True)}
        assert len(names) == 1 and names <= {"A", "B"}
