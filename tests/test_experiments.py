"""Experiments: the parameter's document, its checks, and the salted-hash assignment of BidIDs to arms."""

from __future__ import annotations

import json
import math
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from aik import experiments as X
from aik import params
from aik.context import Context
from aik.settings import Settings

TEN = X.Experiment(
    name="ten",
    salt="s1",
    arms=(X.Arm("champion", "R1", 0.9), X.Arm("challenger", "R2", 0.1)),
)


def _ids(n: int, start: int = 0) -> list[str]:
    return [f"bid-{i:08d}" for i in range(start, start + n)]


def test_the_split_over_100k_requests_is_within_three_standard_deviations_of_the_share() -> None:
    n = 100_000
    arms = X.assign_many(_ids(n), TEN)
    challengers = arms.count("challenger")
    sd = math.sqrt(n * 0.1 * 0.9)
    assert abs(challengers - n * 0.1) < 3 * sd, (challengers, sd)
    assert set(arms) == {"champion", "challenger"}


def test_three_arms_each_get_their_share() -> None:
    three = X.new_experiment(champion="R1", challengers=[("R2", 0.2), ("R3", 0.3)], name="three", salt="x")
    n = 60_000
    arms = X.assign_many(_ids(n), three)
    for arm, share in (("champion", 0.5), ("challenger-1", 0.2), ("challenger-2", 0.3)):
        assert abs(arms.count(arm) - n * share) < 3 * math.sqrt(n * share * (1 - share)), arm


def test_a_bid_id_always_lands_in_the_same_arm() -> None:
    ids = _ids(2000)
    assert X.assign_many(ids, TEN) == X.assign_many(list(ids), TEN)


def test_the_assignment_is_the_same_in_another_process() -> None:
    # Python's hash() of a str differs per process (PYTHONHASHSEED); the assignment must not
    ids = _ids(300)
    code = (
        "import json, sys; from aik import experiments as X; "
        "e = X.parse(sys.argv[1]); print(json.dumps(X.assign_many(json.loads(sys.argv[2]), e)))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, TEN.to_json(), json.dumps(ids)],
        capture_output=True,
        text=True,
        check=True,
        env={"PYTHONHASHSEED": "12345", "PATH": ""},
    ).stdout
    assert json.loads(out) == X.assign_many(ids, TEN)


def test_another_salt_reshuffles_the_arms() -> None:
    other = X.parse({**TEN.to_dict(), "salt": "s2"})
    ids = _ids(20_000)
    mine, theirs = X.assign_many(ids, TEN), X.assign_many(ids, other)
    both = sum(a == b == "challenger" for a, b in zip(mine, theirs, strict=True))
    # independent 10 % splits share about 1 % of the requests, not 10 %
    assert both < 0.02 * len(ids)


def test_without_a_running_experiment_every_request_is_the_champions() -> None:
    stopped = X.parse({**TEN.to_dict(), "stopped": True})
    assert {X.assign(b, None) for b in _ids(500)} == {"champion"}
    assert {X.assign(b, stopped) for b in _ids(500)} == {"champion"}


def test_many_bid_ids_hashed_at_once_get_the_arms_assign_gives_them() -> None:
    three = X.new_experiment(champion="R1", challengers=[("R2", 0.2), ("R3", 0.3)], name="three", salt="x")
    ids = [*_ids(5000), "", "é-ünïcode", "x" * 300]
    units = X.units_of_keys((b.encode() for b in ids), three.salt)
    assert units.tolist() == [X.unit(b, three.salt) for b in ids]
    names = [three.arms[i].arm for i in X.arm_indices(units, three)]
    assert names == X.assign_many(ids, three)
    encoded = [b.encode() for b in ids]
    bounds = np.cumsum([0, *map(len, encoded)]).tolist()
    assert X.units_of_slices(b"".join(encoded), bounds, three.salt).tolist() == units.tolist()


def test_a_unit_rounded_up_to_one_belongs_to_the_last_arm() -> None:
    assert X.arm_indices(np.asarray([0.0, 0.95, 1.0]), TEN).tolist() == [0, 1, 1]


def test_the_parameter_round_trips() -> None:
    assert X.parse(TEN.to_json()) == TEN
    assert json.loads(TEN.to_json()) == {
        "name": "ten",
        "salt": "s1",
        "arms": [
            {"arm": "champion", "release": "R1", "share": 0.9},
            {"arm": "challenger", "release": "R2", "share": 0.1},
        ],
    }


@pytest.mark.parametrize(
    ("doc", "message"),
    [
        ("not json", "is not an experiment"),
        ('{"name": "a", "salt": "s"}', "is not an experiment (missing or bad 'arms')"),
        (
            {"name": "a", "salt": "s", "arms": [{"arm": "champion", "release": "R", "share": 0.8}]},
            "the shares sum to 0.8, not 1",
        ),
        (
            {"name": "a", "salt": "s", "arms": [{"arm": "b", "release": "R", "share": 1}]},
            "has no 'champion' arm",
        ),
        (
            {
                "name": "a",
                "salt": "s",
                "arms": [
                    {"arm": "champion", "release": "R", "share": 0.5},
                    {"arm": "champion", "release": "Q", "share": 0.5},
                ],
            },
            "names an arm twice",
        ),
        (
            {
                "name": "a",
                "salt": "s",
                "arms": [
                    {"arm": "champion", "release": "R", "share": 1.1},
                    {"arm": "challenger", "release": "Q", "share": -0.1},
                ],
            },
            "a share is in (0, 1]",
        ),
        ({"name": "a b", "salt": "s", "arms": []}, "experiment name 'a b' must be"),
        ({"name": "a", "salt": "", "arms": []}, "has an empty salt"),
    ],
)
def test_a_bad_experiment_is_refused_with_a_reason(doc: str | dict[str, Any], message: str) -> None:
    with pytest.raises(X.ExperimentError, match=f"^/aik/experiment.*{re.escape(message)}"):
        X.parse(doc)


def test_new_experiment_gives_the_champion_the_rest() -> None:
    e = X.new_experiment(champion="R1", challengers=[("R2", 0.1)])
    assert [(a.arm, a.release) for a in e.arms] == [("champion", "R1"), ("challenger", "R2")]
    assert e.champion.share == pytest.approx(0.9)
    with pytest.raises(X.ExperimentError, match="the champion needs a share above 0"):
        X.new_experiment(champion="R1", challengers=[("R2", 1.0)])


@pytest.fixture
def ctx(tmp_path: Path) -> Context:
    context = Context(Settings(backend="local", workspace=tmp_path / "ws"))
    params.configure(context.params, context.settings)
    return context


def test_start_refuses_a_release_that_does_not_exist(ctx: Context) -> None:
    with pytest.raises(X.ExperimentError, match="arm champion: no release 'R1'"):
        X.start(ctx.params, TEN)
    assert X.load(ctx.params) is None


def test_stop_keeps_the_record_and_leaves_no_running_experiment(ctx: Context) -> None:
    ctx.params.put(params.EXPERIMENT, TEN.to_json())
    assert X.active(ctx.params) == TEN
    stopped = X.stop(ctx.params)
    assert stopped.stopped and X.active(ctx.params) is None
    assert X.load(ctx.params) == stopped
    with pytest.raises(X.ExperimentError, match="no experiment is running"):
        X.stop(ctx.params)
