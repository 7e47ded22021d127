"""The StatsD line protocol as the CloudWatch agent reads it: every form, and malformed lines."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from aik.monitoring.protocol import Sample, StatsdParseError, cloudwatch_name, parse_line
from aik.monitoring.windows import WindowAggregator


def one(line: str) -> Sample:
    samples = parse_line(line)
    assert len(samples) == 1
    return samples[0]


def test_counter_is_named_as_the_agent_names_it() -> None:
    assert one("filtering_server.filtering_count:1|c") == Sample(
        "filtering_server_filtering_count", "counter", 1.0, 1.0, False, ()
    )


def test_counter_with_sample_rate_is_scaled_by_its_inverse() -> None:
    sample = one("hits:3|c|@0.25")
    assert sample.value == 12.0
    assert sample.weight == 4.0


def test_counter_keeps_the_fraction_the_agent_would_truncate() -> None:
    assert one("hits:1|c|@0.3").value == pytest.approx(1 / 0.3)


def test_negative_counter_decrements() -> None:
    assert one("hits:-2|c").value == -2.0


def test_timer_keeps_float_milliseconds() -> None:
    sample = one("filtering_server.filtering_latency:0.412345|ms")
    assert (sample.name, sample.metric_type, sample.value, sample.weight) == (
        "filtering_server_filtering_latency",
        "timing",
        0.412345,
        1.0,
    )


def test_sampled_timer_weighs_its_value_instead_of_scaling_it() -> None:
    sample = one("lat:2.5|ms|@0.1")
    assert sample.value == 2.5
    assert sample.weight == pytest.approx(10.0)


def test_histogram_is_a_timer_with_its_own_metric_type() -> None:
    assert one("size:7|h").metric_type == "histogram"


def test_gauge_set_and_deltas() -> None:
    assert one("adserver_client.likelihood_to_bid:0.25|g") == Sample(
        "adserver_client_likelihood_to_bid", "gauge", 0.25, 1.0, False, ()
    )
    assert one("level:+3|g")[2:5] == (3.0, 1.0, True)
    assert one("level:-3|g")[2:5] == (-3.0, 1.0, True)


def test_gauge_ignores_the_sample_rate_as_the_agent_does() -> None:
    assert one("level:5|g|@0.5")[2:4] == (5.0, 1.0)


def test_set_keeps_the_member() -> None:
    assert one("users:alice|s")[1:3] == ("set", "alice")


def test_several_values_for_one_bucket() -> None:
    samples = parse_line("hits:1|c:2|c|@0.5")
    assert [(s.value, s.weight) for s in samples] == [(1.0, 1.0), (4.0, 2.0)]


def test_datadog_tags_become_sorted_dimensions() -> None:
    sample = one("hits:1|c|@0.5|#zone:a,env:prod,flag")
    assert sample.dimensions == (("env", "prod"), ("flag", "<empty>"), ("zone", "a"))
    assert sample.value == 2.0


def test_influx_style_bucket_tags_become_dimensions() -> None:
    assert one("hits,host=a,region=x:1|c").dimensions == (("host", "a"), ("region", "x"))


def test_surrounding_whitespace_is_ignored() -> None:
    assert one("  hits:1|c\r").value == 1.0


def test_cloudwatch_name_replaces_every_dot() -> None:
    assert cloudwatch_name("a.b.c") == "a_b_c"


@pytest.mark.parametrize(
    "line",
    [
        "",
        "   ",
        "no_value",
        "name:1",  # no type
        ":1|c",  # no name
        "name:1|x",  # unknown type
        "name:abc|c",
        "name:|ms",
        "name:nan|ms",
        "name:inf|g",
        "name:1|ms|@0",  # rate outside (0, 1]
        "name:1|ms|@1.5",
        "name:1|c|@x",
        "name:1|c|0.5",  # rate without @
        "name:1|c|@0.5|extra",
        "name:+1|ms",  # signs only for gauges and counters
        "name:-1|ms",
        "name:1|c:oops",  # one bad part rejects the line
        "name:|s",
    ],
)
def test_malformed_lines_are_rejected_with_a_reason(line: str) -> None:
    with pytest.raises(StatsdParseError) as error:
        parse_line(line)
    assert str(error.value)


# Property tests: whatever arrives, parsing either yields samples or a StatsdParseError, never a crash.

NAMES = st.from_regex(r"[a-z][a-z0-9_]{0,10}(\.[a-z][a-z0-9_]{0,10}){0,3}", fullmatch=True)
VALUES = st.floats(min_value=0, max_value=1e9, allow_nan=False, allow_infinity=False)
RATES = st.sampled_from([None, 1.0, 0.5, 0.25, 0.1, 0.01])


@given(st.text(max_size=200))
def test_any_text_parses_or_is_rejected_cleanly(line: str) -> None:
    try:
        samples = parse_line(line)
    except StatsdParseError:
        return
    assert samples
    assert all(isinstance(s, Sample) and s.weight >= 1.0 for s in samples)


@given(st.binary(max_size=300))
def test_any_datagram_is_counted_never_fatal(data: bytes) -> None:
    agg = WindowAggregator()
    rejected = agg.add_datagram(data, 1_700_000_000.0)
    assert agg.malformed == len(rejected) <= agg.lines
    agg.pop_all()


@given(NAMES, VALUES, st.sampled_from(["c", "ms", "g"]), RATES)
def test_well_formed_lines_round_trip(name: str, value: float, kind: str, rate: float | None) -> None:
    line = f"{name}:{value!r}|{kind}" + (f"|@{rate}" if rate is not None else "")
    sample = one(line)
    assert sample.name == name.replace(".", "_")
    assert sample.metric_type == {"c": "counter", "ms": "timing", "g": "gauge"}[kind]
    scale = 1.0 if kind == "g" or rate is None else 1.0 / rate
    assert sample.value == pytest.approx(value * (scale if kind == "c" else 1.0))
    assert sample.weight == pytest.approx(scale if kind != "g" else 1.0)
