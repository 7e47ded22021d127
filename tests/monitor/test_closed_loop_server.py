"""The closed loop through a real filtering server process: its experiment routing and its prediction log."""

from __future__ import annotations

import pytest

from aik.experiments import Arm, Experiment
from demo.closed_loop import ClosedLoop, by_server, run_closed_loop

from .conftest import AbWorld

REQUESTS = 10_000


@pytest.fixture(scope="module")
def through_server(ab_world: AbWorld) -> ClosedLoop:
    """The good release as champion, the blind one as challenger, served by `python -m filtering_server`."""
    experiment = Experiment(
        name="server-good-vs-blind",
        salt="salt-server",
        arms=(Arm("champion", ab_world.good.id, 0.5), Arm("challenger", ab_world.blind.id, 0.5)),
    )
    root = ab_world.settings.workspace / "server"
    return run_closed_loop(
        serve=by_server(ab_world.settings, ab_world.store, root / "server.log"),
        experiment=experiment,
        traffic=ab_world.traffic,
        truth=ab_world.truth,
        requests=REQUESTS,
        seed=11,
        logs_root=str(root / "exchange"),
        predictions_root=str(root / "predictions"),
        out=None,
    )


def test_the_server_logged_every_answer_of_its_arms(through_server: ClosedLoop, ab_world: AbWorld) -> None:
    report = through_server.report
    assert sum(m.n for m in report.arms.values()) == REQUESTS
    assert report.releases == {"champion": [ab_world.good.id], "challenger": [ab_world.blind.id]}


def test_the_better_release_served_by_the_server_wins(through_server: ClosedLoop) -> None:
    (verdict,) = through_server.report.verdicts
    assert verdict.truth is not None and verdict.truth["logloss_difference"] > 0
    assert verdict.logloss.significant and verdict.winner == "champion"
