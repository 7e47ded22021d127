"""Experiments in the live server: each BidID answered by its arm's whole release, swaps of the experiment
under load without a failed request, the original client unchanged, arms in health, filterBatch and
filterColumns (split by arm, counted per arm, written to the prediction log)."""

from __future__ import annotations

import socket
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import thrift_bytes as tb
import thriftpy2
from serve_live import LiveServer, run_server
from serving_fixtures import Artifacts, StatsdLines, copy_artifacts
from test_serving_metrics import server_metrics
from test_serving_releases import SWAP_TIMEOUT, Built, build_release

from ad_server_emulator.emulator import bid_request
from aik import experiments as X
from aik import params
from aik import predictions as P
from filtering_api.client import arm_of_rows, bid_columns_of, likelihoods
from filtering_api.idl import BidRequest
from filtering_server import prediction_log as L
from filtering_server.model import ModelSources, ServedModel, load_model

HERE = Path(__file__).parent


@pytest.fixture
def pair(small_artifacts: Artifacts, tmp_path: Path) -> tuple[Artifacts, Built, Built]:
    """A workspace with two releases A (live) and B."""
    artifacts = copy_artifacts(small_artifacts, tmp_path / "ws")
    a = build_release(artifacts, seed=1)
    time.sleep(1.01)  # release ids carry the second they were made
    b = build_release(artifacts, seed=2)
    artifacts.store.put(params.RELEASE_LIVE, a.release.manifest_uri)
    return artifacts, a, b


def _experiment(a: Built, b: Built, share: float = 0.5, name: str = "ab") -> X.Experiment:
    return X.new_experiment(champion=a.release.id, challengers=[(b.release.id, share)], name=name, salt="s")


def _models(a: Built, b: Built) -> dict[str, ServedModel]:
    return {
        "champion": load_model(ModelSources.from_release(a.release)),
        "challenger": load_model(ModelSources.from_release(b.release)),
    }


def _requests(artifacts: Artifacts, n: int) -> list[Any]:
    rows = artifacts.rows
    out = []
    for i in range(n):
        request = bid_request(rows[i % len(rows)])
        request.bidId = f"bid-{i:06d}"
        out.append(request)
    return out


def wait_for(live: LiveServer, experiment: str | None, timeout: float = SWAP_TIMEOUT) -> None:
    """Until the server serves `experiment` (None: no experiment)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        serving = live.holder.serving
        if serving is not None and serving.experiment_name == experiment:
            return
        time.sleep(0.05)
    raise AssertionError(f"the server did not serve experiment {experiment} within {timeout} s")


def _share(live: LiveServer, arm: str) -> float | None:
    serving = live.holder.serving
    return None if serving is None or arm not in serving.by_name else serving.by_name[arm].share


def test_each_request_is_answered_by_its_arms_release(pair: tuple[Artifacts, Built, Built]) -> None:
    artifacts, a, b = pair
    experiment = _experiment(a, b)
    models = _models(a, b)
    releases = {"champion": a.release.id, "challenger": b.release.id}
    with run_server(artifacts, watch_interval=0.1) as live:
        X.start(artifacts.store, experiment)
        wait_for(live, "ab")
        client = live.client()
        seen = Counter()
        for request in _requests(artifacts, 300):
            answer = client.filterArm(request)
            arm = X.assign(request.bidId, experiment)
            assert (answer.arm.arm, answer.arm.release, answer.experiment) == (arm, releases[arm], "ab")
            assert answer.likelihoodToBid == models[arm].score(request)
            assert client.filter(request).likelihoodToBid == answer.likelihoodToBid
            seen[arm] += 1
        assert set(seen) == {"champion", "challenger"}


def test_a_batch_is_split_by_arm_and_says_which_arm_scored_each_request(
    pair: tuple[Artifacts, Built, Built],
) -> None:
    artifacts, a, b = pair
    experiment = _experiment(a, b, share=0.3)
    models = _models(a, b)
    with run_server(artifacts, watch_interval=0.1) as live:
        X.start(artifacts.store, experiment)
        wait_for(live, "ab")
        requests = _requests(artifacts, 400)
        batch = live.client().filterBatch(requests)
        arms = [batch.arms[i].arm for i in batch.armOfRequest]
        assert arms == X.assign_many([r.bidId for r in requests], experiment)
        assert batch.likelihoodToBid == [models[arm].score(r) for arm, r in zip(arms, requests, strict=True)]
        assert batch.experiment == "ab"
        assert {x.release for x in batch.arms} == {a.release.id, b.release.id}


def test_without_an_experiment_the_batch_and_health_name_the_champion(
    pair: tuple[Artifacts, Built, Built],
) -> None:
    artifacts, a, _ = pair
    with run_server(artifacts) as live:
        client = live.client()
        batch = client.filterBatch(_requests(artifacts, 10))
        assert [(x.arm, x.release) for x in batch.arms] == [("champion", a.release.id)]
        assert batch.armOfRequest is None and batch.experiment is None
        health = client.health()
        assert health.experiment is None
        assert [(x.arm, x.release, x.share) for x in health.arms] == [("champion", a.release.id, 1.0)]


def test_health_lists_the_arms_with_their_releases_and_shares(pair: tuple[Artifacts, Built, Built]) -> None:
    artifacts, a, b = pair
    with run_server(artifacts, watch_interval=0.1) as live:
        X.start(artifacts.store, _experiment(a, b, share=0.1))
        wait_for(live, "ab")
        health = live.client().health()
        assert health.experiment == "ab"
        assert [(x.arm, x.release, x.share) for x in health.arms] == [
            ("champion", a.release.id, pytest.approx(0.9)),
            ("challenger", b.release.id, pytest.approx(0.1)),
        ]
        champion = live.holder.current
        assert champion is not None and health.modelVersion == champion.version


def test_the_original_client_is_answered_byte_for_byte_during_an_experiment(
    pair: tuple[Artifacts, Built, Built],
) -> None:
    artifacts, a, b = pair
    experiment = _experiment(a, b)
    models = _models(a, b)
    with run_server(artifacts, watch_interval=0.1) as live:
        X.start(artifacts.store, experiment)
        wait_for(live, "ab")
        original = thriftpy2.load(str(HERE / "original_api.thrift"), module_name="original_ab_thrift")
        client = thriftpy2.rpc.make_client(original.BidRequestFilter, "127.0.0.1", live.port, timeout=10_000)
        with socket.create_connection(("127.0.0.1", live.port), timeout=10) as sock:
            for seqid, request in enumerate(_requests(artifacts, 100)):
                fields = {name: getattr(request, name) for name in tb.BID_REQUEST_FIELDS}
                expected = models[X.assign(request.bidId, experiment)].score(BidRequest(**fields))
                sock.sendall(tb.filter_call(seqid, tb.bid_request(**fields)))
                reply = tb.recv_exactly(sock, len(tb.filter_reply(seqid, expected)))
                assert reply == tb.filter_reply(seqid, expected)
                theirs = client.filter(original.BidRequest(**fields)).likelihoodToBid
                assert theirs == expected
        client.close()


def test_no_request_fails_while_experiments_start_change_and_stop(
    pair: tuple[Artifacts, Built, Built],
) -> None:
    artifacts, a, b = pair
    requests = _requests(artifacts, 500)
    failures: list[str] = []
    arms_seen: Counter[str] = Counter()
    answered = [0]
    stop = threading.Event()

    def canary(live: LiveServer, batch: bool) -> None:
        client = live.client()
        i = 0
        while not stop.is_set():
            try:
                if batch:
                    reply = client.filterBatch(requests[i % 400 : i % 400 + 50])
                    assert len(reply.likelihoodToBid) == 50
                    arms_seen.update(x.arm for x in reply.arms)
                    answered[0] += 50
                else:
                    arms_seen[client.filterArm(requests[i % 500]).arm.arm] += 1
                    answered[0] += 1
            except Exception as exc:  # every failure is the finding
                failures.append(f"{type(exc).__name__}: {exc}")
            i += 1

    with run_server(artifacts, watch_interval=0.05) as live:
        threads = [threading.Thread(target=canary, args=(live, k == 1)) for k in range(2)]
        for t in threads:
            t.start()
        try:
            X.start(artifacts.store, _experiment(a, b, share=0.1))
            wait_for(live, "ab")
            X.start(artifacts.store, _experiment(a, b, share=0.5))  # change the shares
            deadline = time.monotonic() + SWAP_TIMEOUT
            while _share(live, "challenger") != 0.5:
                assert time.monotonic() < deadline
                time.sleep(0.05)
            X.stop(artifacts.store)
            wait_for(live, None)
            X.start(artifacts.store, _experiment(a, b, share=0.2, name="again"))
            wait_for(live, "again")
            X.stop(artifacts.store)
            wait_for(live, None)
        finally:
            stop.set()
            for t in threads:
                t.join(timeout=30)
    assert failures == []
    assert answered[0] > 0 and arms_seen["challenger"] > 0 and arms_seen["champion"] > 0


def test_an_experiment_naming_a_missing_release_leaves_the_champion_serving(
    pair: tuple[Artifacts, Built, Built],
) -> None:
    artifacts, a, _ = pair
    bad = X.new_experiment(champion=a.release.id, challengers=[("20990101T000000Z-0000000000", 0.1)])
    with run_server(artifacts, watch_interval=0.1) as live:
        artifacts.store.put(params.EXPERIMENT, bad.to_json())  # not through start, which would refuse it
        deadline = time.monotonic() + SWAP_TIMEOUT
        while "20990101T000000Z-0000000000" not in (live.watcher.last_error or ""):
            assert time.monotonic() < deadline
            time.sleep(0.05)
        assert live.watcher.failures == 0
        assert live.holder.serving is not None and live.holder.serving.experiment is None
        assert live.client().filter(_requests(artifacts, 1)[0]).likelihoodToBid >= 0.0


def test_a_malformed_experiment_parameter_is_ignored_and_reported(
    pair: tuple[Artifacts, Built, Built],
) -> None:
    artifacts, _, _ = pair
    with run_server(artifacts, watch_interval=0.1) as live:
        artifacts.store.put(params.EXPERIMENT, '{"name": "x"}')
        deadline = time.monotonic() + SWAP_TIMEOUT
        while "ignoring /aik/experiment" not in (live.watcher.last_error or ""):
            assert time.monotonic() < deadline
            time.sleep(0.05)
        assert live.watcher.failures == 0  # a verdict on the parameter, not a failing store
        assert live.client().filter(_requests(artifacts, 1)[0]).likelihoodToBid >= 0.0


def test_aik_experiment_start_status_stop(
    pair: tuple[Artifacts, Built, Built], capsys: pytest.CaptureFixture[str]
) -> None:
    from aik.cli import main

    artifacts, a, b = pair
    ws = ["--workspace", str(artifacts.settings.workspace)]
    assert (
        main([*ws, "experiment", "start", "--challenger", b.release.id[:20], "--share", "0.1", "--name", "t"])
        == 0
    )
    experiment = X.active(artifacts.store)
    assert experiment is not None and experiment.name == "t"
    assert [(x.arm, x.release, x.share) for x in experiment.arms] == [
        ("champion", a.release.id, pytest.approx(0.9)),
        ("challenger", b.release.id, 0.1),
    ]
    # the same name again changes the share and keeps the salt
    assert (
        main([*ws, "experiment", "start", "--challenger", b.release.id, "--share", "0.2", "--name", "t"]) == 0
    )
    changed = X.active(artifacts.store)
    assert changed is not None and changed.salt == experiment.salt and changed.arm("challenger").share == 0.2
    assert main([*ws, "experiment", "status"]) == 0
    assert "running t" in capsys.readouterr().out
    assert main([*ws, "experiment", "stop"]) == 0
    assert X.active(artifacts.store) is None
    assert main([*ws, "experiment", "stop"]) == 1
    assert "no experiment is running" in capsys.readouterr().err


def test_aik_experiment_start_refuses_an_unknown_release_and_writes_nothing(
    pair: tuple[Artifacts, Built, Built], capsys: pytest.CaptureFixture[str]
) -> None:
    from aik.cli import main

    artifacts, _, _ = pair
    ws = ["--workspace", str(artifacts.settings.workspace)]
    assert main([*ws, "experiment", "start", "--challenger", "nope"]) == 1
    assert "no release 'nope'" in capsys.readouterr().err
    assert X.load(artifacts.store) is None
    with pytest.raises(SystemExit) as usage:
        main([*ws, "experiment", "start", "--challenger", "x", "--share", "1.5"])
    assert usage.value.code == 2


# -- filterColumns during an experiment -----------------------------------------------------------------


def _columns_run(pair: tuple[Artifacts, Built, Built], requests: list[Any], **server: Any) -> tuple[Any, Any]:
    """A filterColumns reply of `requests` during experiment ab (30 % challenger), and the experiment."""
    artifacts, a, b = pair
    experiment = _experiment(a, b, share=0.3)
    with run_server(artifacts, watch_interval=0.1, **server) as live:
        X.start(artifacts.store, experiment)
        wait_for(live, "ab")
        reply = live.client().filterColumns(bid_columns_of(requests))
    return reply, experiment


def test_columns_are_split_by_arm_and_say_which_arm_scored_each_row(
    pair: tuple[Artifacts, Built, Built],
) -> None:
    artifacts, a, b = pair
    requests = _requests(artifacts, 400)
    reply, experiment = _columns_run(pair, requests)
    arm_of_row = arm_of_rows(reply)
    assert arm_of_row is not None
    arms = [reply.arms[i].arm for i in arm_of_row]
    assert arms == X.assign_many([r.bidId for r in requests], experiment)
    models = _models(a, b)
    expected = [models[arm].score(r) for arm, r in zip(arms, requests, strict=True)]
    assert likelihoods(reply).tolist() == expected
    releases = [(x.arm, x.release) for x in reply.arms]
    assert releases == [("champion", a.release.id), ("challenger", b.release.id)]
    assert reply.modelVersion == f"{models['champion'].version}+{models['challenger'].version}"
    assert reply.experiment == "ab"


def test_columns_with_dictionary_bid_ids_assign_a_missing_one_as_the_empty_bid_id(
    pair: tuple[Artifacts, Built, Built],
) -> None:
    artifacts, _, _ = pair
    requests = _requests(artifacts, 200)
    for request in requests[::7]:
        request.bidId = None  # a None makes bid_columns_of send bidId dictionary-encoded
    reply, experiment = _columns_run(pair, requests)
    assert reply.arms is not None
    arms = [reply.arms[i].arm for i in arm_of_rows(reply)]  # type: ignore[union-attr]  # an experiment runs
    assert arms == X.assign_many([r.bidId or "" for r in requests], experiment)


def test_columns_without_an_experiment_reply_with_the_champions_fields_only(
    pair: tuple[Artifacts, Built, Built],
) -> None:
    artifacts, _, _ = pair
    with run_server(artifacts) as live:
        reply = live.client().filterColumns(bid_columns_of(_requests(artifacts, 50)))
        assert live.holder.current is not None and reply.modelVersion == live.holder.current.version
    assert (reply.arms, reply.armOfRequest, reply.experiment) == (None, None, None)
    assert arm_of_rows(reply) is None
    assert likelihoods(reply).shape == (50,)


def test_columns_count_each_arms_rows_in_the_per_arm_metrics(
    pair: tuple[Artifacts, Built, Built], statsd_receiver: StatsdLines
) -> None:
    artifacts, _, _ = pair
    metrics = server_metrics(statsd_receiver)
    requests = _requests(artifacts, 400)
    reply, experiment = _columns_run(pair, requests, metrics=metrics)
    metrics.stop()
    expected = Counter(X.assign_many([r.bidId for r in requests], experiment))
    scores = likelihoods(reply)
    arm_of_row = arm_of_rows(reply)
    assert arm_of_row is not None and reply.arms is not None
    for k, arm in enumerate(x.arm for x in reply.arms):
        count = f"filtering_server.arm_count,arm={arm}"
        assert statsd_receiver.wait_for(lambda _, c=count: statsd_receiver.values(c, "c"))
        assert sum(statsd_receiver.values(count, "c")) == expected[arm]
        mean = statsd_receiver.values(f"filtering_server.arm_likelihood,arm={arm}", "g")
        assert mean == [pytest.approx(float(scores[arm_of_row == k].mean()))]


def test_columns_rows_are_written_to_the_prediction_log_with_their_arms(
    pair: tuple[Artifacts, Built, Built], tmp_path: Path
) -> None:
    artifacts, a, b = pair
    log = L.PredictionLog(L.FileSink(str(tmp_path / "predictions"), writer="w"), rate=1.0).start()
    requests = _requests(artifacts, 300)
    reply, experiment = _columns_run(pair, requests, predictions=log)
    log.stop()
    frame = P.read_predictions(str(tmp_path / "predictions"))
    assert list(frame["bid_id"]) == [r.bidId for r in requests]
    arms = X.assign_many([r.bidId for r in requests], experiment)
    assert list(frame["arm"]) == arms
    releases = {"champion": a.release.id, "challenger": b.release.id}
    assert list(frame["release"]) == [releases[arm] for arm in arms]
    assert list(frame["likelihood"]) == likelihoods(reply).tolist()
    assert set(frame["experiment"]) == {"ab"}
