"""The monitoring dashboard as data: the CDK stack builds `Monitoring-Dashboard` from it and the local
demo renders the same widgets from the StatsD metrics it receives: four in the first row, and a second
row per experiment arm (`ARM_WIDGETS`).

Metric contract (docs/monitoring.md): StatsD names `<prefix>.<name>`; the CloudWatch agent publishes them as
`<prefix>_<name>` in namespace `aik` with dimension `metric_type` (`counter`, `timing`, `gauge`).
Timers are sent in milliseconds (StatsD's unit, as floats) by both the server and the emulator, so the
widgets show them as they are.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

NAMESPACE = "aik"
DASHBOARD_NAME = "Monitoring-Dashboard"
DIMENSION = "metric_type"
#: Aggregation period of the agent and of every widget, seconds.
PERIOD_S = 10

SERVER_PREFIX = "filtering_server"
CLIENT_PREFIX = "adserver_client"
FILTERING_COUNT = "filtering_count"  # counter, one per scored request
FILTERING_LATENCY = "filtering_latency"  # timer, ms
CLIENT_LATENCY = "adserver_latency_ms"  # timer, ms
LIKELIHOOD = "likelihood_to_bid"  # gauge
#: gauge, seconds since the server last read the model's parameters and artifacts successfully (the
#: staleness alarm's metric: a watcher that cannot see new models keeps serving the old one)
MODEL_CHECK_AGE = "model_check_age_s"
#: Per-arm metrics of the server, each tagged `,arm=<arm>` (CloudWatch dimension `arm`): requests
#: (counter), latency of the calls that answered them (timer, ms), mean likelihood per flush (gauge).
ARM_DIMENSION = "arm"
ARM_COUNT = "arm_count"
ARM_LATENCY = "arm_latency"
ARM_LIKELIHOOD = "arm_likelihood"
#: The sudden-change rule on an arm's mean likelihood (the stack's anomaly-band alarm; the local
#: renderer evaluates a bounded band of the same width on its own periods): outside the band of this
#: many standard deviations in this many of the last periods evaluated.
LIKELIHOOD_BAND_STD_DEVS = 3
LIKELIHOOD_DATAPOINTS = 3
LIKELIHOOD_EVALUATION_PERIODS = 5
#: The server's errors (counter): requests answered with an error reply.
FILTERING_ERRORS = "filtering_errors"
#: Prediction log totals since start (gauges): records dropped because its queue was full, and lost
#: by its sink (a full disk, an unreachable delivery stream).
PREDICTION_LOG_DROPPED = "prediction_log_dropped"
PREDICTION_LOG_FAILED = "prediction_log_failed"


@dataclass(frozen=True)
class MetricSpec:
    """One CloudWatch metric of a widget: the agent's name, its `metric_type` and the statistic shown."""

    prefix: str
    name: str
    metric_type: Literal["counter", "timing", "gauge"]
    stat: str
    label: str

    @property
    def statsd_name(self) -> str:
        """The name on the StatsD wire (`prefix.name`)."""
        return f"{self.prefix}.{self.name}"

    @property
    def cloudwatch_name(self) -> str:
        """The name the CloudWatch agent publishes (`prefix_name`)."""
        return f"{self.prefix}_{self.name}"


@dataclass(frozen=True)
class ArmMetricSpec:
    """A per-arm server metric (dimension `arm` beside `metric_type`): one line per arm in its widget."""

    name: str
    metric_type: Literal["counter", "timing", "gauge"]
    stat: str
    label: str
    prefix: str = SERVER_PREFIX

    @property
    def cloudwatch_name(self) -> str:
        """The name the CloudWatch agent publishes (`prefix_name`)."""
        return f"{self.prefix}_{self.name}"


@dataclass(frozen=True)
class ArmWidgetSpec:
    """A widget of the second row: one metric, a line per arm (CloudWatch finds the arms by SEARCH)."""

    title: str
    metric: ArmMetricSpec
    unit: str


#: The experiments row: what each arm (champion, challengers) served, how fast, and what it predicted.
ARM_WIDGETS: tuple[ArmWidgetSpec, ...] = (
    ArmWidgetSpec(
        "Requests per arm (per 10 s)", ArmMetricSpec(ARM_COUNT, "counter", "Sum", "requests"), "requests"
    ),
    ArmWidgetSpec(
        "Latency p99 per arm (ms)", ArmMetricSpec(ARM_LATENCY, "timing", "p99", "p99 latency"), "ms"
    ),
    ArmWidgetSpec(
        "Mean likelihood per arm",
        ArmMetricSpec(ARM_LIKELIHOOD, "gauge", "Average", "mean likelihood"),
        "probability",
    ),
)


@dataclass(frozen=True)
class WidgetSpec:
    """One dashboard widget: a time-series graph or a single value over the dashboard's range."""

    title: str
    kind: Literal["graph", "single_value"]
    metrics: tuple[MetricSpec, ...]
    unit: str
    #: Divide each period's value by this (requests per second = sum per 10 s / 10).
    per_second: bool = False


WIDGETS: tuple[WidgetSpec, ...] = (
    WidgetSpec(
        title="Filtering latency p99 (ms)",
        kind="graph",
        metrics=(
            MetricSpec(CLIENT_PREFIX, CLIENT_LATENCY, "timing", "p99", "client (ad server) p99"),
            MetricSpec(SERVER_PREFIX, FILTERING_LATENCY, "timing", "p99", "filtering server p99"),
        ),
        unit="ms",
    ),
    WidgetSpec(
        title="Requests per second",
        kind="graph",
        metrics=(MetricSpec(SERVER_PREFIX, FILTERING_COUNT, "counter", "Sum", "requests/s"),),
        unit="requests/s",
        per_second=True,
    ),
    WidgetSpec(
        title="Likelihood to bid (average)",
        kind="graph",
        metrics=(MetricSpec(CLIENT_PREFIX, LIKELIHOOD, "gauge", "Average", "likelihood to bid"),),
        unit="probability",
    ),
    WidgetSpec(
        title="Total bid requests",
        kind="single_value",
        metrics=(MetricSpec(SERVER_PREFIX, FILTERING_COUNT, "counter", "Sum", "bid requests"),),
        unit="requests",
    ),
)
