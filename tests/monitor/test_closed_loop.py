"""The closed loop: an experiment between releases of known quality, answered by the synthetic world.

Each run serves fresh requests of the world under an experiment (assignment by the salted hash, each
arm's release scoring as the server scores), the synthetic exchange realizes every outcome from the
truth, and `aik monitor` judges. The verdict must agree with the truth: the release trained on every
feature beats the one blind to the domain and advertiser, whichever arm it is in, and an experiment
whose arms serve the same release finds no significant difference. Each interval holds its level with
probability 0.95 for a given seed: the seeds here are fixed, so a run is reproducible.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from aik.experiments import Arm, Experiment
from demo.closed_loop import ClosedLoop, by_contract, release_model, run_closed_loop

from .conftest import AbWorld

REQUESTS = 20_000


@pytest.fixture(scope="module")
def models(ab_world: AbWorld) -> dict[str, object]:
    """Both releases loaded once as the server loads them."""
    return {r.id: release_model(ab_world.releases_root, r.id) for r in (ab_world.good, ab_world.blind)}


def _loop(
    world: AbWorld, models: dict[str, object], name: str, champion: str, challenger: str, out: Path | None
) -> ClosedLoop:
    experiment = Experiment(
        name=name,
        salt=f"salt-{name}",
        arms=(Arm("champion", champion, 0.5), Arm("challenger", challenger, 0.5)),
    )
    root = world.settings.workspace / name
    return run_closed_loop(
        serve=by_contract(world.releases_root, models),
        experiment=experiment,
        traffic=world.traffic,
        truth=world.truth,
        requests=REQUESTS,
        seed=11,
        logs_root=str(root / "exchange"),
        predictions_root=str(root / "predictions"),
        out=str(out) if out else None,
    )


@pytest.fixture(scope="module")
def good_champion(
    ab_world: AbWorld, models: dict[str, object], tmp_path_factory: pytest.TempPathFactory
) -> ClosedLoop:
    """The good release as champion, the blind one as challenger; the report written with its plots."""
    out = tmp_path_factory.mktemp("report")
    return _loop(ab_world, models, "good-vs-blind", ab_world.good.id, ab_world.blind.id, out)


def test_the_better_release_wins_as_champion(good_champion: ClosedLoop) -> None:
    (verdict,) = good_champion.report.verdicts
    assert verdict.truth is not None and verdict.truth["logloss_difference"] > 0  # the truth: blind is worse
    assert verdict.logloss.significant and verdict.winner == "champion"


def test_the_better_release_wins_as_challenger(ab_world: AbWorld, models: dict[str, object]) -> None:
    loop = _loop(ab_world, models, "blind-vs-good", ab_world.blind.id, ab_world.good.id, None)
    (verdict,) = loop.report.verdicts
    assert verdict.truth is not None and verdict.truth["logloss_difference"] < 0
    assert verdict.logloss.significant and verdict.winner == "challenger"


def test_arms_serving_the_same_release_differ_in_nothing_significant(
    ab_world: AbWorld, models: dict[str, object]
) -> None:
    loop = _loop(ab_world, models, "good-vs-good", ab_world.good.id, ab_world.good.id, None)
    (verdict,) = loop.report.verdicts
    assert not verdict.logloss.significant and verdict.winner is None
    assert not verdict.rate.significant


def test_the_log_loss_difference_interval_covers_the_truths(good_champion: ClosedLoop) -> None:
    (verdict,) = good_champion.report.verdicts
    assert verdict.truth is not None
    assert verdict.logloss.difference.covers(verdict.truth["logloss_difference"])


def test_every_arms_expected_actual_interval_covers_its_true_ratio(good_champion: ClosedLoop) -> None:
    for arm, metrics in good_champion.report.arms.items():
        assert metrics.truth is not None, arm
        assert metrics.truth.covered["expected_actual"], (arm, metrics.expected_actual, metrics.truth)


def test_segment_intervals_cover_their_true_ratios_at_about_their_level(good_champion: ClosedLoop) -> None:
    rows = [r for segment in good_champion.report.segments.values() for r in segment]
    covered = [r["truth"]["covered"]["expected_actual"] for r in rows]
    assert len(rows) > 30
    assert sum(covered) / len(covered) >= 0.85


def test_the_arms_split_the_requests_by_their_shares(good_champion: ClosedLoop) -> None:
    arms = good_champion.report.arms
    assert sum(m.n for m in arms.values()) == REQUESTS
    # binomial(20,000, 0.5): 3 standard deviations are 212 requests
    assert abs(arms["challenger"].n - REQUESTS / 2) < 3 * (REQUESTS * 0.25) ** 0.5


def test_the_report_is_written_as_json_text_and_plots(good_champion: ClosedLoop) -> None:
    plots = good_champion.report.plots
    assert set(plots) == {"calibration", "expected_actual"}
    out = Path(plots["calibration"]).parent
    doc = json.loads((out / "monitor-report.json").read_text())
    assert doc["verdicts"][0]["winner"] == "champion"
    assert doc["arms"]["challenger"]["releases"] == [good_champion.report.releases["challenger"][0]]
    assert "champion has the lower log loss" in (out / "monitor-report.txt").read_text()
    for uri in plots.values():
        assert Path(uri).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
