"""StatsD samples aggregated per 10-second window, keeping what CloudWatch keeps for a metric per period.

Counters keep their Sum (and SampleCount), timers keep every value of the window so p50/p90/p99 are
exact for the period (CloudWatch computes them from the agent's value/count distribution), gauges keep
their values (Average) and their last level. Samples fall in the window of their arrival time, as the
agent stamps them when it collects; the clock is injected so tests control it.
"""

from __future__ import annotations

import json
import math
import time
from array import array
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from aik.dashboard import PERIOD_S
from aik.monitoring.protocol import Dimensions, Sample, StatsdParseError, parse_line

#: Percentiles kept for timers (the dashboard shows p99; p50 and p90 help read it).
PERCENTILES = (50.0, 90.0, 99.0)

Key = tuple[str, str, Dimensions]


@dataclass(frozen=True)
class WindowRecord:
    """One metric over one window: the JSON-lines record the receiver writes and the renderer reads."""

    timestamp: int
    period: int
    name: str
    metric_type: str
    dimensions: Mapping[str, str] = field(default_factory=dict)
    #: StatsD values received.
    samples: int = 0
    #: Events they stand for (sample rates undone): CloudWatch's SampleCount.
    count: float = 0.0
    sum: float = 0.0
    min: float | None = None
    max: float | None = None
    average: float | None = None
    p50: float | None = None
    p90: float | None = None
    p99: float | None = None
    #: Gauges: the level at the end of the window.
    last: float | None = None

    def to_json(self) -> str:
        """One JSON line (with a readable UTC `time` besides the epoch `timestamp`)."""
        data = asdict(self)
        data["dimensions"] = dict(self.dimensions)
        data["time"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(self.timestamp))
        return json.dumps(data, separators=(",", ":"), allow_nan=False)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> WindowRecord:
        """A record from a parsed JSON line; raise ValueError/TypeError/KeyError when it is not one."""

        def opt(key: str) -> float | None:
            value = data.get(key)
            return None if value is None else float(value)

        dimensions = data.get("dimensions") or {}
        if not isinstance(dimensions, Mapping):
            raise TypeError("dimensions must be an object")
        return cls(
            timestamp=int(data["timestamp"]),
            period=int(data.get("period", PERIOD_S)),
            name=str(data["name"]),
            metric_type=str(data["metric_type"]),
            dimensions={str(k): str(v) for k, v in dimensions.items()},
            samples=int(data.get("samples", 0)),
            count=float(data.get("count", 0.0)),
            sum=float(data.get("sum", 0.0)),
            min=opt("min"),
            max=opt("max"),
            average=opt("average"),
            p50=opt("p50"),
            p90=opt("p90"),
            p99=opt("p99"),
            last=opt("last"),
        )


def weighted_percentiles(
    values: Sequence[float] | np.ndarray, weights: Sequence[float] | np.ndarray | None, qs: Sequence[float]
) -> list[float]:
    """Percentiles of (optionally weighted) values: the smallest value with at least q % of the weight
    at or below it (numpy's `inverted_cdf`, the one method numpy weights, so sampled and unsampled
    timers follow one definition; it always returns a value that was received, as CloudWatch does)."""
    data = np.asarray(values, dtype=float)
    w = None if weights is None else np.asarray(weights, dtype=float)
    return [float(v) for v in np.percentile(data, list(qs), weights=w, method="inverted_cdf")]


class _Counter:
    __slots__ = ("count", "max", "min", "samples", "sum")

    def __init__(self) -> None:
        self.samples = 0
        self.count = 0.0
        self.sum = 0.0
        self.min = math.inf
        self.max = -math.inf

    def add(self, value: float, weight: float) -> None:
        self.samples += 1
        self.count += weight
        self.sum += value
        self.min = min(self.min, value)
        self.max = max(self.max, value)

    def stats(self) -> dict[str, Any]:
        return {
            "samples": self.samples,
            "count": self.count,
            "sum": self.sum,
            "min": self.min,
            "max": self.max,
            "average": self.sum / self.count,
        }


class _Timer:
    """Every value of the window (8 bytes each: 200k timings per window is 1.6 MB) for exact percentiles."""

    __slots__ = ("values", "weights")

    def __init__(self) -> None:
        self.values: array[float] = array("d")
        # Created only when a sampled value arrives, so unsampled timers cost one array.
        self.weights: array[float] | None = None

    def add(self, value: float, weight: float) -> None:
        self.values.append(value)
        if self.weights is not None:
            self.weights.append(weight)
        elif weight != 1.0:
            self.weights = array("d", [1.0]) * (len(self.values) - 1)
            self.weights.append(weight)

    def stats(self) -> dict[str, Any]:
        values = np.frombuffer(self.values, dtype=float)
        weights = None if self.weights is None else np.frombuffer(self.weights, dtype=float)
        count = float(len(values)) if weights is None else float(weights.sum())
        total = float(values.sum()) if weights is None else float(values @ weights)
        p50, p90, p99 = weighted_percentiles(values, weights, PERCENTILES)
        return {
            "samples": len(values),
            "count": count,
            "sum": total,
            "min": float(values.min()),
            "max": float(values.max()),
            "average": total / count,
            "p50": p50,
            "p90": p90,
            "p99": p99,
        }


class _Gauge:
    __slots__ = ("last", "max", "min", "samples", "sum")

    def __init__(self) -> None:
        self.samples = 0
        self.sum = 0.0
        self.min = math.inf
        self.max = -math.inf
        self.last = 0.0

    def add(self, value: float, weight: float) -> None:
        self.samples += 1
        self.sum += value
        self.min = min(self.min, value)
        self.max = max(self.max, value)
        self.last = value

    def stats(self) -> dict[str, Any]:
        return {
            "samples": self.samples,
            "count": float(self.samples),
            "sum": self.sum,
            "min": self.min,
            "max": self.max,
            "average": self.sum / self.samples,
            "last": self.last,
        }


class _Set:
    __slots__ = ("members", "samples")

    def __init__(self) -> None:
        self.samples = 0
        self.members: set[str] = set()

    def add(self, value: str, weight: float) -> None:
        self.samples += 1
        self.members.add(value)

    def stats(self) -> dict[str, Any]:
        # The agent publishes a set as its number of distinct members.
        return {"samples": self.samples, "count": float(self.samples), "sum": float(len(self.members))}


_ACCUMULATORS: dict[str, Callable[[], Any]] = {
    "counter": _Counter,
    "timing": _Timer,
    "histogram": _Timer,
    "gauge": _Gauge,
    "set": _Set,
}


class WindowAggregator:
    """Aggregate samples into `period_s` windows by arrival time and hand out the closed windows."""

    def __init__(self, period_s: int = PERIOD_S) -> None:
        if period_s <= 0:
            raise ValueError(f"period must be positive, got {period_s}")
        self.period_s = period_s
        self._windows: dict[int, dict[Key, Any]] = {}
        # Gauges are levels that outlive a window: `+v` changes the last level set, in any window.
        self._levels: dict[Key, float] = {}
        # Start of the earliest window not yet handed out; a sample stamped before it (the clock
        # stepped back) joins it, so a window is never written twice.
        self._watermark: int | None = None
        self.lines = 0
        self.malformed = 0

    def window_start(self, now: float) -> int:
        """Start (epoch seconds) of the window holding time `now`."""
        return int(now // self.period_s) * self.period_s

    def add(self, sample: Sample, now: float) -> None:
        """Add one parsed sample received at `now`."""
        start = self.window_start(now)
        if self._watermark is not None and start < self._watermark:
            start = self._watermark
        window = self._windows.get(start)
        if window is None:
            window = self._windows[start] = {}
        key = (sample.name, sample.metric_type, sample.dimensions)
        acc = window.get(key)
        if acc is None:
            acc = window[key] = _ACCUMULATORS[sample.metric_type]()
        value = sample.value
        if sample.metric_type == "gauge":
            if sample.delta:
                value = self._levels.get(key, 0.0) + value  # type: ignore[operator]  # gauges are numbers
            self._levels[key] = value  # type: ignore[assignment]  # gauges are numbers (the parser checked)
        acc.add(value, sample.weight)

    def add_line(self, line: str, now: float) -> None:
        """Parse and add one line; raise `StatsdParseError` (after counting it) when it is malformed."""
        self.lines += 1
        try:
            samples = parse_line(line)
        except StatsdParseError:
            self.malformed += 1
            raise
        for sample in samples:
            self.add(sample, now)

    def add_datagram(self, data: bytes, now: float) -> list[tuple[str, str]]:
        """Add every line of a datagram; return the malformed ones as (line, reason), having counted them."""
        rejected: list[tuple[str, str]] = []
        try:
            lines = data.decode("utf-8").split("\n")
        except UnicodeDecodeError:
            lines = []
            for raw in data.split(b"\n"):
                try:
                    lines.append(raw.decode("utf-8"))
                except UnicodeDecodeError:
                    self.lines += 1
                    self.malformed += 1
                    rejected.append((raw.decode("utf-8", "backslashreplace"), "not UTF-8"))
        for line in lines:
            if not line or line.isspace():
                continue
            try:
                self.add_line(line, now)
            except StatsdParseError as exc:
                rejected.append((line, str(exc)))
        return rejected

    def pop_closed(self, now: float) -> list[WindowRecord]:
        """Records of every window that ended at or before `now`, oldest first; they are forgotten."""
        current = self.window_start(now)
        self._watermark = current if self._watermark is None else max(self._watermark, current)
        closed = sorted(start for start in self._windows if start + self.period_s <= now)
        return [record for start in closed for record in self._records(start)]

    def pop_all(self) -> list[WindowRecord]:
        """Records of every window, the open one included (at shutdown), oldest first."""
        starts = sorted(self._windows)
        if starts:
            self._watermark = starts[-1] + self.period_s
        return [record for start in starts for record in self._records(start)]

    @property
    def open_windows(self) -> list[int]:
        """Starts of the windows still held."""
        return sorted(self._windows)

    def _records(self, start: int) -> list[WindowRecord]:
        window = self._windows.pop(start)
        return [
            WindowRecord(
                timestamp=start,
                period=self.period_s,
                name=name,
                metric_type=metric_type,
                dimensions=dict(dimensions),
                **window[(name, metric_type, dimensions)].stats(),
            )
            for name, metric_type, dimensions in sorted(window)
        ]
