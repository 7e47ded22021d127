"""Ten-second windows: samples land in the window of their arrival time, stats match numpy."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from aik.dashboard import PERIOD_S
from aik.monitoring.windows import WindowAggregator, WindowRecord, weighted_percentiles

T0 = 1_700_000_000.0  # a window boundary (divisible by 10)


def by_key(records: list[WindowRecord]) -> dict[tuple[int, str], WindowRecord]:
    return {(r.timestamp, r.name): r for r in records}


def test_the_period_is_the_dashboards() -> None:
    assert WindowAggregator().period_s == PERIOD_S == 10


def test_samples_fall_in_the_window_of_their_arrival_time() -> None:
    agg = WindowAggregator()
    for offset in (0.0, 3.0, 9.999):
        agg.add_line("hits:1|c", T0 + offset)
    for offset in (10.0, 19.5):
        agg.add_line("hits:1|c", T0 + offset)
    agg.add_line("hits:1|c", T0 + 35.0)
    records = by_key(agg.pop_all())
    assert {k: r.sum for k, r in records.items()} == {
        (int(T0), "hits"): 3.0,
        (int(T0) + 10, "hits"): 2.0,
        (int(T0) + 30, "hits"): 1.0,
    }
    assert all(r.period == 10 for r in records.values())


def test_only_windows_that_have_ended_are_handed_out() -> None:
    agg = WindowAggregator()
    agg.add_line("hits:1|c", T0 + 1)
    agg.add_line("hits:1|c", T0 + 11)
    assert agg.pop_closed(T0 + 9.9) == []
    closed = agg.pop_closed(T0 + 10.0)
    assert [(r.timestamp, r.sum) for r in closed] == [(int(T0), 1.0)]
    assert agg.open_windows == [int(T0) + 10]
    assert agg.pop_closed(T0 + 10.5) == []
    assert [(r.timestamp, r.sum) for r in agg.pop_all()] == [(int(T0) + 10, 1.0)]
    assert agg.pop_all() == []


def test_a_sample_stamped_before_a_written_window_joins_the_open_one() -> None:
    agg = WindowAggregator()
    agg.add_line("hits:1|c", T0 + 1)
    assert len(agg.pop_closed(T0 + 12)) == 1
    agg.add_line("hits:1|c", T0 + 5)  # the clock stepped back: that window was written already
    assert [(r.timestamp, r.sum) for r in agg.pop_all()] == [(int(T0) + 10, 1.0)]


def test_timer_stats_match_numpy() -> None:
    rng = np.random.default_rng(7)
    values = rng.lognormal(mean=-1.0, sigma=0.8, size=5000)
    agg = WindowAggregator()
    for i, value in enumerate(values):
        agg.add_line(f"filtering_server.filtering_latency:{float(value)!r}|ms", T0 + i * 0.001)
    (record,) = agg.pop_all()
    assert record.metric_type == "timing"
    assert record.samples == 5000
    assert record.count == 5000
    assert record.sum == pytest.approx(values.sum())
    assert record.average == pytest.approx(values.mean())
    assert (record.min, record.max) == (values.min(), values.max())
    for q, got in ((50, record.p50), (90, record.p90), (99, record.p99)):
        assert got == np.percentile(values, q, method="inverted_cdf")
    # and close to numpy's default (linear) estimate, which needs no received value
    assert record.p99 == pytest.approx(np.percentile(values, 99), rel=0.02)


def test_sampled_timer_percentiles_equal_those_of_the_repeated_values() -> None:
    rng = np.random.default_rng(3)
    plain = rng.uniform(0, 10, 300)
    sampled = rng.uniform(5, 50, 100)  # each sent at @0.25: stands for 4 values
    agg = WindowAggregator()
    for value in plain:
        agg.add_line(f"lat:{float(value)!r}|ms", T0)
    for value in sampled:
        agg.add_line(f"lat:{float(value)!r}|ms|@0.25", T0)
    (record,) = agg.pop_all()
    expanded = np.concatenate([plain, np.repeat(sampled, 4)])
    assert record.samples == 400
    assert record.count == pytest.approx(700)
    assert record.sum == pytest.approx(expanded.sum())
    assert record.average == pytest.approx(expanded.mean())
    for q, got in ((50, record.p50), (90, record.p90), (99, record.p99)):
        assert got == np.percentile(expanded, q, method="inverted_cdf")


def test_weighted_percentiles_without_weights_is_numpys_inverted_cdf() -> None:
    values = [5.0, 1.0, 3.0, 2.0, 4.0]
    assert weighted_percentiles(values, None, (20, 50, 100)) == [1.0, 3.0, 5.0]


def test_counter_sum_and_sample_count() -> None:
    agg = WindowAggregator()
    for line in ("hits:1|c", "hits:2|c", "hits:1|c|@0.5", "hits:-1|c"):
        agg.add_line(line, T0)
    (record,) = agg.pop_all()
    assert (record.metric_type, record.sum, record.samples, record.count) == ("counter", 4.0, 4, 5.0)
    assert (record.min, record.max) == (-1.0, 2.0)


def test_gauge_average_last_and_deltas_across_windows() -> None:
    agg = WindowAggregator()
    values = [0.1, 0.4, 0.25, 0.05]
    for value in values:
        agg.add_line(f"adserver_client.likelihood_to_bid:{value}|g", T0 + 2)
    agg.add_line("level:5|g", T0 + 3)
    agg.add_line("level:+2|g", T0 + 4)  # 7
    agg.add_line("level:-3|g", T0 + 12)  # the level outlives its window: 4
    records = by_key(agg.pop_all())
    gauge = records[(int(T0), "adserver_client_likelihood_to_bid")]
    assert gauge.average == pytest.approx(np.mean(values))
    assert (gauge.min, gauge.max, gauge.last, gauge.count) == (0.05, 0.4, 0.05, 4.0)
    assert records[(int(T0), "level")].last == 7.0
    assert records[(int(T0) + 10, "level")].last == 4.0


def test_set_counts_distinct_members() -> None:
    agg = WindowAggregator()
    for member in ("a", "b", "a", "c"):
        agg.add_line(f"users:{member}|s", T0)
    (record,) = agg.pop_all()
    assert (record.metric_type, record.sum, record.samples) == ("set", 3.0, 4)


def test_metrics_are_kept_apart_by_type_and_dimensions() -> None:
    agg = WindowAggregator()
    for line in ("x:1|c", "x:1|ms", "x:1|c|#env:a", "x:1|c|#env:a"):
        agg.add_line(line, T0)
    records = {(r.metric_type, tuple(r.dimensions.items())): r.samples for r in agg.pop_all()}
    assert records == {("counter", ()): 1, ("timing", ()): 1, ("counter", (("env", "a"),)): 2}


def test_datagram_lines_are_split_and_malformed_ones_counted_not_fatal() -> None:
    agg = WindowAggregator()
    rejected = agg.add_datagram(b"hits:1|c\nbogus\n\nhits:2|c\nlat:x|ms\n", T0)
    assert [line for line, _ in rejected] == ["bogus", "lat:x|ms"]
    assert (agg.lines, agg.malformed) == (4, 2)
    (record,) = agg.pop_all()
    assert record.sum == 3.0


def test_a_line_that_is_not_utf8_is_rejected_and_the_rest_kept() -> None:
    agg = WindowAggregator()
    rejected = agg.add_datagram(b"hits:1|c\n\xff\xfe:1|c\nhits:1|c", T0)
    assert len(rejected) == 1
    assert rejected[0][1] == "not UTF-8"
    assert agg.malformed == 1
    assert agg.pop_all()[0].sum == 2.0


def test_record_json_round_trip() -> None:
    agg = WindowAggregator()
    agg.add_line("lat:1.5|ms|#env:a", T0)
    (record,) = agg.pop_all()
    line = record.to_json()
    data = json.loads(line)
    assert data["time"] == "2023-11-14T22:13:20Z"
    assert data["dimensions"] == {"env": "a"}
    assert WindowRecord.from_dict(data) == record


def test_bad_period_is_refused() -> None:
    with pytest.raises(ValueError):
        WindowAggregator(0)


@given(st.lists(st.tuples(st.floats(0, 99.999), st.integers(-5, 100)), max_size=60))
def test_every_counter_lands_in_the_window_of_its_time(events: list[tuple[float, int]]) -> None:
    agg = WindowAggregator()
    expected: dict[int, int] = {}
    for offset, value in events:
        agg.add_line(f"hits:{value}|c", T0 + offset)
        start = int((T0 + offset) // 10) * 10
        expected[start] = expected.get(start, 0) + value
    closed = agg.pop_closed(T0 + 50)
    records = closed + agg.pop_all()
    assert {r.timestamp: r.sum for r in records} == expected
    assert all(r.timestamp + 10 <= T0 + 50 for r in closed)
    assert [r.timestamp for r in records] == sorted(r.timestamp for r in records)
