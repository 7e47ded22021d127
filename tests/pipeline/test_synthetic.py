"""Synthetic logs: the raw format exactly, seeded, and wins/clicks drawn from the saved truth."""

from __future__ import annotations

import bz2
import datetime
import json
from collections import Counter
from dataclasses import replace
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from aik.device import NUM_DEVICE_TYPES, device_type_id
from aik.ipinyou import read_log, scan_log, spark_dayofweek
from aik.synthetic import (
    CATEGORY_SHARES,
    DEFAULT_INTERACTIONS,
    USER_AGENTS,
    SyntheticConfig,
    build_world,
    draw_truth,
    generate,
    parse_interactions,
    rank_auc,
    term_weights,
)
from aik.truth import TruthModel

CATEGORY_IDS = {
    "smartphone": 0,
    "mobilephone": 1,
    "appliance": 2,
    "pc": 3,
    "crawler": 4,
    "misc": 5,
    "unknown": 6,
}


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, object]:
    raw = tmp_path_factory.mktemp("raw")
    return raw, generate(str(raw), SyntheticConfig(rows=30_000, seed=11))


def test_each_user_agent_parses_to_its_category_and_writes_cleanly() -> None:
    assert set(USER_AGENTS) == set(CATEGORY_SHARES) == set(CATEGORY_IDS)
    for category, agents in USER_AGENTS.items():
        for agent, _ in agents:
            assert device_type_id(agent) == CATEGORY_IDS[category], agent
            assert agent is None or not any(c in agent for c in '\t\r\n"'), agent


def test_files_are_named_and_formatted_like_the_dataset(generated: tuple[Path, object]) -> None:
    raw, _ = generated
    names = sorted(p.name for p in raw.glob("*/*.bz2"))
    days = [f"201306{d:02d}" for d in range(6, 13)]
    assert names == sorted(f"{k}.{d}.txt.bz2" for k in ("bid", "clk", "imp") for d in days)
    for path in raw.glob("*/*.bz2"):
        result = scan_log(str(path))
        assert result.rejected == 0 and result.accepted > 0, path
    assert sum(scan_log(str(p)).lines for p in raw.glob("bid/*.bz2")) == 30_000
    with bz2.open(raw / "clk" / "clk.20130606.txt.bz2", "rt") as f:
        first = f.readline().rstrip("\n").split("\t")
    assert len(first) == 24 and first[2] == "2" and first[20] == "0"  # season-2 quirk: clicks carry price 0


def test_wins_and_clicks_are_drawn_from_the_saved_truth_of_the_fields_the_job_sees(
    generated: tuple[Path, object],
) -> None:
    raw, _ = generated
    truth = TruthModel.load(str(raw / "truth" / "truth.json"))
    bids = [r for p in sorted(raw.glob("bid/*.bz2")) for r in read_log(str(p))]
    # The feature job's view: device from the user agent, hour and Spark dayofweek from the Timestamp.
    columns = {
        "AdvertiserID": [r["AdvertiserID"] for r in bids],
        "Domain": [r["Domain"] for r in bids],
        "RegionID": [r["RegionID"] for r in bids],
        "CityID": [r["CityID"] for r in bids],
        "device_type_id": [device_type_id(r["UserAgent"]) for r in bids],
        "hour": [int(r["Timestamp"][8:10]) for r in bids],
        "dow": [spark_dayofweek(r["Timestamp"]) for r in bids],
    }
    table = pq.read_table(raw / "truth" / "bid_truth.parquet").to_pydict()
    by_id = {b: i for i, b in enumerate(table["BidID"])}
    order = [by_id[r["BidID"]] for r in bids]
    np.testing.assert_allclose(truth.win.probability(columns), np.array(table["p_win"])[order], rtol=1e-12)
    np.testing.assert_allclose(
        truth.click.probability(columns), np.array(table["p_click"])[order], rtol=1e-12
    )
    won = {b for b, w in zip(table["BidID"], table["win"], strict=True) if w}
    clicked = {b for b, c in zip(table["BidID"], table["click"], strict=True) if c}
    imps = [r for p in raw.glob("imp/*.bz2") for r in read_log(str(p))]
    clks = [r for p in raw.glob("clk/*.bz2") for r in read_log(str(p))]
    assert {r["BidID"] for r in imps} == won and len(imps) == len(won)
    assert {r["BidID"] for r in clks} == clicked <= won
    # Impressions repeat the request's fields and keep its day and hour.
    bid_by_id = {r["BidID"]: r for r in bids}
    for imp in imps[:500]:
        bid = bid_by_id[imp["BidID"]]
        assert imp["Timestamp"][:10] == bid["Timestamp"][:10] and imp["Timestamp"] >= bid["Timestamp"]
        assert all(
            imp[c] == bid[c] for c in ("Domain", "UserAgent", "CityID", "AdvertiserID", "BiddingPrice")
        )
        assert 0 <= int(imp["PayingPrice"]) <= int(bid["BiddingPrice"])


def test_magnitudes_follow_the_design(generated: tuple[Path, object]) -> None:
    raw, report = generated
    d = report.to_dict()  # type: ignore[attr-defined]
    assert 0.15 <= d["win_rate"] <= 0.25
    assert 0.75 <= d["oracle_auc_win"] <= 0.83
    bids = [r for p in raw.glob("bid/*.bz2") for r in read_log(str(p))]
    assert len({r["AdvertiserID"] for r in bids}) == 10
    assert 30 <= len({r["RegionID"] for r in bids}) <= 35
    assert 300 <= len({r["CityID"] for r in bids}) <= 370
    domains = Counter(r["Domain"] for r in bids)
    assert len(domains) > 2000  # thousands, Zipf: a long tail of rare domains
    top = domains.most_common(10)
    assert top[0][1] > 20 * np.median(list(domains.values()))
    assert {device_type_id(r["UserAgent"]) for r in bids} == set(range(NUM_DEVICE_TYPES))
    assert len({int(r["Timestamp"][8:10]) for r in bids}) == 24
    assert len({spark_dayofweek(r["Timestamp"]) for r in bids}) == 7


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_oracle_auc_and_win_rate_stay_in_range_across_seeds(seed: int) -> None:
    config = SyntheticConfig(seed=seed)
    world = build_world(config, np.random.default_rng([seed, 0]))
    win, _ = draw_truth(config, world, np.random.default_rng([seed, 1]))
    from aik.synthetic import draw_rows

    rng = np.random.default_rng(99)
    rows = draw_rows(world, 100_000, rng)
    p = win.probability(rows, world)
    won = rng.random(p.size) < p
    assert 0.15 <= won.mean() <= 0.25
    assert 0.75 <= rank_auc(won, p) <= 0.83


def test_effects_are_not_ordered_by_frequency() -> None:
    config = SyntheticConfig(seed=5)
    world = build_world(config, np.random.default_rng([5, 0]))
    win, _ = draw_truth(config, world, np.random.default_rng([5, 1]))
    rank_of_weight = np.argsort(np.argsort(world.domain_weights))
    rank_of_effect = np.argsort(np.argsort(win.domain))
    assert abs(np.corrcoef(rank_of_weight, rank_of_effect)[0, 1]) < 0.1


def test_seeded_reproducible_and_truth_independent_of_rows(tmp_path: Path) -> None:
    a = generate(str(tmp_path / "a"), SyntheticConfig(rows=2_000, seed=4, days=2))
    b = generate(str(tmp_path / "b"), SyntheticConfig(rows=2_000, seed=4, days=2))
    c = generate(str(tmp_path / "c"), SyntheticConfig(rows=3_000, seed=4, days=2))
    d = generate(str(tmp_path / "d"), SyntheticConfig(rows=2_000, seed=5, days=2))
    for kind in ("bid", "imp", "clk"):
        for name in (p.name for p in (tmp_path / "a" / kind).iterdir()):
            assert bz2.decompress((tmp_path / "a" / kind / name).read_bytes()) == bz2.decompress(
                (tmp_path / "b" / kind / name).read_bytes()
            )
    truth = (tmp_path / "a" / "truth" / "truth.json").read_text()
    assert truth == (tmp_path / "c" / "truth" / "truth.json").read_text()
    assert truth != (tmp_path / "d" / "truth" / "truth.json").read_text()
    assert (a.rows, a.impressions, a.clicks) == (b.rows, b.impressions, b.clicks)
    assert c.rows == 3_000 and d.impressions != a.impressions


def test_rank_auc_matches_pairwise_counting_with_ties() -> None:
    rng = np.random.default_rng(0)
    scores = rng.integers(0, 5, 200).astype(float)
    labels = rng.random(200) < 0.3
    pos, neg = scores[labels], scores[~labels]
    pairwise = ((pos[:, None] > neg[None, :]).sum() + 0.5 * (pos[:, None] == neg[None, :]).sum()) / (
        pos.size * neg.size
    )
    assert rank_auc(labels, scores) == pytest.approx(pairwise)
    assert np.isnan(rank_auc(np.zeros(3), np.ones(3)))


def test_invalid_settings_are_refused() -> None:
    with pytest.raises(ValueError, match="rows"):
        SyntheticConfig(rows=0)
    with pytest.raises(ValueError, match="probabilities"):
        SyntheticConfig(win_rate=1.5)


@pytest.fixture(scope="module")
def interacting(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, object]:
    raw = tmp_path_factory.mktemp("raw-interactions")
    config = SyntheticConfig(rows=6_000, seed=12, domains=400, interactions=DEFAULT_INTERACTIONS)
    return raw, generate(str(raw), config)


def test_interaction_terms_are_saved_and_the_oracle_reproduces_the_drawn_probabilities(
    interacting: tuple[Path, object],
) -> None:
    raw, _ = interacting
    truth = TruthModel.load(str(raw / "truth" / "truth.json"))
    assert sorted(truth.win.pairs) == ["advertiser:device_type", "advertiser:domain", "device_type:hour"]
    bids = [r for p in sorted(raw.glob("bid/*.bz2")) for r in read_log(str(p))]
    columns = {
        "AdvertiserID": [r["AdvertiserID"] for r in bids],
        "Domain": [r["Domain"] for r in bids],
        "RegionID": [r["RegionID"] for r in bids],
        "CityID": [r["CityID"] for r in bids],
        "device_type_id": [device_type_id(r["UserAgent"]) for r in bids],
        "hour": [int(r["Timestamp"][8:10]) for r in bids],
        "dow": [spark_dayofweek(r["Timestamp"]) for r in bids],
    }
    table = pq.read_table(raw / "truth" / "bid_truth.parquet").to_pydict()
    by_id = {b: i for i, b in enumerate(table["BidID"])}
    order = [by_id[r["BidID"]] for r in bids]
    np.testing.assert_allclose(truth.win.probability(columns), np.array(table["p_win"])[order], rtol=1e-12)
    additive = replace(truth.win, pairs={}).probability(columns)
    assert np.max(np.abs(additive - np.array(table["p_win"])[order])) > 0.05


def test_interactions_are_pure_and_as_strong_as_configured() -> None:
    config = SyntheticConfig(seed=4, interactions=(("device_type", "hour", 0.5),))
    world = build_world(config, np.random.default_rng([4, 0]))
    win, _ = draw_truth(config, world, np.random.default_rng([4, 1]))
    effects = win.pairs["device_type:hour"]
    w1, w2 = term_weights(world, "device_type"), term_weights(world, "hour")
    w1, w2 = w1 / w1.sum(), w2 / w2.sum()
    # no part of it is a per-value effect of either term: every weighted row and column mean is 0
    np.testing.assert_allclose(effects @ w2, 0, atol=1e-12)
    np.testing.assert_allclose(w1 @ effects, 0, atol=1e-12)
    assert float(np.sqrt(w1 @ effects**2 @ w2)) == pytest.approx(0.5)


def test_the_default_world_has_no_interactions_and_old_truth_files_still_load() -> None:
    config = SyntheticConfig(seed=4)
    world = build_world(config, np.random.default_rng([4, 0]))
    win, click = draw_truth(config, world, np.random.default_rng([4, 1]))
    assert win.pairs == {} and win.model(world).pairs == {}
    doc = json.loads(TruthModel(win=win.model(world), click=click.model(world)).to_json())
    for part in ("win", "click"):
        del doc[part]["pairs"]  # a truth file written before interactions existed
    assert TruthModel.from_json(json.dumps(doc)).win.pairs == {}


def test_bad_interactions_are_refused() -> None:
    assert parse_interactions("default") == DEFAULT_INTERACTIONS
    assert parse_interactions("advertiser:hour=0.3") == (("advertiser", "hour", 0.3),)
    for bad in ("advertiser:site=0.3", "hour:hour=0.2"):
        with pytest.raises(ValueError):
            parse_interactions(bad)
    with pytest.raises(ValueError, match="every city lies in one region"):
        SyntheticConfig(interactions=(("region", "city", 0.3),))
    with pytest.raises(ValueError, match="positive sd"):
        SyntheticConfig(interactions=(("advertiser", "hour", 0.0),))


def test_a_later_day_of_a_drifting_world_is_the_same_day_whether_made_alone_or_with_the_others(
    tmp_path: Path,
) -> None:
    start = datetime.date(2013, 6, 6)
    common = {"seed": 3, "drift": 0.1, "world_start": start}
    together = SyntheticConfig(rows=3_000, start=start, days=3, **common)
    alone = SyntheticConfig(rows=1_000, start=start + datetime.timedelta(days=2), days=1, **common)
    generate(str(tmp_path / "together"), together)
    generate(str(tmp_path / "alone"), alone)
    day = "truth.20130608.json"
    assert (tmp_path / "together" / "truth" / day).read_text() == (
        tmp_path / "alone" / "truth" / day
    ).read_text()


def test_the_truth_drifts_slowly_from_day_to_day(tmp_path: Path) -> None:
    config = SyntheticConfig(rows=3_000, seed=3, days=4, drift=0.1)
    generate(str(tmp_path), config)
    truths = [
        TruthModel.load(str(tmp_path / "truth" / f"truth.201306{d:02d}.json")).win for d in range(6, 10)
    ]
    domains = list(truths[0].domain)
    effects = np.array([[t.domain[d] for d in domains] for t in truths])
    next_day = np.corrcoef(effects[0], effects[1])[0, 1]
    three_days = np.corrcoef(effects[0], effects[3])[0, 1]
    assert 0.97 < next_day < 1.0  # cos(0.1): close, not equal
    assert three_days < next_day  # and further apart with time
    assert effects[1].std() == pytest.approx(effects[0].std(), rel=0.1)  # each day keeps the term's spread
