"""The dashboard's figures from the receiver's JSON-lines records: the series each widget plots and the
headline numbers the demo prints (total requests, peak and mean req/s, worst p99s, mean likelihood).

Widgets, metrics and statistics come from `aik.dashboard.WIDGETS`, the same data the CDK stack builds
`Monitoring-Dashboard` from; a metric is matched as CloudWatch matches it: by name, `metric_type` and no
other dimension. The second row (`aik.dashboard.ARM_WIDGETS`) has a series per experiment arm: the
records of the same name and `metric_type` whose only other dimension is `arm`, as the stack's SEARCH
finds them. Each arm's mean likelihood is checked against a bounded band, the local analogue of the
stack's anomaly-band alarm (`likelihood_band`).
"""

from __future__ import annotations

import json
import logging
import os
import statistics
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from typing import Any

from aik.dashboard import (
    ARM_COUNT,
    ARM_DIMENSION,
    ARM_LATENCY,
    ARM_LIKELIHOOD,
    ARM_WIDGETS,
    CLIENT_LATENCY,
    CLIENT_PREFIX,
    FILTERING_COUNT,
    FILTERING_LATENCY,
    LIKELIHOOD,
    LIKELIHOOD_BAND_STD_DEVS,
    LIKELIHOOD_DATAPOINTS,
    LIKELIHOOD_EVALUATION_PERIODS,
    PERIOD_S,
    SERVER_PREFIX,
    WIDGETS,
    ArmMetricSpec,
    ArmWidgetSpec,
    MetricSpec,
    WidgetSpec,
)
from aik.errors import ArtifactError
from aik.experiments import CHAMPION
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
#: The local sudden-change band of an arm's mean likelihood: each period against the median of the
#: arm's previous `BAND_HISTORY` periods with data +- `LIKELIHOOD_BAND_STD_DEVS` robust standard
#: deviations (1.4826 x their median absolute deviation, floored at `BAND_MIN_SD` so a flat history does
#: not make noise an alarm), once it has `BAND_MIN_HISTORY` of them. Median and MAD, not mean and
#: standard deviation: the first periods of a shift would widen a mean +- sd band enough to hide the rest
#: of it. CloudWatch learns its band from weeks of 1-minute periods; a local run has minutes of 10-s
#: periods, so this band is the recent history's, not a trained model's.
BAND_HISTORY = 30
BAND_MIN_HISTORY = 6
BAND_MIN_SD = 0.005
#: The median absolute deviation of normal data times this is its standard deviation.
MAD_TO_SD = 1.4826


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
    """One metric of a widget (one arm's, in the second row): its (period start, value) points and
    their figures."""

    spec: MetricSpec | ArmMetricSpec
    points: tuple[tuple[int, float], ...]
    #: Value shown per period is the statistic divided by the period (requests per second).
    per_second: bool = False
    #: The arm whose series it is (second-row widgets), None for the first row's metrics.
    arm: str | None = None

    @property
    def label(self) -> str:
        """The legend entry: the arm's name, or the metric's label."""
        return self.arm if self.arm is not None else self.spec.label

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
class ArmWidgetFigures:
    """A second-row widget: its spec and one series per arm that sent its metric."""

    spec: ArmWidgetSpec
    series: tuple[SeriesFigures, ...]

    @property
    def has_data(self) -> bool:
        """True when any arm has data."""
        return any(s.has_data for s in self.series)


@dataclass(frozen=True)
class BandPeriod:
    """One period's mean likelihood of an arm and the band its previous periods give it."""

    timestamp: int
    value: float
    low: float
    high: float

    @property
    def outside(self) -> bool:
        """True when the value left the band."""
        return not self.low <= self.value <= self.high


@dataclass(frozen=True)
class ArmFigures:
    """One arm's figures over the range, and the sudden-change check of its mean likelihood."""

    arm: str
    requests: float | None
    #: Its requests' share of every arm's requests.
    share: float | None
    worst_p99_ms: float | None
    mean_likelihood: float | None
    #: Periods with enough history to be checked, oldest first.
    band: tuple[BandPeriod, ...]
    #: Period starts at which the rule turned on: `LIKELIHOOD_DATAPOINTS` of the last
    #: `LIKELIHOOD_EVALUATION_PERIODS` checked periods outside their band.
    sudden_changes: tuple[int, ...]
    #: Periods with a mean likelihood (checked or not).
    likelihood_periods: int = 0

    def band_text(self) -> str:
        """The check's verdict in words."""
        if not self.band:
            return (
                f"likelihood band: not checked ({self.likelihood_periods} period(s), "
                f"needs {BAND_MIN_HISTORY + 1})"
            )
        if not self.sudden_changes:
            return f"likelihood band: ok ({len(self.band)} period(s) checked)"
        times = ", ".join(time.strftime("%H:%M:%S", time.gmtime(t)) for t in self.sudden_changes)
        return f"likelihood band: SUDDEN CHANGE at {times} UTC"

    def line(self) -> str:
        """`  arm A: N requests (S %), latency p99 (worst period) X ms, mean likelihood L, <band>`."""
        share = "" if self.share is None else f" ({self.share * 100:.1f} %)"
        return (
            f"  arm {self.arm}: {_fmt(self.requests, '{:,.0f}')} requests{share}, "
            f"latency p99 (worst period) {_fmt(self.worst_p99_ms, '{:.3f} ms')}, "
            f"mean likelihood {_fmt(self.mean_likelihood, '{:.4f}')}, {self.band_text()}"
        )


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
    #: The second row (per experiment arm) and each arm's figures.
    arm_widgets: tuple[ArmWidgetFigures, ...] = ()
    arms: tuple[ArmFigures, ...] = ()

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

    def arm_lines(self) -> list[str]:
        """The second row's figures per arm, as lines for a terminal."""
        if not self.arms:
            return ["arms: no data (no per-arm metrics received)"]
        return [f"arms ({len(self.arms)}, server side):", *(arm.line() for arm in self.arms)]

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
            "arm_widgets": [
                {
                    "title": w.spec.title,
                    "unit": w.spec.unit,
                    "metric": w.spec.metric.cloudwatch_name,
                    "stat": w.spec.metric.stat,
                    "series": [
                        {
                            "arm": s.arm,
                            "periods": len(s.points),
                            "min": s.minimum,
                            "mean": s.mean,
                            "max": s.maximum,
                            "last": s.last,
                        }
                        for s in w.series
                    ],
                }
                for w in self.arm_widgets
            ],
            "arms": [
                {
                    "arm": a.arm,
                    "requests": a.requests,
                    "share": a.share,
                    "worst_p99_ms": a.worst_p99_ms,
                    "mean_likelihood": a.mean_likelihood,
                    "likelihood_periods": a.likelihood_periods,
                    "band_periods_checked": len(a.band),
                    "band_periods_outside": sum(p.outside for p in a.band),
                    "sudden_changes": list(a.sudden_changes),
                }
                for a in self.arms
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


def _matches_arm(record: WindowRecord, spec: ArmMetricSpec, arm: str) -> bool:
    return (
        record.name == spec.cloudwatch_name
        and record.metric_type == spec.metric_type
        and dict(record.dimensions) == {ARM_DIMENSION: arm}
    )


def _field(stat: str) -> str:
    try:
        return STATISTICS[stat]
    except KeyError:
        known = list(STATISTICS)
        raise ValueError(f"statistic {stat!r} is not kept per period (use one of {known})") from None


def series_of(
    records: Iterable[WindowRecord],
    spec: MetricSpec | ArmMetricSpec,
    per_second: bool = False,
    arm: str | None = None,
) -> SeriesFigures:
    """The points a widget plots for one metric (of one arm, with `arm` and an `ArmMetricSpec`): the
    statistic per period (per second if asked)."""
    field = _field(spec.stat)
    points = []
    for record in records:
        if arm is None:
            if not isinstance(spec, MetricSpec) or not _matches(record, spec):
                continue
        elif not isinstance(spec, ArmMetricSpec) or not _matches_arm(record, spec, arm):
            continue
        value = getattr(record, field)
        if value is None:
            continue
        points.append((record.timestamp, value / record.period if per_second else value))
    points.sort(key=lambda point: point[0])
    return SeriesFigures(spec, tuple(points), per_second, arm)


def arms_of(records: Iterable[WindowRecord], widgets: Sequence[ArmWidgetSpec] = ARM_WIDGETS) -> list[str]:
    """The arms that sent any second-row metric: the champion first, then by name."""
    names = {(w.metric.cloudwatch_name, w.metric.metric_type) for w in widgets}
    found = {
        r.dimensions[ARM_DIMENSION]
        for r in records
        if (r.name, r.metric_type) in names and set(r.dimensions) == {ARM_DIMENSION}
    }
    return sorted(found, key=lambda arm: (arm != CHAMPION, arm))


def likelihood_band(points: Sequence[tuple[int, float]]) -> tuple[BandPeriod, ...]:
    """Each period with `BAND_MIN_HISTORY` earlier ones, against the band of up to `BAND_HISTORY` of them
    (median +- `LIKELIHOOD_BAND_STD_DEVS` robust standard deviations)."""
    values = [value for _, value in points]
    out = []
    for i in range(BAND_MIN_HISTORY, len(points)):
        history = values[max(0, i - BAND_HISTORY) : i]
        middle = statistics.median(history)
        sd = max(MAD_TO_SD * statistics.median(abs(v - middle) for v in history), BAND_MIN_SD)
        width = LIKELIHOOD_BAND_STD_DEVS * sd
        out.append(BandPeriod(points[i][0], values[i], middle - width, middle + width))
    return tuple(out)


def sudden_changes(band: Sequence[BandPeriod]) -> tuple[int, ...]:
    """Starts of the periods at which `LIKELIHOOD_DATAPOINTS` of the last `LIKELIHOOD_EVALUATION_PERIODS`
    checked periods are outside their band, having not been at the period before (the alarm turning on)."""
    out = []
    firing = False
    for i in range(len(band)):
        window = band[max(0, i - LIKELIHOOD_EVALUATION_PERIODS + 1) : i + 1]
        now = sum(p.outside for p in window) >= LIKELIHOOD_DATAPOINTS
        if now and not firing:
            out.append(band[i].timestamp)
        firing = now
    return tuple(out)


def _arm_spec(name: str) -> ArmMetricSpec:
    for widget in ARM_WIDGETS:
        if widget.metric.name == name:
            return widget.metric
    raise LookupError(f"no {name} metric among the per-arm widgets")


def arm_figures(records: Sequence[WindowRecord], arm: str) -> ArmFigures:
    """One arm's requests, worst p99, mean likelihood and the sudden-change check (shares left None)."""
    requests = series_of(records, _arm_spec(ARM_COUNT), arm=arm)
    latency = series_of(records, _arm_spec(ARM_LATENCY), arm=arm)
    likelihood_spec = _arm_spec(ARM_LIKELIHOOD)
    likelihood = series_of(records, likelihood_spec, arm=arm)
    gauges = [r for r in records if _matches_arm(r, likelihood_spec, arm) and r.count]
    band = likelihood_band(likelihood.points)
    return ArmFigures(
        arm=arm,
        requests=sum(requests.values) if requests.has_data else None,
        share=None,
        worst_p99_ms=latency.maximum,
        # each flush's mean weighs the same, as CloudWatch's Average of the gauge
        mean_likelihood=sum(r.sum for r in gauges) / sum(r.count for r in gauges) if gauges else None,
        band=band,
        sudden_changes=sudden_changes(band),
        likelihood_periods=len(likelihood.points),
    )


def _with_shares(arms: list[ArmFigures]) -> tuple[ArmFigures, ...]:
    total = sum(a.requests or 0.0 for a in arms)
    if not total:
        return tuple(arms)
    return tuple(replace(a, share=(a.requests or 0.0) / total) for a in arms)


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
    arms = arms_of(records)
    arm_widgets = tuple(
        ArmWidgetFigures(w, tuple(series_of(records, w.metric, arm=arm) for arm in arms)) for w in ARM_WIDGETS
    )
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
        arm_widgets=arm_widgets,
        arms=_with_shares([arm_figures(records, arm) for arm in arms]),
    )


def summarize_file(uri: str | os.PathLike[str]) -> DashboardSummary:
    """`summarize` of a metrics file."""
    metrics = load_records(uri)
    return summarize(metrics.records, malformed=metrics.malformed)
