"""The StatsD line protocol as the CloudWatch agent's StatsD listener reads it.

The agent (aws/amazon-cloudwatch-agent `plugins/inputs/statsd`, a fork of telegraf's) accepts, per
newline-separated line of a datagram, `bucket:value|type[|@rate][|#tag:v,...]` with types `c`
(counter), `ms` (timer), `h` (histogram, kept like a timer), `g` (gauge) and `s` (set), and several
values for one bucket as `bucket:v1|c:v2|c`. It names the CloudWatch metric after the bucket with `.`
replaced by `_` and adds the dimension `metric_type` (`counter`, `timing`, `histogram`, `gauge`, `set`)
plus any DogStatsD `#tags` and influx-style `bucket,key=value` tags.

Differences from the agent, each chosen so that nothing is silently wrong: a line with any bad part is
rejected whole (the agent keeps the parts before the bad one); a sample rate that does not parse or is
outside (0, 1] rejects the line (the agent ignores it and keeps the value unscaled); counter values
stay floats when divided by the rate (the agent truncates `v / rate` to an integer, which biases sampled
counters low); non-finite values are rejected (CloudWatch refuses them).
"""

from __future__ import annotations

import functools
import math
from typing import NamedTuple

#: StatsD type -> the agent's `metric_type` dimension value.
METRIC_TYPES: dict[str, str] = {
    "c": "counter",
    "ms": "timing",
    "h": "histogram",
    "g": "gauge",
    "s": "set",
}
#: Separator the agent puts between the dotted parts of a bucket name.
SEPARATOR = "_"

Dimensions = tuple[tuple[str, str], ...]


class StatsdParseError(ValueError):
    """A StatsD line that the protocol (as the CloudWatch agent reads it) does not allow."""


class Sample(NamedTuple):
    """One parsed StatsD value, already named and scaled as the CloudWatch agent would."""

    name: str
    metric_type: str
    #: Counter: the increment divided by the sample rate; timer/gauge: the value; set: the member.
    value: float | str
    #: How many events the value stands for: 1 / sample rate for counters and timers, else 1.
    weight: float
    #: Gauges only: `+v` / `-v` changes the gauge instead of setting it.
    delta: bool
    #: Extra dimensions from tags (sorted), besides `metric_type`.
    dimensions: Dimensions


def cloudwatch_name(bucket: str) -> str:
    """The CloudWatch metric name the agent gives a StatsD bucket (`a.b.c` -> `a_b_c`)."""
    return bucket.replace(".", SEPARATOR)


def _datadog_tags(line: str) -> tuple[str, dict[str, str]]:
    """Split DogStatsD `|#k:v,k2` segments off a line (the agent parses them: parse_data_dog_tags)."""
    kept: list[str] = []
    tags: dict[str, str] = {}
    for segment in line.split("|"):
        if segment.startswith("#"):
            for tag in segment[1:].split(","):
                key, sep, value = tag.partition(":")
                if key:
                    # CloudWatch rejects empty dimension values; the agent writes this placeholder.
                    tags[key] = value if sep and value else "<empty>"
        else:
            kept.append(segment)
    return "|".join(kept), tags


@functools.lru_cache(maxsize=4096)
def _plain_bucket(bucket: str) -> tuple[str, Dimensions]:
    """`_bucket` of a line without DogStatsD tags, cached: a process sends few distinct names, and
    naming them again for every datagram was a third of the parse time."""
    return _bucket(bucket, {})


def _bucket(bucket: str, tags: dict[str, str]) -> tuple[str, Dimensions]:
    """Name and dimensions of a bucket, with influx-style `name,key=value` tags folded in."""
    name, _, rest = bucket.partition(",")
    if rest:
        for part in rest.split(","):
            key, sep, value = part.partition("=")
            if sep and key and value:
                tags[key] = value
    name = name.strip()
    if not name:
        raise StatsdParseError("empty metric name")
    return cloudwatch_name(name), tuple(sorted(tags.items()))


def _rate(text: str) -> float:
    if not text.startswith("@") or len(text) < 2:
        raise StatsdParseError(f"bad sample rate {text!r} (expected @0.1 etc.)")
    try:
        rate = float(text[1:])
    except ValueError:
        raise StatsdParseError(f"bad sample rate {text!r}") from None
    if not 0.0 < rate <= 1.0:
        raise StatsdParseError(f"sample rate {rate} outside (0, 1]")
    return rate


def _value(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise StatsdParseError(f"bad value {text!r}") from None
    if not math.isfinite(value):
        raise StatsdParseError(f"non-finite value {text!r}")
    return value


def parse_line(line: str) -> list[Sample]:
    """Parse one StatsD line into its samples; raise `StatsdParseError` if any part is malformed."""
    line = line.strip()
    if not line:
        raise StatsdParseError("empty line")
    tags: dict[str, str] = {}
    if "#" in line:
        line, tags = _datadog_tags(line)
    bucket, *bits = line.split(":")
    if not bits:
        raise StatsdParseError("no ':' between name and value")
    name, dimensions = _bucket(bucket, tags) if tags else _plain_bucket(bucket)
    samples = []
    for bit in bits:
        parts = bit.split("|")
        if len(parts) < 2:
            raise StatsdParseError(f"no '|type' in {bit!r}")
        if len(parts) > 3:
            raise StatsdParseError(f"unexpected fields in {bit!r}")
        text, kind = parts[0], parts[1]
        metric_type = METRIC_TYPES.get(kind)
        if metric_type is None:
            raise StatsdParseError(f"unknown metric type {kind!r}")
        rate = _rate(parts[2]) if len(parts) == 3 else 1.0
        signed = text.startswith(("+", "-"))
        if signed and kind not in ("g", "c"):
            raise StatsdParseError(f"+/- values are only allowed for gauges and counters: {bit!r}")
        if kind == "s":
            if not text:
                raise StatsdParseError("empty set member")
            samples.append(Sample(name, metric_type, text, 1.0, False, dimensions))
            continue
        value = _value(text)
        if kind == "c":
            samples.append(Sample(name, metric_type, value / rate, 1.0 / rate, False, dimensions))
        elif kind == "g":
            # The agent ignores sample rates on gauges: a gauge is a level, not a count of events.
            samples.append(Sample(name, metric_type, value, 1.0, signed, dimensions))
        else:
            samples.append(Sample(name, metric_type, value, 1.0 / rate, False, dimensions))
    return samples
