"""The dashboard's figures from the receiver's JSON-lines records: the series each widget plots and the
headline numbers the demo prints (total requests, peak and mean req/s, worst p99s, mean likelihood).

Widgets, metrics and statistics come from `aik.dashboard.WIDGETS`, the same data the CDK stack builds
`Monitoring-Dashboard` from; a metric is matched as CloudWatch matches it: by name, `metric_type` and no
other dimension.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from aik.dashboard import (
    CLIENT_LATENCY,
    CLIENT_PREFIX,
    FILTERING_COUNT,
    FILTERING_LATENCY,
    LIKELIHOOD,
    PERIOD_S,
    SERVER_PREFIX,
    WIDGETS,
    MetricSpec,
    WidgetSpec,
)
from aik.errors import ArtifactError
from aik.monitoring.windows import WindowRecord
from aik.storage import open_uri

log = logging.getLogger(__name__)

#: CloudWatch statistic -> the record field holding it for one period.
STATISTICS: dict[str, str] = {
    "Sum": "sum",
    "SampleCount": "count",
    "Average": "average",
    "Minimum": "min",
    "Maximum": "max",
    "p50": "p50",
    "p90": "p90",
    "p99": "p99",
}


@dataclass(frozen=True)
class MetricsLog:
    """The records of a metrics file, and how many of its lines were not records (set aside)."""

    uri: str
    records: tuple[WindowRecord, ...]
    malformed: int = 0


def load_records(uri: str | os.PathLike[str]) -> MetricsLog:
    """Read a JSON-lines metrics file (local or S3); unreadable lines are counted and skipped, so a run
    whose receiver was killed mid-line still renders; a missing file raises ArtifactNotFound."""
    text_uri = os.fspath(uri)
    records: list[WindowRecord] = []
    malformed = 0
    with open_uri(text_uri, "r", encoding="utf-8") as f:
        try:
            for number, line in enumerate(f, start=1):
                if not line.strip():
                    continue
                try:
                    records.append(WindowRecord.from_dict(json.loads(line)))
                except (ValueError, TypeError, KeyError, AttributeError) as exc:
                    malformed += 1
                    if malformed == 1:
                        log.warning("%s line %d is not a metrics record (%s); skipped", text_uri, number, exc)
        except UnicodeDecodeError as exc:
            raise ArtifactError(text_uri, f"not a UTF-8 JSON-lines metrics file ({exc.reason})") from exc
    if malformed:
        log.warning("%s: %d line(s) skipped as malformed", text_uri, malformed)
    return MetricsLog(text_uri, tuple(records), malformed)


@dataclass(frozen=True)
class SeriesFigures:
    """One metric of a widget: its (period start, value) points and their figures."""

    spec: MetricSpec
    points: tuple[tuple[int, float], ...]
    #: Value shown per period is the statistic divided by the period (requests per second).
    per_second: bool = False

    @property
    def has_data(self) -> bool:
        """True when at least one period has a value."""
        return bool(self.points)

    @property
    def values(self) -> list[float]:
        """The values, oldest first."""
        return [value for _, value in self.points]

    @property
    def minimum(self) -> float | None:
        """Smallest value, None without data."""
        return min(self.values, default=None)

    @property
    def maximum(self) -> float | None:
        """Largest value, None without data."""
        return max(self.values, default=None)

    @property
    def mean(self) -> float | None:
        """Mean over the periods with data (what the graph shows), None without data."""
        return sum(self.values) / len(self.points) if self.points else None

    @property
    def last(self) -> float | None:
        """Most recent value, None without data."""
        return self.points[-1][1] if self.points else None


@dataclass(frozen=True)
class WidgetFigures:
    """One widget: its spec and its series (a single-value widget also has its total over the range)."""

    spec: WidgetSpec
    series: tuple[SeriesFigures, ...]

    @property
    def has_data(self) -> bool:
        """True when any of its metrics has data."""
        return any(s.has_data for s in self.series)

    @property
    def total(self) -> float | None:
        """Single-value widgets: the statistic summed over the whole range (None without data)."""
        if not self.has_data:
            return None
        return sum(sum(s.values) for s in self.series)


@dataclass(frozen=True)
class DashboardSummary:
    """Every widget's figures, the time range they cover and the headline numbers."""

    widgets: tuple[WidgetFigures, ...]
    #: First period start and last period end (epoch seconds), None without any record.
    start: int | None
    end: int | None
    period_s: int
    total_requests: float | None
    peak_rps: float | None
    mean_rps: float | None
    worst_p99_client_ms: float | None
    worst_p99_server_ms: float | None
    mean_likelihood: float | None
    #: Lines of the metrics file that were not records.
    malformed: int = 0

    @property
    def periods(self) -> int:
        """Number of periods from the first to the last one with any record."""
        if self.start is None or self.end is None:
            return 0
        return (self.end - self.start) // self.period_s

    def range_text(self) -> str:
        """`YYYY-MM-DD HH:MM:SS-HH:MM:SS UTC (N periods of 10 s)`, or `no data`."""
        if self.start is None or self.end is None:
            return "no data"
        first = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(self.start))
        last = time.strftime("%H:%M:%S", time.gmtime(self.end))
        plural = "" if self.periods == 1 else "s"
        return f"{first}-{last} UTC ({self.periods} period{plural} of {self.period_s} s)"

    def lines(self) -> list[str]:
        """The headline figures as lines for a terminal ("no data" where a metric never arrived)."""
        return [
            f"dashboard {self.range_text()}",
            f"  total bid requests: {_fmt(self.total_requests, '{:,.0f}')}",
            f"  requests per second: peak {_fmt(self.peak_rps, '{:,.0f}')}, "
            f"mean {_fmt(self.mean_rps, '{:,.0f}')}",
            f"  latency p99 (worst period): client {_fmt(self.worst_p99_client_ms, '{:.3f} ms')}, "
            f"server {_fmt(self.worst_p99_server_ms, '{:.3f} ms')}",
            f"  likelihood to bid: mean {_fmt(self.mean_likelihood, '{:.4f}')}",
        ]

    def to_dict(self) -> dict[str, Any]:
        """The headline figures and each widget's series figures, JSON-ready."""
        return {
            "start": self.start,
            "end": self.end,
            "period_s": self.period_s,
            "periods": self.periods,
            "total_requests": self.total_requests,
            "peak_rps": self.peak_rps,
            "mean_rps": self.mean_rps,
            "worst_p99_client_ms": self.worst_p99_client_ms,
            "worst_p99_server_ms": self.worst_p99_server_ms,
            "mean_likelihood": self.mean_likelihood,
            "malformed_lines": self.malformed,
            "widgets": [
                {
                    "title": w.spec.title,
                    "kind": w.spec.kind,
                    "unit": w.spec.unit,
                    "total": w.total if w.spec.kind == "single_value" else None,
                    "series": [
                        {
                            "label": s.spec.label,
                            "metric": s.spec.cloudwatch_name,
                            "stat": s.spec.stat,
                            "periods": len(s.points),
                            "min": s.minimum,
                            "mean": s.mean,
                            "max": s.maximum,
                            "last": s.last,
                        }
                        for s in w.series
                    ],
                }
                for w in self.widgets
            ],
        }


def _fmt(value: float | None, pattern: str) -> str:
    return "no data" if value is None else pattern.format(value)


def _matches(record: WindowRecord, spec: MetricSpec) -> bool:
    return (
        record.name == spec.cloudwatch_name
        and record.metric_type == spec.metric_type
        and not record.dimensions
    )


def series_of(records: Iterable[WindowRecord], spec: MetricSpec, per_second: bool = False) -> SeriesFigures:
    """The points a widget plots for one metric: the statistic per period (per second if asked)."""
    try:
        field = STATISTICS[spec.stat]
    except KeyError:
        raise ValueError(
            f"statistic {spec.stat!r} is not kept per period (use one of {list(STATISTICS)})"
        ) from None
    points = []
    for record in records:
        if not _matches(record, spec):
            continue
        value = getattr(record, field)
        if value is None:
            continue
        points.append((record.timestamp, value / record.period if per_second else value))
    points.sort(key=lambda point: point[0])
    return SeriesFigures(spec, tuple(points), per_second)


def _spec(prefix: str, name: str, metric_type: str, stat: str) -> MetricSpec:
    """The metric spec of `aik.dashboard.WIDGETS` with these coordinates (the headline figures' source)."""
    for widget in WIDGETS:
        for spec in widget.metrics:
            if (spec.prefix, spec.name, spec.metric_type, spec.stat) == (prefix, name, metric_type, stat):
                return spec
    raise LookupError(f"no {prefix}.{name} {metric_type} {stat} metric among the dashboard widgets")


def summarize(
    records: Sequence[WindowRecord], widgets: Sequence[WidgetSpec] = WIDGETS, malformed: int = 0
) -> DashboardSummary:
    """Every widget's figures over the records' range, plus the headline numbers the demo prints."""
    figures = tuple(
        WidgetFigures(w, tuple(series_of(records, m, w.per_second) for m in w.metrics)) for w in widgets
    )
    period_s = records[0].period if records else PERIOD_S
    start = min((r.timestamp for r in records), default=None)
    end = max((r.timestamp + r.period for r in records), default=None)

    requests = series_of(records, _spec(SERVER_PREFIX, FILTERING_COUNT, "counter", "Sum"))
    rates = [value / period_s for value in requests.values]
    client = series_of(records, _spec(CLIENT_PREFIX, CLIENT_LATENCY, "timing", "p99"))
    server = series_of(records, _spec(SERVER_PREFIX, FILTERING_LATENCY, "timing", "p99"))
    likelihood_spec = _spec(CLIENT_PREFIX, LIKELIHOOD, "gauge", "Average")
    gauges = [r for r in records if _matches(r, likelihood_spec) and r.count]
    # Every value weighs the same (periods hold different numbers of requests): sum over count.
    mean_likelihood = sum(r.sum for r in gauges) / sum(r.count for r in gauges) if gauges else None
    return DashboardSummary(
        widgets=figures,
        start=start,
        end=end,
        period_s=period_s,
        total_requests=sum(requests.values) if requests.has_data else None,
        peak_rps=max(rates, default=None),
        mean_rps=sum(rates) / len(rates) if rates else None,
        worst_p99_client_ms=client.maximum,
        worst_p99_server_ms=server.maximum,
        mean_likelihood=mean_likelihood,
        malformed=malformed,
    )


def summarize_file(uri: str | os.PathLike[str]) -> DashboardSummary:
    """`summarize` of a metrics file."""
    metrics = load_records(uri)
    return summarize(metrics.records, malformed=metrics.malformed)
