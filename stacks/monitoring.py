"""CloudWatch dashboard `Monitoring-Dashboard` (from `aik.dashboard.WIDGETS`) and the filtering alarms."""

from __future__ import annotations

import aws_cdk as cdk
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_elasticloadbalancingv2 as elbv2
from constructs import Construct

from aik import dashboard
from aik.dashboard import ArmMetricSpec, ArmWidgetSpec, MetricSpec, WidgetSpec
from aik.experiments import CHALLENGER, CHAMPION

#: Alarms evaluate 1-minute periods (CloudWatch alarms on high-resolution metrics accept 10 s, 30 s or
#: multiples of 60 s; a minute smooths single slow requests) over this many periods.
ALARM_PERIOD = cdk.Duration.minutes(1)
ALARM_EVALUATION_PERIODS = 5
#: The server's last successful check for a new model older than this (seconds) is an alarm: above the
#: watcher's longest retry delay (300 s), so only a lasting failure of SSM or S3 access fires it.
MODEL_CHECK_AGE_ALARM_S = 900
MODEL_CHECK_AGE = MetricSpec(
    dashboard.SERVER_PREFIX, dashboard.MODEL_CHECK_AGE, "gauge", "Maximum", "model check age (s)"
)
#: The mean-likelihood alarms: outside CloudWatch's anomaly band of this many standard deviations
#: (a band it learns from the metric's own history, daily pattern included) for 3 of 5 minutes; the
#: numbers live in `aik.dashboard`, whose local renderer applies them to a bounded band.
LIKELIHOOD_BAND_STD_DEVS = dashboard.LIKELIHOOD_BAND_STD_DEVS
LIKELIHOOD_DATAPOINTS = dashboard.LIKELIHOOD_DATAPOINTS
LIKELIHOOD_EVALUATION_PERIODS = dashboard.LIKELIHOOD_EVALUATION_PERIODS
#: The arms whose mean likelihood is alarmed on (`aik experiment start` names one challenger so).
ALARMED_ARMS = (CHAMPION, CHALLENGER)
#: The error alarm: error replies above this share of the requests for five minutes.
ERROR_RATE_ALARM = 0.01
ERRORS = MetricSpec(dashboard.SERVER_PREFIX, dashboard.FILTERING_ERRORS, "counter", "Sum", "errors")


def metric(
    spec: MetricSpec, period: cdk.Duration | None = None, label: str | None = None
) -> cloudwatch.Metric:
    """The CloudWatch metric the agent publishes for `spec` (namespace `aik`, dimension `metric_type`)."""
    return cloudwatch.Metric(
        namespace=dashboard.NAMESPACE,
        metric_name=spec.cloudwatch_name,
        dimensions_map={dashboard.DIMENSION: spec.metric_type},
        statistic=spec.stat,
        period=period or cdk.Duration.seconds(dashboard.PERIOD_S),
        label=label or spec.label,
    )


def widget(spec: WidgetSpec) -> cloudwatch.IWidget:
    """One dashboard widget as `aik.dashboard` describes it (the local renderer draws the same)."""
    if spec.kind == "single_value":
        # Summed over the dashboard's whole time range, not per period.
        return cloudwatch.SingleValueWidget(
            title=spec.title,
            metrics=[metric(m) for m in spec.metrics],
            set_period_to_time_range=True,
            full_precision=True,
            width=6,
            height=6,
        )
    metrics: list[cloudwatch.IMetric]
    if spec.per_second:
        metrics = [
            cloudwatch.MathExpression(
                expression=f"m{i}/{dashboard.PERIOD_S}",
                using_metrics={f"m{i}": metric(m)},
                label=m.label,
                period=cdk.Duration.seconds(dashboard.PERIOD_S),
            )
            for i, m in enumerate(spec.metrics)
        ]
    else:
        metrics = [metric(m) for m in spec.metrics]
    return cloudwatch.GraphWidget(
        title=spec.title,
        left=metrics,
        left_y_axis=cloudwatch.YAxisProps(label=spec.unit, show_units=False),
        legend_position=cloudwatch.LegendPosition.BOTTOM,
        live_data=True,
        period=cdk.Duration.seconds(dashboard.PERIOD_S),
        view=cloudwatch.GraphWidgetView.TIME_SERIES,
        width=6,
        height=6,
    )


def arm_search(spec: ArmMetricSpec) -> str:
    """The SEARCH expression of a per-arm metric: one time series per arm the agent published."""
    dims = ",".join(sorted((dashboard.ARM_DIMENSION, dashboard.DIMENSION)))
    query = f'{{{dashboard.NAMESPACE},{dims}}} MetricName="{spec.cloudwatch_name}"'
    return f"SEARCH('{query}', '{spec.stat}', {dashboard.PERIOD_S})"


def arm_widget(spec: ArmWidgetSpec) -> cloudwatch.IWidget:
    """A second-row widget: its metric, a line per arm (found by SEARCH, so any arm name shows)."""
    return cloudwatch.GraphWidget(
        title=spec.title,
        left=[
            cloudwatch.MathExpression(
                expression=arm_search(spec.metric),
                label="",
                period=cdk.Duration.seconds(dashboard.PERIOD_S),
            )
        ],
        left_y_axis=cloudwatch.YAxisProps(label=spec.unit, show_units=False),
        legend_position=cloudwatch.LegendPosition.BOTTOM,
        live_data=True,
        period=cdk.Duration.seconds(dashboard.PERIOD_S),
        view=cloudwatch.GraphWidgetView.TIME_SERIES,
        width=8,
        height=6,
    )


def arm_metric(spec: ArmMetricSpec, arm: str, period: cdk.Duration) -> cloudwatch.Metric:
    """One arm's series of a per-arm metric."""
    return cloudwatch.Metric(
        namespace=dashboard.NAMESPACE,
        metric_name=spec.cloudwatch_name,
        dimensions_map={dashboard.DIMENSION: spec.metric_type, dashboard.ARM_DIMENSION: arm},
        statistic=spec.stat,
        period=period,
        label=f"{arm} {spec.label}",
    )


def _spec(prefix: str, name: str) -> MetricSpec:
    """The one `MetricSpec` of `aik.dashboard.WIDGETS` with this prefix and name."""
    for w in dashboard.WIDGETS:
        for m in w.metrics:
            if (m.prefix, m.name) == (prefix, name):
                return m
    raise KeyError(f"{prefix}.{name} is on no dashboard widget")


class FilteringMonitoring(Construct):
    """The dashboard of the four widgets of `aik.dashboard.WIDGETS`, in one row, and two alarms.

    `latency_alarm`: the server's p99 filtering latency above `latency_alarm_ms` for five minutes
    (no requests, no data: not an alarm, so the end of a replay or a quiet hour raises none).
    `health_alarm`: no healthy filtering task behind the load balancer for five minutes, whatever the
    traffic (the NLB reports its targets every minute; missing data counts as none healthy).
    `model_check_alarm`: a server has not been able to check for a new model for
    `MODEL_CHECK_AGE_ALARM_S` (it keeps serving the old one).
    The second row shows each experiment arm's requests, latency p99 and mean likelihood.
    `likelihood_alarms` (champion, challenger): the arm's mean likelihood outside CloudWatch's anomaly
    band, a sudden change of the predictions. `error_alarm`: error replies above 1 % of the requests.
    Exposes `dashboard`, `latency_alarm`, `health_alarm`, `model_check_alarm`, `likelihood_alarms`,
    `error_alarm`.
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        latency_alarm_ms: float,
        target_group: elbv2.INetworkTargetGroup,
    ) -> None:
        super().__init__(scope, construct_id)
        self.dashboard = cloudwatch.Dashboard(
            self,
            "Dashboard",
            dashboard_name=dashboard.DASHBOARD_NAME,
            default_interval=cdk.Duration.hours(1),
            period_override=cloudwatch.PeriodOverride.INHERIT,
        )
        self.dashboard.add_widgets(*(widget(spec) for spec in dashboard.WIDGETS))
        self.dashboard.add_widgets(*(arm_widget(spec) for spec in dashboard.ARM_WIDGETS))
        self.likelihood_alarms = {arm: self._likelihood_alarm(arm) for arm in ALARMED_ARMS}
        self.error_alarm = self._error_alarm()

        latency = _spec(dashboard.SERVER_PREFIX, dashboard.FILTERING_LATENCY)
        self.latency_alarm = cloudwatch.Alarm(
            self,
            "LatencyAlarm",
            alarm_description=f"Filtering server p99 latency above {latency_alarm_ms:g} ms for 5 minutes",
            metric=metric(latency, ALARM_PERIOD, "filtering server p99 latency (ms)"),
            threshold=latency_alarm_ms,
            comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
            evaluation_periods=ALARM_EVALUATION_PERIODS,
            treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
        )
        self.health_alarm = cloudwatch.Alarm(
            self,
            "HealthAlarm",
            alarm_description="No healthy filtering task behind the load balancer for 5 minutes",
            metric=target_group.metrics.healthy_host_count(
                period=ALARM_PERIOD, statistic="Minimum", label="healthy filtering tasks"
            ),
            threshold=1,
            comparison_operator=cloudwatch.ComparisonOperator.LESS_THAN_THRESHOLD,
            evaluation_periods=ALARM_EVALUATION_PERIODS,
            treat_missing_data=cloudwatch.TreatMissingData.BREACHING,
        )
        self.model_check_alarm = cloudwatch.Alarm(
            self,
            "ModelCheckAlarm",
            alarm_description=(
                f"The filtering server could not check for a new model for {MODEL_CHECK_AGE_ALARM_S} s "
                "(parameter store or artifact access failing; the old model keeps serving)"
            ),
            metric=metric(MODEL_CHECK_AGE, ALARM_PERIOD, "seconds since the last model check"),
            threshold=MODEL_CHECK_AGE_ALARM_S,
            comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
            evaluation_periods=ALARM_EVALUATION_PERIODS,
            treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
        )

    def _likelihood_alarm(self, arm: str) -> cloudwatch.AnomalyDetectionAlarm:
        """The arm's mean likelihood outside its anomaly band: a sudden change of what the model predicts."""
        spec = next(w.metric for w in dashboard.ARM_WIDGETS if w.metric.name == dashboard.ARM_LIKELIHOOD)
        return cloudwatch.AnomalyDetectionAlarm(
            self,
            f"{arm.capitalize()}LikelihoodAlarm",
            alarm_description=(
                f"The {arm}'s mean likelihood to bid left its anomaly band ({LIKELIHOOD_BAND_STD_DEVS} "
                f"standard deviations) in {LIKELIHOOD_DATAPOINTS} of {LIKELIHOOD_EVALUATION_PERIODS} minutes"
            ),
            metric=arm_metric(spec, arm, ALARM_PERIOD),
            std_devs=LIKELIHOOD_BAND_STD_DEVS,
            evaluation_periods=LIKELIHOOD_EVALUATION_PERIODS,
            datapoints_to_alarm=LIKELIHOOD_DATAPOINTS,
            comparison_operator=cloudwatch.ComparisonOperator.LESS_THAN_LOWER_OR_GREATER_THAN_UPPER_THRESHOLD,
            treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
        )

    def _error_alarm(self) -> cloudwatch.Alarm:
        """Error replies above `ERROR_RATE_ALARM` of the requests for five minutes."""
        count = _spec(dashboard.SERVER_PREFIX, dashboard.FILTERING_COUNT)
        return cloudwatch.Alarm(
            self,
            "ErrorAlarm",
            alarm_description=(
                f"Filtering server error replies above {ERROR_RATE_ALARM:.0%} of its requests for 5 minutes"
            ),
            metric=cloudwatch.MathExpression(
                expression="errors / (errors + requests)",
                using_metrics={
                    "errors": metric(ERRORS, ALARM_PERIOD, "error replies"),
                    "requests": metric(count, ALARM_PERIOD, "requests"),
                },
                label="error share",
                period=ALARM_PERIOD,
            ),
            threshold=ERROR_RATE_ALARM,
            comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
            evaluation_periods=ALARM_EVALUATION_PERIODS,
            treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
        )
