"""`aik pipeline run`: the loop's steps, its lock, a failed step named, and three days of a drifting world."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from aik import params, releases, storage
from aik.cli import main
from aik.context import Context
from aik.features.window import Window
from aik.pipeline import PipelineOptions, parse_duration, pipeline_lock, run_pipeline
from aik.synthetic import SyntheticConfig, generate

LIVE = "/tmp/elsewhere/releases/20260101T000000Z-0123456789/release.json"


@pytest.fixture
def live_ctx(ctx: Context) -> Context:
    """A configured workspace whose pointer names a live release (the value must survive a failed run)."""
    ctx.params.put(params.RELEASE_LIVE, LIVE)
    return ctx


def _run(ctx: Context, *args: str) -> int:
    return main(["--workspace", str(ctx.settings.workspace), "pipeline", "run", *args])


def test_a_failed_ingest_exits_1_naming_the_step_and_keeps_the_live_release(
    live_ctx: Context, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    assert _run(live_ctx, "--from", str(tmp_path / "no-such-dir")) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("aik pipeline: step ingest failed: ") and len(err.splitlines()) == 1
    assert f"the live release {LIVE} is untouched" in err
    assert live_ctx.params.get(params.RELEASE_LIVE) == LIVE


def test_a_failed_feature_step_exits_1_naming_it_and_keeps_the_live_release(
    live_ctx: Context, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    logs = tmp_path / "logs"
    generate(str(logs), SyntheticConfig(rows=300, days=1))  # one day: no day left to test on
    assert _run(live_ctx, "--from", str(logs)) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("aik pipeline: step features failed: a temporal split needs more than 1 day")
    assert live_ctx.params.get(params.RELEASE_LIVE) == LIVE


def test_two_runs_never_interleave(live_ctx: Context, capsys: pytest.CaptureFixture) -> None:
    with pipeline_lock(live_ctx.settings.workspace):
        assert _run(live_ctx) == 1
    err = capsys.readouterr().err
    assert "another pipeline run holds" in err and "pid " in err


@pytest.mark.parametrize(("text", "seconds"), [("90", 90.0), ("90s", 90.0), ("15m", 900.0), ("6h", 21600.0)])
def test_durations(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


def test_a_bad_duration_prints_usage(capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["pipeline", "run", "--every", "soon"])
    assert exit_.value.code == 2 and "not a duration" in capsys.readouterr().err


# ------------------------------------------------------------------------------------------------
# The local proof: three days of a drifting world, the server swapping releases under load
# ------------------------------------------------------------------------------------------------


def _scorers(ctx: Context, made: list[releases.Release]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Each release as the server scores it, and every bundle-of-one + booster-of-another mix."""
    from filtering_server.forest import forest_from_json
    from filtering_server.model import ModelSources, ServedModel, load_model
    from filtering_server.xgboost_child import BoosterInspector

    def load_forest(data: bytes) -> Any:
        with BoosterInspector("mixed") as inspector:
            return forest_from_json(inspector.load_json(data), "mixed")

    pure: dict[str, Any] = {}
    parts: dict[str, tuple[Any, bytes]] = {}
    for r in made:
        sources = ModelSources(
            r.file_uri("model"), r.file_uri("bundle"), r.file_uri("schema"), r.manifest_uri, r.id, None
        )
        pure[r.id] = load_model(sources)
        parts[r.id] = (pure[r.id].indexer, storage.read_bytes(r.file_uri("model")))
    mixed = {
        f"{a}+{b}": ServedModel(
            version="mixed",
            sources=ModelSources("m", "m", "m"),
            scorer=load_forest(parts[b][1]),
            indexer=parts[a][0],
            schema={},
        )
        for a in parts
        for b in parts
        if a != b
    }
    return pure, mixed


@pytest.mark.slow
@pytest.mark.timeout(3600)  # three feature jobs and training runs; minutes each on a busy machine
def test_three_days_publish_three_releases_that_the_running_server_swaps_in(ctx: Context) -> None:
    from ad_server_emulator.emulator import bid_request, connect, load_rows
    from filtering_server.process import ServerProcess

    options = PipelineOptions(rows_per_day=3_000, window=Window(7, 1), drift=0.1, seed=11)
    made: list[releases.Release] = []
    days: list[dict[str, Any]] = []

    def day() -> None:
        run = run_pipeline(ctx, options)
        assert run.published and run.release is not None
        made.append(run.release)
        m = run.metrics
        days.append(
            {
                "release": run.release.id,
                "test_day": run.release.data["window"]["test_days"],
                "auc": m["auc"],
                "oracle_auc": m["oracle_auc"],
                "oracle_ratio": m["oracle_ratio"],
                "steps": {s.name: s.seconds for s in run.steps},
            }
        )
        print(json.dumps(days[-1]))

    day()
    rows = load_rows(ctx.params.get(params.INFERENCE_DATA), 400)
    requests = [bid_request(r) for r in rows]
    answers: list[tuple[int, float]] = []
    failures: list[str] = []
    stop = threading.Event()
    log = ctx.settings.workspace / "server.log"
    with ServerProcess(ctx.settings, log_path=log, extra_args=["--watch-interval", "0.5"]) as server:

        def load() -> None:
            client = connect("127.0.0.1", server.port, 60_000)
            i = 0
            while not stop.is_set():
                j = i % len(requests)
                try:
                    answers.append((j, client.filter(requests[j]).likelihoodToBid))
                except Exception as exc:
                    failures.append(f"{type(exc).__name__}: {exc}")
                i += 1
                time.sleep(0.002)
            client.close()

        def serving(release: releases.Release) -> None:
            version = releases.sha256(storage.read_bytes(release.file_uri("model")))[:12]
            deadline = time.monotonic() + 600  # a load spawns xgboost; the machine may be very busy
            while True:
                client = connect("127.0.0.1", server.port, 60_000)
                try:
                    if client.health().modelVersion == version:
                        return
                finally:
                    client.close()
                assert time.monotonic() < deadline, (
                    f"release {release.id} was not swapped in: {log.read_text()}"
                )
                time.sleep(0.5)

        loader = threading.Thread(target=load)
        loader.start()
        serving(made[0])
        day()
        serving(made[1])
        day()
        serving(made[2])
        _, back = releases.rollback(ctx.params, releases.releases_root(ctx.params))
        assert back.id == made[1].id
        serving(made[1])
        time.sleep(1.0)
        stop.set()
        loader.join(timeout=30)

    assert failures == []
    pure, mixed = _scorers(ctx, made)
    scores = {
        j: ({n: m.score(q) for n, m in pure.items()}, {n: m.score(q) for n, m in mixed.items()})
        for j, q in enumerate(requests)
    }
    # the requests where every release and every mix answer differently: there a mixed answer shows
    # (consecutive days' bundles share most codes, so elsewhere a mix can equal a release's answer)
    telling = {j for j, (p, x) in scores.items() if len({*p.values(), *x.values()}) == len(p) + len(x)}
    assert len(telling) >= len(requests) // 10
    verdicts = []
    for j, value in answers:
        own = [n for n, v in scores[j][0].items() if v == value]
        assert own, f"answer {value} to request {j} is no release's"
        if j in telling:
            verdicts.append(own[0])
    assert set(verdicts) == {r.id for r in made}  # every telling answer one release's; all three served
    for d in days:
        assert d["oracle_ratio"] > 0.9
    assert len({tuple(d["test_day"]) for d in days}) == 3  # each day tested on its own new day


@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_a_second_run_without_new_days_reuses_everything(ctx: Context, tmp_path: Path) -> None:
    logs = tmp_path / "logs"
    generate(str(logs), SyntheticConfig(rows=12_000, days=8, seed=5))
    options = PipelineOptions(source=str(logs), window=Window(7, 1))
    first = run_pipeline(ctx, options)
    assert first.published and [s.ran for s in first.steps] == [True] * 5
    second = run_pipeline(ctx, options)
    assert [(s.name, s.ran) for s in second.steps] == [
        ("ingest", False),
        ("features", False),
        ("train", False),
    ]
    assert second.release is not None and second.release.id == first.release.id  # type: ignore[union-attr]
    assert ctx.params.get(params.RELEASE_LIVE) == first.release.manifest_uri  # type: ignore[union-attr]


@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_a_neural_family_is_published_live_and_another_family_on_the_same_features_trains_again(
    ctx: Context, tmp_path: Path
) -> None:
    pytest.importorskip("torch", reason="the neural extra trains the fm family")
    logs = tmp_path / "logs"
    generate(str(logs), SyntheticConfig(rows=12_000, days=8, seed=5))
    neural = run_pipeline(ctx, PipelineOptions(source=str(logs), window=Window(7, 1), family="fm"))
    assert neural.published and neural.release is not None and neural.release.family == "fm"
    assert ctx.params.get(params.RELEASE_LIVE) == neural.release.manifest_uri
    booster = run_pipeline(ctx, PipelineOptions(source=str(logs), window=Window(7, 1)))
    assert ("train", True) in [(s.name, s.ran) for s in booster.steps]  # not skipped: another family
    assert booster.release is not None and booster.release.family == "xgboost"
    assert ctx.params.get(params.RELEASE_LIVE) == booster.release.manifest_uri
