"""The kit's deployment settings: one frozen dataclass, filled from CDK context in `app.py` only."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import TYPE_CHECKING, Any

import aws_cdk as cdk

if TYPE_CHECKING:
    from stacks.loop import LoopSettings

#: The context keys `cdk deploy -c KEY=VALUE` understands, mapped to `KitConfig` fields.
CONTEXT_KEYS: Mapping[str, str] = {
    "aik:retain-data": "retain_data",
    "aik:nat-gateways": "nat_gateways",
    "aik:min-tasks": "min_tasks",
    "aik:max-tasks": "max_tasks",
    "aik:emulator": "emulator",
    "aik:latency-alarm-ms": "latency_alarm_ms",
    "aik:log-retention-days": "log_retention_days",
    "aik:loop-schedule": "loop_schedule",
    "aik:loop-schedule-expression": "loop_schedule_expression",
    "aik:release-max-age-hours": "release_max_age_hours",
    "aik:loop-window-days": "loop_window_days",
    "aik:loop-test-days": "loop_test_days",
    "aik:loop-ingest-prefix": "loop_ingest_prefix",
    "aik:mlflow": "mlflow",
    "aik:prediction-sample": "prediction_sample",
}
#: The retention periods CloudWatch Logs accepts, in days.
LOG_RETENTION_DAYS = (
    1,
    3,
    5,
    7,
    14,
    30,
    60,
    90,
    120,
    150,
    180,
    365,
    400,
    545,
    731,
    1096,
    1827,
    2192,
    2557,
    2922,
    3288,
    3653,
)


@dataclass(frozen=True)
class KitConfig:
    """What a deployment may change; the defaults suit a sample kit that is torn down after use."""

    #: The single data-retention switch. False (default): buckets and their objects, log groups and
    #: the EBS key go away with `cdk destroy`. True: all of them outlive the stacks.
    retain_data: bool = False
    #: NAT gateways of the VPC (one per AZ is more available, one is cheaper; both AZs route through it).
    nat_gateways: int = 1
    #: Filtering tasks always running (2: one per AZ, so that one AZ can fail); the scaling floor.
    min_tasks: int = 2
    #: Upper bound of the filtering service's CPU target-tracking scaling (equal to min_tasks: no scaling).
    max_tasks: int = 4
    #: Run the ad-server emulator as its own service, replaying the inference data against the load
    #: balancer (the demo load). Off by default: in production the bidders are the traffic.
    emulator: bool = False
    #: The server-side p99 filtering latency (ms) above which the latency alarm fires.
    latency_alarm_ms: float = 10.0
    #: How long every log group of the kit (containers, flow log, Lambda handlers) keeps its events.
    log_retention_days: int = 30
    #: The retraining loop's schedule switch: False (default) deploys the schedule disabled.
    loop_schedule: bool = False
    #: When the loop runs (EventBridge Scheduler expression, UTC).
    loop_schedule_expression: str = "cron(0 3 * * ? *)"
    #: The staleness alarm fires when no release was published for this many hours (1 to 168).
    release_max_age_hours: int = 48
    #: The loop's feature job trains on this many days before the test days (`--window-days`).
    loop_window_days: int = 7
    #: ... and tests on the newest this many days (`--test-days`).
    loop_test_days: int = 1
    #: Key prefix of the data bucket where new log days land for the loop's ingest step.
    loop_ingest_prefix: str = "incoming/"
    #: A SageMaker managed MLflow tracking server for `aik backtest` (billed by the hour while it exists).
    mlflow: bool = False
    #: Share of the filtering server's answers sent to the prediction log (0 to 1; 0: off).
    prediction_sample: float = 0.1

    def __post_init__(self) -> None:
        if not 1 <= self.nat_gateways <= 2:
            raise ValueError(f"nat_gateways must be 1 or 2 (the VPC has 2 AZs), got {self.nat_gateways}")
        if self.min_tasks < 1:
            raise ValueError(f"min_tasks must be at least 1, got {self.min_tasks}")
        if self.max_tasks < self.min_tasks:
            raise ValueError(f"max_tasks must be at least min_tasks ({self.min_tasks}), got {self.max_tasks}")
        if self.log_retention_days not in LOG_RETENTION_DAYS:
            raise ValueError(
                f"log_retention_days must be one of {LOG_RETENTION_DAYS}, got {self.log_retention_days}"
            )
        if not 0.0 <= self.prediction_sample <= 1.0:
            raise ValueError(f"prediction_sample must be 0 to 1, got {self.prediction_sample}")
        if self.latency_alarm_ms <= 0:
            raise ValueError(f"latency_alarm_ms must be positive, got {self.latency_alarm_ms}")
        # CloudWatch evaluates an alarm of hourly periods over at most 7 days
        if not 1 <= self.release_max_age_hours <= 168:
            raise ValueError(f"release_max_age_hours must be 1 to 168, got {self.release_max_age_hours}")
        _ = self.loop  # the loop's own settings check its window and ingest prefix (ValueError)
        if not self.loop_schedule_expression.startswith(("cron(", "rate(", "at(")):
            raise ValueError(
                f"loop_schedule_expression must be cron(...), rate(...) or at(...), got "
                f"{self.loop_schedule_expression!r}"
            )

    @property
    def loop(self) -> LoopSettings:
        """The retraining loop's settings (stacks/loop.py)."""
        from stacks.loop import LoopSettings

        return LoopSettings(
            schedule_enabled=self.loop_schedule,
            schedule_expression=self.loop_schedule_expression,
            release_max_age_hours=self.release_max_age_hours,
            window_days=self.loop_window_days,
            test_days=self.loop_test_days,
            ingest_prefix=self.loop_ingest_prefix,
        )

    @property
    def removal_policy(self) -> cdk.RemovalPolicy:
        """What CloudFormation does with data-holding resources when the stack is deleted."""
        return cdk.RemovalPolicy.RETAIN if self.retain_data else cdk.RemovalPolicy.DESTROY

    @classmethod
    def from_context(cls, context: Mapping[str, Any]) -> KitConfig:
        """Settings from CDK context values (strings from `-c key=value`, or JSON values from cdk.json)."""
        types = {f.name: f.type for f in fields(cls)}
        values: dict[str, Any] = {}
        for key, name in CONTEXT_KEYS.items():
            raw = context.get(key)
            if raw is None:
                continue
            kind = types[name]
            try:
                values[name] = _parse(raw, kind)
            except ValueError as exc:
                raise ValueError(f"context {key}={raw!r}: {exc}") from exc
        return cls(**values)


def _parse(raw: Any, kind: Any) -> Any:
    """One context value as the field's type (`from __future__` annotations are strings)."""
    if kind in (bool, "bool"):
        if isinstance(raw, bool):
            return raw
        text = str(raw).strip().lower()
        if text in ("true", "1", "yes"):
            return True
        if text in ("false", "0", "no"):
            return False
        raise ValueError("expected true or false")
    if kind in (int, "int"):
        return int(raw)
    if kind in (float, "float"):
        return float(raw)
    if kind in (str, "str"):
        return str(raw).strip()
    raise ValueError(f"unsupported setting type {kind}")
